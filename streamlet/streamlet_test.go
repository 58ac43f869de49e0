package streamlet_test

// Table tests of the Streamlet rules (docs/spec.md §2.1, §2.3), one engine instance at a time, driven by
// consensus/enginetest. Every test quotes the spec sentence it checks.

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/streamlet"
	"github.com/stratusbft/stratus/types"
)

func newHarness(t *testing.T, cfg enginetest.Config) *enginetest.Harness {
	t.Helper()
	cfg.Timeout, cfg.ProposeTimeout = time.Second, 100*time.Millisecond
	h := enginetest.New(t, cfg, func(p consensus.Params) consensus.Engine { return streamlet.New(p) })
	h.Start()
	return h
}

// voteFrom delivers the votes of ids for b, each from its voter.
func voteFrom(h *enginetest.Harness, b *types.Block, ids ...types.NodeID) {
	for _, id := range ids {
		h.Deliver(id, h.VoteFor(id, b))
	}
}

// countBroadcast counts the broadcasts for which match is true.
func countBroadcast(h *enginetest.Harness, match func(types.Message) bool) int {
	n := 0
	for _, m := range h.Env.Broadcasts() {
		if match(m) {
			n++
		}
	}
	return n
}

func isBlock(id types.Hash) func(types.Message) bool {
	return func(m types.Message) bool { b, ok := m.(*types.Block); return ok && b.ID() == id }
}

func isVote(voter types.NodeID, id types.Hash) func(types.Message) bool {
	return func(m types.Message) bool {
		v, ok := m.(*types.Vote)
		return ok && v.Voter == voter && v.BlockID == id
	}
}

// "Replicas vote (broadcast to all) for the first valid proposal of the epoch's leader".
func TestVotesAreBroadcast(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 3})
	b1 := h.Block(enginetest.BlockSpec{View: 1})
	h.Propose(b1)
	require.Empty(t, h.Env.Sends(), "nothing is sent point-to-point")
	votes := enginetest.Of[*types.Vote](h.Env.Broadcasts())
	require.Len(t, votes, 1)
	v := votes[0]
	require.Equal(t, types.View(1), v.View)
	require.Equal(t, b1.ID(), v.BlockID)
	require.Equal(t, types.NodeID(3), v.Voter)
	require.True(t, h.Verifier.Verify(3, types.VoteDigest(1, b1.ID()), v.Sig))
	require.Equal(t, []types.View{1}, h.Out.VotedViews())
}

