package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/mempool"
	"github.com/stratusbft/stratus/replica"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/types"
)

// fakeNode records submissions and answers as configured; like a replica it counts transactions
// it has seen before as duplicates.
type fakeNode struct {
	mu    sync.Mutex
	got   [][]types.Tx
	seen  map[types.Hash]bool
	err   error
	block bool // wait until ctx ends
	info  core.CommitInfo

	kv       map[string]core.KVEntry // what Get answers
	kvErr    error                   // what Get and Barrier fail with
	barriers int
	readsAt  []int // barriers counted at each Get
}

func (f *fakeNode) ID() types.NodeID { return 1 }

func (f *fakeNode) Submit(ctx context.Context, txs []types.Tx, wait bool) (replica.SubmitResult, error) {
	f.mu.Lock()
	f.got = append(f.got, txs)
	err, block := f.err, f.block
	res := replica.SubmitResult{CommitInfo: f.info}
	if err == nil {
		if f.seen == nil {
			f.seen = map[types.Hash]bool{}
		}
		for _, t := range txs {
			if f.seen[t.ID()] {
				res.Duplicates++
			} else {
				f.seen[t.ID()] = true
				res.Accepted++
			}
		}
	}
	f.mu.Unlock()
	if err != nil {
		return replica.SubmitResult{}, err
	}
	if wait && block {
		<-ctx.Done()
		return replica.SubmitResult{}, ctx.Err()
	}
	if !wait {
		res.CommitInfo = core.CommitInfo{}
	}
	return res, nil
}

func (f *fakeNode) Get(ctx context.Context, key string, after uint64) ([]byte, uint64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readsAt = append(f.readsAt, f.barriers)
	if f.kvErr != nil {
		return nil, 0, false, f.kvErr
	}
	e, ok := f.kv[key]
	return e.Value, e.Height, ok, nil
}

func (f *fakeNode) Barrier(ctx context.Context) (core.CommitInfo, error) {
	f.mu.Lock()
	f.barriers++
	err, block := f.kvErr, f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return core.CommitInfo{}, ctx.Err()
	}
	return f.info, err
}

func (f *fakeNode) submissions() [][]types.Tx {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]types.Tx(nil), f.got...)
}

func newServer(node *fakeNode) (*Server, *stats.Collector) {
	col := stats.New(stats.Info{Node: 1, N: 4, Algorithm: "hotstuff", Engine: "hotstuff", MemType: "native"}, time.Now)
	return New(node, col, Options{MaxBodyBytes: 1 << 16, MaxBatchTxs: 100, MaxTxSize: 256, WaitLimit: time.Second}), col
}

func do(t *testing.T, h http.Handler, method, target string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeErr(t *testing.T, rec *httptest.ResponseRecorder) ErrorResponse {
	t.Helper()
	var e ErrorResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	return e
}

func TestSubmitBatch(t *testing.T) {
	node := &fakeNode{info: core.CommitInfo{View: 7, Height: 5, Block: types.Keccak([]byte("b"))}}
	s, _ := newServer(node)
	body := types.AppendBatch(nil, [][]byte{[]byte("one"), []byte("two")})

	rec := do(t, s, http.MethodPost, "/txs", body)
	require.Equal(t, http.StatusOK, rec.Code)
	var resp SubmitResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
	require.Equal(t, SubmitResponse{Accepted: 2}, resp)

	rec = do(t, s, http.MethodPost, "/txs?wait=commit", body)
	require.Equal(t, http.StatusOK, rec.Code)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
	require.Equal(t, 0, resp.Accepted)
	require.Equal(t, 2, resp.Duplicates)
	require.True(t, resp.Delivered)
	require.Equal(t, uint64(5), resp.Height)
	require.Equal(t, types.View(7), resp.View)
	require.Equal(t, node.info.Block.Hex(), resp.Block)

	got := node.submissions()
	require.Len(t, got, 2)
	require.Equal(t, []byte("one"), got[0][0].Data())
	require.Equal(t, types.IDHash([]byte("two")), got[0][1].ID())
}

// TestSubmitAnswersDuplicates: the answer names both counts, as the node reported them, under
// the JSON keys accepted and duplicates, also when every transaction is a duplicate.
func TestSubmitAnswersDuplicates(t *testing.T) {
	node := &fakeNode{}
	s, _ := newServer(node)
	body := types.AppendBatch(nil, [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	rec := do(t, s, http.MethodPost, "/txs", types.AppendBatch(nil, [][]byte{[]byte("b")}))
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, `{"accepted":1,"duplicates":0,"delivered":false}`, rec.Body.String())
	rec = do(t, s, http.MethodPost, "/txs", body)
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, `{"accepted":2,"duplicates":1,"delivered":false}`, rec.Body.String())

	// A key without wait: the same counts, in headers. A PUT is a duplicate only as the retry
	// of one with the same Idempotency-Key.
	put := func(target string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPut, target, nil)
		req.Header.Set(IdempotencyKeyHeader, "retried")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	for i, want := range [][2]string{{"1", "0"}, {"0", "1"}} {
		rec = put("/key")
		require.Equal(t, http.StatusOK, rec.Code)
		require.Empty(t, rec.Body.String(), "PUT %d", i+1)
		require.Equal(t, want[0], rec.Header().Get(AcceptedHeader), "PUT %d", i+1)
		require.Equal(t, want[1], rec.Header().Get(DuplicatesHeader), "PUT %d", i+1)
	}
	node.info = core.CommitInfo{View: 3, Height: 2, Block: types.Keccak([]byte("blk"))}
	rec = put("/key?wait=commit")
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, fmt.Sprintf(`{"accepted":0,"duplicates":1,"delivered":true,"view":3,"height":2,"block":%q}`, node.info.Block.Hex()), rec.Body.String())
}

