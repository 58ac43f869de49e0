package crypto

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/kelindar/bitmap"
	blst "github.com/supranational/blst/bindings/go"

	"github.com/stratusbft/stratus/types"
)

// BLS12-381 in the "minimal-pubkey-size" variant: public keys are G1 points (48 bytes compressed),
// signatures G2 points (96 bytes compressed), with the IETF draft's proof-of-possession ciphersuite.
// Signatures over one digest aggregate into one G2 point, checked with one pairing equation against
// the sum of the signers' public keys. That sum is only meaningful when every key is honest: a
// replica that publishes pk_a − pk_1 makes {1, itself} verify with a signature of sk_a alone (the
// rogue-key attack). So every key comes with a proof of possession, a signature over the key itself
// under a separate tag, which only the holder of the secret key can make; keys whose proof does not
// verify are refused.
var (
	blsSigDST = []byte("BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_")
	blsPoPDST = []byte("BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_")
)

// blstSuccess is blst's BLST_SUCCESS, which its Go binding does not export.
const blstSuccess = 0

// blsAggKeyCacheCap bounds the aggregated public keys a BLSVerifier remembers; the cache is emptied
// when full. A replica sees few distinct signer sets (mostly the same quorums again and again).
const blsAggKeyCacheCap = 1024

// BLSSigner signs with a BLS12-381 secret key.
type BLSSigner struct {
	id  types.NodeID
	sk  *blst.SecretKey
	pub []byte // compressed G1 public key
}

// NewBLSSigner returns a signer for replica id with a secret key of 32 big-endian bytes, which must
// be a scalar in [1, r-1] (r the order of the BLS12-381 groups).
func NewBLSSigner(id types.NodeID, secret []byte) (*BLSSigner, error) {
	if len(secret) != blst.BLST_SCALAR_BYTES {
		return nil, fmt.Errorf("crypto: BLS secret key has %d bytes, want %d", len(secret), blst.BLST_SCALAR_BYTES)
	}
	sk := new(blst.SecretKey).Deserialize(secret)
	if sk == nil {
		return nil, errors.New("crypto: BLS secret key is not a scalar in [1, r-1] of BLS12-381")
	}
	return blsSignerOf(id, sk), nil
}

// GenerateBLSSigner returns a signer for replica id with a fresh secret key: blst's KeyGen (the IETF
// draft's KeyGen, HKDF-based) over 32 bytes from crypto/rand.
func GenerateBLSSigner(id types.NodeID) (*BLSSigner, error) {
	var ikm [32]byte
	if _, err := rand.Read(ikm[:]); err != nil {
		return nil, fmt.Errorf("crypto: BLS key generation: %w", err)
	}
	sk := blst.KeyGen(ikm[:])
	clear(ikm[:])
	if sk == nil {
		return nil, errors.New("crypto: BLS key generation failed")
	}
	return blsSignerOf(id, sk), nil
}

func blsSignerOf(id types.NodeID, sk *blst.SecretKey) *BLSSigner {
	return &BLSSigner{id: id, sk: sk, pub: new(blst.P1Affine).From(sk).Compress()}
}

// ID implements Signer.
func (s *BLSSigner) ID() types.NodeID { return s.id }

// Sign implements Signer. It returns a 96-byte compressed G2 point.
func (s *BLSSigner) Sign(digest types.Hash) []byte {
	return new(blst.P2Affine).Sign(s.sk, digest[:], blsSigDST).Compress()
}

// PublicKey returns the 48-byte compressed G1 public key.
func (s *BLSSigner) PublicKey() []byte { return append([]byte(nil), s.pub...) }

// ProvePossession returns the signer's proof of possession: a signature over its compressed public
// key with the proof-of-possession tag (96 bytes). Verifiers accept the key only with it.
func (s *BLSSigner) ProvePossession() []byte {
	return new(blst.P2Affine).Sign(s.sk, s.pub, blsPoPDST).Compress()
}

// secret returns the 32-byte big-endian secret key, for key files.
func (s *BLSSigner) secret() []byte { return s.sk.Serialize() }

// BLSVerifier verifies BLS12-381 signatures and aggregates of replicas 1..N whose public keys came
// with valid proofs of possession. It is safe for concurrent use.
type BLSVerifier struct {
	pks []*blst.P1Affine // index id-1; decompressed and group-checked

	mu      sync.Mutex
	aggKeys map[string]*blst.P1Affine // signer bitmap words (little-endian, trailing zeros dropped) → sum of their keys

	// points are the decoded signatures Verify accepted recently: forming a certificate
	// aggregates signatures verified one by one as they came, and decoding each again (a square
	// root and a subgroup check, ~0.1 ms) would cost far more than adding them (~1 µs).
	pointsMu sync.Mutex
	points   map[[types.BLSSigSize]byte]*blst.P2Affine
}