// "Replicas vote ... for the first valid proposal of the epoch's leader".
func TestVoteForFirstValidProposalOnly(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	b1 := f.Block(enginetest.BlockSpec{View: 1})
	b1x := f.Block(enginetest.BlockSpec{View: 1, Payload: enginetest.Payload("conflict")})
	badSig := enginetest.Clone(b1x)
	badSig.Sig[5] ^= 1
	notLeader := f.Block(enginetest.BlockSpec{View: 1, Proposer: 2})
	withTC := f.Block(enginetest.BlockSpec{View: 1, TC: f.TC(1, 1, 2, 3)})
	withTC2 := f.Block(enginetest.BlockSpec{View: 2, TC: f.TC(1, 1, 2, 3)}) // valid for HotStuff

	tests := []struct {
		name  string
		steps func(h *enginetest.Harness)
		want  []types.Hash
		rules []string
	}{
		{"first proposal: vote", func(h *enginetest.Harness) { h.Propose(b1) }, []types.Hash{b1.ID()}, nil},
		{"second proposal of the same epoch: no vote, refused as equivocation", func(h *enginetest.Harness) { h.Propose(b1, b1x) }, []types.Hash{b1.ID()}, []string{consensus.RuleEquivocation}},
		{"the first of two proposals wins", func(h *enginetest.Harness) { h.Propose(b1x, b1) }, []types.Hash{b1x.ID()}, []string{consensus.RuleEquivocation}},
		{"the same proposal twice: one vote", func(h *enginetest.Harness) {
			h.Propose(b1)
			h.Deliver(2, b1)
		}, []types.Hash{b1.ID()}, nil},
		{"a proposal with a bad signature is not the first valid one", func(h *enginetest.Harness) {
			h.Propose(badSig, b1)
		}, []types.Hash{b1.ID()}, []string{consensus.RuleSignature}},
		{"a proposal by a non-leader is not the first valid one", func(h *enginetest.Harness) {
			h.Propose(notLeader, b1)
		}, []types.Hash{b1.ID()}, []string{consensus.RuleLeader}},
		{"a block carrying a TC is malformed", func(h *enginetest.Harness) {
			h.Propose(withTC, b1)
		}, []types.Hash{b1.ID()}, []string{consensus.RuleStructure}},
		{"a block carrying a TC gets no vote even if otherwise valid", func(h *enginetest.Harness) {
			h.Deliver(1, f.TC(1, 1, 2, 4))
			h.Propose(withTC2)
		}, nil, []string{consensus.RuleStructure}},
		{"while the first proposal's data is fetched, a second one gets no vote", func(h *enginetest.Harness) {
			h.Mempool.VerdictF = func(p *types.Payload) consensus.Verdict {
				if p == b1.Payload {
					return consensus.Wait
				}
				return consensus.Accept
			}
			h.Propose(b1, b1x)
			require.Empty(h.T, h.OwnVotes())
			h.Mempool.VerdictF = nil
			h.Engine.OnMempool()
		}, []types.Hash{b1.ID()}, []string{consensus.RuleEquivocation}},
		{"proposal of a past epoch: no vote", func(h *enginetest.Harness) {
			h.Deliver(1, f.TC(1, 1, 2, 4))
			require.Equal(h.T, types.View(2), h.Status().View)
			h.Propose(b1)
		}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 3})
			tt.steps(h)
			enginetest.RequireIDs(t, tt.want, h.OwnVoteIDs(), "votes")
			require.Equal(t, tt.rules, h.Out.RejectedRules())
		})
	}
}

// "Replicas vote ... for the first valid proposal of the epoch's leader that extends a longest
// notarized chain they know."
func TestVoteOnlyOnLongestNotarizedChain(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	a1 := f.Block(enginetest.BlockSpec{View: 1})
	a2 := f.Block(enginetest.BlockSpec{View: 2, Parent: a1, QC: f.QCFor(a1)})
	a1x := f.Block(enginetest.BlockSpec{View: 1, Payload: enginetest.Payload("fork")}) // equivocation of leader 1

	tests := []struct {
		name     string
		depth    int            // notarized chain a1 (1) or a1 ← a2 (2) before the proposal
		fetched  []*types.Block // requested by the replica after the proposal, and delivered
		proposal *types.Block
		vote     bool
	}{
		{"epoch 2 extends the longest notarized chain (a1)", 1, nil,
			f.Block(enginetest.BlockSpec{View: 2, Parent: a1, QC: f.QCFor(a1)}), true},
		{"epoch 2 extends genesis, shorter than a1", 1, nil,
			f.Block(enginetest.BlockSpec{View: 2}), false},
		{"epoch 2 extends a1x, notarized and as long as a1", 1, []*types.Block{a1x},
			f.Block(enginetest.BlockSpec{View: 2, Parent: a1x, QC: f.QCFor(a1x)}), true},
		{"epoch 3 extends the longest notarized chain (a2)", 2, nil,
			f.Block(enginetest.BlockSpec{View: 3, Parent: a2, QC: f.QCFor(a2)}), true},
		{"epoch 3 extends a1, shorter than a2", 2, nil,
			f.Block(enginetest.BlockSpec{View: 3, Parent: a1, QC: f.QCFor(a1)}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 4})
			for _, b := range []*types.Block{a1, a2}[:tt.depth] {
				h.Propose(b)
				voteFrom(h, b, 1, 2)
			}
			require.Equal(t, types.View(tt.depth), h.Status().HighQCView)
			require.Equal(t, types.View(tt.depth+1), h.Status().View)
			h.Env.ClearOutbox()
			h.Out.Events = nil

			h.Propose(tt.proposal)
			for _, b := range tt.fetched {
				h.Deliver(1, &types.BlockResponse{Block: b})
			}
			if tt.vote {
				enginetest.RequireIDs(t, []types.Hash{tt.proposal.ID()}, h.OwnVoteIDs(), "vote")
				require.Empty(t, h.Out.Rejections())
				return
			}
			require.Empty(t, h.OwnVoteIDs(), "no vote")
			require.Equal(t, []string{consensus.RuleUnsafe}, h.Out.RejectedRules())
		})
	}
}

