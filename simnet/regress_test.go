package simnet

// Whole-cluster regression tests of defects found by thinking like an attacker. Each fails on the
// code before its fix.

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
