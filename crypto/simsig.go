package crypto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/kelindar/bitmap"

	"github.com/stratusbft/stratus/types"
)

// SchemeSimulated names the simulated signatures of SimMACKeys and SimMACKeysFor in outputs.
const SchemeSimulated = "SIMULATED (keyed Keccak; not a real signature scheme)"

// MACSigner makes simulated signatures: Keccak-256 of a secret key only it and the simulator's
// verifier know, its ID and the digest, padded to the signature size. Inside the simulator nobody
// else can make one (the Byzantine strategies get only their own signer), and verification
// recomputes it, so every check the protocols make still holds; outside the simulator it is
// worthless. It costs about a microsecond instead of secp256k1's tens, which is what lets the
// virtual-time simulator run 400 replicas that sign every ack; the CPU model still charges the
// real scheme's costs. Its signatures take the real scheme's size on the wire: 65 bytes, or 96 for
// BLS12-381.
type MACSigner struct {
	id     types.NodeID
	secret types.Hash
	size   int // types.SigSize or types.BLSSigSize
}

// ID implements Signer.
func (s *MACSigner) ID() types.NodeID { return s.id }

// Sign implements Signer.
func (s *MACSigner) Sign(digest types.Hash) []byte { return macSig(s.secret, s.id, digest, s.size) }

// macSig is the keyed hash repeated to size bytes; a 65-byte one ends with the signer's ID.
func macSig(secret types.Hash, id types.NodeID, digest types.Hash, size int) []byte {
	var idb [4]byte
	binary.BigEndian.PutUint32(idb[:], uint32(id))
	h := types.Keccak(secret[:], idb[:], digest[:])
	sig := make([]byte, size)
	for i := 0; i < size; i += len(h) {
		copy(sig[i:], h[:])
	}
	if size == types.SigSize {
		sig[64] = byte(id)
	}
	return sig
}

// MACVerifier checks simulated signatures. It also remembers the certificates it has verified
// (CertMemo): the simulator's replicas share message values, so 400 replicas checking the same
// proof of 134 signatures cost one check instead of 400. Its memos of single signatures and of
// certificate keys go by the address of the signatures' bytes, which is sound only where
// messages are immutable values shared in memory, as in the simulator, its only user: never
// where signatures are decoded into buffers that are reused.
type MACVerifier struct {
	secrets []types.Hash
	size    int // signature size: types.SigSize or types.BLSSigSize

	mu    sync.Mutex // guards certs, refs and sigs
	certs map[CertKey]struct{}
	refs  map[certRef]certRefKey
	sigs  map[sigRef]bool // verdicts of single signatures
}

// certRef is a certificate met before, by the identity of its signatures' slice: the simulator
// hands every receiver the same immutable message, so the second of 400 receivers need not hash
// 134 signatures again to find the certificate's key. The map holding it keeps the slice alive,
// so the address cannot come back with other contents.
type certRef struct {
	sigs   *[]byte
	n      int
	digest types.Hash
}

// certRefKey is the key of a certRef, with the signer words it was computed with (compared
// exactly: a certificate that reuses another's signatures under another signer set is another).
type certRefKey struct {
	signers []uint64
	key     CertKey
}

// sigRef is a signature checked before, by the identity of its bytes, with the signer and digest
// it was checked for: the simulator's receivers of a microblock share its signature. The map
// holding it keeps the bytes alive, so the address cannot come back with other contents.
type sigRef struct {
	sig    *byte
	id     types.NodeID
	digest types.Hash
}

// maxSigRefs bounds MACVerifier.sigs (65–96 bytes held a signature).
const maxSigRefs = 1 << 16

// maxCertRefs bounds MACVerifier.refs: the signatures it holds stay in memory (12 KB a proof at
// N=400).
const maxCertRefs = 2048

// CertKey identifies a certificate's content: the digest and a 64-bit hash of its signer set and
// signatures.
type CertKey struct {
	Digest types.Hash
	Sum    uint64
}

// CertMemo is a Verifier that remembers whole certificates it verified; consensus.VerifyCert asks
// it first. Only the simulator's verifier has one.
type CertMemo interface {
	CertKey(digest types.Hash, signers []uint64, sigs [][]byte) CertKey // CertKeyOf, remembered
	CertVerified(k CertKey) bool
	RememberCert(k CertKey)
}