// "2f+1 votes notarize a block." and "Epochs advance event-driven (on notarization)".
func TestNotarizationAtQuorum(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	b1 := f.Block(enginetest.BlockSpec{View: 1})
	badSig := f.VoteFor(2, b1)
	badSig.Sig = f.Sign(3, types.VoteDigest(1, b1.ID()))

	tests := []struct {
		name      string
		ownVote   bool // the replica itself votes (else its mempool makes it wait)
		votes     []*types.Vote
		notarized bool
		rules     []string
	}{
		{"own vote + 1 = 2f: not notarized", true, []*types.Vote{f.VoteFor(1, b1)}, false, nil},
		{"own vote + 2 = 2f+1: notarized", true, []*types.Vote{f.VoteFor(1, b1), f.VoteFor(2, b1)}, true, nil},
		{"2f votes of others: not notarized", false, []*types.Vote{f.VoteFor(1, b1), f.VoteFor(2, b1)}, false, nil},
		{"2f+1 votes of others: notarized", false, []*types.Vote{f.VoteFor(1, b1), f.VoteFor(2, b1), f.VoteFor(3, b1)}, true, nil},
		{"a repeated vote counts once", true, []*types.Vote{f.VoteFor(1, b1), f.VoteFor(1, b1)}, false, nil},
		{"a vote with a bad signature does not count", true, []*types.Vote{f.VoteFor(1, b1), badSig}, false,
			[]string{consensus.RuleSignature}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 4})
			if !tt.ownVote {
				h.Mempool.Verdict = consensus.Wait
			}
			h.Propose(b1)
			if tt.ownVote {
				require.Equal(t, []types.View{1}, h.Out.VotedViews())
			} else {
				require.Empty(t, h.Out.VotedViews())
			}
			for _, v := range tt.votes {
				h.Deliver(v.Voter, v)
			}
			require.Equal(t, tt.rules, h.Out.RejectedRules())
			st := h.Status()
			if !tt.notarized {
				require.Equal(t, types.View(0), st.HighQCView)
				require.Equal(t, types.View(1), st.View)
				return
			}
			require.Equal(t, types.View(1), st.HighQCView)
			require.Equal(t, types.View(2), st.View, "the epoch advances on notarization")
			vcs := enginetest.EventsOf[consensus.ViewChange](h.Out)
			require.Equal(t, consensus.ViewChange{View: 2, Leader: 2, Cause: "notarized"}, vcs[len(vcs)-1])
		})
	}
}

// Votes can overtake their proposal: the quorum notarizes the block once it is fetched.
func TestVotesBeforeProposal(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 4})
	b1 := h.Block(enginetest.BlockSpec{View: 1})
	voteFrom(h, b1, 1, 2, 3)
	require.Equal(t, types.View(0), h.Status().HighQCView, "the block is unknown")
	reqs := enginetest.Of[*types.BlockRequest](h.Env.Messages())
	require.Len(t, reqs, 2, "asked of two peers at once")
	require.Equal(t, b1.ID(), reqs[0].ID)
	require.Equal(t, b1.ID(), reqs[1].ID)
	h.Propose(b1)
	require.Equal(t, types.View(1), h.Status().HighQCView)
	require.Equal(t, types.View(2), h.Status().View)
	require.Empty(t, h.OwnVotes(), "the epoch was over when the proposal came")
}

