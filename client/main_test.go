package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/benchmark"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/types"
)

// replica answers POST /txs?wait=commit like a server whose commits are instant.
type replica struct {
	srv *httptest.Server
	txs atomic.Int64
}

func newReplica(t *testing.T) *replica {
	t.Helper()
	r := &replica{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		txs, err := types.DecodeBatch(body, 1<<20, types.MaxTxSize)
		if err != nil || req.URL.Path != "/txs" || req.URL.Query().Get("wait") != "commit" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error": %q}`, fmt.Sprint(err))
			return
		}
		r.txs.Add(int64(len(txs)))
		fmt.Fprintf(w, `{"accepted": %d, "delivered": true, "view": 1, "height": 1, "block": "00"}`, len(txs))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// env writes config.json and ips.txt pointing at the replicas.
func env(t *testing.T, extra string, reps ...*replica) (dir string) {
	t.Helper()
	dir = t.TempDir()
	var ips strings.Builder
	addrs := make([]string, len(reps))
	for i, r := range reps {
		ips.WriteString("127.0.0.1\n")
		addrs[i] = fmt.Sprintf("%q: %q", fmt.Sprint(i+1), r.srv.Listener.Addr().String())
	}
	cfg := fmt.Sprintf(`{"http_address": {%s}, "payload_size": 32, "benchmark": {"T": 1, "Concurrency": 2, "Batch": 20}%s}`,
		strings.Join(addrs, ", "), extra)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ips.txt"), []byte(ips.String()), 0o644))
	return dir
}

func baseArgs(dir string) []string {
	return []string{"-config", filepath.Join(dir, "config.json"), "-ips", filepath.Join(dir, "ips.txt"), "-log_dir", dir}
}

func readSummary(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m), string(data))
	return m
}

