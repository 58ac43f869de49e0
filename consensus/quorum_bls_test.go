package consensus_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

// Under BLS12-381 a certificate is a signer bitmap and one aggregate signature, checked with one
// pairing against the signers' summed keys. Each way of forging one is refused, with the reason.
func TestBLSCertificates(t *testing.T) {
	signers, v, err := crypto.SimKeysFor(crypto.SchemeBLS, 3, 4)
	require.NoError(t, err)
	ver := crypto.NewCache(v) // as replicas use it
	id := types.Keccak([]byte("block"))
	d := types.VoteDigest(3, id)
	var set consensus.SigSet
	for _, s := range signers[:3] {
		sig := s.Sign(d)
		require.True(t, ver.Verify(s.ID(), d, sig))
		set.Add(s.ID(), sig)
	}
	bm, sigs := set.BuildFor(ver)
	require.Len(t, sigs, 1, "a BLS certificate carries one aggregate")
	require.Len(t, sigs[0], types.BLSSigSize)
	qc := &types.QC{View: 3, BlockID: id, Signers: bm, Sigs: sigs}
	require.NoError(t, consensus.VerifyQC(ver, qc))
	require.NoError(t, types.ValidateQC(qc))

	var two consensus.SigSet
	for _, s := range signers[:2] {
		two.Add(s.ID(), s.Sign(d))
	}
	_, twoAgg := two.BuildFor(ver)
	apart := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = signers[i].Sign(d)
		}
		return out
	}
	tests := []struct {
		name string
		qc   *types.QC
		err  string
	}{
		{"the aggregate of 1, 2 named as 1, 2, 3 (not the named set)", &types.QC{View: 3, BlockID: id, Signers: bm, Sigs: twoAgg}, "does not verify"},
		{"the aggregate of 1, 2, 3 named as 1, 2, 4", &types.QC{View: 3, BlockID: id, Signers: enginetest.Bitmap(1, 2, 4), Sigs: sigs}, "does not verify"},
		{"a superset bitmap naming replica 9 of 4", &types.QC{View: 3, BlockID: id, Signers: enginetest.Bitmap(1, 2, 3, 9), Sigs: sigs}, "signer 9 is not a replica"},
		{"too few signers", &types.QC{View: 3, BlockID: id, Signers: enginetest.Bitmap(1, 2), Sigs: twoAgg}, "2 signers, need 3"},
		{"another view's aggregate", &types.QC{View: 4, BlockID: id, Signers: bm, Sigs: sigs}, "does not verify"},
		{"signatures apart", &types.QC{View: 3, BlockID: id, Signers: bm, Sigs: apart(3)}, "one aggregate"},
		{"garbage aggregate", &types.QC{View: 3, BlockID: id, Signers: bm, Sigs: [][]byte{make([]byte, types.BLSSigSize)}}, "does not verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := consensus.VerifyQC(ver, tc.qc)
			require.Error(t, err)
			require.ErrorContains(t, err, tc.err)
		})
	}

	// A secp256k1 cluster refuses a BLS-form certificate: the counts do not match.
	f := enginetest.NewFixture(1, 4)
	require.ErrorContains(t, consensus.VerifyQC(f.Verifier, qc), "3 signers but 1 signatures")
}

