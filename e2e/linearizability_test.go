package e2e

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/config"
)

// kvSummary is the key-value part of the client's summary.
type kvSummary struct {
	KV struct {
		Ops    int64 `json:"ops"`
		Reads  int64 `json:"reads"`
		Writes int64 `json:"writes"`
		Check  *struct {
			Result       string `json:"result"`
			Linearizable bool   `json:"linearizable"`
			Ops          int    `json:"ops_checked"`
		} `json:"check"`
	} `json:"kv"`
}

// TestKeyValueLinearizable runs server -sim (s-hs, N = 4) with one Byzantine replica and the
// client's key-value workload against the three honest replicas, and checks the recorded history
// of linearizable reads and committed writes with porcupine.
func TestKeyValueLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries")
	}
	for _, strategy := range []string{config.StrategyCrash, "equivocate"} {
		t.Run(strategy, func(t *testing.T) {
			dir := t.TempDir()
			writeCluster(t, dir, map[string]any{
				"byzantine": map[string]string{"1": strategy},
				"timeout":   400,
				"crash":     1000,
				"restart":   1500,
			})
			srv := startServer(t, dir, "s-hs")
			out := filepath.Join(dir, "kv.json")
			client := exec.Command(filepath.Join(binDir, "client"), "-kv", "-check", "-keys", "20", "-writes", "0.5",
				"-concurrency", "8", "-duration", "4s", "-targets", "2,3,4", "-out", out, "-log_dir", dir)
			client.Dir = dir
			client.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			output, err := client.CombinedOutput()
			require.NoError(t, err, "%s", output)
			t.Logf("%s", output)
			require.Contains(t, string(output), "linearizable:  yes")

			var sum kvSummary
			readJSON(t, out, &sum)
			require.NotNil(t, sum.KV.Check)
			require.True(t, sum.KV.Check.Linearizable)
			require.Equal(t, "ok", sum.KV.Check.Result)
			require.Positive(t, sum.KV.Reads, "reads completed")
			require.Positive(t, sum.KV.Writes, "writes completed")
			require.GreaterOrEqual(t, sum.KV.Check.Ops, int(sum.KV.Ops))
			stopServer(t, srv)
		})
	}
}
