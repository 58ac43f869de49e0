package hotstuff_test

// Table tests of the chained HotStuff rules (docs/spec.md §2.1–2.2), one engine instance at a time,
// driven by consensus/enginetest. Every test quotes the spec sentence it checks.

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/hotstuff"
	"github.com/stratusbft/stratus/types"
)

const (
	timeout        = time.Second
	proposeTimeout = 100 * time.Millisecond
)

func newHarness(t *testing.T, cfg enginetest.Config) *enginetest.Harness {
	t.Helper()
	cfg.Timeout, cfg.ProposeTimeout = timeout, proposeTimeout
	h := enginetest.New(t, cfg, func(p consensus.Params) consensus.Engine { return hotstuff.New(p) })
	h.Start()
	return h
}

// expireView fires the view timer armed last (the current view's), moving the clock to it.
func expireView(h *enginetest.Harness) {
	calls := enginetest.TimersOf[consensus.ViewTimer](h.Env)
	require.NotEmpty(h.T, calls)
	last := calls[len(calls)-1]
	h.Advance(last.Due.Sub(h.Env.Clock))
}

func rejection(h *enginetest.Harness) consensus.Rejected {
	rs := h.Out.Rejections()
	require.Len(h.T, rs, 1, "exactly one rejection expected, got rules %v", h.Out.RejectedRules())
	return rs[0]
}

// "Replica votes for the block iff: ... v > lastVotedView" and "A vote signs (view, blockID) and
// goes to the leader of v+1" → one vote per view; a conflicting or older proposal gets none.
func TestVoteOncePerView(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	b1 := f.Block(enginetest.BlockSpec{View: 1})
	b1x := f.Block(enginetest.BlockSpec{View: 1, Payload: enginetest.Payload("conflict")})
	tc1 := f.TC(1, 1, 2, 4)

	tests := []struct {
		name  string
		steps func(h *enginetest.Harness)
		want  []types.Hash // blocks voted for, in order
	}{
		{"first proposal of the view gets a vote", func(h *enginetest.Harness) {
			h.Propose(b1)
		}, []types.Hash{b1.ID()}},
		{"second conflicting proposal of the same view gets no vote", func(h *enginetest.Harness) {
			h.Propose(b1, b1x)
		}, []types.Hash{b1.ID()}},
		{"the first of two conflicting proposals wins", func(h *enginetest.Harness) {
			h.Propose(b1x, b1)
		}, []types.Hash{b1x.ID()}},
		{"the same proposal twice gets one vote", func(h *enginetest.Harness) {
			h.Propose(b1)
			h.Deliver(2, b1)
		}, []types.Hash{b1.ID()}},
		{"proposal of an older view (replica moved on by TC) gets no vote", func(h *enginetest.Harness) {
			h.Deliver(1, tc1)
			require.Equal(h.T, types.View(2), h.Status().View)
			h.Propose(b1)
		}, nil},
		{"proposal of a view this replica timed out in gets no vote", func(h *enginetest.Harness) {
			expireView(h)
			require.Equal(h.T, types.View(1), h.Status().View)
			h.Propose(b1)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 3})
			tt.steps(h)
			enginetest.RequireIDs(t, tt.want, h.OwnVoteIDs(), "votes")
			for _, s := range h.Env.Sends() {
				if v, ok := s.Msg.(*types.Vote); ok {
					require.Equal(t, h.Leaders.Leader(v.View+1), s.To, "a vote goes to the leader of v+1")
					require.True(t, h.Verifier.Verify(3, types.VoteDigest(v.View, v.BlockID), v.Sig), "vote signed over (view, blockID)")
				}
			}
			require.Len(t, h.Out.VotedViews(), len(tt.want))
		})
	}
}

// "the block extends the locked block or its QC's view > locked view (safeNode)".
func TestSafeNode(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	chain := f.Chain(true, 1, 2, 3) // B1 ← B2 ← B3; B3 carries QC(B2), which locks B1
	b1, b2, b3 := chain[0], chain[1], chain[2]
	tc4 := f.TC(4, 1, 2, 3)
	// A fork from genesis certified in view 2: its QC is newer than the lock (view 1).
	fork2 := f.Block(enginetest.BlockSpec{View: 2, TC: f.TC(1, 1, 2, 3)})
	fork2QC := f.QCFor(fork2)

	tests := []struct {
		name     string
		fetched  []*types.Block // requested by the replica after the proposal, and delivered
		proposal *types.Block
		vote     bool
		rule     string
	}{
		{
			name:     "fork that skips the lock with a QC older than the lock: no vote",
			proposal: f.Block(enginetest.BlockSpec{View: 5, TC: tc4}),
			rule:     consensus.RuleUnsafe,
		},
		{
			name:     "fork that skips the lock but carries a QC newer than the lock: vote",
			fetched:  []*types.Block{fork2},
			proposal: f.Block(enginetest.BlockSpec{View: 5, Parent: fork2, QC: fork2QC, TC: tc4}),
			vote:     true,
		},
		{
			name:     "extends the locked block with a QC as old as the lock: vote",
			proposal: f.Block(enginetest.BlockSpec{View: 5, Parent: b1.Block, QC: b1.QC, TC: tc4}),
			vote:     true,
		},
		{
			name:     "extends the locked block through its certified child: vote",
			proposal: f.Block(enginetest.BlockSpec{View: 5, Parent: b3.Block, QC: b3.QC, TC: tc4}),
			vote:     true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 4})
			h.Propose(b1.Block, b2.Block, b3.Block)
			h.Deliver(1, tc4)
			st := h.Status()
			require.Equal(t, types.View(5), st.View)
			require.Equal(t, types.View(1), st.LockedView, "QC(B2) locks B2's parent B1")
			h.Env.ClearOutbox()
			h.Out.Events = nil

			h.Propose(tt.proposal)
			for _, b := range tt.fetched {
				h.Deliver(2, &types.BlockResponse{Block: b})
			}
			if tt.vote {
				enginetest.RequireIDs(t, []types.Hash{tt.proposal.ID()}, h.OwnVoteIDs(), "vote")
				require.Empty(t, h.Out.Rejections())
				return
			}
			require.Empty(t, h.OwnVoteIDs(), "no vote")
			r := rejection(h)
			require.Equal(t, tt.rule, r.Rule)
			require.Equal(t, types.KindBlock, r.Kind)
		})
	}
}

