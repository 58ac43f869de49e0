package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var binDir string // where TestMain built server and client

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "stratus-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		for _, b := range []string{"server", "client"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), "../"+b)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "building %s: %v\n", b, err)
				return 1
			}
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

// freePorts reserves n loopback ports long enough to learn their numbers.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// writeCluster writes config.json (extra keys merged in) and ips.txt for 4 replicas on free ports
// and returns the HTTP base URLs.
func writeCluster(t *testing.T, dir string, extra map[string]any) []string {
	t.Helper()
	return writeClusterN(t, dir, 4, extra)
}

// writeClusterN is writeCluster for n replicas.
func writeClusterN(t *testing.T, dir string, n int, extra map[string]any) []string {
	t.Helper()
	ports := freePorts(t, 2*n)
	httpAddrs, peerAddrs := map[string]string{}, map[string]string{}
	var urls []string
	for i, p := range ports[:n] {
		httpAddrs[fmt.Sprint(i+1)] = fmt.Sprintf("127.0.0.1:%d", p)
		peerAddrs[fmt.Sprint(i+1)] = fmt.Sprintf("127.0.0.1:%d", ports[n+i])
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", p))
	}
	cfg := map[string]any{
		"http_address":    httpAddrs,
		"address":         peerAddrs,
		"timeout":         1000,
		"propose_timeout": 20,
		"bsize":           500,
		"benchmark":       map[string]any{"T": 3, "Concurrency": 4, "Batch": 50, "Distribution": "uniform"},
	}
	for k, v := range extra {
		cfg[k] = v
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644))
	ips := "# local replicas\n" + strings.Repeat("127.0.0.1\n", n)
	if n == 4 {
		ips = "# four local replicas\n127.0.0.1\n127.0.0.1\n\n127.0.0.1\n127.0.0.1\n" // a blank line too
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ips.txt"), []byte(ips), 0o644))
	return urls
}

// startServer runs server -sim in dir and waits for its ready line.
func startServer(t *testing.T, dir, algorithm string) *exec.Cmd {
	t.Helper()
	return startServerN(t, dir, algorithm, 4)
}

// startServerN is startServer for n replicas.
func startServerN(t *testing.T, dir, algorithm string, n int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "server"), "-sim", "-algorithm", algorithm, "-log_dir", dir)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "stratus:") {
				ready <- sc.Text()
			}
		}
		close(ready)
	}()
	select {
	case line, ok := <-ready:
		require.True(t, ok, "server exited before it was ready")
		require.Contains(t, line, fmt.Sprintf("%d replicas of %s", n, algorithm))
	case <-time.After(20 * time.Second):
		t.Fatal("server not ready in 20 s")
	}
	return cmd
}

// stopServer sends SIGTERM and expects a clean exit.
func stopServer(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "server did not exit cleanly")
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop within 15 s of SIGTERM")
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

type clientSummary struct {
	CommittedTx   uint64  `json:"committed_tx"`
	ThroughputTPS float64 `json:"throughput_tps"`
	Latency       struct {
		Mean, P50, P95, P99, Max float64
	} `json:"latency_ms"`
	Errors map[string]uint64 `json:"errors"`
}

// TestServerAndClient runs the real server in -sim mode and the real client for a few seconds per
// engine and preset, and checks the client's summary and both forms of /query.
func TestServerAndClient(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries")
	}
	for _, alg := range []string{"hotstuff", "streamlet", "smp-hs", "s-hs", "s-sl", "s-hs-g"} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			urls := writeCluster(t, dir, nil)
			srv := startServer(t, dir, alg)

			out := filepath.Join(dir, "summary.json")
			client := exec.Command(filepath.Join(binDir, "client"), "-duration", "3s", "-out", out, "-log_dir", dir)
			client.Dir = dir
			client.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			text, err := client.CombinedOutput()
			require.NoError(t, err, "client: %s", text)
			require.Contains(t, string(text), "committed")

			var sum clientSummary
			b, err := os.ReadFile(out)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &sum))
			require.Greater(t, sum.CommittedTx, uint64(0), "client summary: %s", b)
			require.Greater(t, sum.ThroughputTPS, 0.0)
			require.Greater(t, sum.Latency.P50, 0.0)
			require.LessOrEqual(t, sum.Latency.P50, sum.Latency.P99)

			var total uint64
			for i, u := range urls {
				body := string(get(t, u+"/query"))
				require.Contains(t, body, fmt.Sprintf("Node: %d of 4", i+1))
				require.Contains(t, body, "Committed txs:")
				var snap map[string]any
				require.NoError(t, json.Unmarshal(get(t, u+"/query?format=json"), &snap))
				require.Equal(t, alg, snap["algorithm"])
				if alg != "hotstuff" && alg != "streamlet" {
					// Shared mempools: transactions travelled in microblocks.
					mb := snap["microblocks"].(map[string]any)
					require.Greater(t, mb["created"].(float64)+mb["received"].(float64), 0.0, "node %d microblocks: %v", i+1, mb)
					require.Contains(t, snap["traffic"].(map[string]any), "MicroBlock")
				}
				// A replica may still be delivering the last block the others committed (fetching its
				// microblocks): give it a moment to reach what the client saw.
				committed := uint64(snap["committed_tx"].(float64))
				require.Eventually(t, func() bool {
					var now map[string]any
					if json.Unmarshal(get(t, u+"/query?format=json"), &now) != nil {
						return false
					}
					committed = uint64(now["committed_tx"].(float64))
					return committed >= sum.CommittedTx
				}, 5*time.Second, 50*time.Millisecond, "node %d delivered less than the client saw committed", i+1)
				total += committed
				require.Greater(t, snap["view"].(float64), 1.0)
			}
			require.Greater(t, total, uint64(0))

			resp, err := http.Get(urls[0] + "/nothing-here")
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusNotFound, resp.StatusCode)

			stopServer(t, srv)
			logs, err := filepath.Glob(filepath.Join(dir, "server.*.log"))
			require.NoError(t, err)
			require.Len(t, logs, 1)
			logText, err := os.ReadFile(logs[0])
			require.NoError(t, err)
			require.Contains(t, string(logText), "final statistics")
			clientLogs, _ := filepath.Glob(filepath.Join(dir, "client.*.log"))
			require.Len(t, clientLogs, 1)
		})
	}
}