func TestSubmitKey(t *testing.T) {
	node := &fakeNode{}
	s, _ := newServer(node)
	for _, m := range []string{http.MethodPut, http.MethodPost, http.MethodPut} {
		rec := do(t, s, m, "/alice", []byte("42"))
		require.Equal(t, http.StatusOK, rec.Code, m)
		// No body without wait (clients that close answers unread keep their connection); the
		// counts are in headers. Every PUT is a new command, even of the same value.
		require.Empty(t, rec.Body.Bytes(), m)
		require.Equal(t, "0", rec.Header().Get("Content-Length"), m)
		require.Equal(t, "1", rec.Header().Get(AcceptedHeader), m)
		require.Equal(t, "0", rec.Header().Get(DuplicatesHeader), m)
	}
	got := node.submissions()
	require.Len(t, got, 3)
	ids := map[types.Hash]bool{}
	for _, sub := range got {
		require.Len(t, sub, 1)
		key, value, ok := core.SplitKV(sub[0].Data())
		require.True(t, ok, "a PUT submits a write")
		require.Equal(t, "alice", string(key))
		require.Equal(t, "42", string(value))
		ids[sub[0].ID()] = true
	}
	require.Len(t, ids, 3, "three PUTs of the same value are three transactions")

	// A retry with an Idempotency-Key is the same transaction: answered as a duplicate. Another
	// key, or another server's PUT with the same header, is the same identity too.
	other, _ := newServer(node)
	for i, h := range []http.Handler{s, s, other} {
		req := httptest.NewRequest(http.MethodPut, "/alice", strings.NewReader("42"))
		req.Header.Set(IdempotencyKeyHeader, "c0ffee-attempt-1")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, strconv.Itoa(min(i, 1)), rec.Header().Get(DuplicatesHeader), "attempt %d", i)
	}
	// A bad Idempotency-Key is refused before the body is read, naming what is wrong.
	for value, want := range map[string]string{
		"":                       "of 0 bytes",
		strings.Repeat("x", 256): "of 256 bytes: it must have 1 to 255",
		"has space":              `byte 3 is ' ': only visible ASCII`,
	} {
		req := httptest.NewRequest(http.MethodPut, "/alice", strings.NewReader("42"))
		req.Header.Set(IdempotencyKeyHeader, value)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		require.Equal(t, http.StatusBadRequest, rec.Code, value)
		e := decodeErr(t, rec)
		require.Equal(t, "bad_request", e.Reason)
		require.Contains(t, e.Error, "Idempotency-Key "+want)
	}
	req := httptest.NewRequest(http.MethodPut, "/alice", strings.NewReader("42"))
	req.Header.Add(IdempotencyKeyHeader, "a")
	req.Header.Add(IdempotencyKeyHeader, "b")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Contains(t, decodeErr(t, rec).Error, "given 2 times")

	// With wait=commit the answer carries the commit as JSON.
	rec = do(t, s, http.MethodPut, "/alice?wait=commit", []byte("43"))
	require.Equal(t, http.StatusOK, rec.Code)
	var resp SubmitResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
	require.Equal(t, 1, resp.Accepted)
	require.True(t, resp.Delivered)
}

