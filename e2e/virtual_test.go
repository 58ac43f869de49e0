package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServerVirtual: server -virtual runs a simulation with every kind of option from the command
// line, prints progress and a summary, writes the JSON a user reads; a scenario writes one JSON
// line per run; bad flags name the flag and exit 2 without running.
func TestServerVirtual(t *testing.T) {
	dir := t.TempDir()
	matrix := filepath.Join(dir, "matrix.txt")
	rows := []string{"0 40ms 80ms 80ms", "40 0 80 80", "80ms 80ms 0 10ms", "# region C\n80ms 80ms 10ms 0"}
	require.NoError(t, os.WriteFile(matrix, []byte(strings.Join(rows, "\n")+"\n"), 0o644))
	out := filepath.Join(dir, "run.json")
	_, stderr, code := runServer(t, dir, "-virtual", "-algorithm", "s-hs", "-n", "4", "-net", "wan", "-duration", "4s",
		"-rate", "20000", "-seed", "9", "-latency_matrix", matrix, "-async", "1s-2s:200ms±100ms", "-partition", "2s-3s:4",
		"-zipf", "1.01,1", "-byz", "1", "-strategy", "missing", "-cpu", "on", "-msize", "32768", "-out", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "t=  4.0s")
	require.Contains(t, stderr, "simulated s per wall s")
	var res struct {
		Config struct {
			N          int      `json:"n"`
			Algorithm  string   `json:"algorithm"`
			Matrix     bool     `json:"latency_matrix"`
			Async      []string `json:"async"`
			Partitions []string `json:"partitions"`
			Byzantine  []int    `json:"byzantine"`
			CPU        string   `json:"cpu_model"`
			Signatures string   `json:"signatures"`
			MSize      int      `json:"msize"`
		} `json:"config"`
		Seed       int64   `json:"seed"`
		TPS        float64 `json:"throughput_tps"`
		Series     []any   `json:"series"`
		Violations []any   `json:"invariant_violations"`
		Bandwidth  map[string]struct {
			ByType map[string]float64 `json:"by_type"`
		} `json:"bandwidth_mbps"`
	}
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &res))
	require.Equal(t, 4, res.Config.N)
	require.True(t, res.Config.Matrix)
	require.Equal(t, []int{4}, res.Config.Byzantine)
	require.Len(t, res.Config.Async, 1)
	require.Len(t, res.Config.Partitions, 1)
	require.Contains(t, res.Config.CPU, "verify")
	require.Contains(t, res.Config.Signatures, "SIMULATED")
	require.Equal(t, 32768, res.Config.MSize)
	require.EqualValues(t, 9, res.Seed)
	require.Len(t, res.Series, 4)
	require.Empty(t, res.Violations)
	require.Positive(t, res.TPS)
	require.Positive(t, res.Bandwidth["others"].ByType["MicroBlock"])

	// A scenario is an experiment spec run by the experiment runner: one JSON line per run, and
	// the runner's results directory; a rerun skips the finished points.
	lines := filepath.Join(dir, "rows.jsonl")
	results := filepath.Join(dir, "results")
	_, stderr, code = runServer(t, dir, "-virtual", "-scenario", "ci", "-only_n", "4", "-quiet", "-results", results, "-out", lines)
	require.Equal(t, 0, code, stderr)
	data, err = os.ReadFile(lines)
	require.NoError(t, err)
	got := strings.Split(strings.TrimSpace(string(data)), "\n")
	require.Len(t, got, 3) // S-HS, SMP-HS and N-HS at N=4
	for _, l := range got {
		var row struct {
			Point struct {
				N int `json:"n"`
			} `json:"point"`
			Commit  string             `json:"commit"`
			Metrics map[string]float64 `json:"metrics"`
		}
		require.NoError(t, json.Unmarshal([]byte(l), &row), l)
		require.Equal(t, 4, row.Point.N)
		require.Positive(t, row.Metrics["throughput_ktps"])
	}
	for _, f := range []string{"rows.jsonl", "rows.csv", "summary.md", "checks.txt", "spec.json"} {
		require.FileExists(t, filepath.Join(results, "ci", f))
	}
	_, stderr, code = runServer(t, dir, "-virtual", "-scenario", "ci", "-only_n", "4", "-results", results, "-out", lines)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "3 finished before, 0 to run")

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "4", "-net", "moon"}, `-net "moon"`},
		{[]string{"-n", "4", "-async", "20s-10s:1ms"}, "-async"},
		{[]string{"-n", "4", "-zipf", "1"}, "-zipf"},
		{[]string{"-n", "4", "-byz", "2"}, "-byz 2"},
		{[]string{"-n", "4", "-strategy", "nice", "-byz", "1"}, "-strategy"},
		{[]string{"-n", "4", "-latency_matrix", matrix + ".missing"}, "-latency_matrix"},
		{[]string{"-n", "5", "-latency_matrix", matrix}, "want 5"},
		{[]string{"-n", "4", "-cpu", "fast"}, "-cpu"},
		{[]string{"-scenario", "fig99"}, "no experiment spec called"},
		{[]string{"-n", "4", "-scenario", "ci"}, "-n: the spec sets the runs"},
		{[]string{"-scenario", "ci", "-only_n", "5"}, "no point has N in [5]"},
		{[]string{"-n", "4", "-duration", "0s"}, "-duration"},
		{[]string{"-n", "4", "-sim"}, "runs alone"},
	} {
		_, stderr, code := runServer(t, dir, append([]string{"-virtual"}, bad.args...)...)
		require.Equal(t, 2, code, "%v: %s", bad.args, stderr)
		require.Contains(t, stderr, bad.want, "%v", bad.args)
	}
	_, stderr, code = runServer(t, dir, "-sim", "-n", "4")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "-n goes with -virtual")
}
