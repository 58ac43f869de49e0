package simnet

// Work left with no timer or event that would ever move it again once the load stops: each test
// here failed before the change its comment names.

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

// staticMasterLoad submits 20 transactions every 2 ms to replicas 2, 3 and 4 in turn (never to the
// static master 1) and returns them.
func staticMasterLoad(s *Sim, tag string, batches int) []types.Tx {
	const batch = 20
	txs := makeTxs(tag, batches*batch)
	for k := 0; k < batches; k++ {
		s.Submit(time.Duration(k)*2*time.Millisecond, types.NodeID(2+k%3), txs[k*batch:(k+1)*batch])
	}
	return txs
}

// requireNothingLeft checks, once everything is delivered and a second has passed, that no
// replica holds a pending transaction, one in flight or a waiting client.
func requireNothingLeft(t *testing.T, s *Sim) {
	t.Helper()
	requireNothingLeftAt(t, s, s.Nodes())
}

// requireNothingLeftAt is requireNothingLeft for the given replicas only (the honest ones: a
// Byzantine replica's own gauges are its business).
func requireNothingLeftAt(t *testing.T, s *Sim, nodes []*Node) {
	t.Helper()
	s.Run(s.Now() + time.Second)
	for _, n := range nodes {
		g := n.Core.Gauges()
		require.Zero(t, g.MempoolTxs, "node %d: transactions left pending", n.ID)
		require.Zero(t, g.InFlightTxs, "node %d: transactions left in flight", n.ID)
		require.Zero(t, g.LocalWaiting, "node %d: clients left waiting", n.ID)
	}
}

// Stratus (PAB) with a static master: a creator broadcasts the proof of its microblock once, when
// the push completes (stable), and the master never asks for proofs (it never votes on another's
// proposal). Only the master proposes, so a microblock whose proof the master missed was never
// proposed until the creator sent the proof to the master again (repushToMaster, as smp re-sends
// its microblocks); it waited for the stale re-issue, StaleViews/2 = 32,768 views later. The
// master misses proofs three ways:
//   - lost: the first copy of every proof sent to it is dropped (a full queue, a lossy link), as
//     TestSMPStaticMasterCommitsDroppedMicroblocks does for smp's microblocks;
//   - partitioned: it is cut off for 300 ms while the others take load; their pushes complete
//     without it (q = f+1 acks), so the proofs are broadcast while it is away;
//   - restarted: it crashes for 200 ms; a restarted replica gets its microblocks' data back from
//     its store (Restore) but no proof.
func TestPABStaticMasterGetsEveryProof(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		for _, way := range []string{"lost", "partitioned", "restarted"} {
			t.Run(engine+"/"+way, func(t *testing.T) {
				sp := sharedSpec(preset{engine: engine, memType: "stratus"}, 4)
				sp.Master = 1
				opts := Options{N: 4, Spec: sp, Seed: seedOr(4), Latency: time.Millisecond, Jitter: time.Millisecond}
				batches := 30
				switch way {
				case "lost":
					seen := map[types.Hash]bool{}
					opts.Drop = func(from, to types.NodeID, m types.Message) bool {
						p, ok := m.(*types.Proof)
						if !ok || to != 1 || seen[p.MBID] {
							return false
						}
						seen[p.MBID] = true
						return true
					}
				case "partitioned":
					opts.Partitions = []Partition{{From: 0, To: 300 * time.Millisecond, Side: []types.NodeID{1}}}
					batches = 50 // 100 ms of load, all during the partition
				case "restarted":
					opts.Crash = map[types.NodeID]CrashPlan{1: {At: 100 * time.Millisecond, Down: 200 * time.Millisecond}}
					batches = 100 // 200 ms of load, across the crash
				}
				s, err := New(opts)
				require.NoError(t, err)
				txs := staticMasterLoad(s, fmt.Sprintf("%s-%s", way, engine), batches)
				require.True(t, s.RunUntil(30*time.Second, func() bool { return s.AllDelivered(txs) }),
					"accepted transactions not delivered: %s", s.describeMissing(txs))
				require.Empty(t, s.Violations())
				requireNothingLeft(t, s)
			})
		}
	}
}

// A client's transaction accepted by a replica that is behind in delivery, committed by the
// others from that replica's microblock, and skipped over by the state transfer that replica
// needs to catch up. applySnapshot answered the local waiters of the transactions in the
// snapshot's dedup window only; a transaction delivered longer ago than the window (its last
// DedupWindow..2×DedupWindow transactions) is never delivered here again (the snapshot's
// microblock window frees the replica's microblock), so its entry in the pending-local set
// stayed and its client waited for good. Now the mempool names the own transactions of the
// microblocks the snapshot shows delivered, and their clients are answered. Here replica 4 hears
// no consensus message for 8 s (its mempool messages pass: its push completes and the static
// master 1 proposes its microblocks), while 6,000 transactions, three dedup windows of 1,024, are
// delivered after its own.
func TestWaiterOlderThanTheDedupWindowAcrossASnapshot(t *testing.T) {
	sp := sharedSpec(presets[1], 4) // s-hs
	sp.Master = 1                   // replica 4 never leads: the others move at full speed without it
	sp.DedupWindow = 1024
	var s *Sim
	drop := func(from, to types.NodeID, m types.Message) bool {
		return to == 4 && m.Kind().IsConsensus() && (s == nil || s.Now() < 8*time.Second)
	}
	s, err := New(Options{N: 4, Spec: sp, Seed: seedOr(4), Latency: time.Millisecond, Jitter: time.Millisecond, Drop: drop})
	require.NoError(t, err)
	own := makeTxs("behind-own", 20)
	s.Submit(0, 4, own)
	others := makeTxs("behind-others", 6000)
	for k := 0; k*20 < len(others); k++ {
		s.Submit(50*time.Millisecond+time.Duration(k)*10*time.Millisecond, types.NodeID(1+k%3), others[k*20:(k+1)*20])
	}
	all := append(append([]types.Tx(nil), own...), others...)
	synced := func() bool { return len(syncs(s.Node(4))) > 0 }
	require.True(t, s.RunUntil(60*time.Second, func() bool { return synced() && s.AllDelivered(all) }),
		"synced %v; %s", synced(), s.describeMissing(all))
	require.Empty(t, s.Violations())
	s.Run(s.Now() + 2*time.Second)
	for _, n := range s.Nodes() {
		g := n.Core.Gauges()
		require.Zero(t, g.MempoolTxs, "node %d: transactions left pending", n.ID)
		require.Zero(t, g.InFlightTxs, "node %d: transactions left in flight", n.ID)
		require.Zero(t, g.LocalWaiting, "node %d: clients left waiting for transactions delivered long ago (skipped by state transfer %+v)", n.ID, syncs(n))
	}
}
