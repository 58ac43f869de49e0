package mempool

// Proofs by reference: a proposal names its microblocks; a replica votes once it holds a verified
// proof of each, asking the proposer (then the others) for the ones it lacks, while the view lasts.

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

func byRefCfg() SharedConfig {
	c := pabCfg()
	c.ProofsByRef = true
	return c
}

func idRef(id types.Hash) types.MBRef { return types.MBRef{ID: id} }

// A leader by reference sends no proof: its proposal names the microblock, and a replica that
// holds the proof (from the creator's broadcast) votes at once.
func TestByRefProposalCarriesNoProofAndVotesWithAHeldProof(t *testing.T) {
	leader := newRig(t, 1, 4, byRefCfg())
	leader.m.SetView(5)
	mb := mbOf(3, 5, txs('b', 0, 10))
	p := leader.proofBy(mb, 2, 3)
	leader.m.OnMessage(3, mb)
	leader.m.OnMessage(3, p)
	fresh := leader.m.MakePayload(5, nil)
	require.Len(t, fresh.Refs, 1)
	require.Same(t, p, fresh.Refs[0].Proof, "a proof that just came is carried: the others may not hold it yet")
	leader.m.Requeue(blockOf(5, 1, fresh.Refs...))
	leader.advance(freshProof)
	payload := leader.m.MakePayload(5, nil)
	require.Len(t, payload.Refs, 1)
	require.Equal(t, mb.ID, payload.Refs[0].ID)
	require.Nil(t, payload.Refs[0].Proof, "a proposal by reference carries no proof the others had time to get")

	r := newRig(t, 2, 4, byRefCfg())
	r.m.SetView(5)
	r.m.OnMessage(3, p)
	v, err := r.m.CheckPayload(blockOf(5, 1, payload.Refs...))
	require.NoError(t, err)
	require.Equal(t, consensus.Accept, v)
	require.Empty(t, pick[*types.ProofRequest](r.take()), "nothing to ask for")
}

// A replica without the proof waits and asks the proposer; the proposer's answer is verified and
// the vote follows. A forged answer does not make it vote.
func TestByRefMissingProofIsAskedOfTheProposer(t *testing.T) {
	r := newRig(t, 2, 4, byRefCfg())
	r.m.SetView(5)
	mb := mbOf(3, 5, txs('a', 0, 10))
	b := blockOf(5, 1, idRef(mb.ID))
	v, err := r.m.CheckPayload(b)
	require.NoError(t, err)
	require.Equal(t, consensus.Wait, v, "no vote without the proof")
	reqs := pick[*types.ProofRequest](r.take())
	require.Len(t, reqs, 1)
	require.Equal(t, types.NodeID(1), reqs[0].to, "the proposer is asked first")
	require.Equal(t, []types.Hash{mb.ID}, reqs[0].m.IDs)
	// Asking again (the engine re-checks after every mempool event) sends nothing new.
	v, _ = r.m.CheckPayload(b)
	require.Equal(t, consensus.Wait, v)
	require.Empty(t, pick[*types.ProofRequest](r.take()))

	forged := r.proofBy(mb, 2)
	forged.Signers = bm(2, 4) // one signature short of q, renamed
	r.m.OnMessage(1, forged)
	v, _ = r.m.CheckPayload(b)
	require.Equal(t, consensus.Wait, v, "a proof that does not verify is not kept")

	r.m.OnMessage(1, r.proofBy(mb, 3, 4))
	v, err = r.m.CheckPayload(b)
	require.NoError(t, err)
	require.Equal(t, consensus.Accept, v)
	require.Equal(t, uint64(1), sumProofMissing(r.events))
}

// A leader that names a microblock nobody can prove gets no vote: the replica asks the proposer,
// then one other replica per fetch timeout, never twice the same, and stops when the view ends.
func TestByRefUnprovableReferenceGetsNoVote(t *testing.T) {
	r := newRig(t, 2, 4, byRefCfg())
	r.m.SetView(5)
	junk := types.Keccak([]byte("nobody holds this"))
	b := blockOf(5, 1, idRef(junk))
	v, _ := r.m.CheckPayload(b)
	require.Equal(t, consensus.Wait, v)
	var asked []types.NodeID
	for i := 0; i < 6; i++ {
		for _, q := range pick[*types.ProofRequest](r.take()) {
			asked = append(asked, q.to)
		}
		r.advance(40 * time.Millisecond)
		v, _ = r.m.CheckPayload(b)
		require.Equal(t, consensus.Wait, v)
	}
	require.Equal(t, []types.NodeID{1, 3, 4}, asked, "proposer first, then each other replica once")
	r.m.SetView(6)
	r.advance(time.Second)
	require.Empty(t, pick[*types.ProofRequest](r.take()), "the wait ends with its view")
	require.Empty(t, r.m.proofWaits)
}

