package crypto

import (
	"crypto/ecdsa"
	"encoding/binary"
	"fmt"
	"sync"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/kelindar/bitmap"

	"github.com/stratusbft/stratus/types"
)

// Signer signs digests on behalf of one replica.
type Signer interface {
	ID() types.NodeID
	Sign(digest types.Hash) []byte
}

// Verifier checks signatures of known replicas.
type Verifier interface {
	// Verify reports whether sig is id's valid signature over digest. Unknown signers and
	// malformed signatures are simply invalid.
	Verify(id types.NodeID, digest types.Hash, sig []byte) bool
	// N is the number of known replicas (IDs 1..N).
	N() int
}

// Aggregator is a Verifier whose scheme aggregates signatures (BLS12-381): a certificate carries
// its signer bitmap and one aggregate signature instead of one signature per signer.
type Aggregator interface {
	Verifier
	// Aggregate combines signatures over one digest into one. Callers aggregate only signatures
	// they verified; a malformed one is an error.
	Aggregate(sigs [][]byte) ([]byte, error)
	// VerifyAggregate reports whether agg is an aggregate of valid signatures over digest by
	// exactly the replicas in signers (bit id-1). A bitmap naming an unknown replica, or empty,
	// is invalid.
	VerifyAggregate(signers bitmap.Bitmap, digest types.Hash, agg []byte) bool
}

// Decoder is an Aggregator that checks a signature's encoding alone and remembers it decoded, so
// that aggregating it later costs one addition. Verification workers run it on the signatures the
// event loop checks later in an aggregate.
type Decoder interface {
	Decode(sig []byte) bool
}

// Decodes reports whether sig is a well-formed signature for v's aggregate (and, with a Decoder,
// keeps it decoded); without a Decoder, whether it has the scheme's aggregate size.
func Decodes(a Aggregator, sig []byte) bool {
	if d, ok := a.(Decoder); ok {
		return d.Decode(sig)
	}
	return len(sig) == types.BLSSigSize
}

// AggregatorOf returns v as an Aggregator when its scheme aggregates (looking through a Cache: the
// Aggregator of a Cache caches aggregates too).
func AggregatorOf(v Verifier) (Aggregator, bool) {
	if c, ok := v.(*Cache); ok {
		if c.agg == nil {
			return nil, false
		}
		return c.agg, true
	}
	a, ok := v.(Aggregator)
	return a, ok
}

// KeySigner signs with a secp256k1 private key.
type KeySigner struct {
	id  types.NodeID
	key *ecdsa.PrivateKey
}

// NewSigner returns a signer for replica id.
func NewSigner(id types.NodeID, key *ecdsa.PrivateKey) *KeySigner {
	return &KeySigner{id: id, key: key}
}

// ID implements Signer.
func (s *KeySigner) ID() types.NodeID { return s.id }

// Sign implements Signer. It returns the 65-byte [R || S || V] form.
func (s *KeySigner) Sign(digest types.Hash) []byte {
	sig, err := ethcrypto.Sign(digest[:], s.key)
	if err != nil {
		// Sign fails only for a malformed key or digest length, both impossible here.
		panic(fmt.Sprintf("crypto: sign: %v", err))
	}
	return sig
}

// PublicKey returns the uncompressed public key bytes.
func (s *KeySigner) PublicKey() []byte { return ethcrypto.FromECDSAPub(&s.key.PublicKey) }

// KeyVerifier verifies against a fixed table of public keys.
type KeyVerifier struct {
	pubs [][]byte // index = node ID; entry 0 unused
}

// NewVerifier returns a verifier for replicas 1..len(pubs); pubs[i] is node i+1's public key.
func NewVerifier(pubs [][]byte) (*KeyVerifier, error) {
	table := make([][]byte, len(pubs)+1)
	seen := make(map[string]int, len(pubs))
	for i, p := range pubs {
		if _, err := ethcrypto.UnmarshalPubkey(p); err != nil {
			return nil, fmt.Errorf("crypto: public key of node %d: %w", i+1, err)
		}
		if j, dup := seen[string(p)]; dup {
			return nil, fmt.Errorf("crypto: nodes %d and %d have the same public key", j, i+1)
		}
		seen[string(p)] = i + 1
		table[i+1] = p
	}
	return &KeyVerifier{pubs: table}, nil
}

// N implements Verifier.
func (v *KeyVerifier) N() int { return len(v.pubs) - 1 }

// Verify implements Verifier.
func (v *KeyVerifier) Verify(id types.NodeID, digest types.Hash, sig []byte) bool {
	if id < 1 || int(id) >= len(v.pubs) || len(sig) != types.SigSize || sig[64] > 1 {
		return false // one byte string per signature: the recovery byte is 0 or 1
	}
	return ethcrypto.VerifySignature(v.pubs[id], digest[:], sig[:64])
}

