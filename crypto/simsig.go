package crypto

import (
	"encoding/binary"

	"github.com/stratusbft/stratus/types"
)

// SchemeSimulated names the simulated signatures of SimMACKeys in outputs.
const SchemeSimulated = "SIMULATED (keyed Keccak; not a real signature scheme)"

// MACSigner makes simulated signatures: Keccak-256 of a secret key only it and the simulator's
// verifier know, its ID and the digest, padded to the signature size. Inside the simulator nobody
// else can make one (the Byzantine strategies get only their own signer), and verification
// recomputes it, so every check the protocols make still holds; outside the simulator it is
// worthless. It costs about a microsecond instead of secp256k1's tens, which is what lets the
// virtual-time simulator run 400 replicas that sign every ack; the CPU model still charges the
// real scheme's costs.
type MACSigner struct {
	id     types.NodeID
	secret types.Hash
}

// ID implements Signer.
func (s *MACSigner) ID() types.NodeID { return s.id }

// Sign implements Signer.
func (s *MACSigner) Sign(digest types.Hash) []byte { return macSig(s.secret, s.id, digest) }

func macSig(secret types.Hash, id types.NodeID, digest types.Hash) []byte {
	var idb [4]byte
	binary.BigEndian.PutUint32(idb[:], uint32(id))
	h := types.Keccak(secret[:], idb[:], digest[:])
	sig := make([]byte, types.SigSize)
	copy(sig, h[:])
	copy(sig[32:], h[:])
	sig[64] = byte(id)
	return sig
}

// MACVerifier checks simulated signatures. It also remembers the certificates it has verified
// (CertMemo): the simulator's replicas share message values, so 400 replicas checking the same
// proof of 134 signatures cost one check instead of 400.
type MACVerifier struct {
	secrets []types.Hash
	certs   map[CertKey]struct{}
}

// CertKey identifies a certificate's content: the digest and a 64-bit hash of its signer set and
// signatures.
type CertKey struct {
	Digest types.Hash
	Sum    uint64
}

// CertMemo is a Verifier that remembers whole certificates it verified; consensus.VerifyCert asks
// it first. Only the simulator's verifier has one.
type CertMemo interface {
	CertVerified(k CertKey) bool
	RememberCert(k CertKey)
}

// CertKeyOf keys a certificate by content: a 64-bit multiply-xor hash over the signer words and
// the signatures, eight bytes at a time.
func CertKeyOf(digest types.Hash, signers []uint64, sigs [][]byte) CertKey {
	const prime = 0x9E3779B97F4A7C15
	h := uint64(len(sigs))
	mix := func(w uint64) {
		h = (h ^ w) * prime
		h ^= h >> 31
	}
	for _, w := range signers {
		mix(w)
	}
	for _, s := range sigs {
		mix(uint64(len(s)))
		i := 0
		for ; i+8 <= len(s); i += 8 {
			mix(binary.LittleEndian.Uint64(s[i:]))
		}
		for ; i < len(s); i++ {
			mix(uint64(s[i]))
		}
	}
	return CertKey{Digest: digest, Sum: h}
}

// CertVerified implements CertMemo.
func (v *MACVerifier) CertVerified(k CertKey) bool {
	_, ok := v.certs[k]
	return ok
}

// RememberCert implements CertMemo; memory stays bounded (the memo is emptied at a million).
func (v *MACVerifier) RememberCert(k CertKey) {
	if v.certs == nil || len(v.certs) >= 1<<20 {
		v.certs = make(map[CertKey]struct{})
	}
	v.certs[k] = struct{}{}
}

// N implements Verifier.
func (v *MACVerifier) N() int { return len(v.secrets) }

// Verify implements Verifier.
func (v *MACVerifier) Verify(id types.NodeID, digest types.Hash, sig []byte) bool {
	if id < 1 || int(id) > len(v.secrets) || len(sig) != types.SigSize {
		return false
	}
	want := macSig(v.secrets[id-1], id, digest)
	for i := range want {
		if want[i] != sig[i] {
			return false
		}
	}
	return true
}

// SimMACKeys derives n simulated signers from seed and the verifier that knows them all.
func SimMACKeys(seed int64, n int) ([]Signer, Verifier) {
	signers := make([]Signer, n)
	v := &MACVerifier{secrets: make([]types.Hash, n)}
	for i := range signers {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:], uint64(seed))
		binary.BigEndian.PutUint64(b[8:], uint64(i+1))
		v.secrets[i] = types.Keccak([]byte("stratus/simulated-signature"), b[:])
		signers[i] = &MACSigner{id: types.NodeID(i + 1), secret: v.secrets[i]}
	}
	return signers, v
}