func TestUsageErrors(t *testing.T) {
	rep := newReplica(t)
	dir := env(t, "", rep)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-concurrency", "0"}, "-concurrency 0"},
		{[]string{"-duration", "soon"}, "-duration \"soon\""},
		{[]string{"-duration", "0"}, "must be positive"},
		{[]string{"-rate", "-1"}, "-rate -1"},
		{[]string{"-batch", "0"}, "-batch 0"},
		{[]string{"-n", "-5"}, "-n -5"},
		{[]string{"-payload", "8"}, "-payload 8"},
		{[]string{"-timeout", "0s"}, "-timeout"},
		{[]string{"-targets", "3"}, "-targets: node 3 is outside [1, 1]"},
		{[]string{"-targets", "one"}, "-targets: \"one\""},
		{[]string{"-targets", "1,1"}, "listed twice"},
		{[]string{"-log_level", "loud"}, "-log_level"},
		{[]string{"-nosuchflag"}, "nosuchflag"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"-config", filepath.Join(dir, "missing.json")}, "missing.json"},
		{[]string{"-ips", filepath.Join(dir, "missing.txt")}, "missing.txt"},
		{[]string{"-keys", "5"}, "-keys needs -kv"},
		{[]string{"-check"}, "-check needs -kv"},
		{[]string{"-kv", "-keys", "0"}, "-keys 0"},
		{[]string{"-kv", "-writes", "1.5"}, "-writes 1.5"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append(baseArgs(dir), tc.args...)
			code := run(context.Background(), args, &stdout, &stderr)
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, stderr.String(), tc.want)
		})
	}

	t.Run("config values", func(t *testing.T) {
		bad := env(t, `, "zipf": true, "zipfian_s": 1`, rep)
		var stderr bytes.Buffer
		assert.Equal(t, exitUsage, run(context.Background(), baseArgs(bad), io.Discard, &stderr))
		assert.Contains(t, stderr.String(), "zipfian_s")

		bad = env(t, `, "policy": "majority"`, rep)
		stderr.Reset()
		assert.Equal(t, exitUsage, run(context.Background(), baseArgs(bad), io.Discard, &stderr))
		assert.Contains(t, stderr.String(), "policy")

		bad = env(t, "", rep)
		cfg := filepath.Join(bad, "config.json")
		require.NoError(t, os.WriteFile(cfg, []byte(`{"benchmark": {"Concurrency": 0}}`), 0o644))
		stderr.Reset()
		assert.Equal(t, exitUsage, run(context.Background(), baseArgs(bad), io.Discard, &stderr))
		assert.Contains(t, stderr.String(), "benchmark.Concurrency")
	})

	t.Run("help", func(t *testing.T) {
		var stderr bytes.Buffer
		assert.Equal(t, exitOK, run(context.Background(), []string{"-h"}, io.Discard, &stderr))
		assert.Contains(t, stderr.String(), "-concurrency")
		// Defaults that come from the config say so, and what applies without one.
		assert.Contains(t, stderr.String(), "transactions per request (default: the config's benchmark.Batch; 200 when the config does not set it)")
		assert.Contains(t, stderr.String(), "(default: the config's benchmark.T; 20 s when the config does not set it)")
	})
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"20": 20 * time.Second, "20s": 20 * time.Second, "1m": time.Minute, "1500ms": 1500 * time.Millisecond} {
		got, err := parseDuration(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := parseDuration("20 s")
	assert.Error(t, err)
}

func TestRunInProcess(t *testing.T) {
	reps := []*replica{newReplica(t), newReplica(t)}
	dir := env(t, "", reps...)
	out := filepath.Join(dir, "sub", "result.json")
	var stdout, stderr bytes.Buffer
	args := append(baseArgs(dir), "-duration", "1m", "-targets", "2", "-batch", "5", "-n", "200", "-out", out, "-log_level", "debug")
	code := run(context.Background(), args, &stdout, &stderr)
	require.Equal(t, exitOK, code, stderr.String())

	m := readSummary(t, out)
	assert.EqualValues(t, 200, m["committed_tx"])
	assert.Equal(t, "n", m["stop_reason"])
	assert.EqualValues(t, 5, m["batch"])
	assert.EqualValues(t, 32, m["payload"])
	assert.Equal(t, map[string]any{"2": 200.0}, m["per_replica"])
	assert.Zero(t, reps[0].txs.Load())
	assert.EqualValues(t, 200, reps[1].txs.Load())
	assert.Contains(t, stdout.String(), "committed tx:  200")
	assert.Contains(t, stdout.String(), "Summary written to "+out)

	logs, err := filepath.Glob(filepath.Join(dir, "client.*.log"))
	require.NoError(t, err)
	require.Len(t, logs, 1)
	data, err := os.ReadFile(logs[0])
	require.NoError(t, err)
	assert.Contains(t, string(data), "benchmark: finished")
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// clientBinary builds the real client once per test process.
func clientBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the client binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stratus-client-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "client")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func TestBinaryRun(t *testing.T) {
	bin := clientBinary(t)
	rep := newReplica(t)
	dir := env(t, `, "zipf": true`, rep)
	cmd := exec.Command(bin, append(baseArgs(dir), "-duration", "2")...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())

	path := filepath.Join(dir, fmt.Sprintf("client.%d.json", cmd.Process.Pid))
	m := readSummary(t, path)
	assert.Equal(t, "duration", m["stop_reason"])
	assert.InDelta(t, 2.0, m["duration_s"], 0.2)
	assert.Positive(t, m["committed_tx"])
	// Requests in flight at the deadline reached the replica but are not counted.
	assert.LessOrEqual(t, m["committed_tx"], float64(rep.txs.Load()))
	assert.GreaterOrEqual(t, m["committed_tx"], float64(rep.txs.Load()-2*20), "at most Concurrency batches were in flight")
	assert.Positive(t, m["throughput_tps"])
	assert.Equal(t, "zipf", m["distribution"])
	assert.EqualValues(t, 0, m["errors_total"])
	assert.Contains(t, stdout.String(), "committed ")
	assert.Contains(t, stdout.String(), "Summary written to "+path)
	_, err := os.Stat(filepath.Join(dir, fmt.Sprintf("client.%d.log", cmd.Process.Pid)))
	assert.NoError(t, err)
}

func TestBinarySIGTERMWritesSummary(t *testing.T) {
	bin := clientBinary(t)
	rep := newReplica(t)
	dir := env(t, "", rep)
	out := filepath.Join(dir, "out.json")
	cmd := exec.Command(bin, append(baseArgs(dir), "-duration", "1m", "-out", out)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// The first progress line shows the run is under way.
	lines := bufio.NewScanner(stdout)
	require.True(t, lines.Scan(), "a progress line")
	require.Contains(t, lines.Text(), "committed")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	var rest strings.Builder
	for lines.Scan() {
		rest.WriteString(lines.Text() + "\n")
	}
	require.NoError(t, cmd.Wait(), "exit code 0 after SIGTERM")

	m := readSummary(t, out)
	assert.Equal(t, "interrupted", m["stop_reason"])
	assert.Less(t, m["duration_s"], 30.0)
	assert.Positive(t, m["committed_tx"])
	assert.Contains(t, rest.String(), "Summary written to "+out)
}

// TestMergeReportsDuplicates: client -merge adds the duplicates of the summaries, apart from the
// errors, in its text and JSON.
func TestMergeReportsDuplicates(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i, d := range []int64{4, 6} {
		r := benchmark.Result{
			Start: time.Unix(100, 0), End: time.Unix(110, 0), CommittedTx: 100, DuplicateTx: d, SentTx: 100 + d,
			DurationS: 10, ThroughputTPS: 10, Latency: stats.Latency{P50: 1.5, P99: 2.25},
			Errors: map[string]int64{}, PerReplica: map[string]int64{"1": 100},
			Settings: benchmark.Settings{Concurrency: 1, Targets: []benchmark.Target{{ID: 1, Addr: "a"}}},
		}
		path := filepath.Join(dir, fmt.Sprintf("c%d.json", i))
		require.NoError(t, r.WriteFile(path))
		files = append(files, path)
	}
	out := filepath.Join(dir, "merged.json")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"-merge", "-out", out}, files...), &stdout, &stderr)
	require.Equal(t, exitOK, code, stderr.String())
	// Each client's whole run first (not its last second), then the merge.
	assert.Contains(t, stdout.String(), "Each client over its whole run:\n"+
		"  c0.json  10.0 tx/s  100 tx committed in 10.000 s  p50 1.500 ms  p99 2.250 ms  4 duplicates  0 errors\n"+
		"  c1.json  10.0 tx/s  100 tx committed in 10.000 s  p50 1.500 ms  p99 2.250 ms  6 duplicates  0 errors\n"+
		"Merged 2 client summaries\n")
	assert.Contains(t, stdout.String(), "duplicates:    10")
	assert.Contains(t, stdout.String(), "errors:        0")
	m := readSummary(t, out)
	assert.EqualValues(t, 10, m["duplicate_tx"])
	assert.EqualValues(t, 200, m["committed_tx"])
}