// "On QC for block B: ... if B, parent(B), grandparent(B) have consecutive views, commit
// grandparent(B) and all its uncommitted ancestors, in order."
func TestCommitOnlyOnConsecutiveViews(t *testing.T) {
	tests := []struct {
		name  string
		views []types.View
		want  []int // indexes of committed blocks, in commit order
	}{
		{"B1(1) B2(2) B3(3): commit B1", []types.View{1, 2, 3}, []int{0}},
		{"gap between B2 and B3: no commit", []types.View{1, 2, 4}, nil},
		{"gap between B1 and B2: no commit", []types.View{1, 3, 4}, nil},
		{"consecutive views not starting at 1: commit B1", []types.View{2, 3, 4}, []int{0}},
		{"commit takes the uncommitted ancestors along, oldest first", []types.View{1, 3, 4, 5}, []int{0, 1}},
		{"two successive commits", []types.View{1, 2, 3, 4}, []int{0, 1}},
		{"commits stop at a gap", []types.View{1, 2, 3, 5, 6}, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 4, Leaders: consensus.Static{ID: 1}})
			chain := h.Chain(true, tt.views...)
			for _, l := range chain {
				h.Propose(l.Block)
			}
			// The QC of the last block arrives in the next proposal.
			last := chain[len(chain)-1]
			h.Propose(h.Block(enginetest.BlockSpec{View: last.Block.View + 1, Parent: last.Block, QC: last.QC}))

			var want []types.Hash
			for _, i := range tt.want {
				want = append(want, chain[i].Block.ID())
			}
			enginetest.RequireIDs(t, want, h.Out.CommitIDs(), "committed blocks")
			require.Empty(t, h.Out.Orphans)
			require.Empty(t, h.Out.Rejections())
			if len(tt.want) > 0 {
				require.Equal(t, chain[tt.want[len(tt.want)-1]].Block.View, h.Status().CommittedView)
			}
		})
	}
}

// A replica that entered view v by voting in v-1, still uncertified, gives up on v-1 at its first
// expiry in v (the leader of v may be waiting for TC(v-1)); when the votes carried by the timeouts
// then make QC(v-1), the leader of v had what it needed and is silent: it gives up on v at once.
// When TC(v-1) forms instead, its timer restarts and it votes for the leader's proposal.
func TestGiveUpOnThePreviousViewFirst(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	b1 := f.Block(enginetest.BlockSpec{View: 1})
	withVote := func(to *types.Timeout, voter types.NodeID) *types.Timeout {
		to.Vote = f.VoteFor(voter, b1)
		return to
	}
	ownTimeouts := func(h *enginetest.Harness) []types.View {
		var vs []types.View
		for _, to := range enginetest.Of[*types.Timeout](h.Env.Broadcasts()) {
			if to.Sender == h.Self() {
				vs = append(vs, to.View)
			}
		}
		return vs
	}

	// The leader of view 2 is silent: QC(1) comes from the timeouts' votes.
	h := newHarness(t, enginetest.Config{Self: 4})
	h.Propose(b1)
	expireView(h)
	require.Equal(t, []types.View{1}, ownTimeouts(h))
	h.Deliver(1, withVote(f.Timeout(1, 1, nil), 1))
	h.Deliver(3, withVote(f.Timeout(3, 1, nil), 3))
	require.Equal(t, types.View(1), h.Status().HighQCView, "QC(1) from the votes in the timeouts")
	require.Equal(t, []types.View{1, 2}, ownTimeouts(h), "then it gives up on view 2 at once")

	// The leader of view 1 split the replicas: 1 and 3 time out view 1 without voting, TC(1)
	// forms, and the leader of view 2 proposes with it.
	h = newHarness(t, enginetest.Config{Self: 4})
	h.Propose(b1)
	expireView(h)
	h.Deliver(1, f.Timeout(1, 1, nil))
	h.Deliver(3, f.Timeout(3, 1, nil))
	require.Equal(t, []types.View{1}, ownTimeouts(h), "no QC(1): it waits for the leader of view 2")
	require.Equal(t, types.View(2), h.Status().View)
	b2 := f.Block(enginetest.BlockSpec{View: 2, TC: f.TC(1, 1, 3, 4)})
	h.Propose(b2)
	require.Equal(t, []types.View{1, 2}, h.Out.VotedViews(), "it votes in view 2")
}

// "Blocks that lose a fork: their payload goes back to the mempool (not lost)" → a commit reports
// every block that can no longer commit as an orphan, once.
func TestCommitOrphansLosingForks(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 4, Leaders: consensus.Static{ID: 1}})
	c := h.Chain(true, 1, 2, 3, 4)
	b1, b2, b3, b4 := c[0], c[1], c[2], c[3]
	// Forks in views of their own (a second block of a view the leader used already would be
	// refused as equivocation).
	forkG := h.Block(enginetest.BlockSpec{View: 6, TC: h.TC(5, 1, 2, 3), Payload: enginetest.Payload("g")})
	forkB1 := h.Block(enginetest.BlockSpec{View: 7, Parent: b1.Block, QC: b1.QC, TC: h.TC(6, 1, 2, 3), Payload: enginetest.Payload("b1")})
	h.Propose(b1.Block, b2.Block, b3.Block, forkG, forkB1)
	require.Empty(t, h.Out.Commits)
	require.Empty(t, h.Out.Orphans)

	h.Propose(b4.Block) // QC(B3): commits B1; the fork off genesis loses
	enginetest.RequireIDs(t, []types.Hash{b1.Block.ID()}, h.Out.CommitIDs(), "commits")
	enginetest.RequireIDs(t, []types.Hash{forkG.ID()}, enginetest.IDs(h.Out.Orphans), "orphans")

	h.Propose(h.Block(enginetest.BlockSpec{View: 5, Parent: b4.Block, QC: b4.QC})) // QC(B4): commits B2
	enginetest.RequireIDs(t, []types.Hash{b1.Block.ID(), b2.Block.ID()}, h.Out.CommitIDs(), "commits")
	enginetest.RequireIDs(t, []types.Hash{forkG.ID(), forkB1.ID()}, enginetest.IDs(h.Out.Orphans), "orphans")
}

