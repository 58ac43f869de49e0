package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An original-style client sends PUT /<key> and closes every response body unread. Go's HTTP
// client reuses a connection only when the body was read to its end, so an answer with a body
// costs such a client a new TCP connection per request (thousands in TIME-WAIT within seconds).
// Answers without wait carry their counts in headers and no body: the connections are kept.
func TestOriginalStyleClientKeepsItsConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries")
	}
	dir := t.TempDir()
	urls := writeCluster(t, dir, nil)
	cmd := startServer(t, dir, "hotstuff")
	defer stopServer(t, cmd)

	var dials atomic.Int64
	d := &net.Dialer{Timeout: 5 * time.Second}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 16,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
	}}
	const workers, each = 4, 250
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				req, err := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/key-%d-%d", urls[0], w, i), bytes.NewReader([]byte("v")))
				if err != nil {
					failed.Add(1)
					continue
				}
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				_ = resp.Body.Close() // unread, as the original client does
			}
		}(w)
	}
	wg.Wait()
	require.Zero(t, failed.Load(), "requests failed")
	t.Logf("%d connections for %d requests", dials.Load(), workers*each)
	assert.LessOrEqual(t, dials.Load(), int64(2*workers), "%d connections for %d requests", dials.Load(), workers*each)
}
