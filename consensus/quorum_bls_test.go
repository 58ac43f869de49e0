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