// "On QC for block B: update highQC, lock on B's parent".
func TestLockMovesToParent(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 4, Leaders: consensus.Static{ID: 1}})
	c := h.Chain(true, 1, 2, 3)
	b1, b2, b3 := c[0], c[1], c[2]
	// x4 forks off B1 in view 4 (after a TC for view 3); its QC is the highest but its parent is old.
	x4 := h.Block(enginetest.BlockSpec{View: 4, Parent: b1.Block, QC: b1.QC, TC: h.TC(3, 1, 2, 3)})
	steps := []struct {
		name       string
		block      *types.Block
		highQC     types.View
		lockedView types.View
	}{
		{"B1 carries the genesis QC", b1.Block, 0, 0},
		{"QC(B1) locks genesis", b2.Block, 1, 0},
		{"QC(B2) locks B1", b3.Block, 2, 1},
		{"QC(B3) locks B2", h.Block(enginetest.BlockSpec{View: 5, Parent: b3.Block, QC: b3.QC, TC: h.TC(4, 1, 2, 3)}), 3, 2},
		{"x4 forks off B1: its QC(B1) changes nothing", x4, 3, 2},
		{"QC(x4) is the highest QC but its parent B1 is older than the lock: the lock stays", h.Block(enginetest.BlockSpec{View: 6, Parent: x4, QC: h.QCFor(x4), TC: h.TC(5, 1, 2, 3)}), 4, 2},
	}
	for _, s := range steps {
		h.Propose(s.block)
		st := h.Status()
		require.Equal(t, s.highQC, st.HighQCView, "%s: highQC", s.name)
		require.Equal(t, s.lockedView, st.LockedView, "%s: locked view", s.name)
	}
	require.Empty(t, h.Out.Rejections())
}

// "A QC is valid iff it has ≥ 2f+1 distinct, known signers with valid signatures over
// (view, blockID)" and "a message that fails a check is rejected ... never acted on" → a proposal
// carrying a bad QC or TC gets no vote and a bad-certificate rejection.
func TestProposalWithBadCertificate(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	b1 := f.Block(enginetest.BlockSpec{View: 1})
	id := b1.ID()
	good := f.QC(1, id, 1, 2, 3)
	sig := func(signer types.NodeID) []byte { return f.Sign(signer, types.VoteDigest(1, id)) }

	tests := []struct {
		name string
		qc   *types.QC
		tc   *types.TC
		ok   bool
	}{
		{name: "valid QC (control)", qc: good, ok: true},
		{name: "2f signers", qc: f.QC(1, id, 1, 2)},
		{name: "signature listed twice (2 signers, 3 signatures)", qc: &types.QC{View: 1, BlockID: id,
			Signers: enginetest.Bitmap(1, 2), Sigs: [][]byte{sig(1), sig(2), sig(1)}}},
		{name: "one signer's signature under another's bit", qc: &types.QC{View: 1, BlockID: id,
			Signers: enginetest.Bitmap(1, 2, 3), Sigs: [][]byte{sig(1), sig(2), sig(1)}}},
		{name: "unknown signer (ID > N)", qc: f.QC(1, id, 1, 2, 5)},
		{name: "corrupted signature", qc: func() *types.QC {
			qc := f.QC(1, id, 1, 2, 3)
			qc.Sigs[2] = append([]byte(nil), qc.Sigs[2]...)
			qc.Sigs[2][7] ^= 0xff
			return qc
		}()},
		{name: "signatures over another view", qc: &types.QC{View: 1, BlockID: id, Signers: enginetest.Bitmap(1, 2, 3),
			Sigs: f.QC(2, id, 1, 2, 3).Sigs}},
		{name: "TC with 2f signers", qc: good, tc: f.TC(1, 1, 2)},
		{name: "TC signed over another view", qc: good, tc: &types.TC{View: 1, Signers: enginetest.Bitmap(1, 2, 3),
			Sigs: f.TC(3, 1, 2, 3).Sigs}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 4})
			h.Propose(b1)
			require.Equal(t, []types.View{1}, h.Out.VotedViews())
			h.Env.ClearOutbox()
			b2 := h.Block(enginetest.BlockSpec{View: 2, Parent: b1, QC: tt.qc, TC: tt.tc})
			h.Propose(b2)
			if tt.ok {
				enginetest.RequireIDs(t, []types.Hash{b2.ID()}, h.OwnVoteIDs(), "vote")
				require.Equal(t, types.View(1), h.Status().HighQCView)
				return
			}
			require.Empty(t, h.OwnVoteIDs(), "no vote")
			r := rejection(h)
			require.Equal(t, consensus.RuleCert, r.Rule)
			require.Equal(t, types.KindBlock, r.Kind)
			require.Equal(t, types.NodeID(2), r.From)
			require.Equal(t, types.View(0), h.Status().HighQCView, "the bad QC is not acted on")
		})
	}
}

// "Replica votes for the block iff: signature valid; proposer is the leader of v" and the
// proposal is "signed over a digest of all those fields".
func TestProposalSignatureAndLeader(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	valid := f.Block(enginetest.BlockSpec{View: 1, Payload: enginetest.Payload("tx")})
	tests := []struct {
		name  string
		block *types.Block
		from  types.NodeID
		rule  string // "" = vote
	}{
		{"valid (control)", valid, 1, ""},
		{"relayed by another replica, still valid", valid, 2, ""},
		{"signed with another replica's key", f.Block(enginetest.BlockSpec{View: 1, SignAs: 2}), 1, consensus.RuleSignature},
		{"proposer is not the leader of the view", f.Block(enginetest.BlockSpec{View: 1, Proposer: 2}), 2, consensus.RuleLeader},
		{"outsider proposer", f.Block(enginetest.BlockSpec{View: 1, Proposer: 5}), 1, consensus.RuleLeader},
		{"corrupted signature", func() *types.Block {
			b := enginetest.Clone(valid)
			b.Sig[3] ^= 1
			return b
		}(), 1, consensus.RuleSignature},
		{"missing signature", func() *types.Block {
			b := enginetest.Clone(valid)
			b.Sig = nil
			return b
		}(), 1, consensus.RuleSignature},
		{"payload swapped after signing", func() *types.Block {
			b := enginetest.Clone(valid)
			b.Payload = enginetest.Payload("other")
			return b
		}(), 1, consensus.RuleSignature},
		{"height changed after signing", func() *types.Block {
			b := enginetest.Clone(valid)
			b.Height = 2
			return b
		}(), 1, consensus.RuleSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 3})
			h.Deliver(tt.from, tt.block)
			if tt.rule == "" {
				enginetest.RequireIDs(t, []types.Hash{tt.block.ID()}, h.OwnVoteIDs(), "vote")
				require.Empty(t, h.Out.Rejections())
				return
			}
			require.Empty(t, h.OwnVoteIDs(), "no vote")
			require.Empty(t, h.Out.VotedViews())
			r := rejection(h)
			require.Equal(t, tt.rule, r.Rule)
			require.Equal(t, types.KindBlock, r.Kind)
			require.Equal(t, tt.from, r.From)
			require.Equal(t, types.View(1), h.Status().View, "a rejected proposal does not move the view")
		})
	}
}

