package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// runServer runs the server binary in dir with args and returns stdout, stderr and the exit code.
func runServer(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "server"), append(args, "-log_dir", dir)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// TestServerCheckConfig: -check-config exits 0 with a one-line summary for a valid file and 2
// with every problem of an invalid one, and neither starts replicas nor writes a log.
func TestServerCheckConfig(t *testing.T) {
	dir := t.TempDir()
	writeCluster(t, dir, nil)
	out, errOut, code := runServer(t, dir, "-check-config")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, 1, strings.Count(out, "\n"), out)
	require.True(t, strings.HasPrefix(out, "ok: config.json is valid for 4 replicas (ips.txt, f=1, quorum 3) running hotstuff"), out)
	require.Empty(t, errOut)

	// The algorithm is part of the check: gossip needs a shared mempool.
	writeCluster(t, dir, map[string]any{"gossip": true})
	_, errOut, code = runServer(t, dir, "-check-config")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "gossip: gossip disseminates microblocks")
	out, errOut, code = runServer(t, dir, "-check-config", "-algorithm", "s-hs-g")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "running s-hs-g (engine hotstuff, mempool stratus)")

	// Every problem at once: unknown, removed and mistyped keys and invalid values.
	writeCluster(t, dir, map[string]any{"tiemout": 5, "thrifty": true, "bsize": "big", "zipfian_s": 1,
		"benchmark": map[string]any{"T": 0, "K": 10}})
	out, errOut, code = runServer(t, dir, "-check-config", "-set", "q=9")
	require.Equal(t, 2, code)
	require.Empty(t, out)
	for _, want := range []string{
		"invalid configuration:",
		`unknown key "tiemout"`,
		`key "thrifty" is no longer used`,
		`key "bsize": expected int, got JSON string`,
		`key "benchmark.K" is no longer used`,
		"zipfian_s: 1 must be greater than 1",
		"benchmark.T: 0 is outside [1, 604800]",
		"q: 9 is outside [2, 3]",
		"server -migrate-config config.json converts it",
	} {
		require.Contains(t, errOut, want)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	require.Empty(t, logs, "-check-config writes no log")

	// A cluster on four hosts whose config still pins node 1 to loopback, as the original
	// prototype's files do: valid, but said.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ips.txt"), []byte("10.0.0.1\n10.0.0.2\n10.0.0.3\n10.0.0.4\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"address": {"1": "tcp://127.0.0.1:3735"}}`), 0o644))
	out, errOut, code = runServer(t, dir, "-check-config")
	require.Equal(t, 0, code, errOut)
	require.True(t, strings.HasPrefix(out, "ok, with 1 warning(s) on standard error: config.json is valid for 4 replicas"), out)
	require.Equal(t, "server: warning: address: node 1 peer address tcp://127.0.0.1:3735 overrides ips.txt, but its host in ips.txt is 10.0.0.1, "+
		"and it is a loopback address while node(s) 2, 3, 4 are remote, which cannot reach it (remove the entry to use ips.txt)\n", errOut)
}

// TestServerMigratesOriginalConfig: -migrate-config converts the original prototype's default
// file, and server -sim runs with the result and commits under client load.
func TestServerMigratesOriginalConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries")
	}
	dir := t.TempDir()
	writeCluster(t, dir, nil) // ips.txt of 4 hosts and free ports in config.json
	fixture, err := filepath.Abs(filepath.Join("..", "config", "testdata", "original-default.json"))
	require.NoError(t, err)

	out, errOut, code := runServer(t, dir, "-migrate-config", fixture)
	require.Equal(t, 0, code, errOut)
	for _, want := range []string{
		"signer: kept (secp256k1 or ECDSA_P256",
		"payload_size: value changed: 0 is below the minimum of 16",
		"memsize: value changed: the original counted transactions",
		"address: dropped: the original replaced this map with ips.txt when it loaded its config, so it never placed a node; here it would override ips.txt and pin node 1 → tcp://127.0.0.1:3735",
		"timeout: kept (view timeout in ms",
		"hasher: dropped:",
		"benchmark.K: dropped:",
		"checked for the 4 replicas of ips.txt",
	} {
		require.Contains(t, errOut, want)
	}
	_, _, code = runServer(t, dir, "-migrate-config", fixture, "-out", "migrated.json")
	require.Equal(t, 0, code)
	written, err := os.ReadFile(filepath.Join(dir, "migrated.json"))
	require.NoError(t, err)
	require.Equal(t, out, string(written), "-out writes what stdout shows")
	_, errOut, code = runServer(t, dir, "-migrate-config", fixture, "-out", "migrated.json")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "never overwritten")

	out, errOut, code = runServer(t, dir, "-check-config", "-config", "migrated.json", "-algorithm", "s-hs")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "valid for 4 replicas")

	// The migrated file places the nodes by ips.txt alone (3734+i, 8069+i); the run overrides
	// every node's addresses with free ports, as the other end-to-end tests do.
	var migrated, ours map[string]any
	require.NoError(t, json.Unmarshal(written, &migrated))
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &ours))
	migrated["address"], migrated["http_address"] = ours["address"], ours["http_address"]
	b, err = json.MarshalIndent(migrated, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644))

	srv := startServer(t, dir, "s-hs")
	sumPath := filepath.Join(dir, "summary.json")
	client := exec.Command(filepath.Join(binDir, "client"), "-duration", "3s", "-out", sumPath, "-log_dir", dir)
	client.Dir = dir
	client.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	text, err := client.CombinedOutput()
	require.NoError(t, err, "client: %s", text)
	var sum clientSummary
	b, err = os.ReadFile(sumPath)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &sum))
	require.Greater(t, sum.CommittedTx, uint64(0), "client summary: %s", b)
	stopServer(t, srv)
}