// CertKeyOf keys a certificate by content: a 64-bit multiply-xor hash over the signer words and
// the signatures, eight bytes at a time, in four independent lanes combined at the end (one lane's
// chain of multiplications kept the simulator's proofs of 134 signatures at about 2 µs a key, a
// fifth of an N=400 run's time).
func CertKeyOf(digest types.Hash, signers []uint64, sigs [][]byte) CertKey {
	a, b, c, d := uint64(len(sigs)), uint64(1), uint64(2), uint64(3)
	for _, w := range signers {
		a = certMix(a, w)
	}
	for _, s := range sigs {
		b = certMix(b, uint64(len(s)))
		i := 0
		for ; i+32 <= len(s); i += 32 {
			a = certMix(a, binary.LittleEndian.Uint64(s[i:]))
			b = certMix(b, binary.LittleEndian.Uint64(s[i+8:]))
			c = certMix(c, binary.LittleEndian.Uint64(s[i+16:]))
			d = certMix(d, binary.LittleEndian.Uint64(s[i+24:]))
		}
		for ; i+8 <= len(s); i += 8 {
			c = certMix(c, binary.LittleEndian.Uint64(s[i:]))
		}
		for ; i < len(s); i++ {
			d = certMix(d, uint64(s[i]))
		}
	}
	return CertKey{Digest: digest, Sum: certMix(certMix(certMix(a, b), c), d)}
}

func certMix(h, w uint64) uint64 {
	const prime = 0x9E3779B97F4A7C15
	h = (h ^ w) * prime
	return h ^ h>>31
}

// CertKey implements CertMemo: CertKeyOf, computed once for each certificate value met again.
func (v *MACVerifier) CertKey(digest types.Hash, signers []uint64, sigs [][]byte) CertKey {
	if len(sigs) == 0 {
		return CertKeyOf(digest, signers, sigs)
	}
	ref := certRef{sigs: unsafe.SliceData(sigs), n: len(sigs), digest: digest}
	v.mu.Lock()
	if k, ok := v.refs[ref]; ok && slices.Equal(k.signers, signers) {
		v.mu.Unlock()
		return k.key
	}
	v.mu.Unlock()
	key := CertKeyOf(digest, signers, sigs)
	v.mu.Lock()
	if v.refs == nil || len(v.refs) >= maxCertRefs {
		v.refs = make(map[certRef]certRefKey)
	}
	v.refs[ref] = certRefKey{signers: slices.Clone(signers), key: key}
	v.mu.Unlock()
	return key
}

// CertVerified implements CertMemo.
func (v *MACVerifier) CertVerified(k CertKey) bool {
	v.mu.Lock()
	_, ok := v.certs[k]
	v.mu.Unlock()
	return ok
}

// RememberCert implements CertMemo; memory stays bounded (the memo is emptied at a million).
func (v *MACVerifier) RememberCert(k CertKey) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.certs == nil || len(v.certs) >= 1<<20 {
		v.certs = make(map[CertKey]struct{})
	}
	v.certs[k] = struct{}{}
}

// N implements Verifier.
func (v *MACVerifier) N() int { return len(v.secrets) }

// Verify implements Verifier.
func (v *MACVerifier) Verify(id types.NodeID, digest types.Hash, sig []byte) bool {
	if id < 1 || int(id) > len(v.secrets) || len(sig) != v.size {
		return false
	}
	ref := sigRef{sig: unsafe.SliceData(sig), id: id, digest: digest}
	v.mu.Lock()
	ok, seen := v.sigs[ref]
	v.mu.Unlock()
	if seen {
		return ok
	}
	ok = macMatches(v.secrets[id-1], id, digest, sig)
	v.mu.Lock()
	if v.sigs == nil || len(v.sigs) >= maxSigRefs {
		v.sigs = make(map[sigRef]bool)
	}
	v.sigs[ref] = ok
	v.mu.Unlock()
	return ok
}

// macMatches reports whether sig is macSig(secret, id, digest, len(sig)), without building it.
func macMatches(secret types.Hash, id types.NodeID, digest types.Hash, sig []byte) bool {
	var idb [4]byte
	binary.BigEndian.PutUint32(idb[:], uint32(id))
	h := types.Keccak(secret[:], idb[:], digest[:])
	for i, b := range sig {
		want := h[i%len(h)]
		if len(sig) == types.SigSize && i == 64 {
			want = byte(id)
		}
		if b != want {
			return false
		}
	}
	return true
}