// The leader of v "proposes as soon as it has a QC for v-1 (or a TC)": a block of view v must be
// justified by a QC of view v-1 or a TC of view v-1, or it gets no vote.
func TestProposalJustification(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	b1 := f.Block(enginetest.BlockSpec{View: 1})
	b2 := f.Block(enginetest.BlockSpec{View: 2, Parent: b1, QC: f.QCFor(b1)})
	tests := []struct {
		name   string
		before []*types.Block
		block  *types.Block
		vote   bool
	}{
		{"QC of view v-1", []*types.Block{b2}, f.Block(enginetest.BlockSpec{View: 3, Parent: b2, QC: f.QCFor(b2)}), true},
		{"TC of view v-1", nil, f.Block(enginetest.BlockSpec{View: 3, Parent: b1, QC: f.QCFor(b1), TC: f.TC(2, 1, 2, 3)}), true},
		{"QC of view v-2 and no TC", nil, f.Block(enginetest.BlockSpec{View: 3, Parent: b1, QC: f.QCFor(b1)}), false},
		{"QC of view v-2 and a TC of view v-2", nil, f.Block(enginetest.BlockSpec{View: 3, Parent: b1, QC: f.QCFor(b1), TC: f.TC(1, 1, 2, 3)}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 4})
			h.Propose(b1)
			h.Propose(tt.before...)
			h.Deliver(1, f.TC(2, 1, 2, 3)) // view 3 in any case
			require.Equal(t, types.View(3), h.Status().View)
			h.Env.ClearOutbox()
			h.Out.Events = nil
			h.Propose(tt.block)
			// Node 4 leads view 4: it keeps its vote for view 3 and reports it as an event.
			if tt.vote {
				require.Equal(t, []types.View{3}, h.Out.VotedViews())
				require.Empty(t, h.Out.Rejections())
				return
			}
			require.Empty(t, h.Out.VotedViews())
			require.Equal(t, []string{consensus.RuleStructure}, h.Out.RejectedRules())
		})
	}
}

// "2f+1 votes → QC {view, blockID, signer bitmap, signatures}" (at the leader of v+1, to which
// votes go), with "Quorum = 2f+1 distinct valid signers".
func TestNextLeaderFormsQC(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	b1 := f.Block(enginetest.BlockSpec{View: 1})
	other := f.Block(enginetest.BlockSpec{View: 1, Payload: enginetest.Payload("x")})
	badSig := f.VoteFor(3, b1)
	badSig.Sig = append([]byte(nil), badSig.Sig...)
	badSig.Sig[10] ^= 0xff
	wrongKey := &types.Vote{View: 1, BlockID: b1.ID(), Voter: 3, Sig: f.Sign(4, types.VoteDigest(1, b1.ID()))}

	tests := []struct {
		name    string
		votes   []*types.Vote // after the replica's own vote
		signers []types.NodeID
		rules   []string
	}{
		{"own vote + 1 = 2f votes: no QC", []*types.Vote{f.VoteFor(1, b1)}, nil, nil},
		{"own vote + 2 = 2f+1: QC", []*types.Vote{f.VoteFor(1, b1), f.VoteFor(3, b1)}, []types.NodeID{1, 2, 3}, nil},
		{"2f+1 then a 4th vote: one QC", []*types.Vote{f.VoteFor(4, b1), f.VoteFor(3, b1), f.VoteFor(1, b1)}, []types.NodeID{2, 3, 4}, nil},
		{"a repeated vote counts once", []*types.Vote{f.VoteFor(1, b1), f.VoteFor(1, b1)}, nil, nil},
		{"a second vote of a voter for another block is rejected", []*types.Vote{f.VoteFor(1, b1), f.VoteFor(1, other)}, nil,
			[]string{consensus.RuleDuplicate}},
		{"a vote with a bad signature is rejected and not counted", []*types.Vote{f.VoteFor(1, b1), badSig}, nil,
			[]string{consensus.RuleSignature}},
		{"a vote signed with another key is rejected", []*types.Vote{f.VoteFor(1, b1), wrongKey, f.VoteFor(4, b1)},
			[]types.NodeID{1, 2, 4}, []string{consensus.RuleSignature}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 2}) // leader of view 2
			h.Mempool.IsReady = true                       // propose as soon as the QC forms
			h.Propose(b1)
			require.Equal(t, []types.View{1}, h.Out.VotedViews())
			require.Empty(t, h.Env.Sends(), "the next leader keeps its own vote")
			for _, v := range tt.votes {
				h.Deliver(v.Voter, v)
			}
			require.Equal(t, tt.rules, h.Out.RejectedRules())
			props := h.Proposals()
			if tt.signers == nil {
				require.Equal(t, types.View(0), h.Status().HighQCView, "no QC")
				require.Empty(t, props)
				return
			}
			require.Equal(t, types.View(1), h.Status().HighQCView)
			require.Len(t, props, 1)
			qc := props[0].QC
			require.Equal(t, types.View(1), qc.View)
			require.Equal(t, b1.ID(), qc.BlockID)
			require.Equal(t, tt.signers, types.SignerIDs(qc.Signers))
			require.NoError(t, consensus.VerifyQC(h.Verifier, qc))
		})
	}
}

// "A vote ... goes to the leader of v+1": a replica that does not lead v+1 ignores votes for v.
func TestVotesToOtherLeaderIgnored(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 3})
	b1 := h.Block(enginetest.BlockSpec{View: 1})
	h.Propose(b1)
	h.Deliver(4, h.TC(2, 1, 2, 4), h.TC(3, 1, 2, 4)) // replica 3 moved on to view 4
	for _, id := range []types.NodeID{1, 2, 4} {
		h.Deliver(id, h.VoteFor(id, b1))
	}
	require.Equal(t, types.View(0), h.Status().HighQCView, "votes of a view two behind, sent to a replica that does not lead the next view")
	require.Empty(t, h.Out.Rejections())
}

