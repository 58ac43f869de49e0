package crypto

import (
	"testing"

	"github.com/stratusbft/stratus/types"
)

// BenchmarkCertKeyOf: the key of a proof at N=400 (f+1 = 134 signatures of 65 bytes), which the
// simulator computes at every replica that receives the proof.
func BenchmarkCertKeyOf(b *testing.B) {
	sigs := make([][]byte, 134)
	for i := range sigs {
		sigs[i] = make([]byte, types.SigSize)
		sigs[i][0] = byte(i)
	}
	signers := make([]uint64, 7)
	for b.Loop() {
		CertKeyOf(types.Hash{1}, signers, sigs)
	}
}

// TestCertKeyRemembersOnlyTheSameCertificate: the remembered key of a certificate is its content's
// key, for the same slice of signatures met again, and a certificate that reuses another's
// signatures under another signer set, or a shorter slice of them, gets its own content's key.
func TestCertKeyRemembersOnlyTheSameCertificate(t *testing.T) {
	_, v := simMACKeys(1, 4, types.SigSize)
	d := types.Hash{7}
	sigs := [][]byte{macSig(v.secrets[0], 1, d, v.size), macSig(v.secrets[1], 2, d, v.size), macSig(v.secrets[2], 3, d, v.size)}
	a, b := []uint64{0b0111}, []uint64{0b1011}
	for i := range 2 {
		if got, want := v.CertKey(d, a, sigs), CertKeyOf(d, a, sigs); got != want {
			t.Fatalf("round %d: key %v, want %v", i, got, want)
		}
	}
	if got, want := v.CertKey(d, b, sigs), CertKeyOf(d, b, sigs); got != want || got == CertKeyOf(d, a, sigs) {
		t.Fatalf("other signers over the same signatures: key %v, want %v", got, want)
	}
	if got, want := v.CertKey(d, a, sigs[:2]), CertKeyOf(d, a, sigs[:2]); got != want {
		t.Fatalf("a shorter slice of the same signatures: key %v, want %v", got, want)
	}
	if got, want := v.CertKey(types.Hash{8}, a, sigs), CertKeyOf(types.Hash{8}, a, sigs); got != want {
		t.Fatalf("another digest: key %v, want %v", got, want)
	}
}

// TestMACVerifyRemembersBySignature: a signature checked before answers the same, and another
// signature — other bytes, or the same bytes claimed by another signer or for another digest — is
// checked on its own.
func TestMACVerifyRemembersBySignature(t *testing.T) {
	signers, v := simMACKeys(1, 4, types.SigSize)
	d := types.Hash{3}
	sig := signers[1].Sign(d)
	for range 2 {
		if !v.Verify(2, d, sig) {
			t.Fatal("a valid signature was refused")
		}
	}
	if v.Verify(3, d, sig) || v.Verify(2, types.Hash{4}, sig) {
		t.Fatal("the same bytes verified for another signer or digest")
	}
	forged := append([]byte(nil), sig...)
	forged[10] ^= 1
	if v.Verify(2, d, forged) {
		t.Fatal("a forged signature verified")
	}
}
