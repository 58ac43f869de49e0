package byzantine

import (
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

// recEnv records what the adversary lets out; its keys are real.
type recEnv struct {
	self   types.NodeID
	n      int
	sent   []sent
	timers []consensus.Timer
	signer crypto.Signer
	ver    crypto.Verifier
}

type sent struct {
	to types.NodeID // 0: broadcast
	m  types.Message
}

func (e *recEnv) Self() types.NodeID                    { return e.self }
func (e *recEnv) N() int                                { return e.n }
func (e *recEnv) Now() time.Time                        { return time.Unix(0, 0) }
func (e *recEnv) Send(to types.NodeID, m types.Message) { e.sent = append(e.sent, sent{to, m}) }
func (e *recEnv) Broadcast(m types.Message)             { e.sent = append(e.sent, sent{0, m}) }
func (e *recEnv) SetTimer(_ time.Duration, t consensus.Timer) {
	e.timers = append(e.timers, t)
}
func (e *recEnv) Signer() crypto.Signer     { return e.signer }
func (e *recEnv) Verifier() crypto.Verifier { return e.ver }
func (e *recEnv) Rand() *rand.Rand          { return rand.New(rand.NewSource(1)) }
func (e *recEnv) Backlog() time.Duration    { return 0 }
func (e *recEnv) UplinkRate() float64       { return 0 }

const n = 4

var signers, verifier = crypto.SimKeys(5, n)

// rig wraps a recording Env of replica 1 in the named strategy; env is what the honest replica
// would send through.
func rig(t *testing.T, name, memType string) (*Adversary, *recEnv, consensus.Env) {
	t.Helper()
	rec := &recEnv{self: 1, n: n, signer: signers[0], ver: verifier}
	a, err := New(name, Params{Self: 1, N: n, Leaders: consensus.RoundRobin{N: n}, MemType: memType, Q: 2, Slow: 30 * time.Millisecond, Seed: 1})
	require.NoError(t, err)
	env := a.Env(rec)
	a.Start()
	return a, rec, env
}

// proposal is replica 1's signed block of view v extending parent.
func proposal(v types.View, parent *types.Block, payload *types.Payload) *types.Block {
	qc := types.GenesisQC()
	if parent == nil {
		parent = types.Genesis()
	} else {
		qc = &types.QC{View: parent.View, BlockID: parent.ID()}
	}
	b := &types.Block{View: v, Height: parent.Height + 1, Parent: parent.ID(), QC: qc, Payload: payload, Proposer: 1}
	b.Sig = signers[0].Sign(b.ID())
	return b
}

func signedBy(b *types.Block, id types.NodeID) bool { return verifier.Verify(id, b.ID(), b.Sig) }

func TestStrategyNamesMatchTheConfig(t *testing.T) {
	require.Equal(t, config.Strategies, Strategies())
	for _, s := range Strategies() {
		require.NoError(t, Valid(s))
		require.NoError(t, config.CheckStrategy(s))
	}
	require.NoError(t, Valid("missing+badproof"))
	require.ErrorContains(t, Valid("nope"), `unknown strategy "nope"`)
	require.ErrorContains(t, Valid("crash+slow"), "cannot be combined")
	a, err := New(Crash, Params{Self: 1, N: n})
	require.NoError(t, err)
	require.Nil(t, a, "crash is the driver's business")
}

func TestSilence(t *testing.T) {
	a, rec, env := rig(t, Silence, "native")
	env.Broadcast(proposal(1, nil, &types.Payload{}))
	env.Send(2, &types.BlockRequest{})
	require.Empty(t, rec.sent)
	require.False(t, a.Receive(2, &types.TC{View: 1}))
}

func TestSlowDelaysEverything(t *testing.T) {
	a, rec, env := rig(t, Slow, "native")
	env.Send(3, &types.BlockRequest{})
	require.Empty(t, rec.sent, "held back")
	require.Len(t, rec.timers, 1)
	a.OnTimer(rec.timers[0])
	require.Equal(t, []sent{{3, &types.BlockRequest{}}}, rec.sent)
}

func TestEquivocateSplitsTheReplicas(t *testing.T) {
	_, rec, env := rig(t, Equivocate, "native")
	b := proposal(1, nil, &types.Payload{Txs: []types.Tx{types.NewTx([]byte("a")), types.NewTx([]byte("b"))}})
	env.Broadcast(b)
	require.Len(t, rec.sent, n-1, "one copy per replica")
	ids := map[types.Hash]int{}
	for _, s := range rec.sent {
		require.NotZero(t, s.to)
		blk := s.m.(*types.Block)
		require.True(t, signedBy(blk, 1))
		require.Equal(t, b.View, blk.View)
		require.Equal(t, b.Parent, blk.Parent)
		ids[blk.ID()]++
	}
	require.Len(t, ids, 2, "two conflicting blocks of one view")

	_, rec, env = rig(t, EquivocateFlood, "stratus")
	env.Broadcast(proposal(1, nil, &types.Payload{}))
	ids = map[types.Hash]int{}
	for _, s := range rec.sent {
		ids[s.m.(*types.Block).ID()]++
	}
	require.Len(t, ids, 48, "48 conflicting blocks")
	require.Len(t, rec.sent, 48*(n-1), "each to every replica")
}

func TestDoubleVote(t *testing.T) {
	_, rec, env := rig(t, DoubleVote, "native")
	bid := types.Keccak([]byte("b"))
	v := &types.Vote{View: 3, BlockID: bid, Voter: 1, Sig: signers[0].Sign(types.VoteDigest(3, bid))}
	env.Send(4, v)
	require.Len(t, rec.sent, 2)
	a, b := rec.sent[0].m.(*types.Vote), rec.sent[1].m.(*types.Vote)
	require.Equal(t, a.View, b.View)
	require.NotEqual(t, a.BlockID, b.BlockID)
	for _, x := range []*types.Vote{a, b} {
		require.True(t, verifier.Verify(1, types.VoteDigest(x.View, x.BlockID), x.Sig))
	}
}

func TestMissingWithholdsOwnMicroblocks(t *testing.T) {
	own := types.NewMicroBlock(1, 1, []types.Tx{types.NewTx([]byte("x"))}).Signed(signers[0].Sign)
	other := types.NewMicroBlock(3, 1, []types.Tx{types.NewTx([]byte("y"))}).Signed(signers[2].Sign)

	_, rec, env := rig(t, Missing, "stratus")
	env.Broadcast(own)
	require.Equal(t, []sent{{2, own}}, rec.sent, "PAB: to the q-1 = 1 lowest other replica only")
	rec.sent = nil
	env.Broadcast(other)
	require.Equal(t, []sent{{0, other}}, rec.sent, "others' microblocks are relayed as usual")
	rec.sent = nil
	env.Send(4, &types.FetchResponse{MBs: []*types.MicroBlock{own, other}})
	require.Equal(t, []sent{{4, &types.FetchResponse{MBs: []*types.MicroBlock{other}}}}, rec.sent, "nor served to anyone")

	a, rec, env := rig(t, Missing, "smp")
	a.Receive(2, &types.TC{View: 6}) // the replica is in view 6 or so: leaders 2 (view 6) and 3 (view 7)
	env.Broadcast(own)
	require.Equal(t, []sent{{2, own}, {3, own}}, rec.sent, "smp: to the current and next leaders only")
}

func TestBadProofProposalsAndTamperedRelays(t *testing.T) {
	mb := types.NewMicroBlock(3, 1, []types.Tx{types.NewTx([]byte("z"))}).Signed(signers[2].Sign)
	var proof types.Proof
	proof.MBID, proof.View = mb.ID, 1
	for _, id := range []types.NodeID{2, 3} {
		proof.Signers.Set(types.SignerBit(id))
		proof.Sigs = append(proof.Sigs, signers[id-1].Sign(types.AckDigest(mb.ID, 1)))
	}
	good := consensus.VerifyCert(verifier, types.AckDigest(mb.ID, 1), proof.Signers, proof.Sigs, 2)
	require.NoError(t, good)

	for v := types.View(1); v <= 20; v += 4 { // views replica 1 leads
		_, rec, env := rig(t, BadProof, "stratus")
		b := proposal(v, nil, &types.Payload{Refs: []types.MBRef{{ID: mb.ID, Proof: &proof}}})
		env.Broadcast(b)
		bad := 0
		for _, s := range rec.sent {
			blk := s.m.(*types.Block)
			require.True(t, signedBy(blk, 1), "view %d: re-signed by the proposer", v)
			r := blk.Payload.Refs[0]
			if r.Proof == nil || r.Proof.MBID != r.ID || consensus.VerifyCert(verifier, types.AckDigest(r.Proof.MBID, r.Proof.View), r.Proof.Signers, r.Proof.Sigs, 2) != nil {
				bad++
			}
		}
		require.Positive(t, bad, "view %d: some replica gets a bad proof", v)
	}

	// A relay of another proposer's block: its proofs changed, its signature kept — which no
	// longer verifies, since the ID covers the proofs.
	_, rec, env := rig(t, BadProof, "stratus")
	honest := &types.Block{View: 2, Height: 1, Parent: types.Genesis().ID(), QC: types.GenesisQC(), Proposer: 2,
		Payload: &types.Payload{Refs: []types.MBRef{{ID: mb.ID, Proof: &proof}}}}
	honest.Sig = signers[1].Sign(honest.ID())
	env.Send(3, &types.BlockResponse{Block: honest})
	relayed := rec.sent[0].m.(*types.BlockResponse).Block
	require.NotEqual(t, honest.ID(), relayed.ID())
	require.False(t, signedBy(relayed, 2), "the tampered copy fails its signature check")
}

func TestCensor(t *testing.T) {
	a, rec, env := rig(t, Censor, "stratus")
	env.Send(2, &types.LBInfo{Nonce: 9, LoadUS: 99_000, Busy: true})
	require.Equal(t, []sent{{2, &types.LBInfo{Nonce: 9}}}, rec.sent, "reports an idle load")
	require.False(t, a.Receive(2, &types.LBForward{}), "drops forwarded microblocks")
	require.True(t, a.Receive(2, &types.LBQuery{}))
}

func TestFloodSendsJunkOfEveryKind(t *testing.T) {
	a, rec, _ := rig(t, Flood, "stratus")
	require.Len(t, rec.timers, 1, "a tick is armed at start")
	a.Receive(2, &types.Vote{View: 4})
	a.OnTimer(rec.timers[0])
	kinds := map[types.Kind]bool{}
	for _, s := range rec.sent {
		kinds[s.m.Kind()] = true
		if v, ok := s.m.(*types.Vote); ok && v.Voter == 1 {
			require.Greater(t, v.View, types.View(4+100), "far-future votes")
		}
		if f, ok := s.m.(*types.FetchRequest); ok {
			require.Len(t, f.IDs, types.MaxFetch, "requests of the largest size")
		}
	}
	for _, k := range []types.Kind{types.KindVote, types.KindTimeout, types.KindBlockRequest, types.KindFetchRequest,
		types.KindProof, types.KindStateRequest, types.KindLBQuery} {
		require.True(t, kinds[k], "junk %v", k)
	}
	require.True(t, kinds[types.KindVote], "a replay of what it received")
	require.Len(t, rec.timers, 2, "and the next tick")
}

func TestForkBuildsOnAnOlderBlock(t *testing.T) {
	a, rec, env := rig(t, Fork, "native")
	b1 := proposal(1, nil, &types.Payload{})
	b2 := proposal(2, b1, &types.Payload{})
	b3 := proposal(3, b2, &types.Payload{})
	b4 := proposal(4, b3, &types.Payload{})
	for _, b := range []*types.Block{b1, b2, b3, b4} {
		a.Receive(2, b)
	}
	honest5 := proposal(5, b4, &types.Payload{})
	env.Broadcast(honest5)
	forked := rec.sent[0].m.(*types.Block)
	require.True(t, signedBy(forked, 1))
	require.Equal(t, b1.ID(), forked.Parent, "view 5 (odd): three blocks behind the parent it should extend")
	require.Equal(t, b1.Height+1, forked.Height)
	require.Equal(t, b1.View, forked.QC.View)

	rec.sent = nil
	honest6 := proposal(6, b4, &types.Payload{})
	env.Broadcast(honest6)
	forked = rec.sent[0].m.(*types.Block)
	require.Equal(t, b3.ID(), forked.Parent, "view 6 (even): the grandparent, orphaning the latest certified block")
}