// The leader of view v+1 relays the votes of view v when they are split so that no block of v can
// get a QC (an equivocating leader); every replica that sees the split times out view v at once,
// and the next leader proposes with the TC instead of waiting for its own view to time out.
func TestSplitVotesTimeOutTheViewAtOnce(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 2}) // leader of view 2
	h.Mempool.IsReady = true
	pair := equivocations(h.Fixture, 1, 2, nil)
	b, alt := pair[0], pair[1]
	h.Propose(b) // replica 2 votes for b, to itself
	h.Deliver(1, h.VoteFor(1, b))
	h.Env.ClearOutbox()
	h.Deliver(3, h.VoteFor(3, alt))
	require.Empty(t, h.Env.Broadcasts(), "two for b, one for alt: b can still get a QC")
	h.Deliver(4, h.VoteFor(4, alt))
	relayed := enginetest.Of[*types.Vote](h.Env.Broadcasts())
	require.Len(t, relayed, 4, "2 for b, 2 for alt: hopeless; the votes are relayed")
	timeouts := enginetest.Of[*types.Timeout](h.Env.Broadcasts())
	require.Len(t, timeouts, 1)
	require.Equal(t, types.View(1), timeouts[0].View, "and view 1 is timed out at once")

	// Replicas 3 and 4 do the same on the relayed votes: the TC forms, replica 2 proposes in view 2.
	h.Deliver(3, h.Timeout(3, 1, nil))
	h.Deliver(4, h.Timeout(4, 1, nil))
	props := h.Proposals()
	require.Len(t, props, 1)
	require.Equal(t, types.View(2), props[0].View)
	require.NotNil(t, props[0].TC)
	require.Equal(t, types.View(1), props[0].TC.View)
}

// A replica that is not the next leader times out a view as soon as relayed votes show a split.
func TestRelayedSplitVotesTimeOutTheView(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 4})
	pair := equivocations(h.Fixture, 1, 2, nil)
	b, alt := pair[0], pair[1]
	h.Propose(alt)
	h.Env.ClearOutbox()
	for _, v := range []*types.Vote{h.VoteFor(1, b), h.VoteFor(2, b), h.VoteFor(3, alt)} {
		h.Deliver(2, v)
	}
	timeouts := enginetest.Of[*types.Timeout](h.Env.Broadcasts())
	require.Len(t, timeouts, 1)
	require.Equal(t, types.View(1), timeouts[0].View)
}

// A QC whose block this replica has not seen: "On QC for block B" needs B, so the leader fetches
// it (from the proposer first) and applies the QC when it arrives.
func TestQCForUnknownBlockFetchesIt(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 2})
	h.Mempool.IsReady = true
	b1 := h.Block(enginetest.BlockSpec{View: 1})
	for _, id := range []types.NodeID{1, 3, 4} {
		h.Deliver(id, h.VoteFor(id, b1))
	}
	reqs := enginetest.Of[*types.BlockRequest](h.Env.SentTo(1))
	require.Len(t, reqs, 1, "asks the proposer of view 1")
	require.Equal(t, b1.ID(), reqs[0].ID)
	require.Equal(t, types.View(0), h.Status().HighQCView)

	h.Deliver(1, &types.BlockResponse{Block: b1})
	require.Equal(t, types.View(1), h.Status().HighQCView)
	props := h.Proposals()
	require.Len(t, props, 1)
	require.Equal(t, b1.ID(), props[0].Parent)
	require.Equal(t, []types.NodeID{1, 3, 4}, types.SignerIDs(props[0].QC.Signers))
}

// "Pacemaker: view timer ... On expiry a replica broadcasts a signed Timeout{view, highQC}".
func TestViewTimerBroadcastsSignedTimeout(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 3})
	calls := enginetest.TimersOf[consensus.ViewTimer](h.Env)
	require.Len(t, calls, 1)
	require.Equal(t, timeout, calls[0].After)

	h.Advance(timeout - time.Nanosecond)
	require.Empty(t, enginetest.Of[*types.Timeout](h.Env.Broadcasts()), "not before the timer")
	h.Advance(time.Nanosecond)
	tos := enginetest.Of[*types.Timeout](h.Env.Broadcasts())
	require.Len(t, tos, 1)
	to := tos[0]
	require.Equal(t, types.View(1), to.View)
	require.Equal(t, types.NodeID(3), to.Sender)
	require.True(t, to.HighQC.IsGenesis())
	require.True(t, h.Verifier.Verify(3, types.TimeoutDigest(1), to.Sig))
	require.Equal(t, []consensus.TimedOut{{View: 1, Backoff: 1}}, enginetest.EventsOf[consensus.TimedOut](h.Out))
	require.Equal(t, types.View(1), h.Status().View, "a timeout alone does not change the view")
}

