package api

import (
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/stats"
)

// The peer connections the transport refused (the counts replica.publish hands the collector) are
// in /query's text and JSON and in /metrics, by reason.
func TestPeerConnectionRefusalsAreShown(t *testing.T) {
	col := stats.New(stats.Info{Node: 1, N: 4, Algorithm: "hotstuff"}, time.Now)
	col.SetConnRefused(map[string]uint64{"per-source cap": 3, "evicted": 5, "handshake failed": 2})
	s := col.Snapshot()
	assert.Equal(t, uint64(5), s.PeerConnRefused["evicted"])
	assert.Contains(t, s.Text(), "Peer connections refused: 5 evicted, 2 handshake failed, 3 per-source cap")
	rec := httptest.NewRecorder()
	metricsHandler(col, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	for reason, v := range map[string]string{"per_source_cap": "3", "evicted": "5", "handshake_failed": "2"} {
		assert.Contains(t, string(body), `stratus_peer_connections_refused_total{node="1",protocol="hotstuff",reason="`+reason+`"} `+v)
	}
}
