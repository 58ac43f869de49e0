package crypto

import (
	"math/big"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

func TestP256SignAndVerify(t *testing.T) {
	signers, v, err := SimKeysFor(SchemeP256, 5, 3)
	require.NoError(t, err)
	d := types.Keccak([]byte("block"))
	sig := signers[1].Sign(d)
	require.Len(t, sig, types.SigSize)
	assert.True(t, v.Verify(2, d, sig))
	assert.False(t, v.Verify(1, d, sig), "another node's signature")
	assert.False(t, v.Verify(2, types.Keccak([]byte("other")), sig), "another digest")
	assert.False(t, v.Verify(0, d, sig))
	assert.False(t, v.Verify(4, d, sig))
	assert.False(t, v.Verify(2, d, sig[:64]))

	bad := append([]byte(nil), sig...)
	bad[64] = 1
	assert.False(t, v.Verify(2, d, bad), "the last byte must be 0")

	// The same signature with S replaced by n-S is valid ECDSA but refused: one form per signature.
	s := new(big.Int).SetBytes(sig[32:64])
	high := append([]byte(nil), sig...)
	new(big.Int).Sub(p256N, s).FillBytes(high[32:64])
	assert.False(t, v.Verify(2, d, high), "high-S form accepted")

	zero := make([]byte, types.SigSize)
	assert.False(t, v.Verify(2, d, zero))

	// Keys differ per node and per seed; the cache works for either scheme.
	again, _, err := SimKeysFor(SchemeP256, 5, 3)
	require.NoError(t, err)
	assert.Equal(t, signers[0].PublicKey(), again[0].PublicKey())
	assert.NotEqual(t, signers[0].PublicKey(), signers[1].PublicKey())
	c := NewCache(v)
	assert.True(t, c.Verify(2, d, sig))
	assert.True(t, c.Verify(2, d, sig))
	assert.False(t, c.Verify(1, d, sig))

	_, _, err = SimKeysFor("rsa", 1, 1)
	assert.ErrorContains(t, err, `unknown signature scheme "rsa"`)
}

func TestP256VerifierRefusesBadKeys(t *testing.T) {
	_, err := NewP256Verifier([][]byte{{4, 1, 2}})
	assert.ErrorContains(t, err, "public key of node 1")
	signers, _, err := SimKeysFor(SchemeP256, 1, 1)
	require.NoError(t, err)
	p := signers[0].PublicKey()
	_, err = NewP256Verifier([][]byte{p, p})
	assert.ErrorContains(t, err, "same public key")
	// A secp256k1 key is not a P-256 point.
	k, _ := SimKeys(1, 1)
	_, err = NewP256Verifier([][]byte{k[0].PublicKey()})
	assert.Error(t, err)
}