// "2f+1 of them form a TC that moves everyone to view+1".
func TestTimeoutsFormTC(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	badSig := f.Timeout(1, 1, nil)
	badSig.Sig = f.Sign(2, types.TimeoutDigest(1))
	badQC := f.Timeout(4, 1, f.QC(1, f.Block(enginetest.BlockSpec{View: 1}).ID(), 1, 2))

	tests := []struct {
		name     string
		expire   bool // this replica's own timer expires first
		timeouts []*types.Timeout
		signers  []types.NodeID // of the TC; nil = no TC
		rules    []string
	}{
		{"own + 2f timeouts = TC", true, []*types.Timeout{f.Timeout(1, 1, nil), f.Timeout(4, 1, nil)}, []types.NodeID{1, 3, 4}, nil},
		{"own + 1 timeout: no TC", true, []*types.Timeout{f.Timeout(1, 1, nil)}, nil, nil},
		{"a repeated timeout counts once", true, []*types.Timeout{f.Timeout(1, 1, nil), f.Timeout(1, 1, nil)}, nil, nil},
		{"f+1 timeouts from others: the replica joins and a TC forms", false,
			[]*types.Timeout{f.Timeout(1, 1, nil), f.Timeout(2, 1, nil)}, []types.NodeID{1, 2, 3}, nil},
		{"f timeouts from others: nothing", false, []*types.Timeout{f.Timeout(1, 1, nil)}, nil, nil},
		{"a timeout with a bad signature is rejected", true, []*types.Timeout{badSig, f.Timeout(2, 1, nil)}, nil,
			[]string{consensus.RuleSignature}},
		{"a timeout with a bad highQC is rejected", true, []*types.Timeout{badQC, f.Timeout(2, 1, nil)}, nil,
			[]string{consensus.RuleCert}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 3})
			if tt.expire {
				expireView(h)
			}
			for _, to := range tt.timeouts {
				h.Deliver(to.Sender, to)
			}
			require.Equal(t, tt.rules, h.Out.RejectedRules())
			tcs := enginetest.Of[*types.TC](h.Env.Broadcasts())
			if tt.signers == nil {
				require.Empty(t, tcs)
				require.Equal(t, types.View(1), h.Status().View)
				return
			}
			require.Len(t, tcs, 1, "the TC is broadcast once")
			require.Equal(t, types.View(1), tcs[0].View)
			require.Equal(t, tt.signers, types.SignerIDs(tcs[0].Signers))
			require.NoError(t, consensus.VerifyTC(h.Verifier, tcs[0]))
			require.Equal(t, types.View(2), h.Status().View)
			vcs := enginetest.EventsOf[consensus.ViewChange](h.Out)
			require.Equal(t, consensus.ViewChange{View: 2, Leader: 2, Cause: "tc"}, vcs[len(vcs)-1])
			ownTimeouts := 0
			for _, to := range enginetest.Of[*types.Timeout](h.Env.Broadcasts()) {
				require.Equal(t, types.NodeID(3), to.Sender)
				ownTimeouts++
			}
			require.Equal(t, 1, ownTimeouts, "one own timeout broadcast")
		})
	}
}

// "On expiry a replica broadcasts a signed Timeout{view, highQC}; 2f+1 of them form a TC that
// moves everyone to view+1" (docs/spec.md §2.2) must hold with f Byzantine replicas (docs/spec.md §2.1). A replica that
// voted in view v has moved on to v+1 (BlockAdded calls EnterView(v+1, "vote")). When a Byzantine
// leader of v shows its proposal to one honest replica only, the other 2f honest replicas time out
// v and wait for a TC(v) that needs the voter's signature, while the voter's Timeout(v+1) is one
// short of the f+1 that would pull them into v+1. Regression test: before commit 3b2cb57 the voter
// never signed Timeout(v) and no view ever changed again (a crash plus one slow proposal was
// enough); Base.OnTimeout now joins f+1 timeouts of a view it holds no QC or TC for.
func TestVoterHelpsFormTCForItsView(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 3})
	b1 := h.Block(enginetest.BlockSpec{View: 1}) // the Byzantine leader 1 shows B1 to node 3 only
	h.Propose(b1)
	require.Equal(t, []types.View{1}, h.Out.VotedViews())
	// Nodes 2 and 4 never saw B1: they time out view 1.
	h.Deliver(2, h.Timeout(2, 1, nil))
	h.Deliver(4, h.Timeout(4, 1, nil))
	// Node 3's signature is the third one TC(1) needs.
	tcs := enginetest.Of[*types.TC](h.Env.Broadcasts())
	require.Len(t, tcs, 1, "TC(1) forms with the voter's timeout")
	require.Equal(t, types.View(1), tcs[0].View)
	require.Equal(t, []types.NodeID{2, 3, 4}, types.SignerIDs(tcs[0].Signers))
	require.NoError(t, consensus.VerifyTC(h.Verifier, tcs[0]))
	require.Equal(t, types.View(2), h.Status().View)
}

// A replica that holds a QC for view v does not sign Timeout(v) late: it left v with a certificate.
func TestCertifiedReplicaDoesNotJoinOldTimeouts(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 3})
	b1 := h.Block(enginetest.BlockSpec{View: 1})
	b2 := h.Block(enginetest.BlockSpec{View: 2, Parent: b1, QC: h.QCFor(b1)})
	h.Propose(b1, b2) // QC(B1) known, voted in 1 and 2: view 3
	require.Equal(t, types.View(3), h.Status().View)
	h.Deliver(2, h.Timeout(2, 1, nil))
	h.Deliver(4, h.Timeout(4, 1, nil))
	for _, to := range enginetest.Of[*types.Timeout](h.Env.Broadcasts()) {
		require.NotEqual(t, types.View(1), to.View, "no late timeout for a certified view")
	}
	require.Empty(t, enginetest.Of[*types.TC](h.Env.Broadcasts()))
}

// Timeouts carry the sender's last vote (types.Timeout, "so that, when a leader fails, the QC it
// should have formed is assembled from the timeouts instead of being lost"): the next leader then
// "extends the highest QC among them" (docs/spec.md §2.2).
func TestTimeoutsCarryVotes(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	b1 := f.Block(enginetest.BlockSpec{View: 1})
	withVote := func(to *types.Timeout, voter types.NodeID) *types.Timeout {
		to.Vote = f.VoteFor(voter, b1)
		return to
	}
	badVote := withVote(f.Timeout(4, 2, nil), 4)
	badVote.Vote.Sig = f.Sign(1, types.VoteDigest(1, b1.ID()))

	tests := []struct {
		name     string
		timeouts []*types.Timeout
		qc       []types.NodeID // signers of the QC the proposal of view 3 extends; nil = genesis
		rules    []string
	}{
		{"votes in timeouts make the QC of the failed view", []*types.Timeout{
			withVote(f.Timeout(1, 2, nil), 1), withVote(f.Timeout(4, 2, nil), 4)}, []types.NodeID{1, 3, 4}, nil},
		{"timeouts without votes: extend genesis", []*types.Timeout{
			f.Timeout(1, 2, nil), f.Timeout(4, 2, nil)}, nil, nil},
		{"a timeout whose vote does not verify is rejected", []*types.Timeout{
			withVote(f.Timeout(1, 2, nil), 1), badVote, f.Timeout(2, 2, nil)}, nil, []string{consensus.RuleSignature}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 3}) // leader of view 3
			h.Mempool.IsReady = true
			h.Propose(b1) // votes for B1; leader 2 of view 2 then fails
			expireView(h)
			own := enginetest.Of[*types.Timeout](h.Env.Broadcasts())
			require.Len(t, own, 1)
			require.Equal(t, types.View(1), own[0].View, "entered view 2 by voting, view 1 uncertified: it gives up on view 1 first")
			require.NotNil(t, own[0].Vote, "the timeout carries the last vote")
			require.Equal(t, *h.OwnVotes()[0], *own[0].Vote)

			for _, to := range tt.timeouts {
				h.Deliver(to.Sender, to)
			}
			require.Equal(t, tt.rules, h.Out.RejectedRules())
			props := h.Proposals()
			require.Len(t, props, 1, "TC(2) formed and node 3 proposed for view 3")
			b := props[0]
			require.Equal(t, types.View(3), b.View)
			require.NotNil(t, b.TC)
			if tt.qc == nil {
				require.True(t, b.QC.IsGenesis())
				return
			}
			require.Equal(t, b1.ID(), b.Parent)
			require.Equal(t, types.View(1), b.QC.View)
			require.Equal(t, tt.qc, types.SignerIDs(b.QC.Signers))
		})
	}
}

