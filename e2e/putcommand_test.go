package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPutIsACommand: every PUT /<key> is a write of its own. The original prototype's client
// writes fixed keys with a fixed value in every run; a second run must commit as the first did,
// not be answered as duplicates. A key written hello-world, v2, hello-world reads hello-world. A
// retry with an Idempotency-Key is answered as a duplicate, with the first attempt's commit.
func TestPutIsACommand(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries")
	}
	dir := t.TempDir()
	urls := writeCluster(t, dir, nil)
	cmd := startServer(t, dir, "s-hs")
	defer stopServer(t, cmd)
	client := &http.Client{Timeout: 30 * time.Second}

	put := func(url, value, idem string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(value))
		require.NoError(t, err)
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		return resp, string(body)
	}
	query := func() map[string]any {
		t.Helper()
		resp, err := client.Get(urls[0] + "/query?format=json")
		require.NoError(t, err)
		defer resp.Body.Close()
		var q map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&q))
		return q
	}

	// Two runs of an original-style client: 50 fixed keys, the same value.
	const keys = 50
	for run := 0; run < 2; run++ {
		for i := 0; i < keys; i++ {
			resp, _ := put(fmt.Sprintf("%s/k%d", urls[0], i), "value", "")
			require.Equal(t, "1", resp.Header.Get("Stratus-Accepted"), "run %d key %d", run+1, i)
			require.Equal(t, "0", resp.Header.Get("Stratus-Duplicates"), "run %d key %d", run+1, i)
		}
	}
	q := query()
	require.EqualValues(t, 2*keys, q["submitted_tx"])
	require.EqualValues(t, 0, q["submitted_duplicate_tx"])
	require.Eventually(t, func() bool { return query()["committed_tx"].(float64) >= 2*keys }, 20*time.Second, 100*time.Millisecond,
		"the second run's writes commit too")

	// Re-writing a key's earlier value applies.
	for _, v := range []string{"hello-world", "v2", "hello-world"} {
		put(urls[0]+"/greeting?wait=commit", v, "")
	}
	resp, err := client.Get(urls[0] + "/greeting")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, "hello-world", string(body))

	// A retry: the same Idempotency-Key is the same command, answered with the first commit.
	_, first := put(urls[0]+"/greeting?wait=commit", "retried", "attempt-7f3a")
	_, again := put(urls[0]+"/greeting?wait=commit", "retried", "attempt-7f3a")
	var a, b map[string]any
	require.NoError(t, json.Unmarshal([]byte(first), &a))
	require.NoError(t, json.Unmarshal([]byte(again), &b))
	require.EqualValues(t, 1, a["accepted"], first)
	require.EqualValues(t, 0, b["accepted"], again)
	require.EqualValues(t, 1, b["duplicates"], again)
	require.Equal(t, a["height"], b["height"], "the duplicate names the first attempt's commit")
	require.Equal(t, a["block"], b["block"])
	require.EqualValues(t, 1, query()["submitted_duplicate_tx"])
}