// TestServerRefusesBadConfig: a config error names the key and the server exits with status 2.
func TestServerRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	writeCluster(t, dir, map[string]any{"bsize": 0, "thrifty": true})
	cmd := exec.Command(filepath.Join(binDir, "server"), "-sim", "-log_dir", dir)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Equal(t, 2, cmd.ProcessState.ExitCode())
	require.Contains(t, string(out), `"thrifty" is no longer used`)

	writeCluster(t, dir, map[string]any{"bsize": 0, "zipfian_s": 1})
	cmd = exec.Command(filepath.Join(binDir, "server"), "-sim", "-log_dir", dir)
	cmd.Dir = dir
	out, err = cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "bsize: 0 is outside [1, 1000000]")
	require.Contains(t, string(out), "zipfian_s: 1 must be greater than 1")
}

// TestServerRefusesBadKeys: server -id names the key file and the problem and exits with status 2.
func TestServerRefusesBadKeys(t *testing.T) {
	dir := t.TempDir()
	writeCluster(t, dir, nil)
	run := func(args ...string) (string, int) {
		cmd := exec.Command(filepath.Join(binDir, "server"), append(args, "-log_dir", dir)...)
		cmd.Dir = dir
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	out, code := run("-keygen")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "keys of 4 nodes")
	out, code = run("-keygen")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "never overwritten")

	other := filepath.Join(dir, "other")
	out, code = run("-keygen", "-keys", other)
	require.Equal(t, 0, code, out)

	cases := []struct {
		name  string
		setup func()
		args  []string
		want  string
	}{
		{"node outside the cluster", func() {}, []string{"-id", "5"}, "-id 5: ips.txt lists 4 nodes"},
		{"voting state in memory", func() {}, []string{"-id", "1", "-data_dir", ""}, "-id needs a -data_dir"},
		{"missing key", func() {
			require.NoError(t, os.Rename(filepath.Join(dir, "keys/node2.key"), filepath.Join(dir, "node2.bak")))
		}, []string{"-id", "2"}, "keys/node2.key does not exist"},
		{"readable key", func() {
			require.NoError(t, os.Rename(filepath.Join(dir, "node2.bak"), filepath.Join(dir, "keys/node2.key")))
			require.NoError(t, os.Chmod(filepath.Join(dir, "keys/node2.key"), 0o640))
		}, []string{"-id", "2"}, "keys/node2.key is readable by others (mode 0640)"},
		{"key of another cluster", func() {
			require.NoError(t, os.Chmod(filepath.Join(dir, "keys/node2.key"), 0o600))
		}, []string{"-id", "2", "-keys", other + "-mixed"}, "does not match node 2's public key"},
		{"malformed key", func() {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "keys/node3.key"), []byte("not a key\n"), 0o600))
		}, []string{"-id", "3"}, "keys/node3.key is malformed"},
	}
	// A key directory mixing this cluster's node2.key with another cluster's public keys.
	mixed := other + "-mixed"
	require.NoError(t, os.MkdirAll(mixed, 0o700))
	b, err := os.ReadFile(filepath.Join(dir, "keys/node2.key"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(mixed, "node2.key"), b, 0o600))
	b, err = os.ReadFile(filepath.Join(other, "pubkeys.txt"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(mixed, "pubkeys.txt"), b, 0o644))

	for _, tc := range cases {
		tc.setup()
		out, code := run(tc.args...)
		assert.Equal(t, 2, code, "%s: %s", tc.name, out)
		assert.Contains(t, out, tc.want, tc.name)
	}
}
