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
	"strconv"
	"strings"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/stratusbft/stratus/types"
)

// Deployment keys live in one directory per cluster: node<i>.key holds node i's private key (hex,
// mode 0600; a host needs only its own) and pubkeys.txt lists every node's public key.

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
	if scheme != SchemeSecp256k1 && scheme != SchemeP256 {
		return fmt.Errorf("keys: unknown signature scheme %q (want %s or %s)", scheme, SchemeSecp256k1, SchemeP256)
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
	fmt.Fprintf(&list, "# Stratus public keys: node ID, uncompressed public key (hex)\n%s%s\n", schemePrefix, scheme)
	for i := 1; i <= n; i++ {
		priv, pub, err := newKey(scheme)
		if err != nil {
			return fmt.Errorf("keys: generate: %w", err)
		}
		if err := writeNew(paths[i], []byte(hex.EncodeToString(priv)+"\n"), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(&list, "%d %x\n", i, pub)
	}
	return writeNew(paths[0], list.Bytes(), 0o644)
}

// schemePrefix starts the line of a public key list that names its scheme; a list without one
// holds secp256k1 keys.
const schemePrefix = "# scheme: "

// newKey returns a fresh private key (32 bytes) and its uncompressed public key.
func newKey(scheme string) (priv, pub []byte, err error) {
	if scheme == SchemeP256 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		priv, err = k.Bytes()
		return priv, p256Pub(&k.PublicKey), err
	}
	k, err := ethcrypto.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	return ethcrypto.FromECDSA(k), ethcrypto.FromECDSAPub(&k.PublicKey), nil
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
func ReadPublicKeys(path string, n int, scheme string) (Verifier, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	pubs := make([][]byte, n)
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
		if len(fields) != 2 {
			return nil, fmt.Errorf("keys: %s line %d: want \"<node id> <public key hex>\"", path, line)
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
	if scheme == SchemeP256 {
		v, err = NewP256Verifier(pubs)
	} else {
		v, err = NewVerifier(pubs)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	return v, nil
}

func checkPub(scheme string, pub []byte) error {
	if scheme == SchemeP256 {
		_, err := parseP256Pub(pub)
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
	text := strings.TrimSpace(string(raw))
	b, err := hex.DecodeString(text)
	if err != nil || len(b) != 32 {
		return nil, nil, fmt.Errorf("keys: %s is malformed: want 64 hex digits (a secp256k1 private key)", path)
	}
	var s PubSigner
	if scheme == SchemeP256 {
		key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b)
		if err != nil {
			return nil, nil, fmt.Errorf("keys: %s is malformed: %v", path, err)
		}
		s = NewP256Signer(id, key)
	} else {
		key, err := ethcrypto.ToECDSA(b)
		if err != nil {
			return nil, nil, fmt.Errorf("keys: %s is malformed: %v", path, err)
		}
		s = NewSigner(id, key)
	}
	v, err := ReadPublicKeys(filepath.Join(dir, PubKeysFile), n, scheme)
	if err != nil {
		return nil, nil, err
	}
	// The key and the list belong together when the list verifies the key's signature.
	probe := types.Keccak([]byte("stratus/keys/probe"))
	if !v.Verify(id, probe, s.Sign(probe)) {
		return nil, nil, fmt.Errorf("keys: %s does not match node %d's public key in %s (keys from different -keygen runs?)", path, id, filepath.Join(dir, PubKeysFile))
	}
	return s, v, nil
}
