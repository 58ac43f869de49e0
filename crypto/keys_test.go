package crypto

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

func TestGenerateAndLoadKeys(t *testing.T) {
	for _, scheme := range Schemes {
		t.Run(scheme, func(t *testing.T) { testGenerateAndLoadKeys(t, scheme) })
	}
}

func testGenerateAndLoadKeys(t *testing.T, scheme string) {
	dir := t.TempDir()
	require.NoError(t, GenerateKeys(dir, 4, scheme))
	for i := 1; i <= 4; i++ {
		st, err := os.Stat(filepath.Join(dir, KeyFile(types.NodeID(i))))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "private key file mode")
	}
	signers := make([]PubSigner, 4)
	for i := range signers {
		s, v, err := LoadKeys(dir, types.NodeID(i+1), 4, scheme)
		require.NoError(t, err)
		assert.Equal(t, 4, v.N())
		signers[i] = s
	}
	// Every node's signature verifies under the list, and no two nodes share a key.
	_, v, err := LoadKeys(dir, 1, 4, scheme)
	require.NoError(t, err)
	d := types.Keccak([]byte("x"))
	for i, s := range signers {
		for j := range signers {
			assert.Equal(t, i == j, v.Verify(types.NodeID(j+1), d, s.Sign(d)))
		}
	}
	err = GenerateKeys(dir, 4, scheme)
	assert.ErrorContains(t, err, "already exists", "keys were overwritten")
	other := SchemeP256
	if scheme == SchemeP256 {
		other = SchemeSecp256k1
	}
	_, _, err = LoadKeys(dir, 1, 4, other)
	assert.ErrorContains(t, err, "holds "+scheme+" keys, but the config's signer is "+other)
}

func TestLoadKeysNamesTheProblem(t *testing.T) {
	fresh := func(t *testing.T) string {
		dir := t.TempDir()
		require.NoError(t, GenerateKeys(dir, 3, SchemeSecp256k1))
		return dir
	}
	write := func(t *testing.T, path, text string, mode os.FileMode) {
		require.NoError(t, os.WriteFile(path, []byte(text), mode))
		require.NoError(t, os.Chmod(path, mode))
	}
	cases := map[string]struct {
		edit func(t *testing.T, dir string)
		id   types.NodeID
		n    int
		want string
	}{
		"missing key": {func(t *testing.T, dir string) { require.NoError(t, os.Remove(filepath.Join(dir, "node2.key"))) }, 2, 3, "node2.key does not exist"},
		"readable by others": {func(t *testing.T, dir string) {
			require.NoError(t, os.Chmod(filepath.Join(dir, "node2.key"), 0o644))
		}, 2, 3, "readable by others (mode 0644)"},
		"not hex":   {func(t *testing.T, dir string) { write(t, filepath.Join(dir, "node2.key"), "zz\n", 0o600) }, 2, 3, "node2.key is malformed"},
		"short key": {func(t *testing.T, dir string) { write(t, filepath.Join(dir, "node2.key"), "abcd\n", 0o600) }, 2, 3, "node2.key is malformed"},
		"zero key": {func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "node2.key"), strings.Repeat("0", 64), 0o600)
		}, 2, 3, "node2.key is malformed"},
		"missing list": {func(t *testing.T, dir string) { require.NoError(t, os.Remove(filepath.Join(dir, PubKeysFile))) }, 2, 3, "pubkeys.txt"},
		"node outside": {func(t *testing.T, dir string) {}, 5, 4, "node 5 is not in 1..4"},
		"fewer keys":   {func(t *testing.T, dir string) {}, 3, 4, "no public key for node 4"},
		"more keys":    {func(t *testing.T, dir string) {}, 2, 2, "node 3, but the cluster has 2 nodes"},
		"other node's key": {func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, "node1.key"), filepath.Join(dir, "node2.key"))
		}, 2, 3, "does not match node 2's public key"},
		"bad list line": {func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, PubKeysFile), "1 04ab cd\n", 0o644)
		}, 1, 3, "line 1"},
		"bad public key": {func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, PubKeysFile), "1 04abcd\n", 0o644)
		}, 1, 3, "public key of node 1"},
		"node listed twice": {func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, PubKeysFile))
			require.NoError(t, err)
			var line string
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "1 ") {
					line = l
				}
			}
			write(t, filepath.Join(dir, PubKeysFile), string(b)+line+"\n", 0o644)
		}, 1, 3, "node 1 listed twice"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := fresh(t)
			tc.edit(t, dir)
			_, _, err := LoadKeys(dir, tc.id, tc.n, SchemeSecp256k1)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o600))
}