// "2f+1 of them form a TC that moves everyone to view+1, and the next leader extends the highest
// QC among them" and the leader "proposes as soon as it has a QC for v-1 (or a TC)".
func TestNewLeaderProposesWithTC(t *testing.T) {
	t.Run("no QC anywhere: extend genesis with the TC", func(t *testing.T) {
		h := newHarness(t, enginetest.Config{Self: 2})
		h.Mempool.IsReady = true
		h.Deliver(1, h.Timeout(1, 1, nil))
		h.Deliver(3, h.Timeout(3, 1, nil))
		props := h.Proposals()
		require.Len(t, props, 1)
		b := props[0]
		require.Equal(t, types.View(2), b.View)
		require.Equal(t, uint64(1), b.Height)
		require.Equal(t, types.Genesis().ID(), b.Parent)
		require.True(t, b.QC.IsGenesis())
		require.NotNil(t, b.TC)
		require.Equal(t, types.View(1), b.TC.View)
		require.NoError(t, consensus.VerifyTC(h.Verifier, b.TC))
		rule, err := consensus.CheckBlock(b, h.Verifier, h.Leaders)
		require.NoError(t, err, rule)
	})
	t.Run("a timeout carries a higher QC: the leader extends it", func(t *testing.T) {
		h := newHarness(t, enginetest.Config{Self: 3})
		h.Mempool.IsReady = true
		b1 := h.Block(enginetest.BlockSpec{View: 1})
		h.Propose(b1) // vote, view 2; B2 never comes
		expireView(h)
		h.Deliver(1, h.Timeout(1, 2, h.QCFor(b1)))
		h.Deliver(4, h.Timeout(4, 2, nil))
		props := h.Proposals()
		require.Len(t, props, 1)
		b := props[0]
		require.Equal(t, types.View(3), b.View)
		require.Equal(t, b1.ID(), b.Parent)
		require.Equal(t, types.View(1), b.QC.View)
		require.NotNil(t, b.TC)
		require.Equal(t, types.View(2), b.TC.View)
		require.Equal(t, []types.NodeID{1, 3, 4}, types.SignerIDs(b.TC.Signers))
	})
}

// "view timer (timeout ms, doubling after each consecutive timeout, reset on progress)".
func TestTimeoutBackoff(t *testing.T) {
	T := timeout
	tests := []struct {
		name       string
		maxBackoff int
		want       []time.Duration
	}{
		{"doubles per consecutive timeout, kept over a new QC", 0, []time.Duration{T, 2 * T, 2 * T, 4 * T, 4 * T, 8 * T, 8 * T, 8 * T}},
		{"doubling is capped", 2, []time.Duration{T, 2 * T, 2 * T, 4 * T, 4 * T, 4 * T, 4 * T, 4 * T}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := enginetest.New(t, enginetest.Config{Self: 4, Timeout: T, ProposeTimeout: proposeTimeout, MaxBackoff: tt.maxBackoff},
				func(p consensus.Params) consensus.Engine { return hotstuff.New(p) })
			h.Start()
			// Views 1, 2 and 3 time out (node 4 leads none of them).
			for v := types.View(1); v <= 3; v++ {
				require.Equal(t, v, h.Status().View)
				expireView(h)
				h.Deliver(1, h.Timeout(1, v, nil))
				h.Deliver(2, h.Timeout(2, v, nil))
			}
			require.Equal(t, types.View(4), h.Status().View)
			// Progress: node 4, the leader of view 4, collects a QC for B3 (view 3, justified by
			// a TC for view 2), which it received after it had moved on (so it did not vote).
			b3 := h.Block(enginetest.BlockSpec{View: 3, TC: h.TC(2, 1, 2, 3)})
			h.Propose(b3)
			require.Empty(t, h.OwnVotes(), "B3 is for an old view")
			for _, id := range []types.NodeID{1, 2, 3} {
				h.Deliver(id, h.VoteFor(id, b3))
			}
			require.Equal(t, types.View(3), h.Status().HighQCView)
			// The next view (entered by a TC for view 4) keeps the backoff: a QC alone is not
			// progress (TestBackoffResetsOnCommit).
			h.Deliver(1, h.TC(4, 1, 2, 3))
			require.Equal(t, types.View(5), h.Status().View)
			got := enginetest.Durations(enginetest.TimersOf[consensus.ViewTimer](h.Env))
			require.Equal(t, tt.want, got)
		})
	}
}

// A view that only a grown timeout let finish says nothing about the next one: new QCs keep the
// backoff, and a commit resets it. (Resetting on every new QC timed out the view after each
// successful one whenever views outlasted the base timeout, so that three consecutive views never
// certified and nothing committed: simnet's TestLiveWhenViewsOutlastTheTimeout.)
func TestBackoffResetsOnCommit(t *testing.T) {
	T := timeout
	h := enginetest.New(t, enginetest.Config{Self: 4, Timeout: T, ProposeTimeout: proposeTimeout, Leaders: consensus.Static{ID: 1}},
		func(p consensus.Params) consensus.Engine { return hotstuff.New(p) })
	h.Start()
	for v := types.View(1); v <= 2; v++ { // views 1 and 2 time out
		expireView(h)
		h.Deliver(1, h.Timeout(1, v, nil))
		h.Deliver(2, h.Timeout(2, v, nil))
	}
	require.Equal(t, types.View(3), h.Status().View)
	lastTimer := func() time.Duration {
		d := enginetest.Durations(enginetest.TimersOf[consensus.ViewTimer](h.Env))
		return d[len(d)-1]
	}
	require.Equal(t, 4*T, lastTimer())
	chain := h.Chain(true, 3, 4, 5)
	for _, l := range chain {
		h.Propose(l.Block)
		require.Empty(t, h.Out.CommitIDs(), "B%d", l.Block.View)
		require.Equal(t, 4*T, lastTimer(), "after B%d (QC of view %d, no commit)", l.Block.View, l.Block.View-1)
	}
	// B6 carries QC(B5): B3, B4, B5 have consecutive views, so B3 commits and the backoff resets.
	h.Propose(h.Block(enginetest.BlockSpec{View: 6, Parent: chain[2].Block, QC: chain[2].QC}))
	enginetest.RequireIDs(t, []types.Hash{chain[0].Block.ID()}, h.Out.CommitIDs(), "committed")
	require.Equal(t, T, lastTimer(), "the view after a commit has the base timeout")
}

