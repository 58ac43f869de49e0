package simnet

// The checker can fail: deliberately broken engine variants, running on replicas the checker
// takes for honest, must be caught.

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/hotstuff"
	"github.com/stratusbft/stratus/types"
)

// runBroken runs 4 replicas of native HotStuff under load with a broken engine on replica 3 and
// returns the violations found.
func runBroken(t *testing.T, broken func(consensus.Params) consensus.Engine, byz map[types.NodeID]string) []string {
	t.Helper()
	s, err := New(Options{N: 4, Spec: spec("hotstuff"), Seed: seedOr(11), Latency: time.Millisecond, Jitter: 2 * time.Millisecond,
		Byzantine: byz, Engines: map[types.NodeID]func(consensus.Params) consensus.Engine{3: broken}})
	require.NoError(t, err)
	txs := makeTxs("broken", 400)
	load(s, txs, 20, 10*time.Millisecond)
	s.Run(5 * time.Second)
	return s.Violations()
}

// The same runs with the honest engine are clean: the violations come from the broken rules.
func TestCheckerControlRunsAreClean(t *testing.T) {
	honest := func(p consensus.Params) consensus.Engine { return hotstuff.New(p) }
	require.Empty(t, runBroken(t, honest, nil))
	require.Empty(t, runBroken(t, honest, map[types.NodeID]string{1: "fork"}))
}

func requireCaught(t *testing.T, violations []string, what string) {
	t.Helper()
	for _, v := range violations {
		if strings.Contains(v, what) {
			return
		}
	}
	require.Failf(t, "the checker missed a broken engine", "no violation mentions %q; violations: %v", what, violations)
}

// doubleVoteEnv sends, with every vote, a second one for another block of the same view.
type doubleVoteEnv struct{ consensus.Env }

func (e doubleVoteEnv) Send(to types.NodeID, m types.Message) {
	if v, ok := m.(*types.Vote); ok {
		other := types.Keccak(v.BlockID[:])
		e.Env.Send(to, &types.Vote{View: v.View, BlockID: other, Voter: v.Voter, Sig: e.Signer().Sign(types.VoteDigest(v.View, other))})
	}
	e.Env.Send(to, m)
}

func TestCheckerCatchesAnEngineThatVotesTwice(t *testing.T) {
	v := runBroken(t, func(p consensus.Params) consensus.Engine {
		p.Env = doubleVoteEnv{p.Env}
		return hotstuff.New(p)
	}, nil)
	requireCaught(t, v, "replica 3 voted twice in view")
}

// eagerCommit commits with a two-chain rule and no look at views: a block carrying QC(P) commits
// P's parent.
type eagerCommit struct {
	consensus.Engine
	out       consensus.Output
	blocks    map[types.Hash]*types.Block
	committed map[types.Hash]bool
	height    uint64
}

type eagerOut struct{ e *eagerCommit }

func (o eagerOut) Commit(b *types.Block) {
	if !o.e.committed[b.ID()] {
		o.e.committed[b.ID()] = true
		o.e.height = max(o.e.height, b.Height)
		o.e.out.Commit(b)
	}
}
func (o eagerOut) Orphan(b *types.Block)    { o.e.out.Orphan(b) }
func (o eagerOut) Event(ev consensus.Event) { o.e.out.Event(ev) }

func (e *eagerCommit) OnMessage(from types.NodeID, m types.Message) {
	e.Engine.OnMessage(from, m)
	b, ok := m.(*types.Block)
	if !ok {
		return
	}
	e.blocks[b.ID()] = b
	p := e.blocks[b.QC.BlockID]
	if p == nil {
		return
	}
	var chain []*types.Block
	for x := e.blocks[p.Parent]; x != nil && x.Height > e.height; x = e.blocks[x.Parent] {
		chain = append(chain, x)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if chain[i].Height == e.height+1 {
			eagerOut{e}.Commit(chain[i])
		}
	}
}

func TestCheckerCatchesAnEngineThatCommitsWithoutConsecutiveViews(t *testing.T) {
	v := runBroken(t, func(p consensus.Params) consensus.Engine {
		e := &eagerCommit{out: p.Out, blocks: map[types.Hash]*types.Block{}, committed: map[types.Hash]bool{}}
		p.Out = eagerOut{e}
		e.Engine = hotstuff.New(p)
		return e
	}, nil)
	requireCaught(t, v, "replica 3 committed block")
	requireCaught(t, v, "the commit rule does not allow it")
}

// votesRegardless votes for every proposal of a view's leader that the honest engine refused:
// safeNode skipped (and every other rule with it).
type votesRegardless struct {
	consensus.Engine
	env    consensus.Env
	voted  map[types.View]bool
	leader consensus.LeaderElection
}

type votedOut struct {
	consensus.Output
	voted map[types.View]bool
}

func (o votedOut) Event(ev consensus.Event) {
	if v, ok := ev.(consensus.Voted); ok {
		o.voted[v.View] = true
	}
	o.Output.Event(ev)
}

func (e *votesRegardless) OnMessage(from types.NodeID, m types.Message) {
	e.Engine.OnMessage(from, m)
	b, ok := m.(*types.Block)
	if !ok || e.voted[b.View] || b.Proposer != e.leader.Leader(b.View) {
		return
	}
	e.voted[b.View] = true
	vote := &types.Vote{View: b.View, BlockID: b.ID(), Voter: e.env.Self(), Sig: e.env.Signer().Sign(types.VoteDigest(b.View, b.ID()))}
	e.env.Send(e.leader.Leader(b.View+1), vote)
}

func TestCheckerCatchesAnEngineThatSkipsSafeNode(t *testing.T) {
	// Replica 1 forks: every other view it leads, it builds on its block's great-grandparent,
	// behind the lock of every replica that voted since.
	v := runBroken(t, func(p consensus.Params) consensus.Engine {
		voted := map[types.View]bool{}
		p.Out = votedOut{p.Out, voted}
		return &votesRegardless{Engine: hotstuff.New(p), env: p.Env, voted: voted, leader: p.Leaders}
	}, map[types.NodeID]string{1: "fork"})
	requireCaught(t, v, "replica 3 voted for block")
	requireCaught(t, v, "safeNode violated")
}

// TestLightCheckerCatchesDivergentAndRepeatedDeliveries: in light mode (large runs) the checker
// keeps a digest of each height's fresh transactions instead of a set per replica; it still
// fails a replica that delivers other transactions, or the same ones in another order, at a
// height, and a transaction delivered at two heights.
func TestLightCheckerCatchesDivergentAndRepeatedDeliveries(t *testing.T) {
	s, err := New(Options{N: 4, Spec: spec("hotstuff"), Seed: 1, Light: true})
	require.NoError(t, err)
	c := s.Checker()
	txs := makeTxs("light", 3)
	b1 := &types.Block{Height: 1, View: 1}
	b2 := &types.Block{Height: 2, View: 2}
	c.deliveredLight(s.Node(1), b1, txs)
	c.deliveredLight(s.Node(2), b1, txs)
	require.Empty(t, s.Violations(), "the same transactions at the same height")
	c.deliveredLight(s.Node(3), b1, []types.Tx{txs[1], txs[0], txs[2]})
	requireCaught(t, s.Violations(), "delivered other transactions at height 1")
	c.deliveredLight(s.Node(1), b2, []types.Tx{txs[2]})
	requireCaught(t, s.Violations(), "delivered at height 1 and again at height 2")
}