// maxPoints bounds the decoded signatures kept; the map is emptied when full.
const maxPoints = 1 << 14

// NewBLSVerifier returns a verifier for replicas 1..len(pubs): pubs[i] is node i+1's compressed
// public key and pops[i] its proof of possession. Every key must decompress to a point of the G1
// subgroup other than infinity and every proof must verify; two nodes may not share a key.
func NewBLSVerifier(pubs, pops [][]byte) (*BLSVerifier, error) {
	if len(pops) != len(pubs) {
		return nil, fmt.Errorf("crypto: %d BLS public keys but %d proofs of possession", len(pubs), len(pops))
	}
	pks := make([]*blst.P1Affine, len(pubs))
	for i, p := range pubs {
		pk, err := parseBLSPub(p)
		if err != nil {
			return nil, fmt.Errorf("crypto: public key of node %d: %w", i+1, err)
		}
		if err := checkBLSPoP(pk, p, pops[i]); err != nil {
			return nil, fmt.Errorf("crypto: node %d: %w", i+1, err)
		}
		pks[i] = pk
	}
	return blsVerifierOfCheckedKeys(pks, pubs)
}

// blsVerifierOfCheckedKeys builds a verifier from keys whose proofs of possession the caller has
// verified (or that it made itself from their secret keys); it only refuses duplicates. pubs are
// the compressed forms of pks.
func blsVerifierOfCheckedKeys(pks []*blst.P1Affine, pubs [][]byte) (*BLSVerifier, error) {
	seen := make(map[string]int, len(pubs))
	for i, p := range pubs {
		if j, dup := seen[string(p)]; dup {
			return nil, fmt.Errorf("crypto: nodes %d and %d have the same public key", j, i+1)
		}
		seen[string(p)] = i + 1
	}
	return &BLSVerifier{pks: pks, aggKeys: make(map[string]*blst.P1Affine)}, nil
}

// parseBLSPub decompresses a public key and checks that it is a G1 subgroup point other than
// infinity (the IETF draft's KeyValidate).
func parseBLSPub(p []byte) (*blst.P1Affine, error) {
	if len(p) != types.BLSPubSize {
		return nil, fmt.Errorf("BLS12-381 public key has %d bytes, want %d", len(p), types.BLSPubSize)
	}
	pk := new(blst.P1Affine).Uncompress(p)
	if pk == nil {
		return nil, errors.New("not a compressed BLS12-381 G1 point")
	}
	if !pk.KeyValidate() {
		return nil, errors.New("BLS12-381 public key is the point at infinity or outside the G1 subgroup")
	}
	return pk, nil
}

// checkBLSPoP checks pop, the proof of possession of pk (compressed: pub).
func checkBLSPoP(pk *blst.P1Affine, pub, pop []byte) error {
	sig, err := parseBLSSig(pop)
	if err != nil {
		return fmt.Errorf("proof of possession: %w", err)
	}
	if !blsCoreVerify(pk, sig, pub, blsPoPDST) {
		return errors.New("proof of possession does not verify (a rogue key?)")
	}
	return nil
}