// SimMACKeys derives n simulated signers from seed and the verifier that knows them all; their
// signatures have the 65 bytes of secp256k1 and P-256 ones.
func SimMACKeys(seed int64, n int) ([]Signer, Verifier) {
	signers, v := simMACKeys(seed, n, types.SigSize)
	return signers, v
}

// SimMACKeysFor derives n simulated signers from seed for a scheme, and the verifier that knows
// them all: for secp256k1 and P-256 those of SimMACKeys, for BLS12-381 96-byte ones and a verifier
// that also aggregates (a MACAggregator).
func SimMACKeysFor(scheme string, seed int64, n int) ([]Signer, Verifier, error) {
	switch scheme {
	case SchemeSecp256k1, SchemeP256:
		s, v := SimMACKeys(seed, n)
		return s, v, nil
	case SchemeBLS:
		s, v := simMACKeys(seed, n, types.BLSSigSize)
		return s, &MACAggregator{MACVerifier: v}, nil
	}
	return nil, nil, fmt.Errorf("crypto: unknown signature scheme %q (want %s)", scheme, schemeList())
}

func simMACKeys(seed int64, n, size int) ([]Signer, *MACVerifier) {
	signers := make([]Signer, n)
	v := &MACVerifier{secrets: make([]types.Hash, n), size: size}
	for i := range signers {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:], uint64(seed))
		binary.BigEndian.PutUint64(b[8:], uint64(i+1))
		v.secrets[i] = types.Keccak([]byte("stratus/simulated-signature"), b[:])
		signers[i] = &MACSigner{id: types.NodeID(i + 1), secret: v.secrets[i], size: size}
	}
	return signers, v
}

// MACAggregator is the simulated BLS12-381 verifier: it checks 96-byte MAC signatures and their
// aggregates. An aggregate is the lane-wise sum (modulo 2^64, over twelve little-endian 64-bit
// lanes) of the signatures, so it does not depend on their order, and checking one recomputes
// every signer's MAC: a wrong signer set or a forged aggregate fails. Verified aggregates are
// remembered (CertMemo), so the simulator's replicas checking the same certificate cost one check.
type MACAggregator struct {
	*MACVerifier
}

const macLanes = types.BLSSigSize / 8

// Aggregate implements Aggregator.
func (v *MACAggregator) Aggregate(sigs [][]byte) ([]byte, error) {
	if len(sigs) == 0 {
		return nil, errors.New("crypto: no signatures to aggregate")
	}
	var sum [macLanes]uint64
	for i, s := range sigs {
		if len(s) != types.BLSSigSize {
			return nil, fmt.Errorf("crypto: signature %d has %d bytes, want %d", i, len(s), types.BLSSigSize)
		}
		addLanes(&sum, s)
	}
	return lanesBytes(&sum), nil
}

// VerifyAggregate implements Aggregator.
func (v *MACAggregator) VerifyAggregate(signers bitmap.Bitmap, digest types.Hash, agg []byte) bool {
	top, ok := signers.Max()
	if !ok || int(top) >= len(v.secrets) || len(agg) != types.BLSSigSize {
		return false
	}
	k := CertKeyOf(digest, signers, [][]byte{agg})
	if v.CertVerified(k) {
		return true
	}
	var sum [macLanes]uint64
	signers.Range(func(bit uint32) {
		id := types.NodeID(bit + 1)
		addLanes(&sum, macSig(v.secrets[bit], id, digest, types.BLSSigSize))
	})
	want := lanesBytes(&sum)
	for i := range want {
		if want[i] != agg[i] {
			return false
		}
	}
	v.RememberCert(k)
	return true
}

func addLanes(sum *[macLanes]uint64, sig []byte) {
	for i := range sum {
		sum[i] += binary.LittleEndian.Uint64(sig[8*i:])
	}
}

func lanesBytes(sum *[macLanes]uint64) []byte {
	out := make([]byte, 0, types.BLSSigSize)
	for _, w := range sum {
		out = binary.LittleEndian.AppendUint64(out, w)
	}
	return out
}
