package crypto

import (
	"bytes"
	"crypto/ecdsa"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

const testN = 4

func digest(label string) types.Hash { return types.Keccak([]byte(label)) }

func TestSignVerifyRoundTrip(t *testing.T) {
	signers, v := SimKeys(1, testN)
	require.Len(t, signers, testN)
	require.Equal(t, testN, v.N())
	for i, s := range signers {
		id := types.NodeID(i + 1)
		assert.Equal(t, id, s.ID())
		d := digest(fmt.Sprintf("msg-%d", i))
		sig := s.Sign(d)
		require.Len(t, sig, types.SigSize)
		assert.True(t, v.Verify(id, d, sig), "node %d", id)
		// Signing is deterministic (RFC 6979) and the signature recovers to the node's key.
		assert.Equal(t, sig, s.Sign(d))
		pub, err := ethcrypto.Ecrecover(d[:], sig)
		require.NoError(t, err)
		assert.Equal(t, s.PublicKey(), pub)
	}
}

func TestVerifyRejects(t *testing.T) {
	signers, v := SimKeys(1, testN)
	d := digest("block")
	good := signers[1].Sign(d) // node 2
	require.True(t, v.Verify(2, d, good))

	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		return b
	}
	other := d
	other[0] ^= 1

	cases := map[string]struct {
		id  types.NodeID
		d   types.Hash
		sig []byte
	}{
		"tampered digest":     {2, other, good},
		"zero digest":         {2, types.Hash{}, good},
		"tampered R":          {2, d, flip(0)},
		"tampered R end":      {2, d, flip(31)},
		"tampered S":          {2, d, flip(32)},
		"tampered S end":      {2, d, flip(63)},
		"wrong signer":        {1, d, good},
		"wrong signer 4":      {4, d, good},
		"unknown node 0":      {0, d, good},
		"unknown node N+1":    {testN + 1, d, good},
		"unknown node max":    {types.NodeID(^uint32(0)), d, good},
		"short signature":     {2, d, good[:64]},
		"long signature":      {2, d, append(bytes.Clone(good), 0)},
		"empty signature":     {2, d, nil},
		"zero signature":      {2, d, make([]byte, types.SigSize)},
		"other node's sig":    {2, d, signers[2].Sign(d)},
		"sig of other digest": {2, d, signers[1].Sign(other)},
	}
	for name, c := range cases {
		assert.False(t, v.Verify(c.id, c.d, c.sig), name)
	}
	// The signature was not modified by any of this.
	assert.True(t, v.Verify(2, d, good))
}

func TestVerifyRecoveryByte(t *testing.T) {
	signers, v := SimKeys(1, testN)
	d := digest("v")
	sig := signers[0].Sign(d)
	for _, b := range []byte{2, 7, 27, 0xff} {
		bad := bytes.Clone(sig)
		bad[64] = b
		assert.False(t, v.Verify(1, d, bad), "V = %d", b)
	}
}

func TestDeriveKey(t *testing.T) {
	k1 := DeriveKey(1, 1)
	assert.Equal(t, ethcrypto.FromECDSA(k1), ethcrypto.FromECDSA(DeriveKey(1, 1)), "deterministic")

	seen := map[string]string{}
	for _, seed := range []int64{0, 1, 2, -1, 1 << 40} {
		for id := types.NodeID(0); id <= 20; id++ {
			k := DeriveKey(seed, id)
			require.NotNil(t, k)
			priv := string(ethcrypto.FromECDSA(k))
			name := fmt.Sprintf("seed %d node %d", seed, id)
			if prev, dup := seen[priv]; dup {
				t.Fatalf("%s has the same key as %s", name, prev)
			}
			seen[priv] = name
		}
	}
}

func TestSimKeys(t *testing.T) {
	signers, v := SimKeys(42, 7)
	require.Len(t, signers, 7)
	assert.Equal(t, 7, v.N())
	d := digest("all")
	for i, s := range signers {
		assert.Equal(t, types.NodeID(i+1), s.ID())
		assert.Equal(t, ethcrypto.FromECDSAPub(&DeriveKey(42, s.ID()).PublicKey), s.PublicKey())
		sig := s.Sign(d)
		for j := 1; j <= 7; j++ {
			assert.Equal(t, j == i+1, v.Verify(types.NodeID(j), d, sig), "signer %d verified as %d", i+1, j)
		}
	}
	// Another seed gives other keys: signatures do not cross over.
	other, v2 := SimKeys(43, 7)
	assert.NotEqual(t, signers[0].PublicKey(), other[0].PublicKey())
	assert.False(t, v2.Verify(1, d, signers[0].Sign(d)))

	none, v0 := SimKeys(1, 0)
	assert.Empty(t, none)
	assert.Equal(t, 0, v0.N())
	assert.False(t, v0.Verify(1, d, signers[0].Sign(d)))
}