// DeriveKey derives a simulation key for node id from seed: distinct per node and per seed, and
// reproducible. Deployments use generated key files instead.
func DeriveKey(seed int64, id types.NodeID) *ecdsa.PrivateKey {
	var buf [20]byte
	copy(buf[:8], "stratus!")
	binary.BigEndian.PutUint64(buf[8:16], uint64(seed))
	binary.BigEndian.PutUint32(buf[16:], uint32(id))
	for ctr := byte(0); ; ctr++ {
		d := types.Keccak(buf[:], []byte{ctr})
		if k, err := ethcrypto.ToECDSA(d[:]); err == nil {
			return k
		}
	}
}

// SimKeys returns n signers with keys derived from seed and a verifier that knows all of them.
func SimKeys(seed int64, n int) ([]*KeySigner, *KeyVerifier) {
	signers := make([]*KeySigner, n)
	pubs := make([][]byte, n)
	for i := range signers {
		id := types.NodeID(i + 1)
		signers[i] = NewSigner(id, DeriveKey(seed, id))
		pubs[i] = signers[i].PublicKey()
	}
	v, err := NewVerifier(pubs)
	if err != nil {
		panic(fmt.Sprintf("crypto: derived keys collide: %v", err)) // cannot happen: Keccak preimages differ
	}
	return signers, v
}

// Cache wraps a Verifier and remembers valid signatures (65-byte secp256k1 and P-256 ones, 96-byte
// BLS12-381 ones) and, when the inner verifier aggregates, valid aggregates. It is safe for
// concurrent use, so the verification workers of all replicas in a process can share one. Only
// successes are cached: garbage from a peer cannot evict work, it only costs the peer's own
// verification.
type Cache struct {
	inner     Verifier
	shards    [cacheShards]cacheShard[cacheKey]
	aggShards [cacheShards]cacheShard[aggCacheKey]
	agg       *cachedAggregator // nil unless inner aggregates
}

const (
	cacheShards      = 64
	cacheShardCap    = 4096
	aggCacheShardCap = 256 // aggregates: one per certificate, not one per signer
)

type cacheKey struct {
	id     types.NodeID
	digest types.Hash
	size   uint8 // signature length: types.SigSize or types.BLSSigSize
	sig    [types.BLSSigSize]byte
}

// aggCacheKey identifies a verified aggregate. The signer set enters through a Keccak-256 hash of
// the bitmap's words: collision resistant, so a cached aggregate never vouches for another set.
type aggCacheKey struct {
	digest  types.Hash
	signers types.Hash
	agg     [types.BLSSigSize]byte
}

type cacheShard[K comparable] struct {
	mu  sync.Mutex
	set map[K]struct{}
}

func (sh *cacheShard[K]) has(k K) bool {
	sh.mu.Lock()
	_, hit := sh.set[k]
	sh.mu.Unlock()
	return hit
}

func (sh *cacheShard[K]) add(k K, limit int) {
	sh.mu.Lock()
	if len(sh.set) >= limit {
		clear(sh.set) // bounded memory; recent signatures are re-verified at most once more
	}
	sh.set[k] = struct{}{}
	sh.mu.Unlock()
}

// NewCache returns a caching verifier around inner.
func NewCache(inner Verifier) *Cache {
	c := &Cache{inner: inner}
	for i := range c.shards {
		c.shards[i].set = make(map[cacheKey]struct{})
	}
	if a, ok := AggregatorOf(inner); ok {
		for i := range c.aggShards {
			c.aggShards[i].set = make(map[aggCacheKey]struct{})
		}
		c.agg = &cachedAggregator{Cache: c, inner: a}
	}
	return c
}

// N implements Verifier.
func (c *Cache) N() int { return c.inner.N() }

// Verify implements Verifier.
func (c *Cache) Verify(id types.NodeID, digest types.Hash, sig []byte) bool {
	if len(sig) != types.SigSize && len(sig) != types.BLSSigSize {
		return false
	}
	k := cacheKey{id: id, digest: digest, size: uint8(len(sig))}
	copy(k.sig[:], sig)
	sh := &c.shards[digest[0]%cacheShards]
	if sh.has(k) {
		return true
	}
	if !c.inner.Verify(id, digest, sig) {
		return false
	}
	sh.add(k, cacheShardCap)
	return true
}

// cachedAggregator is the Aggregator of a Cache whose inner verifier aggregates.
type cachedAggregator struct {
	*Cache
	inner Aggregator
}

// Aggregate implements Aggregator.
func (a *cachedAggregator) Aggregate(sigs [][]byte) ([]byte, error) { return a.inner.Aggregate(sigs) }

// Decode implements Decoder.
func (a *cachedAggregator) Decode(sig []byte) bool { return Decodes(a.inner, sig) }

// VerifyAggregate implements Aggregator.
func (a *cachedAggregator) VerifyAggregate(signers bitmap.Bitmap, digest types.Hash, agg []byte) bool {
	if len(agg) != types.BLSSigSize {
		return false
	}
	k := aggCacheKey{digest: digest, signers: types.Keccak(bitmapKey(signers))}
	copy(k.agg[:], agg)
	sh := &a.aggShards[digest[0]%cacheShards]
	if sh.has(k) {
		return true
	}
	if !a.inner.VerifyAggregate(signers, digest, agg) {
		return false
	}
	sh.add(k, aggCacheShardCap)
	return true
}
