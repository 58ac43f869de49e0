package simnet

// Whole-cluster regression tests of defects found by thinking like an attacker. Each fails on the
// code before its fix.

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// Defect 3: smp with a static master stalled accepted transactions for ~32,000 views: a
// microblock the master dropped (over its creator's quota, or lost in a full queue) was never
// pushed again, since smp has no acks. Here the first copy of every microblock to the master is
// lost; everything must still commit within a bounded number of views.
func TestSMPStaticMasterCommitsDroppedMicroblocks(t *testing.T) {
	sp := sharedSpec(presets[0], 4) // smp-hs
	sp.Master = 1
	sp.Shared.PushTimeout = 50 * time.Millisecond
	seen := map[types.Hash]bool{}
	drop := func(from, to types.NodeID, m types.Message) bool {
		mb, ok := m.(*types.MicroBlock)
		if !ok || to != 1 || seen[mb.ID] {
			return false
		}
		seen[mb.ID] = true
		return true
	}
	s, err := New(Options{N: 4, Spec: sp, Seed: seedOr(4), Latency: time.Millisecond, Jitter: time.Millisecond, Drop: drop})
	require.NoError(t, err)
	var all []types.Tx
	for _, id := range []types.NodeID{2, 3, 4} {
		txs := makeTxs(string(rune('a'+id)), 400)
		s.Submit(0, id, txs) // all at once: more than the master stores of one creator
		all = append(all, txs...)
	}
	require.True(t, s.RunUntil(30*time.Second, func() bool { return s.AllDelivered(all) }), "not delivered within 30 virtual seconds")
	requireSafeAndComplete(t, s, all)
	require.Less(t, s.Node(1).Core.Status().View, types.View(3000), "committed within a bounded number of views")
}

// Defect 1, the whole attack: a Byzantine leader withholds its own microblocks (they reach just
// enough replicas for a proof and it serves them to nobody) and every fifth view shows one honest
// replica a copy of its proposal whose proof names only itself. Before the fix the copy kept the
// honest block's ID: the victim never voted, committed the copy when the others' QC arrived, and
// fetched the data from the forger alone, forever. Now the copy is another block, refused, and
// every honest replica delivers everything (the Byzantine leader's transactions too: PAB made
// them available at an honest signer). With proofs by reference the leader's own microblocks stay
// out instead: it keeps their proofs to itself (badproof), so no honest replica votes for a
// proposal naming them — a leader cannot get a QC for a microblock it cannot prove.
func TestTamperedProofCopiesDoNotStallAReplica(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		for _, byRef := range []bool{false, true} {
			name := fmt.Sprintf("%s, proofs by reference %v", engine, byRef)
			sp := sharedSpec(preset{engine: engine, memType: "stratus"}, 4)
			sp.Shared.ProofsByRef = byRef
			s, err := New(Options{N: 4, Spec: sp, Seed: seedOr(7), Latency: time.Millisecond, Jitter: time.Millisecond,
				Byzantine: map[types.NodeID]string{1: "missing+badproof"}})
			require.NoError(t, err)
			txs := makeTxs("tampered-"+engine, 2000)
			loadAll(s, txs, 20, 10*time.Millisecond)
			want, theirs := txs, []types.Tx(nil)
			if byRef {
				want = nil
				for i := 0; i < len(txs); i += 20 {
					if (i/20)%4 == 0 { // loadAll's batches for replica 1
						theirs = append(theirs, txs[i:i+20]...)
					} else {
						want = append(want, txs[i:i+20]...)
					}
				}
			}
			require.True(t, s.RunUntil(60*time.Second, func() bool { return s.AllDelivered(want) }), name)
			require.Empty(t, s.Violations())
			for _, tx := range theirs {
				for _, n := range s.Honest() {
					require.False(t, s.Checker().DeliveredBy(n.ID, tx.ID()), "%s: replica %d delivered a transaction of an unprovable microblock", name, n.ID)
				}
			}
			refused := 0
			for _, n := range s.Honest() {
				for _, e := range n.Events {
					if r, ok := e.(consensus.Rejected); ok && r.Kind == types.KindBlock && (r.Rule == consensus.RulePayload || r.Rule == consensus.RuleEquivocation) {
						refused++
					}
					_, synced := e.(consensus.StateSynced)
					require.False(t, synced, "%s: replica %d stalled and needed state transfer", name, n.ID)
				}
			}
			require.Positive(t, refused, "%s: the attack happened: blocks with bad proofs were refused", name)
		}
	}
}

// Found measuring the flood strategy in server -sim: a flooder asking for state every 20 ms got a
// snapshot at every checkpoint from every honest replica (each one built by sorting the whole
// dedup window), and fetch requests of 4,096 IDs were answered at 16 MiB/s. A peer's state request
// is now taken once per retry period of an honest requester (each answered at two checkpoints at
// most), nothing is built for a peer over its budget (4 MiB/s, bursts of 16 MiB per kind of
// answer), and a fetch request is looked at for its first 256 IDs. This checks the bounds.
func TestFloodersGetBoundedAnswers(t *testing.T) {
	sp := sharedSpec(presets[1], 4) // s-hs
	s, err := New(Options{N: 4, Spec: sp, Seed: seedOr(5), Latency: time.Millisecond, Jitter: time.Millisecond,
		Byzantine: map[types.NodeID]string{1: "flood"}})
	require.NoError(t, err)
	snapshots := map[types.NodeID]int{}
	bytes := map[types.NodeID]int{}
	tapAll(t, s, func(from, to types.NodeID, m types.Message) {
		switch m.(type) {
		case *types.Snapshot, *types.FetchResponse, *types.BlockResponse:
			if to == 1 {
				bytes[from] += types.WireSize(m)
			}
		}
		if _, ok := m.(*types.Snapshot); ok && to == 1 {
			snapshots[from]++
		}
	})
	txs := makeTxs("flooded", 4000)
	load(s, txs, 20, 5*time.Millisecond) // 1 s of load
	const secs = 10
	require.True(t, s.RunUntil(secs*time.Second, func() bool { return s.AllDelivered(txs) }))
	s.Run(secs * time.Second)
	require.Empty(t, s.Violations())
	period := 3 * sp.Timeout // a peer's state request is taken once per 3 view timeouts
	for id := types.NodeID(2); id <= 4; id++ {
		t.Logf("replica %d sent the flooder %d snapshots and %d KiB in %d s", id, snapshots[id], bytes[id]>>10, secs)
		require.LessOrEqual(t, snapshots[id], 2*int(secs*time.Second/period+1))
		require.LessOrEqual(t, bytes[id], 3*(16<<20+secs*(4<<20)), "within the serving budgets")
	}
}
