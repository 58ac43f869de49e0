package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// faultCall requests a fault and returns the status and the JSON answer.
func faultCall(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post(url, "", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// TestFaultEndpointsOverTCP: with faults_http on, /crash takes a replica of a run.sh cluster down
// under client load; it restarts and catches up (same chain digest at the same height as the
// others), and the network faults answer with what they did. Without faults_http the routes are 404.
func TestFaultEndpointsOverTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries")
	}
	dir := scriptDir(t)
	urls := writeCluster(t, dir, map[string]any{"faults_http": true, "timeout": 500})
	var servers []int
	stopAtEnd(t, dir, &servers)
	out, err := script(t, dir, "run.sh", "s-hs")
	require.NoError(t, err, out)
	servers = pidsIn(t, filepath.Join(dir, "server.pid"))
	out, err = script(t, dir, "runClient.sh", "2", "-duration", "8", "-targets", "1,2,4")
	require.NoError(t, err, out)
	require.Eventually(t, func() bool { st, ok := query(t, urls[2]); return ok && st.Height > 5 }, 20*time.Second, 100*time.Millisecond)

	code, body := faultCall(t, urls[2]+"/crash?t=2")
	require.Equal(t, http.StatusOK, code, "%v", body)
	assert.Equal(t, "crash", body["fault"])
	assert.EqualValues(t, 3, body["node"])
	assert.NotEmpty(t, body["until"])
	// While it is down the others keep committing.
	before, _ := query(t, urls[0])
	require.Eventually(t, func() bool { st, _ := query(t, urls[0]); return st.Height > before.Height+3 }, 10*time.Second, 100*time.Millisecond)

	for _, f := range []string{"/slow?ms=20&t=1", "/flaky?p=0.1&t=1", "/drop?to=2&t=1"} {
		code, body := faultCall(t, urls[0]+f)
		assert.Equal(t, http.StatusOK, code, "%s: %v", f, body)
		assert.EqualValues(t, 1, body["node"], f)
	}
	code, body = faultCall(t, urls[0]+"/crash?t=0")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body["error"], "t=0")

	// Let the clients finish, then every replica, the crashed one included, reaches the same
	// height with the same digest.
	require.Eventually(t, func() bool {
		var first nodeState
		for i, u := range urls {
			st, ok := query(t, u)
			if !ok || st.Height == 0 || (i > 0 && (st.Height != first.Height || st.Digest != first.Digest)) {
				return false
			}
			if i == 0 {
				first = st
			}
		}
		return true
	}, 40*time.Second, 200*time.Millisecond, "the crashed replica did not catch up")
	st, _ := query(t, urls[2])
	assert.EqualValues(t, 1, st.Restarts)
}

func TestFaultEndpointsDisabledByDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries")
	}
	dir := t.TempDir()
	urls := writeCluster(t, dir, nil)
	cmd := startServer(t, dir, "hotstuff")
	defer stopServer(t, cmd)
	for _, f := range []string{"/crash?t=1", "/slow?ms=10&t=1", "/flaky?p=0.5&t=1", "/drop?to=2&t=1"} {
		code, _ := faultCall(t, urls[0]+f)
		assert.Equal(t, http.StatusNotFound, code, f)
	}
	st, ok := query(t, urls[0])
	require.True(t, ok)
	assert.Zero(t, st.Restarts)
}