// "When three blocks with consecutive epochs are notarized on one chain, finalize (commit) the
// chain up to the second of the three." Genesis is the notarized block of epoch 0.
func TestFinalization(t *testing.T) {
	type blk struct {
		epoch  types.View
		parent int // index of the parent, -1 for genesis
	}
	chain := func(epochs ...types.View) []blk {
		out := make([]blk, len(epochs))
		for i, e := range epochs {
			out[i] = blk{e, i - 1}
		}
		return out
	}
	tests := []struct {
		name    string
		blocks  []blk
		want    []int // committed, in order
		orphans []int
	}{
		{"epochs 1 2 3: commit up to the middle one", chain(1, 2, 3), []int{0, 1}, nil},
		{"epochs 1 2 (genesis 0 is the first of three)", chain(1, 2), []int{0}, nil},
		{"epochs 2 3 5: no commit", chain(2, 3, 5), nil, nil},
		{"epochs 2 4 5: no commit", chain(2, 4, 5), nil, nil},
		{"epochs 2 3 4: commit 2 and 3", chain(2, 3, 4), []int{0, 1}, nil},
		{"epochs 2 4 5 6: commit the prefix up to 5", chain(2, 4, 5, 6), []int{0, 1, 2}, nil},
		{"epochs 1 2 3 4: commit up to 3", chain(1, 2, 3, 4), []int{0, 1, 2}, nil},
		{"epochs 2 3 5 6 7: commit up to 6", chain(2, 3, 5, 6, 7), []int{0, 1, 2, 3}, nil},
		{"consecutive epochs on different chains: no commit",
			[]blk{{2, -1}, {3, 0}, {4, -1}}, nil, nil},
		{"three consecutive epochs on a fork: commit that fork, orphan the other",
			[]blk{{2, -1}, {3, -1}, {4, 1}, {5, 2}}, []int{1, 2}, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 4, Leaders: consensus.Static{ID: 1}})
			var made []*types.Block
			for _, s := range tt.blocks {
				spec := enginetest.BlockSpec{View: s.epoch}
				if s.parent >= 0 {
					p := made[s.parent]
					spec.Parent, spec.QC = p, h.QCFor(p)
				}
				b := h.Block(spec)
				made = append(made, b)
				h.Propose(b)
				voteFrom(h, b, 1, 2, 3)
				require.Equal(t, s.epoch, h.Status().HighQCView, "block of epoch %d notarized", s.epoch)
			}
			var want []types.Hash
			for _, i := range tt.want {
				want = append(want, made[i].ID())
			}
			enginetest.RequireIDs(t, want, h.Out.CommitIDs(), "committed")
			var orphans []types.Hash
			for _, i := range tt.orphans {
				orphans = append(orphans, made[i].ID())
			}
			enginetest.RequireIDs(t, orphans, enginetest.IDs(h.Out.Orphans), "orphans")
			if len(tt.want) > 0 {
				require.Equal(t, made[tt.want[len(tt.want)-1]].View, h.Status().CommittedView)
			}
		})
	}
}

// "Messages are echoed once so that every honest replica sees what one saw (implicit echo)".
func TestEchoOnce(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	b1 := f.Block(enginetest.BlockSpec{View: 1})
	badBlock := enginetest.Clone(b1)
	badBlock.Sig[0] ^= 1
	badVote := f.VoteFor(1, b1)
	badVote.Sig = f.Sign(2, types.VoteDigest(1, b1.ID()))

	tests := []struct {
		name  string
		self  types.NodeID
		steps func(h *enginetest.Harness)
		match func(types.Message) bool
		want  int
	}{
		{"a proposal seen twice is echoed once", 3, func(h *enginetest.Harness) {
			h.Propose(b1)
			h.Deliver(2, b1)
			h.Deliver(4, b1)
		}, isBlock(b1.ID()), 1},
		{"a vote seen twice is echoed once", 3, func(h *enginetest.Harness) {
			h.Deliver(1, f.VoteFor(1, b1))
			h.Deliver(2, f.VoteFor(1, b1))
		}, isVote(1, b1.ID()), 1},
		{"the own vote goes out once, not again when echoed back", 3, func(h *enginetest.Harness) {
			h.Propose(b1)
			h.Deliver(2, f.VoteFor(3, b1))
		}, isVote(3, b1.ID()), 1},
		{"the own proposal goes out once, not again when echoed back", 1, func(h *enginetest.Harness) {
			h.Mempool.IsReady = true
			h.Engine.OnMempool()
			require.Len(h.T, h.Proposals(), 1)
			h.Deliver(2, h.Proposals()[0])
		}, func(m types.Message) bool { _, ok := m.(*types.Block); return ok }, 1},
		{"an invalid proposal is not echoed", 3, func(h *enginetest.Harness) {
			h.Deliver(1, badBlock)
		}, func(m types.Message) bool { _, ok := m.(*types.Block); return ok }, 0},
		{"an invalid vote is not echoed", 3, func(h *enginetest.Harness) {
			h.Deliver(1, badVote)
		}, func(m types.Message) bool { _, ok := m.(*types.Vote); return ok }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: tt.self})
			tt.steps(h)
			require.Equal(t, tt.want, countBroadcast(h, tt.match))
		})
	}
}

