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
	{"log sync", func(op errorfs.Op) bool { return strings.HasSuffix(op.Path, ".log") && isSync(op.Kind) }},
	{"table write (flush, compaction)", func(op errorfs.Op) bool {
		return strings.HasSuffix(op.Path, ".sst") && op.Kind == errorfs.OpFileWrite
	}},
	{"table sync", func(op errorfs.Op) bool { return strings.HasSuffix(op.Path, ".sst") && isSync(op.Kind) }},
}

func isSync(k errorfs.OpKind) bool {
	return k == errorfs.OpFileSync || k == errorfs.OpFileSyncData || k == errorfs.OpFileSyncTo
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
								s.At(300*time.Millisecond, func() { n.restart() })
								return
							}
							s.At(100*time.Millisecond, watch)
						}
						s.At(100*time.Millisecond, watch)
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

// Mid-snapshot: replica 4 on a disk is down long enough (15 s) that the others no longer retain
// what it missed; back, it takes a snapshot by state transfer, and the disk fails while the
// snapshot's batch (the whole delivered state replaced) is written or synced. It stops, stays
// down another 15 s (past the retained history again), comes back from what the disk kept (the
// state before the snapshot, never half of it) and catches up by a snapshot again.
func TestCrashConsistencyMidSnapshot(t *testing.T) {
	for _, fp := range failPoints[:2] { // the log's write and sync: where the snapshot's batch goes
		for _, engine := range []string{"hotstuff", "streamlet"} {
			t.Run(engine+"/"+fp.name, func(t *testing.T) {
				inj := &failAt{what: fp.what, k: 1}
				disk := NewDisk()
				s, err := New(Options{N: 4, Spec: matrixSpec(engine, "native", 4, false), Seed: seedOr(42), Latency: time.Millisecond,
					Jitter: 2 * time.Millisecond, Disks: map[types.NodeID]*Disk{4: disk}, DiskRestart: 15 * time.Second,
					Crash: map[types.NodeID]CrashPlan{4: {At: time.Second, Down: 15 * time.Second}}})
				require.NoError(t, err)
				txs := makeTxs("mid-snapshot-"+engine+fp.name, 6000)
				for i, j := 0, 0; i < len(txs); i, j = i+2, j+1 {
					s.Submit(time.Duration(j)*5*time.Millisecond, types.NodeID(1+j%3), txs[i:i+2])
				}
				// Armed once the replica is back: the first matching write after its restart is
				// in the steps that ask for and apply the snapshot.
				s.At(10*time.Second, func() { disk.Inject, disk.OnlyOnce = inj, true }) // the restarted store opens on it
				s.At(16*time.Second+time.Millisecond, func() { inj.armed.Store(true) })
				last := txs[len(txs)-1].ID()
				ok := s.RunUntil(90*time.Second, func() bool { return s.Checker().DeliveredBy(4, last) && !s.Node(4).Down })
				require.Empty(t, s.Violations(), "replay with -seed=%d", s.Seed())
				require.True(t, ok, "heights %d %d", s.Checker().Height(1), s.Checker().Height(4))
				require.True(t, inj.fired.Load(), "the disk failed")
				require.Equal(t, 1, s.Node(4).StoreFailures)
				require.NotEmpty(t, syncs(s.Node(4)), "it caught up by snapshot")
			})
		}
	}
}
