package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// scriptDir copies the bin/ scripts and the built binaries into a fresh directory with its own
// config on free ports, so the test never touches a cluster the user started from bin/.
func scriptDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bin")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	scripts, err := filepath.Glob("../bin/*.sh")
	require.NoError(t, err)
	require.NotEmpty(t, scripts)
	for _, s := range append(scripts, filepath.Join(binDir, "server"), filepath.Join(binDir, "client")) {
		b, err := os.ReadFile(s)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(s)), b, 0o755))
	}
	writeCluster(t, dir, nil)
	return dir
}

func script(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(dir, args[0])}, args[1:]...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LOG_DIR=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func pidsIn(t *testing.T, file string) []int {
	t.Helper()
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		p, err := strconv.Atoi(f)
		require.NoError(t, err)
		pids = append(pids, p)
	}
	return pids
}

// stopAtEnd runs the directory's stop.sh when the test ends, then kills what it failed to stop
// among pids (the PIDs the test saw started).
func stopAtEnd(t *testing.T, dir string, pids *[]int) {
	t.Cleanup(func() {
		_, _ = script(t, dir, "stop.sh")
		for _, p := range *pids {
			if alive(p) {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
	})
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] != "Z"
}

// TestScripts drives the bin/ scripts as a user would: start, refuse a second start, add clients,
// close them, run clients to completion, stop, and leave no process behind.
func TestScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the scripts")
	}
	dir := scriptDir(t)
	var started []int
	stopAtEnd(t, dir, &started)

	out, err := script(t, dir, "simulation.sh", "streamlet")
	require.NoError(t, err, out)
	require.Contains(t, out, "server running")
	server := pidsIn(t, filepath.Join(dir, "server.pid"))
	require.Len(t, server, 1)
	started = append(started, server...)

	out, err = script(t, dir, "simulation.sh")
	require.Error(t, err)
	require.Contains(t, out, "already running")

	out, err = script(t, dir, "runClient.sh", "2", "-duration", "60")
	require.NoError(t, err, out)
	clients := pidsIn(t, filepath.Join(dir, "clients.pid"))
	require.Len(t, clients, 2)
	started = append(started, clients...)
	out, err = script(t, dir, "runClient.sh", "1")
	require.Error(t, err)
	require.Contains(t, out, "already running")

	// Let the clients commit something, then stop them early: they still write their summaries.
	require.Eventually(t, func() bool {
		logs, _ := filepath.Glob(filepath.Join(dir, "client.*.log"))
		return len(logs) == 2
	}, 10*time.Second, 50*time.Millisecond)
	time.Sleep(2 * time.Second)
	out, err = script(t, dir, "closeClient.sh")
	require.NoError(t, err, out)
	require.Contains(t, out, "stopped clients")
	for _, p := range clients {
		require.False(t, alive(p), "client %d still runs", p)
		b, err := os.ReadFile(filepath.Join(dir, "client."+strconv.Itoa(p)+".json"))
		require.NoError(t, err, "summary of client %d", p)
		var sum clientSummary
		require.NoError(t, json.Unmarshal(b, &sum))
		require.Greater(t, sum.CommittedTx, uint64(0), "client %d summary: %s", p, b)
	}
	require.NoFileExists(t, filepath.Join(dir, "clients.pid"))

	out, err = script(t, dir, "runClient.sh", "--wait", "1", "-duration", "2")
	require.NoError(t, err, out)
	require.Contains(t, out, "committed")

	out, err = script(t, dir, "stop.sh")
	require.NoError(t, err, out)
	require.Contains(t, out, "stopped server")
	require.False(t, alive(server[0]), "server still runs")
	require.NoFileExists(t, filepath.Join(dir, "server.pid"))

	out, err = script(t, dir, "stop.sh")
	require.NoError(t, err, out)
	require.Contains(t, out, "no servers running")

	out, err = script(t, dir, "runClient.sh", "zero")
	require.Error(t, err)
	require.Contains(t, out, "usage")
}

// TestRunScript starts one server process per replica with run.sh, drives it with clients and
// stops it, for a native and a shared-mempool protocol.
func TestRunScript(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the scripts")
	}
	for _, alg := range []string{"hotstuff", "s-hs"} {
		t.Run(alg, func(t *testing.T) {
			dir := scriptDir(t)
			urls := writeCluster(t, dir, nil)
			var servers []int
			stopAtEnd(t, dir, &servers)
			out, err := script(t, dir, "run.sh", alg, "-data_dir", "elsewhere")
			require.Error(t, err)
			require.Contains(t, out, "-data_dir would move them out of its reach")

			out, err = script(t, dir, "run.sh", alg)
			require.NoError(t, err, out)
			require.Contains(t, out, "4 servers running")
			servers = pidsIn(t, filepath.Join(dir, "server.pid"))
			require.Len(t, servers, 4)
			// Four replicas share this machine: each runs with its share of the cores.
			if cores := runtime.GOMAXPROCS(0); cores >= 2 && os.Getenv("GOMAXPROCS") == "" {
				for i := 1; i <= 4; i++ {
					b, err := os.ReadFile(filepath.Join(dir, "server."+strconv.Itoa(i)+".out"))
					require.NoError(t, err)
					require.Contains(t, string(b), fmt.Sprintf("GOMAXPROCS %d: 4 replicas share %d cores", max(1, cores/4), cores))
				}
			}
			for i := 1; i <= 4; i++ {
				require.FileExists(t, filepath.Join(dir, "keys", "node"+strconv.Itoa(i)+".key"))
			}

			out, err = script(t, dir, "run.sh", alg)
			require.Error(t, err)
			require.Contains(t, out, "already running")

			out, err = script(t, dir, "runClient.sh", "--wait", "2", "-duration", "3")
			require.NoError(t, err, out)
			sums, _ := filepath.Glob(filepath.Join(dir, "client.*.json"))
			require.Len(t, sums, 2)
			for _, f := range sums {
				b, err := os.ReadFile(f)
				require.NoError(t, err)
				var sum clientSummary
				require.NoError(t, json.Unmarshal(b, &sum))
				require.Greater(t, sum.CommittedTx, uint64(0), "%s: %s", f, b)
			}

			// The clients are done: once the last commits are in, no replica keeps a pending or
			// in-flight transaction or a waiting client.
			for _, u := range urls {
				var snap struct {
					Mempool struct {
						PendingTx    int `json:"pending_tx"`
						InFlightTx   int `json:"in_flight_tx"`
						LocalWaiting int `json:"local_waiting_tx"`
					} `json:"mempool"`
				}
				require.Eventually(t, func() bool {
					return json.Unmarshal(get(t, u+"/stats"), &snap) == nil &&
						snap.Mempool.PendingTx == 0 && snap.Mempool.InFlightTx == 0 && snap.Mempool.LocalWaiting == 0
				}, 10*time.Second, 50*time.Millisecond, "%s: left behind after the clients stopped: %+v", u, snap.Mempool)
			}

			out, err = script(t, dir, "stop.sh")
			require.NoError(t, err, out)
			require.Contains(t, out, "stopped server")
			for _, p := range servers {
				require.False(t, alive(p), "server %d still runs", p)
			}
			require.NoFileExists(t, filepath.Join(dir, "server.pid"))
			for i := 1; i <= 4; i++ {
				b, err := os.ReadFile(filepath.Join(dir, "server."+strconv.Itoa(i)+".out"))
				require.NoError(t, err)
				require.Regexp(t, `node `+strconv.Itoa(i)+`: committed [1-9][0-9]* tx`, string(b))
			}

			// A new start makes new keys: a replica left over from this run could not join the next.
			key1, err := os.ReadFile(filepath.Join(dir, "keys", "node1.key"))
			require.NoError(t, err)
			out, err = script(t, dir, "run.sh", alg)
			require.NoError(t, err, out)
			servers = pidsIn(t, filepath.Join(dir, "server.pid"))
			again, err := os.ReadFile(filepath.Join(dir, "keys", "node1.key"))
			require.NoError(t, err)
			require.NotEqual(t, key1, again)
			out, err = script(t, dir, "stop.sh")
			require.NoError(t, err, out)
		})
	}
}

// TestSchemesEndToEnd: with "signer": "ECDSA_P256" (the original prototype's scheme) and with
// "bls12-381" (aggregate certificates), a protocol in one process and a shared mempool over TCP
// (the scheme's node keys in the handshake too) commit client transactions.
func TestSchemesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the scripts")
	}
	for _, tc := range []struct{ scheme, inProcess string }{{"ECDSA_P256", "hotstuff"}, {"bls12-381", "s-hs"}} {
		t.Run(tc.scheme, func(t *testing.T) {
			dir := scriptDir(t)
			writeCluster(t, dir, map[string]any{"signer": tc.scheme})
			var started []int
			stopAtEnd(t, dir, &started)
			committed := func() {
				t.Helper()
				for _, f := range must(filepath.Glob(filepath.Join(dir, "client.*.json"))) {
					require.NoError(t, os.Remove(f))
				}
				out, err := script(t, dir, "runClient.sh", "--wait", "1", "-duration", "2")
				require.NoError(t, err, out)
				sums := must(filepath.Glob(filepath.Join(dir, "client.*.json")))
				require.Len(t, sums, 1)
				var sum clientSummary
				readJSON(t, sums[0], &sum)
				require.Greater(t, sum.CommittedTx, uint64(0))
			}

			out, err := script(t, dir, "simulation.sh", tc.inProcess)
			require.NoError(t, err, out)
			started = append(started, pidsIn(t, filepath.Join(dir, "server.pid"))...)
			committed()
			out, err = script(t, dir, "stop.sh")
			require.NoError(t, err, out)

			out, err = script(t, dir, "run.sh", "s-hs")
			require.NoError(t, err, out)
			started = append(started, pidsIn(t, filepath.Join(dir, "server.pid"))...)
			list, err := os.ReadFile(filepath.Join(dir, "keys", "pubkeys.txt"))
			require.NoError(t, err)
			require.Contains(t, string(list), "# scheme: "+tc.scheme)
			committed()
			out, err = script(t, dir, "stop.sh")
			require.NoError(t, err, out)
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
