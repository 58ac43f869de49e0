package simnet

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/types"
)

// Restarts with a store (docs: a replica keeps its voting state, the certified blocks above its
// delivered head, its delivered state with the dedup window and the key-value store, and the
// microblocks it holds). Each scenario runs for both engines and every mempool; the checker holds
// a replica's chain across its incarnations to one chain: delivering another block at a height
// it delivered before, or restarting below the height it had reached, is a violation.

var restartMatrix = []struct{ engine, mem string }{
	{"hotstuff", "native"}, {"hotstuff", "smp"}, {"hotstuff", "stratus"},
	{"streamlet", "native"}, {"streamlet", "smp"}, {"streamlet", "stratus"},
}

// durableScenario submits txs spread over [0, span) to the replicas that are up at the time,
// then late (written to the key-value store) at lateAt, and runs until every honest replica
// delivered all of them.
type durableScenario struct {
	crash  map[types.NodeID]CrashPlan
	silent []types.NodeID
	n      int
	txs    int
	span   time.Duration
	lateAt time.Duration
	limit  time.Duration
	quiet  time.Duration // no transaction goes to a replica this long before its crash (default 1.5 s)
}

func (d durableScenario) run(t *testing.T, engine, mem string, seed int64) *Sim {
	t.Helper()
	n := max(d.n, 4)
	s, err := New(Options{N: n, Spec: matrixSpec(engine, mem, n, false), Seed: seed, Latency: time.Millisecond,
		Jitter: 2 * time.Millisecond, Crash: d.crash, Absent: d.silent})
	require.NoError(t, err)
	tag := fmt.Sprintf("durable-%s-%s", engine, mem)
	txs := makeTxs(tag, d.txs)
	per := d.span / time.Duration(len(txs)/20)
	quiet := d.quiet
	if quiet == 0 {
		quiet = 1500 * time.Millisecond
	}
	up := func(at time.Duration) []types.NodeID {
		var ids []types.NodeID
		for id := types.NodeID(1); int(id) <= n; id++ {
			c, crashes := d.crash[id]
			silent := false
			for _, x := range d.silent {
				silent = silent || x == id
			}
			// Transactions a replica holds when it crashes are lost with its mempool (they were
			// accepted, never acknowledged): none goes to a replica about to crash.
			if !silent && (!crashes || at < c.At-quiet || at > c.At+c.Down+50*time.Millisecond) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	for i, k := 0, 0; i < len(txs); i, k = i+20, k+1 {
		at := time.Duration(k) * per
		ids := up(at)
		require.NotEmpty(t, ids, "a replica is up at %v", at)
		s.Submit(at, ids[k%len(ids)], txs[i:min(i+20, len(txs))])
	}
	late := []types.Tx{core.NewPut(core.PutID{1}, tag+"/late", []byte("written after the restarts"))}
	for i := range 49 {
		late = append(late, types.NewTx(fmt.Appendf(nil, "%s/late-%d", tag, i)))
	}
	s.Submit(d.lateAt, up(d.lateAt)[0], late)
	all := append(txs, late...)
	ok := s.RunUntil(d.limit, func() bool { return s.AllDelivered(all) })
	require.Empty(t, s.Violations(), "replay with -seed=%d", seed)
	var heights []uint64
	for _, nd := range s.Nodes() {
		heights = append(heights, s.Checker().Height(nd.ID))
	}
	require.True(t, ok, "%s/%s: not every transaction delivered everywhere by %v (heights %v)", engine, mem, d.limit, heights)
	for id, c := range d.crash {
		if c.Down > 0 {
			require.Equal(t, 1, s.Node(id).Restarts, "replica %d restarted", id)
		}
	}
	// The key-value store of every honest replica holds the write, restarted or not.
	for _, nd := range s.Honest() {
		e, found, err := nd.Core.KV(tag + "/late")
		require.NoError(t, err)
		require.True(t, found, "replica %d lost the write", nd.ID)
		require.Equal(t, "written after the restarts", string(e.Value))
	}
	return s
}

// Replicas 1..4 each down for 1 s at 6, 9, 12 and 15 s, never more than one at a time: without a
// store Streamlet committed a second, conflicting chain and HotStuff halted for good on a lock
// whose block nobody held.
func TestRollingRestartOfEveryReplica(t *testing.T) {
	for _, m := range restartMatrix {
		t.Run(m.engine+"/"+m.mem, func(t *testing.T) {
			d := durableScenario{txs: 2000, span: 17 * time.Second, lateAt: 18 * time.Second, limit: 60 * time.Second,
				crash: map[types.NodeID]CrashPlan{}}
			for i := types.NodeID(1); i <= 4; i++ {
				d.crash[i] = CrashPlan{At: time.Duration(3+3*i) * time.Second, Down: time.Second}
			}
			s := d.run(t, m.engine, m.mem, seedOr(31))
			for _, nd := range s.Nodes() {
				require.Empty(t, syncs(nd), "replica %d: a restart within the retained history needs no snapshot", nd.ID)
			}
		})
	}
}

// Every replica down for 0.5 s at 1 s: without a store Streamlet forked from genesis and
// HotStuff stayed at height 0. A write committed before the cut reads back after it.
func TestWholeClusterRestart(t *testing.T) {
	for _, m := range restartMatrix {
		t.Run(m.engine+"/"+m.mem, func(t *testing.T) {
			d := durableScenario{txs: 600, span: 600 * time.Millisecond, lateAt: 3 * time.Second, limit: 60 * time.Second,
				quiet: 300 * time.Millisecond, crash: map[types.NodeID]CrashPlan{}}
			for i := types.NodeID(1); i <= 4; i++ {
				d.crash[i] = CrashPlan{At: time.Second, Down: 500 * time.Millisecond}
			}
			s := d.run(t, m.engine, m.mem, seedOr(32))
			for _, nd := range s.Nodes() {
				r := nd.Core.Restored()
				require.NotNil(t, r, "replica %d started from its store", nd.ID)
				require.Positive(t, r.Height, "replica %d kept its delivered height", nd.ID)
			}
		})
	}
}

// Two of four replicas down together for 0.5 s: no quorum while they are down; afterwards the
// cluster goes on from where it stood.
func TestTwoReplicasRestartTogether(t *testing.T) {
	for _, m := range restartMatrix {
		t.Run(m.engine+"/"+m.mem, func(t *testing.T) {
			d := durableScenario{txs: 1000, span: 2 * time.Second, lateAt: 3 * time.Second, limit: 60 * time.Second,
				crash: map[types.NodeID]CrashPlan{3: {At: time.Second, Down: 500 * time.Millisecond}, 4: {At: time.Second, Down: 500 * time.Millisecond}}}
			d.run(t, m.engine, m.mem, seedOr(33))
		})
	}
}

// Replica 1 is silent (f = 1) and replica 4 is down for 0.5 s: the two others stand still
// without it. Before, it came back with nothing, the others no longer retained what it missed
// and answered snapshots only at checkpoint heights they never reached: nothing was delivered
// again. With its store it comes back where it was.
func TestRestartedReplicaNeededForTheQuorum(t *testing.T) {
	for _, m := range restartMatrix {
		t.Run(m.engine+"/"+m.mem, func(t *testing.T) {
			d := durableScenario{txs: 1000, span: 5 * time.Second, lateAt: 6 * time.Second, limit: 90 * time.Second,
				silent: []types.NodeID{1}, crash: map[types.NodeID]CrashPlan{4: {At: 4 * time.Second, Down: 500 * time.Millisecond}}}
			d.run(t, m.engine, m.mem, seedOr(34))
		})
	}
}

// A replica far behind (down for 40 s while the others went on beyond the history they retain)
// comes back when the others stand still without it: of seven, 1 is silent and 6 crashed for
// good. Before, they answered snapshots only at checkpoint heights, which they never reached;
// now they answer at their current height, and the snapshot carries the key-value store.
func TestStateTransferFromPeersThatStandStill(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		t.Run(engine, func(t *testing.T) {
			s, err := New(Options{N: 7, Spec: matrixSpec(engine, "native", 7, false), Seed: seedOr(35), Latency: time.Millisecond,
				Jitter: 2 * time.Millisecond, Absent: []types.NodeID{1},
				Crash: map[types.NodeID]CrashPlan{7: {At: time.Second, Down: 40 * time.Second}, 6: {At: 38 * time.Second}}})
			require.NoError(t, err)
			txs := makeTxs("stand-still-"+engine, 6000)
			for i, k := 0, 0; i < len(txs); i, k = i+2, k+1 {
				s.Submit(time.Duration(k)*12*time.Millisecond, types.NodeID(2+k%4), txs[i:i+2])
			}
			kv := core.NewPut(core.PutID{2}, "stand-still", []byte("written while 7 was down"))
			s.Submit(5*time.Second, 2, []types.Tx{kv})
			late := makeTxs("stand-still-late-"+engine, 20)
			s.Submit(42*time.Second, 2, late)
			last := late[len(late)-1].ID()
			ok := s.RunUntil(150*time.Second, func() bool {
				return s.Checker().DeliveredBy(7, last) && s.Checker().DeliveredBy(2, last)
			})
			require.Empty(t, s.Violations())
			require.True(t, ok, "heights %d %d %d", s.Checker().Height(2), s.Checker().Height(5), s.Checker().Height(7))
			t.Logf("heights %d %d %d, syncs %+v", s.Checker().Height(2), s.Checker().Height(5), s.Checker().Height(7), syncs(s.Node(7)))
			require.NotEmpty(t, syncs(s.Node(7)), "it caught up by snapshot")
			e, found, err := s.Node(7).Core.KV("stand-still")
			require.NoError(t, err)
			require.True(t, found, "the snapshot carried the key-value store")
			require.Equal(t, "written while 7 was down", string(e.Value))
		})
	}
}

// A Byzantine leader withholds its proposals from replica 2 and sends it instead a validly
// signed block of a future view whose parent is a committed block 300 heights back. Nobody holds
// that parent any more; before, replica 2 gave up fetching it, asked for a snapshot it did not
// need and applied one. A block whose parent lies below the committed head can only conflict with
// the committed chain: it is ignored.
func TestBlockOnALongPrunedParentIsIgnored(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		t.Run(engine, func(t *testing.T) {
			s, err := New(Options{N: 4, Spec: matrixSpec(engine, "native", 4, false), Seed: seedOr(36), Latency: time.Millisecond,
				Jitter: 2 * time.Millisecond, Drop: func(from, to types.NodeID, m types.Message) bool {
					_, proposal := m.(*types.Block)
					return from == 1 && to == 2 && proposal
				}})
			require.NoError(t, err)
			txs := makeTxs("pruned-parent-"+engine, 8000)
			for i, k := 0, 0; i < len(txs); i, k = i+2, k+1 {
				s.Submit(time.Duration(k)*5*time.Millisecond, types.NodeID(2+k%3), txs[i:i+2])
			}
			sent := false
			var target types.Hash // the pruned parent
			var attack func()
			attack = func() {
				c := s.Checker()
				h := c.Height(2)
				if h < 320 {
					s.At(time.Second, attack)
					return
				}
				parent := c.blocks[c.chain[h-301]] // committed long ago: pruned everywhere
				child := c.blocks[c.chain[h-300]]  // its QC certifies parent
				leaders := s.check.leaders
				v := s.Node(2).Core.Status().View + 600 // far enough ahead to stay parked while the fetch fails
				for leaders.Leader(v) != 1 {
					v++
				}
				b := &types.Block{View: v, Height: parent.Height + 1, Parent: parent.ID(), QC: child.QC, Payload: &types.Payload{}, Proposer: 1}
				b.Sig = s.signers[0].Sign(b.ID())
				target = parent.ID()
				s.Node(2).Core.Handle(1, b)
				sent = true
			}
			asked, snapshots := 0, 0
			s.tap = func(from, _ *Node, m types.Message) {
				switch m := m.(type) {
				case *types.BlockRequest:
					if from.ID == 2 && sent && m.ID == target {
						asked++
					}
				case *types.StateRequest:
					if from.ID == 2 {
						snapshots++
					}
				}
			}
			s.At(5*time.Second, attack)
			s.Run(45 * time.Second)
			require.True(t, sent, "the chain reached height 320 (height %d)", s.Checker().Height(2))
			require.Empty(t, s.Violations())
			if engine == "hotstuff" {
				// A block this far ahead of the QC it carries is refused before anything is fetched.
				refused := false
				for _, e := range s.Node(2).Events {
					if r, ok := e.(consensus.Rejected); ok && r.Rule == consensus.RuleFuture && r.Kind == types.KindBlock {
						refused = true
					}
				}
				require.True(t, refused, "replica 2 refused the block")
			} else {
				require.Positive(t, asked, "replica 2 tried to fetch the parent")
			}
			require.Zero(t, snapshots, "the unreachable parent is no reason to ask for a snapshot")
			require.InDelta(t, s.Checker().Height(3), s.Checker().Height(2), 3, "and kept delivering")
		})
	}
}
