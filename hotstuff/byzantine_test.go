package hotstuff_test

// Regression tests of what a Byzantine leader could do to an honest HotStuff replica.

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/hotstuff"
	"github.com/stratusbft/stratus/types"
)

// equivocations returns k distinct validly signed proposals of the leader of view v, each
// extending genesis.
func equivocations(f *enginetest.Fixture, v types.View, k int, tc *types.TC) []*types.Block {
	out := make([]*types.Block, k)
	for i := range out {
		out[i] = f.Block(enginetest.BlockSpec{View: v, TC: tc, Payload: enginetest.Payload(fmt.Sprintf("equivocation %d", i))})
	}
	return out
}

// Defect 2: the tree kept every validly signed proposal of a view up to the global cap of 4,096
// uncommitted blocks, so a leader that sent 4,096 conflicting proposals for one view made every
// honest proposal after them fail for capacity: nothing committed again. One block per (view,
// proposer) is kept; the others are refused as equivocation.
func TestEquivocationFloodDoesNotFillTheTree(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 4}) // votes for view 2 go to replica 3
	flood := equivocations(h.Fixture, 1, consensus.MaxUncommitted+100, nil)
	for _, b := range flood {
		h.Deliver(1, b)
	}
	e := h.Engine.(*hotstuff.Engine)
	require.LessOrEqual(t, len(e.Tree.Uncommitted()), 1, "one block of view 1 kept")
	enginetest.RequireIDs(t, []types.Hash{flood[0].ID()}, h.OwnVoteIDs(), "the first proposal got the vote")
	rules := map[string]int{}
	for _, r := range h.Out.Rejections() {
		rules[r.Rule]++
	}
	require.Equal(t, len(flood)-1, rules[consensus.RuleEquivocation], "every other proposal refused as equivocation: %v", rules)

	// The honest leader of view 2 extends the first block; the replica still votes.
	b2 := h.Block(enginetest.BlockSpec{View: 2, Parent: flood[0], QC: h.QCFor(flood[0])})
	h.Env.ClearOutbox()
	h.Propose(b2)
	enginetest.RequireIDs(t, []types.Hash{b2.ID()}, h.OwnVoteIDs(), "an honest proposal after the flood gets its vote")
}

// A second block of a (view, proposer) is still taken when a certificate shows the others voted
// for it: the equivocator showed this replica one block and a quorum another.
func TestEquivocatedBlockCertifiedByOthersIsFetched(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 4})
	pair := equivocations(h.Fixture, 1, 2, nil)
	shown, certified := pair[0], pair[1]
	h.Propose(shown, certified)
	require.Len(t, h.Engine.(*hotstuff.Engine).Tree.Uncommitted(), 1)

	b2 := h.Block(enginetest.BlockSpec{View: 2, Parent: certified, QC: h.QCFor(certified)})
	h.Env.ClearOutbox()
	h.Propose(b2)
	reqs := enginetest.Of[*types.BlockRequest](h.Env.Messages())
	require.NotEmpty(t, reqs, "the certified block is requested")
	for _, r := range reqs {
		require.Equal(t, certified.ID(), r.ID)
	}
	h.Deliver(2, &types.BlockResponse{Block: certified})
	enginetest.RequireIDs(t, []types.Hash{b2.ID()}, h.OwnVoteIDs(), "b2 extends the certified block: vote")
}

// Uncertified blocks of views long past are evicted, so junk a leader showed once does not stay.
func TestUncertifiedBlocksOfPastViewsAreEvicted(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 3})
	b1 := h.Block(enginetest.BlockSpec{View: 1})
	h.Propose(b1)
	require.Len(t, h.Engine.(*hotstuff.Engine).Tree.Uncommitted(), 1)
	h.Deliver(4, h.TC(consensus.KeepViews+5, 1, 2, 4))
	require.Empty(t, h.Engine.(*hotstuff.Engine).Tree.Uncommitted(), "view 1's uncertified block is gone")
	require.Contains(t, enginetest.IDs(h.Out.Orphans), b1.ID(), "its payload goes back to the mempool")
}

// A peer asking for the same large block again and again gets a bounded rate of answers, not one
// answer per request: BlockRequest was answered with up to 64 MiB each, with no limit.
func TestBlockRequestsAreRateLimited(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 4})
	var big []string
	for i := 0; i < 1024; i++ {
		big = append(big, fmt.Sprintf("%01024d", i)) // 1 KiB each: a 1 MiB block
	}
	b1 := h.Block(enginetest.BlockSpec{View: 1, Payload: enginetest.Payload(big...)})
	h.Propose(b1)
	h.Env.ClearOutbox()
	for i := 0; i < 500; i++ {
		h.Deliver(2, &types.BlockRequest{ID: b1.ID()})
	}
	burst := len(enginetest.Of[*types.BlockResponse](h.Env.Messages()))
	require.Positive(t, burst, "an honest syncing peer is served")
	require.LessOrEqual(t, burst, types.MaxFrame>>20+1, "at most a burst of 64 MiB")
	h.Env.ClearOutbox()
	h.Advance(time.Second)
	for i := 0; i < 500; i++ {
		h.Deliver(2, &types.BlockRequest{ID: b1.ID()})
	}
	require.LessOrEqual(t, len(enginetest.Of[*types.BlockResponse](h.Env.Messages())), consensus.DefaultServeRate>>20+1, "then 16 MiB/s")
	// Another peer has its own budget.
	h.Env.ClearOutbox()
	h.Deliver(3, &types.BlockRequest{ID: b1.ID()})
	require.Len(t, enginetest.Of[*types.BlockResponse](h.Env.Messages()), 1)
}

// Suspected: parking slots filled by blocks whose parent is an orphan nobody can serve. A
// Byzantine leader sends many validly signed blocks of its view, each extending a certified block
// the replica does not have (an orphan pruned everywhere): each was parked, the parking space
// (1,024 blocks) filled up, and an honest block waiting for its parent could no longer be parked —
// the replica dropped it. One parked block per (view, proposer) now, like the tree.
func TestEquivocatedBlocksDoNotFillTheParking(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 4})
	orphan := h.Block(enginetest.BlockSpec{View: 1}) // certified, never delivered to replica 4
	oqc := h.QCFor(orphan)
	for i := 0; i < 1100; i++ {
		h.Deliver(1, h.Block(enginetest.BlockSpec{View: 5, Parent: orphan, QC: oqc, TC: h.TC(4, 1, 2, 3),
			Payload: enginetest.Payload(fmt.Sprintf("park %d", i))}))
	}
	e := h.Engine.(*hotstuff.Engine)
	// An honest chain the replica has not seen yet: b2 ← b3, and b3 arrives first.
	b2 := h.Block(enginetest.BlockSpec{View: 2, TC: h.TC(1, 1, 2, 3)})
	b3 := h.Block(enginetest.BlockSpec{View: 3, Parent: b2, QC: h.QCFor(b2)})
	h.Deliver(3, b3)
	require.True(t, e.Syncer.IsParked(b3.ID()), "the honest block waits for its parent")
	h.Deliver(2, &types.BlockResponse{Block: b2})
	require.NotNil(t, e.Tree.Get(b3.ID()), "and enters the tree when the parent arrives")
}