// "It proposes as soon as it has a QC for v-1 (or a TC) and either a non-empty payload or
// propose_timeout has passed (no busy loop of empty blocks; an idle system sends at most one empty
// block per propose_timeout per leader)."
func TestProposeGate(t *testing.T) {
	tests := []struct {
		name  string
		ready bool // mempool Ready when the QC forms
		later func(h *enginetest.Harness)
		// what is proposed after later; before later nothing (unless ready)
		wantItems int
		wantAt    time.Duration // virtual time of the proposal
	}{
		{"idle: one empty block after propose_timeout", false, func(h *enginetest.Harness) {
			h.Advance(proposeTimeout - time.Millisecond)
			require.Empty(h.T, h.Proposals(), "not before propose_timeout")
			h.Advance(time.Millisecond)
		}, 0, proposeTimeout},
		{"payload ready when the QC forms: propose at once", true, nil, 2, 0},
		{"payload arrives later: propose at once on OnMempool", false, func(h *enginetest.Harness) {
			h.Advance(proposeTimeout / 2)
			require.Empty(h.T, h.Proposals())
			h.Mempool.IsReady = true
			h.Engine.OnMempool()
		}, 2, proposeTimeout / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 2})
			h.Mempool.Next = []*types.Payload{enginetest.Payload("a", "b")}
			h.Mempool.IsReady = tt.ready
			b1 := h.Block(enginetest.BlockSpec{View: 1})
			h.Propose(b1)
			h.Deliver(1, h.VoteFor(1, b1))
			h.Deliver(3, h.VoteFor(3, b1))
			require.Equal(t, types.View(1), h.Status().HighQCView)
			if !tt.ready {
				require.Empty(t, h.Proposals(), "no empty block right away")
				pts := enginetest.TimersOf[consensus.ProposeTimer](h.Env)
				require.Len(t, pts, 1)
				require.Equal(t, proposeTimeout, pts[0].After)
				require.Equal(t, consensus.ProposeTimer{View: 2}, pts[0].Timer)
			}
			if tt.later != nil {
				tt.later(h)
			}
			props := h.Proposals()
			require.Len(t, props, 1)
			require.Equal(t, types.View(2), props[0].View)
			require.Equal(t, tt.wantItems, props[0].Payload.Len())
			var at time.Time
			for _, s := range h.Env.Outbox {
				if s.Msg == props[0] {
					at = s.At
				}
			}
			require.Equal(t, enginetest.Epoch.Add(tt.wantAt), at)
			require.Equal(t, []consensus.Proposed{{View: 2, Items: tt.wantItems}}, enginetest.EventsOf[consensus.Proposed](h.Out))
			// No second block in the view, however long the leader waits.
			h.Mempool.IsReady = true
			h.Engine.OnMempool()
			h.Advance(5 * proposeTimeout)
			require.Len(t, h.Proposals(), 1)
		})
	}
}

// "A replica votes for the block iff ... the mempool accepts the payload" (docs/spec.md §2.2, §3): Reject → never,
// Wait → the vote is cast once the mempool has the data (OnMempool).
func TestMempoolVerdict(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	b1 := f.Block(enginetest.BlockSpec{View: 1, Payload: enginetest.Payload("t1", "t2")})
	tests := []struct {
		name    string
		verdict consensus.Verdict
		then    func(h *enginetest.Harness)
		vote    bool
		rules   []string
	}{
		{"accept: vote at once", consensus.Accept, nil, true, nil},
		{"reject: no vote, even if the mempool changes its mind", consensus.Reject, func(h *enginetest.Harness) {
			h.Mempool.Verdict = consensus.Accept
			h.Engine.OnMempool()
		}, false, []string{consensus.RulePayload}},
		{"wait: no vote while still waiting", consensus.Wait, func(h *enginetest.Harness) {
			h.Engine.OnMempool()
		}, false, nil},
		{"wait, then accept: vote after OnMempool", consensus.Wait, func(h *enginetest.Harness) {
			h.Engine.OnMempool()
			require.Empty(h.T, h.OwnVotes())
			h.Mempool.Verdict = consensus.Accept
			h.Engine.OnMempool()
		}, true, nil},
		{"wait, view moves on by TC: no late vote", consensus.Wait, func(h *enginetest.Harness) {
			h.Deliver(1, h.TC(1, 1, 2, 4))
			h.Mempool.Verdict = consensus.Accept
			h.Engine.OnMempool()
		}, false, nil},
		{"wait, own timeout: no late vote", consensus.Wait, func(h *enginetest.Harness) {
			expireView(h)
			h.Mempool.Verdict = consensus.Accept
			h.Engine.OnMempool()
		}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, enginetest.Config{Self: 3})
			h.Mempool.Verdict = tt.verdict
			h.Mempool.Err = errors.New("unknown microblock")
			h.Propose(b1)
			require.Len(t, h.Mempool.Checked, 1)
			require.Same(t, b1.Payload, h.Mempool.Checked[0])
			if tt.then != nil {
				tt.then(h)
			}
			require.Equal(t, tt.rules, h.Out.RejectedRules())
			if !tt.vote {
				require.Empty(t, h.OwnVotes())
				return
			}
			votes := h.OwnVotes()
			require.Len(t, votes, 1)
			require.Equal(t, b1.ID(), votes[0].BlockID)
			require.Equal(t, []types.Message{votes[0]}, h.Env.SentTo(2), "the vote goes to the leader of view 2")
		})
	}
}