func pubOf(k *ecdsa.PrivateKey) []byte { return ethcrypto.FromECDSAPub(&k.PublicKey) }

func TestNewVerifier(t *testing.T) {
	pubs := [][]byte{pubOf(DeriveKey(1, 1)), pubOf(DeriveKey(1, 2)), pubOf(DeriveKey(1, 3))}
	v, err := NewVerifier(pubs)
	require.NoError(t, err)
	assert.Equal(t, 3, v.N())
	d := digest("x")
	assert.True(t, v.Verify(3, d, NewSigner(3, DeriveKey(1, 3)).Sign(d)))

	v, err = NewVerifier(nil)
	require.NoError(t, err)
	assert.Equal(t, 0, v.N())
}

func TestNewVerifierRefusesDuplicates(t *testing.T) {
	a, b := pubOf(DeriveKey(1, 1)), pubOf(DeriveKey(1, 2))
	_, err := NewVerifier([][]byte{a, b, bytes.Clone(a)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nodes 1 and 3 have the same public key")

	_, err = NewVerifier([][]byte{a, b, b})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nodes 2 and 3")
}

func TestNewVerifierRefusesMalformedKeys(t *testing.T) {
	good := pubOf(DeriveKey(1, 1))
	notOnCurve := bytes.Clone(pubOf(DeriveKey(1, 2)))
	notOnCurve[64] ^= 1
	compressed := ethcrypto.CompressPubkey(&DeriveKey(1, 2).PublicKey)
	for name, bad := range map[string][]byte{
		"empty":        nil,
		"short":        good[:64],
		"long":         append(bytes.Clone(good), 0),
		"no prefix":    append([]byte{0x05}, good[1:]...),
		"not on curve": notOnCurve,
		"compressed":   compressed,
		"zeros":        make([]byte, 65),
	} {
		_, err := NewVerifier([][]byte{good, bad})
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "public key of node 2", name)
	}
}

func TestKeySigner(t *testing.T) {
	k := DeriveKey(5, 9)
	s := NewSigner(9, k)
	assert.Equal(t, types.NodeID(9), s.ID())
	assert.Equal(t, pubOf(k), s.PublicKey())
	assert.Len(t, s.PublicKey(), 65)
	assert.Equal(t, byte(0x04), s.PublicKey()[0])
	var _ Signer = s
	var _ Verifier = (*KeyVerifier)(nil)
	var _ Verifier = (*Cache)(nil)
}

// fakeVerifier accepts signatures whose first byte is 0x01 and counts calls.
type fakeVerifier struct {
	n     int
	calls atomic.Int64
}

func (f *fakeVerifier) N() int { return f.n }

func (f *fakeVerifier) Verify(id types.NodeID, d types.Hash, sig []byte) bool {
	f.calls.Add(1)
	return id >= 1 && int(id) <= f.n && len(sig) == types.SigSize && sig[0] == 0x01
}

func fakeSig(valid bool, tag uint64) []byte {
	s := make([]byte, types.SigSize)
	if valid {
		s[0] = 0x01
	}
	for i := 0; i < 8; i++ {
		s[1+i] = byte(tag >> (8 * i))
	}
	return s
}

func TestCacheMatchesInner(t *testing.T) {
	signers, inner := SimKeys(3, testN)
	c := NewCache(inner)
	assert.Equal(t, testN, c.N())
	d := digest("cache")
	good := signers[0].Sign(d)
	bad := bytes.Clone(good)
	bad[10] ^= 0xff
	other := d
	other[5] ^= 1

	checks := []struct {
		id  types.NodeID
		d   types.Hash
		sig []byte
	}{
		{1, d, good}, {2, d, good}, {0, d, good}, {testN + 1, d, good},
		{1, other, good}, {1, d, bad}, {1, d, good[:64]}, {1, d, nil},
		{2, d, signers[1].Sign(d)}, {3, other, signers[2].Sign(other)},
	}
	// Ask every question twice, in two rounds: answers must match the inner verifier both times
	// (the second round is served partly from the cache).
	for round := 0; round < 2; round++ {
		for i, q := range checks {
			assert.Equal(t, inner.Verify(q.id, q.d, q.sig), c.Verify(q.id, q.d, q.sig), "round %d check %d", round, i)
		}
	}
}

func TestCacheHitsSkipInner(t *testing.T) {
	f := &fakeVerifier{n: testN}
	c := NewCache(f)
	d := digest("hit")
	ok := fakeSig(true, 1)
	assert.True(t, c.Verify(1, d, ok))
	assert.Equal(t, int64(1), f.calls.Load())
	for i := 0; i < 10; i++ {
		assert.True(t, c.Verify(1, d, ok))
	}
	assert.Equal(t, int64(1), f.calls.Load(), "valid signature verified once")

	// The cache key includes signer, digest and signature.
	assert.True(t, c.Verify(2, d, ok))
	other := d
	other[0] ^= 1
	assert.True(t, c.Verify(1, other, ok))
	assert.True(t, c.Verify(1, d, fakeSig(true, 2)))
	assert.Equal(t, int64(4), f.calls.Load())
	// A cached (id, digest, sig) does not make another signer's claim valid.
	assert.False(t, c.Verify(testN+1, d, ok))
}

func TestCacheNeverCachesFailures(t *testing.T) {
	f := &fakeVerifier{n: testN}
	c := NewCache(f)
	d := digest("bad")
	bad := fakeSig(false, 7)
	for i := 0; i < 5; i++ {
		assert.False(t, c.Verify(1, d, bad))
	}
	assert.Equal(t, int64(5), f.calls.Load(), "failures are re-verified every time")
	for i := range c.shards {
		assert.Empty(t, c.shards[i].set)
	}
	// Malformed lengths are refused without asking the inner verifier.
	assert.False(t, c.Verify(1, d, make([]byte, 64)))
	assert.False(t, c.Verify(1, d, nil))
	assert.Equal(t, int64(5), f.calls.Load())
}

func TestCacheDoesNotAliasCallerBuffer(t *testing.T) {
	f := &fakeVerifier{n: testN}
	c := NewCache(f)
	d := digest("alias")
	buf := fakeSig(true, 9)
	require.True(t, c.Verify(1, d, buf))
	// The caller reuses its buffer for a bad signature: the cache must not answer from the old one.
	buf[0] = 0x00
	assert.False(t, c.Verify(1, d, buf))
}

func TestCacheBounded(t *testing.T) {
	f := &fakeVerifier{n: testN}
	c := NewCache(f)
	total := cacheShards*cacheShardCap + 3*cacheShardCap
	for i := 0; i < total; i++ {
		var d types.Hash
		d[0] = byte(i % 256) // spread over all shards
		d[1] = byte(i >> 8)
		d[2] = byte(i >> 16)
		require.True(t, c.Verify(1, d, fakeSig(true, uint64(i))))
	}
	assert.Equal(t, int64(total), f.calls.Load(), "distinct signatures are all verified")
	sum := 0
	for i := range c.shards {
		assert.LessOrEqual(t, len(c.shards[i].set), cacheShardCap, "shard %d", i)
		sum += len(c.shards[i].set)
	}
	assert.Greater(t, sum, 0)
	assert.LessOrEqual(t, sum, cacheShards*cacheShardCap)

	// All signatures landing in one shard (same digest[0]) also stay bounded.
	c2 := NewCache(f)
	for i := 0; i < 3*cacheShardCap+5; i++ {
		var d types.Hash
		d[1] = byte(i)
		d[2] = byte(i >> 8)
		require.True(t, c2.Verify(types.NodeID(1+i%testN), d, fakeSig(true, uint64(i))))
	}
	for i := range c2.shards {
		assert.LessOrEqual(t, len(c2.shards[i].set), cacheShardCap, "shard %d", i)
	}
	assert.Positive(t, len(c2.shards[0].set))
}

func TestCacheConcurrent(t *testing.T) {
	signers, inner := SimKeys(9, testN)
	c := NewCache(inner)
	type item struct {
		id   types.NodeID
		d    types.Hash
		sig  []byte
		want bool
	}
	var items []item
	for i := 0; i < 16; i++ {
		d := digest(fmt.Sprintf("c%d", i))
		s := signers[i%testN]
		sig := s.Sign(d)
		items = append(items, item{s.ID(), d, sig, true})
		bad := bytes.Clone(sig)
		bad[3] ^= 0x40
		items = append(items, item{s.ID(), d, bad, false})
		items = append(items, item{types.NodeID(1 + (i+1)%testN), d, sig, false})
	}
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < 3; r++ {
				for i := range items {
					it := items[(i+w*7)%len(items)]
					if c.Verify(it.id, it.d, it.sig) != it.want {
						wrong.Add(1)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	assert.Equal(t, int64(0), wrong.Load())
}

func TestCacheConcurrentFake(t *testing.T) {
	// Many goroutines hammering few shards with fills and clears.
	f := &fakeVerifier{n: testN}
	c := NewCache(f)
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 3*cacheShardCap; i++ {
				var d types.Hash
				d[0] = byte(i % 2)
				d[1], d[2] = byte(i), byte(i>>8)
				valid := i%3 != 0
				if c.Verify(1, d, fakeSig(valid, uint64(i))) != valid {
					wrong.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	assert.Equal(t, int64(0), wrong.Load())
	for i := range c.shards {
		assert.LessOrEqual(t, len(c.shards[i].set), cacheShardCap)
	}
}
