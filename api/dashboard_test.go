package api

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/types"
)

func TestDashboardPageAndAssets(t *testing.T) {
	s, _ := newServer(&fakeNode{})
	rec := do(t, s, http.MethodGet, "/", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	page := rec.Body.String()
	assert.Contains(t, page, `<script src="dashboard/uPlot.iife.min.js">`)
	assert.Contains(t, page, `<link rel="icon" href="data:,">`, "no favicon request")
	for _, asset := range []string{"app.js", "style.css", "uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"} {
		rec := do(t, s, http.MethodGet, "/dashboard/"+asset, nil)
		assert.Equal(t, http.StatusOK, rec.Code, asset)
		assert.NotEmpty(t, rec.Body.Len(), asset)
		assert.NotContains(t, rec.Body.String(), "cdn.", "%s: everything is served by the node", asset)
	}
	for _, bad := range []string{"/dashboard/", "/dashboard/nope.js", "/dashboard/../api.go", "/dashboard/index.html"} {
		assert.Equal(t, http.StatusNotFound, do(t, s, http.MethodGet, bad, nil).Code, bad)
	}
	assert.Equal(t, http.StatusMethodNotAllowed, do(t, s, http.MethodPost, "/", nil).Code)
	assert.Equal(t, http.StatusOK, do(t, s, http.MethodHead, "/", nil).Code)
}

// The dashboard's routes are never keys: a PUT there is refused instead of stored.
func TestDashboardPathsAreReserved(t *testing.T) {
	node := &fakeNode{}
	s, _ := newServer(node)
	for _, p := range []string{"/metrics", "/cluster.json", "/"} {
		rec := do(t, s, http.MethodPut, p, []byte("x"))
		assert.Equal(t, http.StatusMethodNotAllowed, rec.Code, p)
	}
	assert.Empty(t, node.submissions())
	assert.Equal(t, http.StatusNotFound, do(t, s, http.MethodGet, "/dashboard", nil).Code, "/dashboard alone is still a key")
}

// TestClusterView: /cluster.json carries this node's snapshot and each peer's; a peer that refuses
// connections or hangs is shown down with the reason, within the timeouts, and a hanging peer is
// asked at most once at a time however many dashboards poll.
func TestClusterView(t *testing.T) {
	peerCol := stats.New(stats.Info{Node: 2, N: 4, Algorithm: "hotstuff"}, time.Now)
	up := httptest.NewServer(New(&fakeNodeID{id: 2}, peerCol, Options{}))
	defer up.Close()

	refused, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refusedAddr := refused.Addr().String()
	refused.Close()

	var hangHits atomic.Int32
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hangHits.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)

	col := stats.New(stats.Info{Node: 1, N: 4, Algorithm: "hotstuff"}, time.Now)
	s := New(&fakeNode{}, col, Options{Peers: map[types.NodeID]string{
		1: "127.0.0.1:1", 2: strings.TrimPrefix(up.URL, "http://"), 3: refusedAddr, 4: hang.URL,
	}})
	start := time.Now()
	rec := do(t, s, http.MethodGet, "/cluster.json", nil)
	require.Less(t, time.Since(start), 2*time.Second)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var resp ClusterResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
	assert.EqualValues(t, 1, resp.Self)
	assert.Equal(t, 4, resp.N)
	require.Len(t, resp.Nodes, 4)
	byID := map[types.NodeID]NodeStatus{}
	for _, n := range resp.Nodes {
		byID[n.Node] = n
	}
	assert.True(t, byID[1].Self && byID[1].Up)
	var snap stats.Snapshot
	require.True(t, byID[2].Up, "%+v", byID[2])
	require.NoError(t, json.Unmarshal(byID[2].Stats, &snap))
	assert.EqualValues(t, 2, snap.Node)
	assert.False(t, byID[3].Up)
	assert.Equal(t, "connection refused", byID[3].Error)
	assert.Empty(t, byID[3].Stats)
	assert.False(t, byID[4].Up)
	assert.Contains(t, byID[4].Error, "no answer")

	// Many dashboards at once: the hanging peer sees one request at a time.
	hangHits.Store(0)
	time.Sleep(peerFresh)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.Equal(t, http.StatusOK, do(t, s, http.MethodGet, "/cluster.json", nil).Code)
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, hangHits.Load(), int32(2), "requests to a hanging peer are not piled up")
}

// fakeNodeID is a fakeNode with another ID.
type fakeNodeID struct {
	fakeNode
	id types.NodeID
}

func (f *fakeNodeID) ID() types.NodeID { return f.id }

func TestMetricsEndpoint(t *testing.T) {
	s, col := newServer(&fakeNode{})
	col.Submitted(3, 1, false)
	var tr [types.NumKinds]stats.Traffic
	tr[types.KindVote] = stats.Traffic{SentMsgs: 2, SentBytes: 200}
	col.SetGauges(stats.Gauges{MempoolTxs: 5, Load: 1500 * time.Microsecond}, 0, 0, tr)
	rec := do(t, s, http.MethodGet, "/metrics", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	for _, want := range []string{
		"# TYPE stratus_submitted_transactions_total counter",
		`stratus_submitted_transactions_total{node="1",protocol="hotstuff"} 3`,
		`stratus_mempool_pending_transactions{node="1",protocol="hotstuff"} 5`,
		`stratus_load_balancing_load_seconds{node="1",protocol="hotstuff"} 0.0015`,
		`stratus_messages_sent_total{msg_type="Vote",node="1",protocol="hotstuff"} 2`,
		`stratus_sent_bytes_total{msg_type="Vote",node="1",protocol="hotstuff"} 200`,
		"# TYPE stratus_latency_seconds summary",
		`stratus_latency_seconds{node="1",protocol="hotstuff",quantile="0.99"}`,
		`stratus_node_info{byzantine="",engine="hotstuff",mem_type="native",n="4",node="1",protocol="hotstuff"} 1`,
		"go_goroutines",
	} {
		assert.Contains(t, body, want)
	}
	assert.Equal(t, http.StatusMethodNotAllowed, do(t, s, http.MethodPost, "/metrics", nil).Code)
}
