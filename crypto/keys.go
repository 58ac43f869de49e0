package crypto

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	blst "github.com/supranational/blst/bindings/go"

	"github.com/stratusbft/stratus/types"
)

// Deployment keys live in one directory per cluster: node<i>.key holds node i's private key (hex,
// mode 0600; a host needs only its own) and pubkeys.txt lists every node's public key, one node a
// line: "<id> <public key hex>", and for BLS12-381 "<id> <public key hex> <proof of possession hex>"
// (a key without a valid proof of possession is refused: see BLSVerifier). A "# scheme: <name>"
// line names the keys' scheme; a list without one holds secp256k1 keys.

// PubKeysFile is the name of the public key list in a key directory.
const PubKeysFile = "pubkeys.txt"

// KeyFile returns the name of node id's private key file in a key directory.
func KeyFile(id types.NodeID) string { return fmt.Sprintf("node%d.key", id) }

// GenerateKeys writes a fresh private key of a scheme for nodes 1..n and their public key list
// into dir. It refuses to overwrite any existing key file: replacing the keys of a running cluster
// locks its nodes out of each other.
func GenerateKeys(dir string, n int, scheme string) error {
	if n < 1 || n > types.MaxNodes {
		return fmt.Errorf("keys: %d nodes; want 1..%d", n, types.MaxNodes)
	}
	if !slices.Contains(Schemes, scheme) {
		return fmt.Errorf("keys: unknown signature scheme %q (want %s)", scheme, schemeList())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	paths := []string{filepath.Join(dir, PubKeysFile)}
	for i := 1; i <= n; i++ {
		paths = append(paths, filepath.Join(dir, KeyFile(types.NodeID(i))))
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("keys: %s already exists; keys are never overwritten (remove the directory's key files to start over)", p)
		}
	}
	var list bytes.Buffer
	if scheme == SchemeBLS {
		list.WriteString("# Stratus public keys: node ID, compressed G1 public key (hex), proof of possession (hex)\n")
	} else {
		list.WriteString("# Stratus public keys: node ID, uncompressed public key (hex)\n")
	}
	fmt.Fprintf(&list, "%s%s\n", schemePrefix, scheme)
	for i := 1; i <= n; i++ {
		priv, pub, pop, err := newKey(scheme)
		if err != nil {
			return fmt.Errorf("keys: generate: %w", err)
		}
		if err := writeNew(paths[i], []byte(hex.EncodeToString(priv)+"\n"), 0o600); err != nil {
			return err
		}
		if pop != nil {
			fmt.Fprintf(&list, "%d %x %x\n", i, pub, pop)
		} else {
			fmt.Fprintf(&list, "%d %x\n", i, pub)
		}
	}
	return writeNew(paths[0], list.Bytes(), 0o644)
}

// schemePrefix starts the line of a public key list that names its scheme; a list without one
// holds secp256k1 keys.
const schemePrefix = "# scheme: "

// newKey returns a fresh private key (32 bytes) and its public key: uncompressed for the ECDSA
// schemes, compressed for BLS12-381, which also gives the key's proof of possession (pop; nil for
// the others).
func newKey(scheme string) (priv, pub, pop []byte, err error) {
	switch scheme {
	case SchemeP256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, nil, err
		}
		priv, err = k.Bytes()
		return priv, p256Pub(&k.PublicKey), nil, err
	case SchemeBLS:
		s, err := GenerateBLSSigner(1)
		if err != nil {
			return nil, nil, nil, err
		}
		return s.secret(), s.PublicKey(), s.ProvePossession(), nil
	}
	k, err := ethcrypto.GenerateKey()
	if err != nil {
		return nil, nil, nil, err
	}
	return ethcrypto.FromECDSA(k), ethcrypto.FromECDSAPub(&k.PublicKey), nil, nil
}

// writeNew creates path with mode perm (never widening it through the umask), failing if it exists.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("keys: %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("keys: %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keys: %s: %w", path, err)
	}
	return f.Close()
}