func TestSubmitErrors(t *testing.T) {
	cases := []struct {
		name   string
		node   *fakeNode
		method string
		target string
		body   []byte
		code   int
		reason string
		text   string
	}{
		{"garbage batch", &fakeNode{}, "POST", "/txs", []byte{0xff, 0xff}, 400, "bad_batch", "bad length prefix"},
		{"empty batch", &fakeNode{}, "POST", "/txs", nil, 400, "bad_batch", "no transactions"},
		{"truncated", &fakeNode{}, "POST", "/txs", []byte{10, 'a'}, 400, "bad_batch", "truncated"},
		{"tx too big", &fakeNode{}, "POST", "/txs", types.AppendBatch(nil, [][]byte{make([]byte, 300)}), 400, "bad_batch", "max_tx_size"},
		{"too many", &fakeNode{}, "POST", "/txs", bytes.Repeat([]byte{1, 'x'}, 101), 400, "bad_batch", "more than 100"},
		{"body too big", &fakeNode{}, "POST", "/txs", make([]byte, 1<<17), 413, "too_large", "exceeds"},
		{"key too big", &fakeNode{}, "PUT", "/k", make([]byte, 300), 413, "too_large", "max_tx_size"},
		{"bad wait", &fakeNode{}, "POST", "/txs?wait=yes", types.AppendBatch(nil, [][]byte{[]byte("a")}), 400, "bad_request", "commit"},
		{"bad timeout", &fakeNode{}, "POST", "/txs?wait=commit&timeout=NaN", types.AppendBatch(nil, [][]byte{[]byte("a")}), 400, "bad_request", "timeout"},
		{"full", &fakeNode{err: &mempool.FullError{HeldBytes: 10, AddBytes: 5, Limit: 12}}, "POST", "/txs", types.AppendBatch(nil, [][]byte{[]byte("a")}), 503, "mempool_full", "memsize"},
		{"stopped", &fakeNode{err: replica.ErrStopped}, "POST", "/txs", types.AppendBatch(nil, [][]byte{[]byte("a")}), 503, "stopped", "shutting down"},
		{"crashed", &fakeNode{err: replica.ErrCrashed}, "POST", "/txs", types.AppendBatch(nil, [][]byte{[]byte("a")}), 503, "crashed", "restarts later"},
		{"not delivered in time", &fakeNode{block: true}, "POST", "/txs?wait=commit&timeout=0.05", types.AppendBatch(nil, [][]byte{[]byte("a")}), 504, "timeout", "not delivered"},
		{"wrong method on txs", &fakeNode{}, "GET", "/txs", nil, 405, "method", "POST"},
		{"wrong method on query", &fakeNode{}, "POST", "/query", nil, 405, "method", "GET"},
		{"get a key never written", &fakeNode{}, "GET", "/alice", nil, 404, "not_found", "never written"},
		{"bad consistency", &fakeNode{}, "GET", "/alice?consistency=strong", nil, 400, "bad_request", "consistency"},
		{"bad read timeout", &fakeNode{}, "GET", "/alice?consistency=linearizable&timeout=x", nil, 400, "bad_request", "timeout"},
		{"barrier not delivered in time", &fakeNode{block: true}, "GET", "/alice?consistency=linearizable&timeout=0.05", nil, 504, "timeout", "read barrier"},
		{"delete a key", &fakeNode{}, "DELETE", "/alice", nil, 404, "not_found", "no route"},
		{"nested path", &fakeNode{}, "PUT", "/a/b", []byte("x"), 404, "not_found", "no route"},
		{"key with a zero byte", &fakeNode{}, "PUT", "/a%00b", []byte("x"), 404, "not_found", "no route"},
		{"root is the dashboard", &fakeNode{}, "DELETE", "/", nil, 405, "method", "GET"},
		{"bad format", &fakeNode{}, "GET", "/query?format=xml", nil, 400, "bad_request", "format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newServer(tc.node)
			rec := do(t, s, tc.method, tc.target, tc.body)
			require.Equal(t, tc.code, rec.Code, rec.Body.String())
			e := decodeErr(t, rec)
			require.Equal(t, tc.reason, e.Reason)
			require.Contains(t, e.Error, tc.text)
			if tc.code == 503 && tc.reason == "mempool_full" {
				require.Equal(t, "1", rec.Header().Get("Retry-After"))
			}
			if tc.code >= 400 && tc.code != 503 && tc.code != 504 {
				require.Empty(t, tc.node.submissions(), "a refused request must not submit anything")
			}
		})
	}
}

