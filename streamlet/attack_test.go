package streamlet_test

// Regression tests of attacks found by reviewing the message handlers as an attacker would. Each
// comment says what the attacker does and what it achieved before the fix; each test asserts that
// it no longer works.

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/types"
)

// Any Byzantine replica (node 4, never a leader here) replays honest proposals from long ago. They
// were committed and then pruned (RetainBlocks), so Tree.Get misses them and onProposal treats
// them as new: CheckBlock passes (they are genuine), they are echoed to every peer, and only then
// does Insert drop them (parent unknown, view below the head: not even parked). The echo memory of
// old epochs is cleared at every epoch change, so the same history can be replayed once per epoch
// and is re-broadcast every time; every honest receiver of an echo does the same.
func TestAttackStaleProposalsAreEchoed(t *testing.T) {
	const n = 4
	const length = consensus.RetainBlocks + 60 // enough history for pruned blocks
	f := enginetest.NewFixture(1, n)
	views := make([]types.View, length)
	for i := range views {
		views[i] = types.View(i + 1)
	}
	links := f.Chain(false, views...)

	// Two honest replicas that followed the whole chain.
	hs := []*enginetest.Harness{newHarness(t, enginetest.Config{Self: 1}), newHarness(t, enginetest.Config{Self: 2})}
	for _, h := range hs {
		for _, l := range links {
			h.Propose(l.Block)
		}
		require.Greater(t, h.Status().CommittedHeight, uint64(consensus.RetainBlocks+40))
		h.Env.ClearOutbox()
	}

	const byz = types.NodeID(4)
	old := links[1 : 1+40] // blocks of epochs 2..41, committed long ago and pruned
	echoes := 0
	next := length
	for round := 0; round < 3; round++ {
		for _, l := range old {
			hs[0].Deliver(byz, l.Block) // the attacker sends to node 1 only
		}
		// Node 1's echoes reach node 2, which echoes them in turn.
		for _, m := range enginetest.Of[*types.Block](hs[0].Env.Broadcasts()) {
			hs[1].Deliver(1, m)
		}
		for _, h := range hs {
			echoes += len(enginetest.Of[*types.Block](h.Env.Broadcasts()))
			h.Env.ClearOutbox()
		}
		// The chain moves on by one epoch; echo memory of old epochs is forgotten.
		nb := f.Block(enginetest.BlockSpec{View: types.View(next + 1), Parent: links[len(links)-1].Block, QC: links[len(links)-1].QC})
		links = append(links, enginetest.Link{Block: nb, QC: f.QCFor(nb)})
		for _, h := range hs {
			h.Propose(nb)
			h.Env.ClearOutbox()
		}
		next++
	}
	sent := 3 * len(old)
	t.Logf("%d stale proposals sent by the attacker (40 per epoch, 3 epochs, to node 1 only) made 2 honest replicas broadcast %d blocks (%d transmissions with N=%d)",
		sent, echoes, echoes*(n-1), n)
	require.Zero(t, echoes, "stale, pruned proposals are re-broadcast by honest replicas")
}

// The echo also precedes the tree's structural checks: a Byzantine leader of any epoch in the
// window (here node 4, leader of epoch 8 while the replica is in epoch 1) sends blocks that can
// never enter the tree (wrong height); each one is echoed to all peers and remembered in the echo
// map until that epoch is 8 epochs in the past. The tree cap (MaxUncommitted) does not bound this.
func TestAttackUninsertableProposalsAreEchoed(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 1})
	const byz = types.NodeID(4)
	const msgs = 1000
	for i := 0; i < msgs; i++ {
		b := h.Block(enginetest.BlockSpec{View: 8, Height: 99, Payload: enginetest.Payload(string(rune('a'+i%26)), string(rune(i)))})
		h.Deliver(byz, b)
	}
	echoes := len(enginetest.Of[*types.Block](h.Env.Broadcasts()))
	t.Logf("%d blocks that fail Tree.Add: %d echoed, rejections %d", msgs, echoes, len(h.Out.Rejections()))
	require.Zero(t, echoes, "blocks rejected by the tree are broadcast to every peer")
}

// A Byzantine leader of epochs far ahead (but within MaxViewsAhead) sends its proposals for them,
// each up to 64 MiB: they are parked (their parents are unknown), and each one used to be echoed
// to every peer by every replica that got it. Proposals are echoed only within KeepViews of the
// replica's epoch, as votes are; the replicas they concern see them from their proposer.
func TestAttackFarFutureProposalsAreNotEchoed(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 1})
	const byz = types.NodeID(4)
	parent := h.Block(enginetest.BlockSpec{View: 2, Payload: enginetest.Payload("unknown parent")})
	echoed := 0
	for v := types.View(100); v <= 900; v += 100 {
		v := v - v%4 + 4 // a view node 4 leads (round robin)
		b := h.Block(enginetest.BlockSpec{View: v, Parent: parent, QC: h.QCFor(parent), Payload: enginetest.Payload("far")})
		require.Equal(t, byz, b.Proposer)
		h.Deliver(byz, b)
		echoed += len(enginetest.Of[*types.Block](h.Env.Broadcasts()))
		h.Env.ClearOutbox()
	}
	require.Zero(t, echoed, "proposals for epochs far ahead are not echoed")
	near := h.Block(enginetest.BlockSpec{View: 4, Parent: parent, QC: h.QCFor(parent), Payload: enginetest.Payload("near")})
	h.Deliver(byz, near)
	require.Len(t, enginetest.Of[*types.Block](h.Env.Broadcasts()), 1, "a proposal near the epoch is still echoed")
}