// ReadPublicKeys reads a public key list of n nodes of a scheme and returns a verifier for them.
// BLS12-381 keys are refused without a proof of possession that verifies.
func ReadPublicKeys(path string, n int, scheme string) (Verifier, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	pubs := make([][]byte, n)
	var blsKeys []*blst.P1Affine // scheme BLS: the decompressed keys, proofs of possession checked
	format := `"<node id> <public key hex>"`
	if scheme == SchemeBLS {
		blsKeys = make([]*blst.P1Affine, n)
		format = `"<node id> <public key hex> <proof of possession hex>"`
	}
	sc := bufio.NewScanner(f)
	line := 0
	listed := SchemeSecp256k1
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(text, schemePrefix); ok {
			listed = strings.TrimSpace(rest)
			if listed != scheme {
				return nil, fmt.Errorf("keys: %s holds %s keys, but the config's signer is %s (make keys with the config: server -keygen -config ...)", path, listed, scheme)
			}
			continue
		}
		if text == "" || text[0] == '#' {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 && (scheme != SchemeBLS || len(fields) != 3) {
			return nil, fmt.Errorf("keys: %s line %d: want %s", path, line, format)
		}
		id, err := strconv.Atoi(fields[0])
		if err != nil || id < 1 {
			return nil, fmt.Errorf("keys: %s line %d: %q is not a node ID", path, line, fields[0])
		}
		if id > n {
			return nil, fmt.Errorf("keys: %s line %d: node %d, but the cluster has %d nodes (keys of another ips.txt?)", path, line, id, n)
		}
		if pubs[id-1] != nil {
			return nil, fmt.Errorf("keys: %s line %d: node %d listed twice", path, line, id)
		}
		pub, err := hex.DecodeString(fields[1])
		if err != nil {
			return nil, fmt.Errorf("keys: %s line %d: public key of node %d is not hex", path, line, id)
		}
		if err := checkPub(scheme, pub); err != nil {
			return nil, fmt.Errorf("keys: %s line %d: public key of node %d: %v", path, line, id, err)
		}
		if scheme == SchemeBLS {
			if len(fields) < 3 {
				return nil, fmt.Errorf("keys: %s line %d: node %d has no proof of possession (want %s)", path, line, id, format)
			}
			pop, err := hex.DecodeString(fields[2])
			if err != nil {
				return nil, fmt.Errorf("keys: %s line %d: proof of possession of node %d is not hex", path, line, id)
			}
			pk, err := parseBLSPub(pub)
			if err == nil {
				err = checkBLSPoP(pk, pub, pop)
			}
			if err != nil {
				return nil, fmt.Errorf("keys: %s line %d: node %d: %v", path, line, id, err)
			}
			blsKeys[id-1] = pk
		}
		pubs[id-1] = pub
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	if listed != scheme {
		return nil, fmt.Errorf("keys: %s holds %s keys, but the config's signer is %s (make keys with the config: server -keygen -config ...)", path, listed, scheme)
	}
	for i, p := range pubs {
		if p == nil {
			return nil, fmt.Errorf("keys: %s has no public key for node %d (the cluster has %d nodes)", path, i+1, n)
		}
	}
	var v Verifier
	switch scheme {
	case SchemeP256:
		v, err = NewP256Verifier(pubs)
	case SchemeBLS:
		v, err = blsVerifierOfCheckedKeys(blsKeys, pubs) // proofs of possession checked line by line
	default:
		v, err = NewVerifier(pubs)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	return v, nil
}

// checkPub checks that pub is a public key of a scheme (a BLS12-381 key's proof of possession is
// checked apart).
func checkPub(scheme string, pub []byte) error {
	switch scheme {
	case SchemeP256:
		_, err := parseP256Pub(pub)
		return err
	case SchemeBLS:
		_, err := parseBLSPub(pub)
		return err
	}
	_, err := ethcrypto.UnmarshalPubkey(pub)
	return err
}

// LoadKeys loads node id's private key of a scheme from dir and the public keys of all n nodes,
// and checks that they belong together and that the private key is not readable by others.
func LoadKeys(dir string, id types.NodeID, n int, scheme string) (PubSigner, Verifier, error) {
	if id < 1 || int(id) > n {
		return nil, nil, fmt.Errorf("keys: node %d is not in 1..%d", id, n)
	}
	path := filepath.Join(dir, KeyFile(id))
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("keys: %s does not exist (server -keygen -ips ips.txt -keys %s creates the keys of every node)", path, dir)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("keys: %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, nil, fmt.Errorf("keys: %s is readable by others (mode %04o); a private key must be mode 0600: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	// The list first: it names its scheme, so keys made for another signer are named as such
	// rather than as a malformed private key.
	v, err := ReadPublicKeys(filepath.Join(dir, PubKeysFile), n, scheme)
	if err != nil {
		return nil, nil, err
	}
	text := strings.TrimSpace(string(raw))
	b, err := hex.DecodeString(text)
	if err != nil || len(b) != 32 {
		return nil, nil, fmt.Errorf("keys: %s is malformed: want 64 hex digits (a %s private key)", path, scheme)
	}
	var s PubSigner
	switch scheme {
	case SchemeP256:
		key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b)
		if err != nil {
			return nil, nil, fmt.Errorf("keys: %s is malformed: %v", path, err)
		}
		s = NewP256Signer(id, key)
	case SchemeBLS:
		bs, err := NewBLSSigner(id, b)
		if err != nil {
			return nil, nil, fmt.Errorf("keys: %s is malformed: %v", path, err)
		}
		s = bs
	default:
		key, err := ethcrypto.ToECDSA(b)
		if err != nil {
			return nil, nil, fmt.Errorf("keys: %s is malformed: %v", path, err)
		}
		s = NewSigner(id, key)
	}
	// The key and the list belong together when the list verifies the key's signature.
	probe := types.Keccak([]byte("stratus/keys/probe"))
	if !v.Verify(id, probe, s.Sign(probe)) {
		return nil, nil, fmt.Errorf("keys: %s does not match node %d's public key in %s (keys from different -keygen runs?)", path, id, filepath.Join(dir, PubKeysFile))
	}
	return s, v, nil
}