func TestQuery(t *testing.T) {
	s, col := newServer(&fakeNode{})
	col.Event(consensus.ViewChange{View: 9, Leader: 2})
	col.Delivered(&types.Block{View: 8, Height: 3}, 120, 0, []time.Duration{5 * time.Millisecond}, types.Keccak([]byte("digest")))

	rec := do(t, s, http.MethodGet, "/query", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain"))
	body := rec.Body.String()
	for _, label := range []string{"View: 9", "Leader: 2", "Committed txs: 120", "Throughput:", "Latency:", "Ave. View Time:"} {
		require.Contains(t, body, label)
	}

	for _, target := range []string{"/query?format=json", "/stats"} {
		rec = do(t, s, http.MethodGet, target, nil)
		require.Equal(t, http.StatusOK, rec.Code)
		var snap map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &snap))
		for _, key := range []string{"node", "view", "leader", "committed_blocks", "committed_tx", "throughput_tps", "latency_ms", "uptime_s"} {
			require.Contains(t, snap, key)
		}
		require.Equal(t, 120.0, snap["committed_tx"])
		lat := snap["latency_ms"].(map[string]any)
		for _, k := range []string{"mean", "p50", "p95", "p99"} {
			require.Contains(t, lat, k)
		}
	}

	// Reading never resets anything.
	rec2 := do(t, s, http.MethodGet, "/query?format=json", nil)
	var a, b map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a))
	require.NoError(t, json.Unmarshal(rec2.Body.Bytes(), &b))
	require.Equal(t, a["committed_tx"], b["committed_tx"])

	// A browser gets a page that refreshes itself.
	req := httptest.NewRequest(http.MethodGet, "/query", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	rr := httptest.NewRecorder()
	s.ServeHTTP(rr, req)
	require.Equal(t, "1", rr.Header().Get("Refresh"))
}

// FuzzSubmit throws arbitrary bodies and paths at the API: it must answer with a known status and
// a JSON body (or none, with the count in a header, for a key stored without wait), never panic,
// and never submit from a request it refused.
func FuzzSubmit(f *testing.F) {
	f.Add("/txs", []byte{3, 'a', 'b', 'c'})
	f.Add("/txs?wait=commit", types.AppendBatch(nil, [][]byte{[]byte("x"), []byte("yz")}))
	f.Add("/k", []byte("v"))
	f.Add("/txs", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add("/query", []byte{})
	f.Fuzz(func(t *testing.T, target string, body []byte) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n#") {
			return
		}
		node := &fakeNode{}
		s, _ := newServer(node)
		req, err := http.NewRequest(http.MethodPost, "http://node"+target, bytes.NewReader(body))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 404, 405, 413:
		default:
			t.Fatalf("status %d for POST %q", rec.Code, target)
		}
		var v map[string]any
		if rec.Code == 200 && rec.Header().Get(AcceptedHeader) != "" {
			require.Empty(t, rec.Body.Bytes(), "a bare answer has no body")
		} else if req.URL.Path != "/query" || rec.Code != 200 {
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), "body %q", rec.Body.String())
		}
		if rec.Code != 200 {
			require.Empty(t, node.submissions())
		}
	})
}

func TestGetKey(t *testing.T) {
	node := &fakeNode{kv: map[string]core.KVEntry{"alice": {Value: []byte("v\x00\xff"), Height: 9}}}
	s, _ := newServer(node)

	rec := do(t, s, "GET", "/alice", nil)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	require.Equal(t, "v\x00\xff", rec.Body.String())
	require.Equal(t, "application/octet-stream", rec.Header().Get("Content-Type"))
	require.Equal(t, "9", rec.Header().Get(HeightHeader))
	require.Equal(t, 0, node.barriers, "a local read does not go through the log")

	rec = do(t, s, "GET", "/alice?consistency=local", nil)
	require.Equal(t, 200, rec.Code)
	require.Equal(t, 0, node.barriers)

	rec = do(t, s, "HEAD", "/alice", nil)
	require.Equal(t, 200, rec.Code)
	require.Empty(t, rec.Body.Bytes())
	require.Equal(t, "9", rec.Header().Get(HeightHeader))
	require.Equal(t, "3", rec.Header().Get("Content-Length"))

	rec = do(t, s, "GET", "/alice?consistency=linearizable", nil)
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "v\x00\xff", rec.Body.String())
	require.Equal(t, 1, node.barriers)
	require.Equal(t, 1, node.readsAt[len(node.readsAt)-1], "the read comes after the barrier")

	rec = do(t, s, "GET", "/bob", nil)
	require.Equal(t, 404, rec.Code)
	e := decodeErr(t, rec)
	require.Equal(t, "not_found", e.Reason)
	require.Contains(t, e.Error, "never written")

	rec = do(t, s, "HEAD", "/bob", nil)
	require.Equal(t, 404, rec.Code)

	// Reserved paths are not keys.
	rec = do(t, s, "GET", "/stats", nil)
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	require.Empty(t, node.submissions())
}
