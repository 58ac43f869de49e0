package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/config"
)

// nodeState is what /query?format=json says of a replica's chain.
type nodeState struct {
	Height    uint64 `json:"committed_height"`
	Digest    string `json:"chain_digest"`
	Byzantine string `json:"byzantine"`
	Restarts  uint64 `json:"restarts"`
}

func query(t *testing.T, url string) (nodeState, bool) {
	t.Helper()
	var st nodeState
	b, err := getQuiet(url + "/query?format=json")
	if err != nil {
		return st, false
	}
	require.NoError(t, json.Unmarshal(b, &st))
	return st, true
}

// docs/spec.md §4.1, §6.3: with N = 7 and two Byzantine replicas of each strategy in server -sim, real
// clients sending to the honest replicas keep getting transactions committed, and the honest
// replicas' chain digests agree at every height two of them report.
func TestByzantineReplicasInServer(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries")
	}
	for _, strategy := range config.Strategies {
		t.Run(strategy, func(t *testing.T) {
			const n = 7
			dir := t.TempDir()
			extra := map[string]any{
				"byzantine": map[string]string{"1": strategy, "2": strategy},
				"mem_type":  "stratus",
				"timeout":   400,
				"slow":      100,
				"crash":     1000,
				"restart":   1500,
				"benchmark": map[string]any{"T": 4, "Concurrency": 4, "Batch": 50, "Distribution": "uniform"},
			}
			urls := writeClusterN(t, dir, n, extra)
			srv := startServerN(t, dir, "hotstuff", n)

			client := exec.Command(filepath.Join(binDir, "client"), "-duration", "4s", "-targets", "3,4,5,6,7",
				"-out", filepath.Join(dir, "summary.json"), "-log_dir", dir)
			client.Dir = dir
			client.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			done := make(chan error, 1)
			go func() { out, err := client.CombinedOutput(); done <- describe(err, out) }()

			// While the client runs: sample every replica's (height, digest) and compare at equal
			// heights.
			seen := map[uint64]map[string]map[int]bool{} // height → digest → honest replicas
			heights := map[int][]uint64{}
			deadline := time.Now().Add(10 * time.Second)
			for running := true; running && time.Now().Before(deadline); {
				select {
				case err := <-done:
					require.NoError(t, err)
					running = false
				default:
				}
				for i, u := range urls {
					st, ok := query(t, u)
					if !ok {
						continue
					}
					if i < 2 {
						require.Equal(t, strategy, st.Byzantine, "node %d reports its strategy", i+1)
						continue
					}
					if seen[st.Height] == nil {
						seen[st.Height] = map[string]map[int]bool{}
					}
					if seen[st.Height][st.Digest] == nil {
						seen[st.Height][st.Digest] = map[int]bool{}
					}
					seen[st.Height][st.Digest][i+1] = true
					heights[i+1] = append(heights[i+1], st.Height)
				}
				time.Sleep(15 * time.Millisecond)
			}
			var sum clientSummary
			readJSON(t, filepath.Join(dir, "summary.json"), &sum)
			require.Positive(t, sum.CommittedTx, "honest replicas keep committing under %s", strategy)

			compared := 0
			for h, digests := range seen {
				var who []string
				reporters := 0
				for d, ids := range digests {
					who = append(who, fmt.Sprintf("%v: %s", ids, d))
					reporters += len(ids)
				}
				require.Len(t, digests, 1, "height %d: honest replicas disagree: %s", h, strings.Join(who, ", "))
				if reporters > 1 {
					compared++
				}
			}
			require.GreaterOrEqual(t, compared, 3, "heights at which several honest replicas were compared")
			for id := 3; id <= n; id++ {
				hs := heights[id]
				require.NotEmpty(t, hs)
				require.Greater(t, hs[len(hs)-1], hs[0], "replica %d keeps committing", id)
			}
			if strategy == config.StrategyCrash {
				st, ok := query(t, urls[0])
				require.True(t, ok)
				require.Equal(t, uint64(1), st.Restarts, "the crashed replicas restarted")
			}
			stopServer(t, srv)
		})
	}
}

// getQuiet fetches a URL; a replica that does not answer is reported, not fatal.
func getQuiet(url string) ([]byte, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// describe adds a process's output to its error.
func describe(err error, out []byte) error {
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}