// Under BLS a vote its voter sent is counted unchecked and the quorum's signatures are checked as
// one aggregate when the QC would form. A bad one (well formed, over another digest) makes that
// check fail: the collector finds it one by one, drops it, names its voter, forms no QC from it,
// and checks that voter's votes at once from then on; the next good vote completes a QC that
// verifies. A relayed vote is never counted unchecked.
func TestDeferredVotesUnderBLS(t *testing.T) {
	signers, v, err := crypto.SimKeysFor(crypto.SchemeBLS, 5, 7) // real BLS keys, quorum 5
	require.NoError(t, err)
	ver := crypto.NewCache(v)
	c := consensus.NewVoteCollector(consensus.QuorumSize(7), 7)
	c.Verifier, c.Deferral = ver, consensus.NewDeferral(ver)
	id := types.Keccak([]byte("block"))
	vote := func(i int, digest types.Hash) *types.Vote {
		return &types.Vote{View: 9, BlockID: id, Voter: signers[i].ID(), Sig: signers[i].Sign(digest)}
	}
	good := types.VoteDigest(9, id)
	require.True(t, c.Defers(3, 3), "a vote from its voter waits for the aggregate check")
	require.False(t, c.Defers(2, 3), "a relayed vote is checked at once")

	for i := 0; i < 4; i++ {
		qc, bad, err := c.Add(vote(i, good), false)
		require.NoError(t, err)
		require.Nil(t, qc)
		require.Empty(t, bad)
	}
	liar := vote(4, types.VoteDigest(10, id)) // a valid point, signed over another view
	qc, bad, err := c.Add(liar, false)
	require.NoError(t, err)
	require.Nil(t, qc, "the fifth vote is bad: no QC")
	require.Equal(t, []types.NodeID{5}, bad, "the bad vote's voter is named")
	require.False(t, c.Defers(5, 5), "its votes are checked at once from now on")

	qc, bad, err = c.Add(vote(5, good), false)
	require.NoError(t, err)
	require.Empty(t, bad)
	require.NotNil(t, qc, "a good fifth vote completes the QC")
	require.NoError(t, consensus.VerifyQC(ver, qc))
	require.Equal(t, 5, qc.Signers.Count())
	require.False(t, qc.Signers.Contains(types.SignerBit(5)), "without the bad voter")

	// Under secp256k1 nothing is deferred.
	_, sv, err := crypto.SimKeysFor(crypto.SchemeSecp256k1, 5, 7)
	require.NoError(t, err)
	require.False(t, consensus.NewDeferral(sv).Defers(3, 3))
}

// The pre-check under BLS: a vote or timeout from its signer is only decoded (a signature that is
// no curve point is refused at once; a well-formed bad one is left to the aggregate check); one
// relayed, or under Streamlet (deferVotes false), is verified.
func TestPreVerifyDefersUnderBLS(t *testing.T) {
	signers, v, err := crypto.SimKeysFor(crypto.SchemeBLS, 6, 4)
	require.NoError(t, err)
	ver := crypto.NewCache(v)
	leaders := consensus.RoundRobin{N: 4}
	id := types.Keccak([]byte("b"))
	wrong := &types.Vote{View: 2, BlockID: id, Voter: 3, Sig: signers[2].Sign(types.VoteDigest(3, id))}
	_, err = consensus.PreVerify(3, wrong, ver, leaders, true)
	require.NoError(t, err, "left to the aggregate check")
	rule, err := consensus.PreVerify(2, wrong, ver, leaders, true)
	require.Error(t, err, "relayed: checked at once")
	require.Equal(t, consensus.RuleSignature, rule)
	_, err = consensus.PreVerify(3, wrong, ver, leaders, false)
	require.Error(t, err, "Streamlet checks every vote at once")
	junk := &types.Vote{View: 2, BlockID: id, Voter: 3, Sig: make([]byte, types.BLSSigSize)}
	junk.Sig[0] = 0x80 // compressed-point flag, x = 0: not on the curve
	_, err = consensus.PreVerify(3, junk, ver, leaders, true)
	require.Error(t, err, "not a curve point: refused at once")
	to := &types.Timeout{View: 2, HighQC: types.GenesisQC(), Sender: 3, Sig: signers[2].Sign(types.TimeoutDigest(5))}
	_, err = consensus.PreVerify(3, to, ver, leaders, true)
	require.NoError(t, err, "a timeout from its sender: left to the TC's check")
	_, err = consensus.PreVerify(1, to, ver, leaders, true)
	require.Error(t, err)
}
