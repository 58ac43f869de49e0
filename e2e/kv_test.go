package e2e

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/api"
)

// TestKeyValueReads writes a key through one replica of server -sim and reads it back from every
// replica: local reads converge on the committed value, a linearizable read from another replica
// sees a write answered with wait=commit at once, and a key never written is 404.
func TestKeyValueReads(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries")
	}
	for _, alg := range []string{"hotstuff", "s-hs"} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			urls := writeCluster(t, dir, nil)
			srv := startServer(t, dir, alg)
			defer stopServer(t, srv)
			client := &http.Client{Timeout: 30 * time.Second}

			do := func(method, url string, body []byte) (int, http.Header, []byte) {
				t.Helper()
				req, err := http.NewRequest(method, url, bytes.NewReader(body))
				require.NoError(t, err)
				resp, err := client.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				return resp.StatusCode, resp.Header, b
			}

			code, _, body := do(http.MethodPut, urls[0]+"/k?wait=commit", []byte("v1"))
			require.Equal(t, 200, code, string(body))
			for _, u := range urls {
				require.Eventually(t, func() bool {
					code, h, body := do(http.MethodGet, u+"/k", nil)
					if code != 200 || string(body) != "v1" {
						return false
					}
					height, err := strconv.ParseUint(h.Get(api.HeightHeader), 10, 64)
					return err == nil && height > 0 && h.Get("Content-Type") == "application/octet-stream"
				}, 20*time.Second, 50*time.Millisecond, "GET %s/k", u)
			}

			code, _, body = do(http.MethodPut, urls[0]+"/k?wait=commit", []byte("v2"))
			require.Equal(t, 200, code, string(body))
			for i, u := range urls[1:] {
				code, h, body := do(http.MethodGet, u+"/k?consistency=linearizable&timeout=20s", nil)
				require.Equal(t, 200, code, "replica %d: %s", i+2, body)
				require.Equal(t, "v2", string(body), "replica %d", i+2)
				require.NotEmpty(t, h.Get(api.HeightHeader))
			}

			code, _, body = do(http.MethodGet, urls[1]+"/unknown", nil)
			require.Equal(t, 404, code, string(body))
			require.Contains(t, string(body), "not_found")
			code, _, body = do(http.MethodGet, urls[1]+"/k?consistency=eventual", nil)
			require.Equal(t, 400, code, string(body))
			require.Contains(t, string(body), "consistency")
		})
	}
}
