package hotstuff_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/hotstuff"
	"github.com/stratusbft/stratus/types"
)

// docs/spec.md §4.3: "A replica that crashes and restarts never votes twice in a view (its voting state
// survives the restart)". docs/design.md §4: the voting state is saved "before a vote leaves". The state
// handed to Persist holds the view of the vote about to leave and the lock; a replica restarted
// with it votes in no view up to it and never against the lock, even without the locked block.
func TestVotingStateSurvivesRestart(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	chain := f.Chain(true, 1, 2, 3)
	var saved []consensus.VotingState
	var h *enginetest.Harness
	h = enginetest.New(t, enginetest.Config{Self: 4, Timeout: timeout, ProposeTimeout: proposeTimeout}, func(p consensus.Params) consensus.Engine {
		p.Persist = func(v consensus.VotingState) error {
			for _, vote := range h.Votes() {
				require.Less(t, vote.View, v.LastVoted, "saved before the vote of view %d leaves", v.LastVoted)
			}
			saved = append(saved, v)
			return nil
		}
		return hotstuff.New(p)
	})
	h.Start()
	for _, l := range chain {
		h.Propose(l.Block)
	}
	require.Equal(t, []types.View{1, 2, 3}, h.Out.VotedViews())
	require.Len(t, saved, 3, "saved once per vote")
	for i, v := range saved {
		require.Equal(t, types.View(i+1), v.LastVoted)
	}
	last := saved[2]
	require.Equal(t, types.View(1), last.Lock.View, "QC(B2), carried by B3, locks B1")
	require.Equal(t, chain[0].Block.ID(), last.Lock.BlockID)

	// The restarted replica knows nothing but that state.
	r := enginetest.New(t, enginetest.Config{Self: 4, Timeout: timeout, ProposeTimeout: proposeTimeout}, func(p consensus.Params) consensus.Engine {
		p.Restore = &last
		return hotstuff.New(p)
	})
	r.Start()
	st := r.Status()
	require.Equal(t, types.View(4), st.View, "it starts after the last view it voted in")
	require.Equal(t, types.View(1), st.LockedView)
	var requested []types.Hash
	for _, m := range enginetest.Of[*types.BlockRequest](r.Env.Messages()) {
		requested = append(requested, m.ID)
	}
	require.Contains(t, requested, chain[0].Block.ID(), "it fetches the locked block")

	r.Propose(chain[2].Block)
	require.Empty(t, r.Out.VotedViews(), "no second vote in view 3")

	// A fork off genesis justified by a TC: its QC (genesis) is older than the lock and it does
	// not extend the locked block. Before the restart it would get no vote; after it, neither.
	fork := f.Block(enginetest.BlockSpec{View: 5, TC: f.TC(4, 1, 2, 3)})
	r.Deliver(1, f.TC(4, 1, 2, 3))
	r.Propose(fork)
	require.Empty(t, r.Out.VotedViews(), "no vote against the restored lock")
	require.Contains(t, r.Out.RejectedRules(), consensus.RuleUnsafe)

	// Once block sync brought the chain, a block extending it with a newer QC gets the vote.
	b6 := f.Block(enginetest.BlockSpec{View: 6, Parent: chain[2].Block, QC: chain[2].QC, TC: f.TC(5, 1, 2, 3)})
	r.Deliver(1, f.TC(5, 1, 2, 3))
	r.Deliver(1, &types.BlockResponse{Block: chain[0].Block}, &types.BlockResponse{Block: chain[1].Block})
	r.Propose(b6)
	require.Equal(t, []types.View{6}, r.Out.VotedViews())
}

// A vote whose voting state cannot be saved does not leave: after a restart the replica could not
// know it had voted.
func TestNoVoteWithoutSavedState(t *testing.T) {
	h := enginetest.New(t, enginetest.Config{Self: 3, Timeout: timeout, ProposeTimeout: proposeTimeout}, func(p consensus.Params) consensus.Engine {
		p.Persist = func(consensus.VotingState) error { return errors.New("disk full") }
		return hotstuff.New(p)
	})
	h.Start()
	h.Propose(h.Block(enginetest.BlockSpec{View: 1}))
	require.Empty(t, h.Votes())
	require.Contains(t, h.Out.RejectedRules(), consensus.RuleStorage)
}
