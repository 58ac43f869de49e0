package simnet

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

// failAt is an errorfs injector that fails the k-th file operation matching a predicate, once it
// is armed (after the store opened).
type failAt struct {
	what  func(op errorfs.Op) bool
	k     int
	seen  int
	armed atomic.Bool
	fired atomic.Bool
	mu    sync.Mutex // Pebble calls from its background goroutines too
}

func (f *failAt) String() string { return "failAt" }

func (f *failAt) MaybeError(op errorfs.Op) error {
	if !f.armed.Load() || f.fired.Load() || !f.what(op) {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen++; f.seen == f.k {
		f.fired.Store(true)
		return errorfs.ErrInjected
	}
	return nil
}

// Where a write can fail. Pebble treats a failed write or sync of its log as fatal (the replica
// stops: it crashed, and restarts from what was synced); a failed flush or compaction is retried
// in the background, and a later crash must still find a consistent store. (A failure to create a
// new log file makes Pebble panic with a lock held: the process dies, which is a crash.)
var failPoints = []struct {
	name string
	what func(op errorfs.Op) bool
}{
	{"log write", func(op errorfs.Op) bool { return strings.HasSuffix(op.Path, ".log") && op.Kind == errorfs.OpFileWrite }},
	{"log sync", func(op errorfs.Op) bool { return strings.HasSuffix(op.Path, ".log") && op.Kind == errorfs.OpFileSync }},
	{"table write (flush, compaction)", func(op errorfs.Op) bool {
		return strings.HasSuffix(op.Path, ".sst") && op.Kind == errorfs.OpFileWrite
	}},
	{"table sync", func(op errorfs.Op) bool { return strings.HasSuffix(op.Path, ".sst") && op.Kind == errorfs.OpFileSync }},
}

// Crash consistency: replica 4 runs its real Pebble store on a simulated disk that keeps, across a
// crash, exactly what was synced. One file operation of the store fails, at every kind of step
// of a write (the log's write, sync and creation; a table's write and sync in a flush or a
// compaction) and at several points of the run; where Pebble holds the failure fatal the replica
// stops at once (none of the step's messages leaves), else it crashes a moment later. It
// restarts from the disk. The checker holds it to one chain across incarnations (it restarts at
// a height it delivered, with that height's chain digest, and delivers the same blocks above it)
// and to one vote per view across incarnations; every transaction is delivered everywhere.
func TestCrashConsistencyOfTheStore(t *testing.T) {
	runs := 0
	for _, engine := range []string{"hotstuff", "streamlet"} {
		for _, mem := range []string{"native", "stratus"} {
			for _, fp := range failPoints {
				for _, k := range []int{1, 7, 40} {
					name := fmt.Sprintf("%s/%s/%s/%d", engine, mem, fp.name, k)
					t.Run(name, func(t *testing.T) {
						inj := &failAt{what: fp.what, k: k}
						disk := NewDisk()
						disk.Inject, disk.OnlyOnce = inj, true
						s, err := New(Options{N: 4, Spec: matrixSpec(engine, mem, 4, false), Seed: seedOr(41), Latency: time.Millisecond,
							Jitter: 2 * time.Millisecond, Disks: map[types.NodeID]*Disk{4: disk}, DiskRestart: 300 * time.Millisecond})
						require.NoError(t, err)
						inj.armed.Store(true)
						txs := makeTxs("crash-consistency-"+name, 3000)
						for i, j := 0, 0; i < len(txs); i, j = i+10, j+1 {
							s.Submit(time.Duration(j)*8*time.Millisecond, types.NodeID(1+j%3), txs[i:i+10])
						}
						// A failure Pebble retries leaves the replica running: crash it a little
						// later, so that it restarts from what the disk holds then.
						var watch func()
						watch = func() {
							if n := s.Node(4); inj.fired.Load() && n.StoreFailures == 0 && n.Restarts == 0 && !n.Down {
								n.crash()
								s.at(s.Now()+300*time.Millisecond, func() { n.restart() })
								return
							}
							s.at(s.Now()+100*time.Millisecond, watch)
						}
						s.at(100*time.Millisecond, watch)
						ok := s.RunUntil(40*time.Second, func() bool {
							n := s.Node(4)
							return s.AllDelivered(txs) && !n.Down && (!inj.fired.Load() || n.Restarts == 1)
						})
						require.Empty(t, s.Violations(), "replay with -seed=%d", s.Seed())
						require.True(t, ok, "heights %d %d", s.Checker().Height(1), s.Checker().Height(4))
						if inj.fired.Load() {
							runs++
							require.Equal(t, 1, s.Node(4).Restarts, "the failure crashed replica 4 once and it came back")
						}
					})
				}
			}
		}
	}
	t.Logf("%d runs failed the store and recovered", runs)
}