// "The leader proposes a block extending (one of) the longest notarized chain(s) it has seen",
// carrying the notarization of its parent.
func TestLeaderExtendsLongestNotarizedChain(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 2})
	h.Mempool.IsReady = true
	h.Mempool.Next = []*types.Payload{enginetest.Payload("x")}
	a1 := h.Block(enginetest.BlockSpec{View: 1})
	h.Propose(a1)
	voteFrom(h, a1, 1, 3)
	require.Equal(t, types.View(2), h.Status().View)
	props := h.Proposals()
	require.Len(t, props, 1)
	b := props[0]
	require.Equal(t, types.View(2), b.View)
	require.Equal(t, a1.ID(), b.Parent)
	require.Equal(t, uint64(2), b.Height)
	require.Nil(t, b.TC)
	require.Equal(t, types.View(1), b.QC.View)
	require.Equal(t, a1.ID(), b.QC.BlockID)
	require.NoError(t, consensus.VerifyQC(h.Verifier, b.QC))
	require.Equal(t, 1, b.Payload.Len())
	require.Equal(t, []types.Hash{b.ID()}, h.OwnVoteIDs()[1:], "the leader votes for its own proposal")
}

// "Epochs advance event-driven ... with a timeout as fallback": a proposal for a later epoch is
// kept and voted for when the replica reaches that epoch.
func TestEarlyProposalVotedWhenEpochStarts(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 4})
	b1 := h.Block(enginetest.BlockSpec{View: 1})
	h.Propose(b1)
	voteFrom(h, b1, 1, 2)
	require.Equal(t, types.View(2), h.Status().View)
	b3 := h.Block(enginetest.BlockSpec{View: 3, Parent: b1, QC: h.QCFor(b1)})
	h.Propose(b3)
	enginetest.RequireIDs(t, []types.Hash{b1.ID()}, h.OwnVoteIDs(), "not yet epoch 3")
	h.Deliver(1, h.TC(2, 1, 2, 3))
	require.Equal(t, types.View(3), h.Status().View)
	enginetest.RequireIDs(t, []types.Hash{b1.ID(), b3.ID()}, h.OwnVoteIDs(), "voted on entering epoch 3")
}

// Defect 5: a vote was echoed before the duplicate check, with the block ID in the echo key, so
// a Byzantine voter signing many votes for one epoch made every honest replica broadcast each of
// them (≈ N² messages per junk vote), and an equivocating leader's every proposal was echoed too.
// Only the first vote of a voter per epoch and the first proposal of an epoch are echoed.
func TestEchoFirstVoteAndProposalPerEpochOnly(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 3})
	for i := 0; i < 50; i++ {
		h.Deliver(4, h.Vote(4, 1, types.Keccak([]byte{byte(i)})))
	}
	require.Equal(t, 1, countBroadcast(h, func(m types.Message) bool { v, ok := m.(*types.Vote); return ok && v.Voter == 4 }),
		"one echo per (voter, epoch)")

	for i := 0; i < 50; i++ {
		h.Deliver(1, h.Block(enginetest.BlockSpec{View: 1, Payload: enginetest.Payload(string(rune('a' + i)))}))
	}
	require.Equal(t, 1, countBroadcast(h, func(m types.Message) bool { _, ok := m.(*types.Block); return ok }),
		"one echo per epoch's proposals")

	// Votes for epochs far ahead are neither echoed nor piled up.
	h.Env.ClearOutbox()
	for v := types.View(100); v < 400; v++ {
		h.Deliver(4, h.Vote(4, v, types.Keccak([]byte{byte(v)})))
	}
	require.Zero(t, countBroadcast(h, func(m types.Message) bool { _, ok := m.(*types.Vote); return ok }),
		"votes for epochs far ahead are not echoed")
}
