package crypto

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/big"
	"strings"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	blst "github.com/supranational/blst/bindings/go"

	"github.com/stratusbft/stratus/types"
)

// Signature schemes (the config's signer).
const (
	SchemeSecp256k1 = "secp256k1"  // go-ethereum's secp256k1, the default
	SchemeP256      = "ECDSA_P256" // NIST P-256 from Go's standard library, the original prototype's scheme
	SchemeBLS       = "bls12-381"  // BLS12-381 via blst, public keys in G1, aggregatable signatures in G2
)

// Schemes lists the signature schemes.
var Schemes = []string{SchemeSecp256k1, SchemeP256, SchemeBLS}

// schemeList names the schemes for error messages: "a, b or c".
func schemeList() string {
	if len(Schemes) < 2 {
		return strings.Join(Schemes, "")
	}
	return strings.Join(Schemes[:len(Schemes)-1], ", ") + " or " + Schemes[len(Schemes)-1]
}

// PubSigner is a Signer that can show its public key.
type PubSigner interface {
	Signer
	PublicKey() []byte
}

// P-256 signatures take the same 65 bytes on the wire as secp256k1 ones: [R || S || 0], with S in
// the lower half of the group order so that a signature has one valid form only.
var (
	p256N     = elliptic.P256().Params().N
	p256HalfN = new(big.Int).Rsh(p256N, 1)
)

// P256Signer signs with a P-256 private key.
type P256Signer struct {
	id  types.NodeID
	key *ecdsa.PrivateKey
}

// NewP256Signer returns a signer for replica id.
func NewP256Signer(id types.NodeID, key *ecdsa.PrivateKey) *P256Signer {
	return &P256Signer{id: id, key: key}
}

// ID implements Signer.
func (s *P256Signer) ID() types.NodeID { return s.id }

// Sign implements Signer.
func (s *P256Signer) Sign(digest types.Hash) []byte {
	r, sv, err := ecdsa.Sign(rand.Reader, s.key, digest[:])
	if err != nil {
		panic(fmt.Sprintf("crypto: P-256 sign: %v", err)) // only if the system's randomness fails
	}
	if sv.Cmp(p256HalfN) > 0 {
		sv.Sub(p256N, sv)
	}
	sig := make([]byte, types.SigSize)
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:64])
	return sig
}

// PublicKey returns the uncompressed public key bytes.
func (s *P256Signer) PublicKey() []byte { return p256Pub(&s.key.PublicKey) }

func p256Pub(pub *ecdsa.PublicKey) []byte {
	b, err := pub.Bytes()
	if err != nil {
		panic(fmt.Sprintf("crypto: P-256 public key: %v", err)) // keys made here are always valid
	}
	return b
}

// P256Verifier verifies P-256 signatures against a fixed table of public keys.
type P256Verifier struct {
	pubs []*ecdsa.PublicKey // index = node ID; entry 0 unused
}

// NewP256Verifier returns a verifier for replicas 1..len(pubs); pubs[i] is node i+1's
// uncompressed public key.
func NewP256Verifier(pubs [][]byte) (*P256Verifier, error) {
	table := make([]*ecdsa.PublicKey, len(pubs)+1)
	seen := make(map[string]int, len(pubs))
	for i, p := range pubs {
		pub, err := parseP256Pub(p)
		if err != nil {
			return nil, fmt.Errorf("crypto: public key of node %d: %w", i+1, err)
		}
		if j, dup := seen[string(p)]; dup {
			return nil, fmt.Errorf("crypto: nodes %d and %d have the same public key", j, i+1)
		}
		seen[string(p)] = i + 1
		table[i+1] = pub
	}
	return &P256Verifier{pubs: table}, nil
}

func parseP256Pub(p []byte) (*ecdsa.PublicKey, error) {
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), p)
	if err != nil {
		return nil, fmt.Errorf("not a P-256 public key: %w", err)
	}
	return pub, nil
}

// N implements Verifier.
func (v *P256Verifier) N() int { return len(v.pubs) - 1 }

// Verify implements Verifier.
func (v *P256Verifier) Verify(id types.NodeID, digest types.Hash, sig []byte) bool {
	if id < 1 || int(id) >= len(v.pubs) || len(sig) != types.SigSize || sig[64] != 0 {
		return false
	}
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:64])
	if r.Sign() == 0 || s.Sign() == 0 || r.Cmp(p256N) >= 0 || s.Cmp(p256HalfN) > 0 {
		return false
	}
	return ecdsa.Verify(v.pubs[id], digest[:], r, s)
}

// deriveP256 derives a simulation P-256 key for node id from seed, as DeriveKey does for secp256k1.
func deriveP256(seed int64, id types.NodeID) *ecdsa.PrivateKey {
	d := new(big.Int).SetBytes(ethcrypto.FromECDSA(DeriveKey(seed, id)))
	d.Mod(d, new(big.Int).Sub(p256N, big.NewInt(1)))
	d.Add(d, big.NewInt(1)) // in [1, n-1]
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d.FillBytes(make([]byte, 32)))
	if err != nil {
		panic(fmt.Sprintf("crypto: derived P-256 key: %v", err))
	}
	return k
}

// SimKeysFor returns n signers of a scheme with keys derived from seed and a verifier that knows
// all of them.
func SimKeysFor(scheme string, seed int64, n int) ([]PubSigner, Verifier, error) {
	switch scheme {
	case SchemeSecp256k1:
		s, v := SimKeys(seed, n)
		out := make([]PubSigner, n)
		for i := range s {
			out[i] = s[i]
		}
		return out, v, nil
	case SchemeP256:
		out := make([]PubSigner, n)
		pubs := make([][]byte, n)
		for i := range out {
			s := NewP256Signer(types.NodeID(i+1), deriveP256(seed, types.NodeID(i+1)))
			out[i], pubs[i] = s, s.PublicKey()
		}
		v, err := NewP256Verifier(pubs)
		return out, v, err
	case SchemeBLS:
		out := make([]PubSigner, n)
		pks := make([]*blst.P1Affine, n)
		pubs := make([][]byte, n)
		for i := range out {
			s := deriveBLS(seed, types.NodeID(i+1))
			out[i], pubs[i] = s, s.PublicKey()
			pks[i] = new(blst.P1Affine).From(s.sk)
		}
		// No proofs of possession to check: the keys were made here from their secret keys.
		v, err := blsVerifierOfCheckedKeys(pks, pubs)
		return out, v, err
	}
	return nil, nil, fmt.Errorf("crypto: unknown signature scheme %q (want %s)", scheme, schemeList())
}

// deriveBLS derives a simulation BLS12-381 signer for node id from seed, as DeriveKey does for
// secp256k1: blst's KeyGen over a Keccak of the seed and the ID.
func deriveBLS(seed int64, id types.NodeID) *BLSSigner {
	var buf [12]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(seed))
	binary.BigEndian.PutUint32(buf[8:], uint32(id))
	ikm := types.Keccak([]byte("stratus/bls-simulation-key"), buf[:])
	return blsSignerOf(id, blst.KeyGen(ikm[:]))
}
