package byzantine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

const n = 4

var signers, verifier = crypto.SimKeys(5, n)

// rig wraps a recording Env of replica 1 in the named strategy; env is what the honest replica
// would send through.
func rig(t *testing.T, name, memType string) (*Adversary, *enginetest.Env, consensus.Env) {
	t.Helper()
	rec := enginetest.NewEnv(1, n, signers[0], verifier, 1)
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

// sentBy is the message the adversary let out through rec: m to to (0: broadcast), now.
func sentBy(rec *enginetest.Env, to types.NodeID, m types.Message) enginetest.Sent {
	return enginetest.Sent{To: to, Msg: m, At: rec.Clock}
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
	require.Empty(t, rec.Outbox)
	require.False(t, a.Receive(2, &types.TC{View: 1}))
}

func TestSlowDelaysEverything(t *testing.T) {
	a, rec, env := rig(t, Slow, "native")
	env.Send(3, &types.BlockRequest{})
	require.Empty(t, rec.Outbox, "held back")
	require.Len(t, rec.Timers, 1)
	a.OnTimer(rec.Timers[0].Timer)
	require.Equal(t, []enginetest.Sent{sentBy(rec, 3, &types.BlockRequest{})}, rec.Outbox)
}

func TestEquivocateSplitsTheReplicas(t *testing.T) {
	_, rec, env := rig(t, Equivocate, "native")
	b := proposal(1, nil, &types.Payload{Txs: []types.Tx{types.NewTx([]byte("a")), types.NewTx([]byte("b"))}})
	env.Broadcast(b)
	require.Len(t, rec.Outbox, n-1, "one copy per replica")
	ids := map[types.Hash]int{}
	for _, s := range rec.Outbox {
		require.NotZero(t, s.To)
		blk := s.Msg.(*types.Block)
		require.True(t, signedBy(blk, 1))
		require.Equal(t, b.View, blk.View)
		require.Equal(t, b.Parent, blk.Parent)
		ids[blk.ID()]++
	}
	require.Len(t, ids, 2, "two conflicting blocks of one view")

	_, rec, env = rig(t, EquivocateFlood, "stratus")
	env.Broadcast(proposal(1, nil, &types.Payload{}))
	ids = map[types.Hash]int{}
	for _, s := range rec.Outbox {
		ids[s.Msg.(*types.Block).ID()]++
	}
	require.Len(t, ids, 48, "48 conflicting blocks")
	require.Len(t, rec.Outbox, 48*(n-1), "each to every replica")
}

func TestDoubleVote(t *testing.T) {
	_, rec, env := rig(t, DoubleVote, "native")
	bid := types.Keccak([]byte("b"))
	v := &types.Vote{View: 3, BlockID: bid, Voter: 1, Sig: signers[0].Sign(types.VoteDigest(3, bid))}
	env.Send(4, v)
	require.Len(t, rec.Outbox, 2)
	a, b := rec.Outbox[0].Msg.(*types.Vote), rec.Outbox[1].Msg.(*types.Vote)
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
	require.Equal(t, []enginetest.Sent{sentBy(rec, 2, own)}, rec.Outbox, "PAB: to the q-1 = 1 lowest other replica only")
	rec.ClearOutbox()
	env.Broadcast(other)
	require.Equal(t, []enginetest.Sent{sentBy(rec, 0, other)}, rec.Outbox, "others' microblocks are relayed as usual")
	rec.ClearOutbox()
	env.Send(4, &types.FetchResponse{MBs: []*types.MicroBlock{own, other}})
	require.Equal(t, []enginetest.Sent{sentBy(rec, 4, &types.FetchResponse{MBs: []*types.MicroBlock{other}})}, rec.Outbox, "nor served to anyone")

	a, rec, env := rig(t, Missing, "smp")
	a.Receive(2, &types.TC{View: 6}) // the replica is in view 6 or so: leaders 2 (view 6) and 3 (view 7)
	env.Broadcast(own)
	require.Equal(t, []enginetest.Sent{sentBy(rec, 2, own), sentBy(rec, 3, own)}, rec.Outbox, "smp: to the current and next leaders only")
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
		for _, s := range rec.Outbox {
			blk := s.Msg.(*types.Block)
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
	relayed := rec.Outbox[0].Msg.(*types.BlockResponse).Block
	require.NotEqual(t, honest.ID(), relayed.ID())
	require.False(t, signedBy(relayed, 2), "the tampered copy fails its signature check")
}

func TestCensor(t *testing.T) {
	a, rec, env := rig(t, Censor, "stratus")
	env.Send(2, &types.LBInfo{Nonce: 9, LoadUS: 99_000, Busy: true})
	require.Equal(t, []enginetest.Sent{sentBy(rec, 2, &types.LBInfo{Nonce: 9})}, rec.Outbox, "reports an idle load")
	require.False(t, a.Receive(2, &types.LBForward{}), "drops forwarded microblocks")
	require.True(t, a.Receive(2, &types.LBQuery{}))
}

func TestFloodSendsJunkOfEveryKind(t *testing.T) {
	a, rec, _ := rig(t, Flood, "stratus")
	require.Len(t, rec.Timers, 1, "a tick is armed at start")
	a.Receive(2, &types.Vote{View: 4})
	a.OnTimer(rec.Timers[0].Timer)
	kinds := map[types.Kind]bool{}
	for _, s := range rec.Outbox {
		kinds[s.Msg.Kind()] = true
		if v, ok := s.Msg.(*types.Vote); ok && v.Voter == 1 {
			require.Greater(t, v.View, types.View(4+100), "far-future votes")
		}
		if f, ok := s.Msg.(*types.FetchRequest); ok {
			require.Len(t, f.IDs, types.MaxFetch, "requests of the largest size")
		}
	}
	for _, k := range []types.Kind{types.KindVote, types.KindTimeout, types.KindBlockRequest, types.KindFetchRequest,
		types.KindProof, types.KindStateRequest, types.KindLBQuery} {
		require.True(t, kinds[k], "junk %v", k)
	}
	require.True(t, kinds[types.KindVote], "a replay of what it received")
	require.Len(t, rec.Timers, 2, "and the next tick")
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
	forked := rec.Outbox[0].Msg.(*types.Block)
	require.True(t, signedBy(forked, 1))
	require.Equal(t, b1.ID(), forked.Parent, "view 5 (odd): three blocks behind the parent it should extend")
	require.Equal(t, b1.Height+1, forked.Height)
	require.Equal(t, b1.View, forked.QC.View)

	rec.ClearOutbox()
	honest6 := proposal(6, b4, &types.Payload{})
	env.Broadcast(honest6)
	forked = rec.Outbox[0].Msg.(*types.Block)
	require.Equal(t, b3.ID(), forked.Parent, "view 6 (even): the grandparent, orphaning the latest certified block")
}