// kvReplica answers PUT /{key}?wait=commit and GET /{key}; with stale, reads never see writes.
func kvReplica(t *testing.T, stale bool) *replica {
	t.Helper()
	var mu sync.Mutex
	store := map[string]string{}
	r := &replica{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		key := strings.TrimPrefix(req.URL.Path, "/")
		mu.Lock()
		defer mu.Unlock()
		if req.Method == http.MethodPut {
			store[key] = string(body)
			fmt.Fprint(w, `{"accepted": 1, "delivered": true, "view": 1, "height": 1, "block": "00"}`)
			return
		}
		v, ok := store[key]
		if !ok || stale {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error": "no such key", "reason": "not_found"}`)
			return
		}
		fmt.Fprint(w, v)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func TestKVCheckInProcess(t *testing.T) {
	for _, stale := range []bool{false, true} {
		t.Run(fmt.Sprint("stale=", stale), func(t *testing.T) {
			dir := env(t, "", kvReplica(t, stale))
			out := filepath.Join(dir, "kv.json")
			var stdout, stderr bytes.Buffer
			args := append(baseArgs(dir), "-kv", "-check", "-keys", "3", "-n", "200", "-concurrency", "4", "-out", out)
			code := run(context.Background(), args, &stdout, &stderr)
			sum := readSummary(t, out)
			check := sum["kv"].(map[string]any)["check"].(map[string]any)
			if stale {
				assert.Equal(t, exitNotLinearizable, code, stderr.String())
				assert.Equal(t, "illegal", check["result"])
				assert.Contains(t, stdout.String(), "linearizable:  NO")
			} else {
				assert.Equal(t, exitOK, code, stderr.String())
				assert.Equal(t, true, check["linearizable"])
				assert.Contains(t, stdout.String(), "linearizable:  yes")
			}
		})
	}
}

// A run against a replica that is not there commits nothing: the client says so on standard error
// with the first errors, and exits 5 (it exited 0, the errors only in its log file).
func TestNothingCommittedExitsNonZero(t *testing.T) {
	rep := newReplica(t)
	dir := env(t, "", rep)
	rep.srv.Close() // nobody answers at its address
	var stdout, stderr bytes.Buffer
	args := append(baseArgs(dir), "-duration", "1", "-out", filepath.Join(dir, "out.json"))
	code := run(context.Background(), args, &stdout, &stderr)
	require.Equal(t, exitNothingCommitted, code, stderr.String())
	assert.Contains(t, stderr.String(), "client: nothing was committed")
	assert.Contains(t, stderr.String(), "(node 1)", "the first error names the replica")
	m := readSummary(t, filepath.Join(dir, "out.json"))
	assert.NotEmpty(t, m["first_errors"])
}
