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

// MACVerifier checks simulated signatures.
type MACVerifier struct {
	secrets []types.Hash
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