// A replica answers a ProofRequest with the verified proofs it holds, nothing for what it does not
// hold, and within the peer's serving budget.
func TestByRefServesHeldProofs(t *testing.T) {
	r := newRig(t, 3, 4, byRefCfg())
	r.m.SetView(5)
	mb := mbOf(2, 5, txs('s', 0, 10))
	p := r.proofBy(mb, 1, 2)
	r.m.OnMessage(2, p)
	r.take()
	r.m.OnMessage(4, &types.ProofRequest{IDs: []types.Hash{types.Keccak([]byte("unknown")), mb.ID}})
	got := pick[*types.Proof](r.take())
	require.Len(t, got, 1)
	require.Equal(t, types.NodeID(4), got[0].to)
	require.Equal(t, mb.ID, got[0].m.MBID)
	// A peer asking without pause runs out of budget.
	served := 0
	for i := 0; i < 100_000 && served < 1_000_000; i++ {
		r.m.OnMessage(4, &types.ProofRequest{IDs: []types.Hash{mb.ID}})
		served += len(pick[*types.Proof](r.take()))
	}
	require.Less(t, served, 100_000, "proof requests are served within a budget")
	require.Positive(t, countEv[consensus.Rejected](r.events))
}

// By reference, an inline proof a Byzantine leader attaches is checked like any other: a bad
// one is refused. Inline (the paper's design), a reference without its proof is refused.
func TestByRefInlineProofsAreStillChecked(t *testing.T) {
	r := newRig(t, 2, 4, byRefCfg())
	r.m.SetView(5)
	mb := mbOf(3, 5, txs('i', 0, 10))
	bad := r.proofBy(mb, 3)
	v, err := r.m.CheckPayload(blockOf(5, 1, refOf(bad)))
	require.Equal(t, consensus.Reject, v)
	require.ErrorContains(t, err, "need 2")

	in := newRig(t, 2, 4, pabCfg())
	in.m.SetView(5)
	in.m.OnMessage(3, in.proofBy(mb, 3, 4))
	v, err = in.m.CheckPayload(blockOf(5, 1, idRef(mb.ID)))
	require.Equal(t, consensus.Reject, v)
	require.ErrorContains(t, err, "no availability proof")
}

func sumProofMissing(evs []consensus.Event) uint64 {
	var n uint64
	for _, e := range eventsOf[consensus.ProofMissing](evs) {
		n += uint64(e.Count)
	}
	return n
}

// PreVerify, which the replica's verification workers run before the event loop, takes a BLS
// proof as one aggregate (it checked each signature alone and refused every BLS proof).
func TestPreVerifyBLSProof(t *testing.T) {
	signers, v, err := crypto.SimKeysFor(crypto.SchemeBLS, 5, 4)
	require.NoError(t, err)
	ver := crypto.NewCache(v)
	mb := types.NewMicroBlock(1, 3, txs('p', 0, 3)).Signed(signers[0].Sign)
	d := types.AckDigest(mb.ID, mb.View)
	var set consensus.SigSet
	for _, s := range signers[:2] {
		sig := s.Sign(d)
		require.True(t, ver.Verify(s.ID(), d, sig))
		set.Add(s.ID(), sig)
	}
	bmp, sigs := set.BuildFor(ver)
	p := &types.Proof{MBID: mb.ID, View: mb.View, Signers: bmp, Sigs: sigs}
	_, err = PreVerify(0, p, ver)
	require.NoError(t, err)
	forged := &types.Proof{MBID: mb.ID, View: mb.View, Signers: bm(1, 2, 3), Sigs: sigs}
	rule, err := PreVerify(0, forged, ver)
	require.Error(t, err)
	require.Equal(t, consensus.RuleCert, rule)
	_, err = PreVerify(0, mb, ver)
	require.NoError(t, err)
}