// parseBLSSig decompresses a signature and checks that it is a G2 subgroup point other than
// infinity (no valid signature of a valid key is infinity).
func parseBLSSig(b []byte) (*blst.P2Affine, error) {
	if len(b) != types.BLSSigSize {
		return nil, fmt.Errorf("BLS12-381 signature has %d bytes, want %d", len(b), types.BLSSigSize)
	}
	if b[0] == 0xc0 && isZero(b[1:]) {
		return nil, errors.New("BLS12-381 signature is the point at infinity")
	}
	sig := new(blst.P2Affine).Uncompress(b)
	if sig == nil {
		return nil, errors.New("not a compressed BLS12-381 G2 point")
	}
	if !sig.SigValidate(true) {
		return nil, errors.New("BLS12-381 signature is outside the G2 subgroup")
	}
	return sig, nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// blsCoreVerify checks e(pk, H(msg)) = e(g1, sig) for a validated key and signature, with one
// pairing context on the calling goroutine: blst's higher-level Verify spreads work over goroutines,
// which many verification workers calling in parallel do not need.
func blsCoreVerify(pk *blst.P1Affine, sig *blst.P2Affine, msg, dst []byte) bool {
	ctx := blst.PairingCtx(true, dst)
	if blst.PairingAggregatePkInG1(ctx, pk, false, sig, false, msg) != blstSuccess {
		return false
	}
	blst.PairingCommit(ctx)
	return blst.PairingFinalVerify(ctx)
}

// N implements Verifier.
func (v *BLSVerifier) N() int { return len(v.pks) }

// Verify implements Verifier: sig must be id's 96-byte signature over digest.
func (v *BLSVerifier) Verify(id types.NodeID, digest types.Hash, sig []byte) bool {
	if id < 1 || int(id) > len(v.pks) {
		return false
	}
	s, err := parseBLSSig(sig)
	if err != nil {
		return false
	}
	if !blsCoreVerify(v.pks[id-1], s, digest[:], blsSigDST) {
		return false
	}
	v.remember(sig, s)
	return true
}

// Decode implements Decoder: sig decompresses to a G2 point of the subgroup other than infinity,
// remembered for Aggregate.
func (v *BLSVerifier) Decode(sig []byte) bool {
	s, err := v.point(sig)
	if err != nil {
		return false
	}
	v.remember(sig, s)
	return true
}

// remember keeps sig's decoded point for Aggregate.
func (v *BLSVerifier) remember(sig []byte, s *blst.P2Affine) {
	var k [types.BLSSigSize]byte
	copy(k[:], sig)
	v.pointsMu.Lock()
	if v.points == nil || len(v.points) >= maxPoints {
		v.points = make(map[[types.BLSSigSize]byte]*blst.P2Affine)
	}
	v.points[k] = s
	v.pointsMu.Unlock()
}

// point is a signature decoded: from the verified ones if it is there, else decoded and checked.
func (v *BLSVerifier) point(b []byte) (*blst.P2Affine, error) {
	if len(b) == types.BLSSigSize {
		var k [types.BLSSigSize]byte
		copy(k[:], b)
		v.pointsMu.Lock()
		s := v.points[k]
		v.pointsMu.Unlock()
		if s != nil {
			return s, nil
		}
	}
	return parseBLSSig(b)
}

// Aggregate implements Aggregator: the sum of the signatures, 96 bytes compressed. Every signature
// must be a valid encoding of a G2 subgroup point other than infinity.
func (v *BLSVerifier) Aggregate(sigs [][]byte) ([]byte, error) {
	return aggregateBLS(sigs, v.point)
}

func aggregateBLS(sigs [][]byte, decode func([]byte) (*blst.P2Affine, error)) ([]byte, error) {
	if len(sigs) == 0 {
		return nil, errors.New("crypto: no signatures to aggregate")
	}
	var agg blst.P2Aggregate
	for i, b := range sigs {
		s, err := decode(b)
		if err != nil {
			return nil, fmt.Errorf("crypto: signature %d: %w", i, err)
		}
		agg.Add(s, false) // group-checked by parseBLSSig; Add is single-threaded
	}
	out := agg.ToAffine().Compress()
	if out[0] == 0xc0 && isZero(out[1:]) {
		return nil, errors.New("crypto: the signatures add up to the point at infinity (they cancel out)")
	}
	return out, nil
}

// VerifyAggregate implements Aggregator: agg must be the aggregate of valid signatures over digest
// by exactly the replicas of signers (bit id-1). It is the draft's FastAggregateVerify: one pairing
// check against the sum of the signers' public keys, which is remembered per signer set.
func (v *BLSVerifier) VerifyAggregate(signers bitmap.Bitmap, digest types.Hash, agg []byte) bool {
	top, ok := signers.Max()
	if !ok || int(top) >= len(v.pks) {
		return false // no signer, or one that is not a replica
	}
	s, err := parseBLSSig(agg)
	if err != nil {
		return false
	}
	return blsCoreVerify(v.aggregateKey(signers), s, digest[:], blsSigDST)
}

// aggregateKey returns the sum of the public keys of signers, a non-empty set of known replicas.
func (v *BLSVerifier) aggregateKey(signers bitmap.Bitmap) *blst.P1Affine {
	key := bitmapKey(signers)
	v.mu.Lock()
	pk := v.aggKeys[string(key)]
	v.mu.Unlock()
	if pk != nil {
		return pk
	}
	var sum blst.P1Aggregate
	signers.Range(func(bit uint32) {
		sum.Add(v.pks[bit], false) // group-checked when loaded; Add is single-threaded
	})
	pk = sum.ToAffine()
	v.mu.Lock()
	if len(v.aggKeys) >= blsAggKeyCacheCap {
		clear(v.aggKeys)
	}
	v.aggKeys[string(key)] = pk
	v.mu.Unlock()
	return pk
}

// bitmapKey returns the words of a bitmap as bytes, little-endian, without trailing zero words:
// equal sets give equal keys whatever the bitmap's length.
func bitmapKey(b bitmap.Bitmap) []byte {
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	out := make([]byte, 0, 8*n)
	for _, w := range b[:n] {
		out = binary.LittleEndian.AppendUint64(out, w)
	}
	return out
}
