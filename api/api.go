package api

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stratusbft/stratus/mempool"
	"github.com/stratusbft/stratus/replica"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/types"
)

// Node is what the API needs from a replica.
type Node interface {
	ID() types.NodeID
	Submit(ctx context.Context, txs []types.Tx, wait bool) (replica.SubmitResult, error)
	// Get reads a key from the committed state delivered here, which must reach height after.
	Get(ctx context.Context, key string, after uint64) (value []byte, height uint64, found bool, err error)
	// Barrier submits a read barrier and waits until it is delivered here.
	Barrier(ctx context.Context) (core.CommitInfo, error)
}

// Options bounds what a request may ask, and what one client may hold of the server.
type Options struct {
	MaxBodyBytes int64         // largest batch body, POST /txs (default 64 MiB)
	MaxBatchTxs  int           // most transactions per batch (default 100,000)
	MaxTxSize    int           // largest transaction (default 64 KiB): a PUT /{key} value gets what the key leaves
	WaitLimit    time.Duration // longest ?wait=commit (default 20 s, below the client's 30 s request timeout)

	// What the HTTP server built by HTTPServer and Listener allows; see the Default constants.
	ControlBodyBytes int64         // body of the routes that take none (default 4 KiB)
	HeaderTimeout    time.Duration // receiving a request's header (default 10 s)
	BodyTimeout      time.Duration // receiving a request's body (default 10 s)
	IdleTimeout      time.Duration // a keep-alive connection between requests (default 2 min)
	MaxConnsPerAddr  int           // open connections per client IP address (default 256)
	// MaxBodiesInFlight bounds the bytes of request bodies held at once, across all requests,
	// from the start of their reading to the end of their answer (default 4 × MaxBodyBytes).
	MaxBodiesInFlight int64

	// Faults enables /crash, /slow, /flaky and /drop; nil (the default) leaves them 404 like any
	// unknown path.
	Faults FaultTarget
	N      int // replicas in the run: /drop?to= must name one of 1..N other than this node

	// Peers maps every node of the run to its HTTP address (host:port or a base URL); the
	// dashboard's cluster view (/cluster.json) asks the others for their statistics. Nil: the
	// view shows this node alone.
	Peers map[types.NodeID]string
}

func (o *Options) defaults() {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 20
	}
	if o.MaxBatchTxs <= 0 {
		o.MaxBatchTxs = 100_000
	}
	if o.MaxTxSize <= 0 {
		o.MaxTxSize = 64 << 10
	}
	if o.WaitLimit <= 0 {
		o.WaitLimit = 20 * time.Second
	}
	if o.ControlBodyBytes <= 0 {
		o.ControlBodyBytes = DefaultControlBodyBytes
	}
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = DefaultHeaderTimeout
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = DefaultBodyTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxConnsPerAddr <= 0 {
		o.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if o.MaxBodiesInFlight <= 0 {
		o.MaxBodiesInFlight = 4 * o.MaxBodyBytes
	}
}

// Server serves one node's API.
type Server struct {
	node    Node
	stats   *stats.Collector
	opts    Options
	dash    *dashboard
	metrics http.Handler
	refused refusals
	// inflight is the bytes of request bodies reserved by requests still being read or answered.
	inflight atomic.Int64
	// putNonce and putSeq give PUTs without an Idempotency-Key their identities.
	putNonce [8]byte
	putSeq   atomic.Uint64
}

// New returns the API of node.
func New(node Node, col *stats.Collector, opts Options) *Server {
	opts.defaults()
	s := &Server{node: node, stats: col, opts: opts}
	_, _ = rand.Read(s.putNonce[:])
	s.dash = newDashboard(node.ID(), s.nodeStats, opts.Peers)
	s.metrics = metricsHandler(col, s.Refused)
	return s
}

// NodeStats is a node's statistics as GET /query?format=json, /stats and /cluster.json give
// them: the replica's snapshot, and what its HTTP server refused.
type NodeStats struct {
	stats.Snapshot
	HTTPRefused HTTPRefusals `json:"http_refused"`
}

func (s *Server) nodeStats() NodeStats {
	return NodeStats{Snapshot: s.stats.Snapshot(), HTTPRefused: s.Refused()}
}

// Text renders the statistics as "Label: value" lines.
func (n NodeStats) Text() string {
	r := n.HTTPRefused
	return n.Snapshot.Text() + fmt.Sprintf("HTTP refused: %d body too large, %d body timeout, %d header timeout, %d too many connections, %d bodies in flight\n",
		r.BodyTooLarge, r.BodyTimeout, r.HeaderTimeout, r.TooManyConnections, r.BodiesInFlight)
}

// SubmitResponse is the JSON answer to an accepted submission. Accepted counts the transactions
// new at this node, Duplicates those it already had pending or delivered (or that the submission
// repeated): they are not added again, and with wait=commit the answer comes once they are
// delivered too. Accepted + Duplicates is the number of transactions submitted.
type SubmitResponse struct {
	Accepted   int        `json:"accepted"`
	Duplicates int        `json:"duplicates"`
	Delivered  bool       `json:"delivered"`
	View       types.View `json:"view,omitempty"`
	Height     uint64     `json:"height,omitempty"`
	Block      string     `json:"block,omitempty"`
}

// ErrorResponse is the JSON answer to a refused or failed request.
type ErrorResponse struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
}

// ServeHTTP routes: POST /txs, PUT|POST /{key}, GET|HEAD /{key}, GET /query, GET /stats, the
// dashboard (GET / and /dashboard/{asset}, GET /cluster.json), GET /metrics, and with
// Options.Faults GET|POST /crash, /slow, /flaky, /drop; anything else is 404. The fault paths are
// never keys, so a fault request to a node without fault injection is refused instead of stored;
// neither are metrics and cluster.json.
//
// Each route has a body limit (bodyLimitOf): POST /txs the batch limit, PUT|POST /{key} what its
// transaction leaves for the value, every other route ControlBodyBytes. A body above it is
// answered 413 as soon as that is known, and any body must arrive within BodyTimeout (408).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	lim := s.bodyLimitOf(r)
	if !s.admitBody(w, r, lim) {
		return
	}
	switch {
	case path == "/" || strings.HasPrefix(path, "/dashboard/"):
		s.onlyGet(w, r, s.dash.page)
	case path == "/cluster.json":
		s.onlyGet(w, r, s.dash.cluster)
	case path == "/metrics":
		s.onlyGet(w, r, s.metrics.ServeHTTP)
	case path == "/query":
		s.onlyGet(w, r, s.query)
	case path == "/stats":
		s.onlyGet(w, r, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.nodeStats()) })
	case path == "/txs":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "POST a batch to /txs", "method")
			return
		}
		s.submitBatch(w, r, lim)
	case isFaultPath(path):
		s.fault(w, r)
	case isKey(path) && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		s.submitKey(w, r, path[1:], lim)
	case isKey(path) && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		s.getKey(w, r, path[1:])
	default:
		s.notFound(w, r)
	}
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	routes := "POST /txs, PUT|POST /{key}, GET|HEAD /{key}[?consistency=linearizable], GET /query[?format=json], GET /stats, GET / (dashboard), GET /cluster.json, GET /metrics"
	if s.opts.Faults != nil {
		routes += ", GET|POST /crash?t=S, /slow?ms=MS&t=S, /flaky?p=P&t=S, /drop?to=ID&t=S"
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s; routes: %s", r.Method, r.URL.Path, routes), "not_found")
}

// isKey accepts "/name" with one non-empty path segment that is not a reserved route.
func isKey(path string) bool {
	// A zero byte ends the key inside a transaction (key, 0, value): a key holding one would
	// write another key.
	if len(path) < 2 || strings.Contains(path[1:], "/") || strings.IndexByte(path, 0) >= 0 {
		return false
	}
	switch path {
	case "/query", "/stats", "/txs", "/metrics", "/cluster.json":
		return false
	}
	return !isFaultPath(path)
}

func (s *Server) onlyGet(w http.ResponseWriter, r *http.Request, h http.HandlerFunc) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "use GET", "method")
		return
	}
	h(w, r)
}

func (s *Server) query(w http.ResponseWriter, r *http.Request) {
	snap := s.nodeStats()
	switch r.URL.Query().Get("format") {
	case "json":
		writeJSON(w, http.StatusOK, snap)
	case "", "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if strings.Contains(r.Header.Get("Accept"), "text/html") {
			w.Header().Set("Refresh", "1") // a browser re-reads the page every second
		}
		_, _ = io.WriteString(w, snap.Text())
	default:
		writeError(w, http.StatusBadRequest, "format must be text or json", "bad_request")
	}
}

func (s *Server) submitBatch(w http.ResponseWriter, r *http.Request, lim bodyLimit) {
	body, release, ok := s.readBody(w, r, lim)
	if !ok {
		return
	}
	defer release()
	txs, err := types.DecodeBatch(body, s.opts.MaxBatchTxs, s.opts.MaxTxSize)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "bad_batch")
		return
	}
	s.submit(w, r, txs, false)
}

// IdempotencyKeyHeader names a PUT /{key} that a client may send more than once: every attempt
// with the same header value (and the same key and value) is the same write, answered as a
// duplicate after the first. Without it every PUT is a new write.
const IdempotencyKeyHeader = "Idempotency-Key"

// MaxIdempotencyKey is the longest Idempotency-Key accepted, in bytes.
const MaxIdempotencyKey = 255

// putIdentity returns the identity of a PUT /{key}: derived from its Idempotency-Key, or else new
// (this server's random nonce and a counter, so that no two PUTs anywhere share one).
func (s *Server) putIdentity(r *http.Request) (core.PutID, error) {
	var id core.PutID
	values := r.Header.Values(IdempotencyKeyHeader)
	if len(values) == 0 {
		copy(id[:8], s.putNonce[:])
		binary.BigEndian.PutUint64(id[8:], s.putSeq.Add(1))
		return id, nil
	}
	v := values[0]
	switch {
	case len(values) > 1:
		return id, fmt.Errorf("%s given %d times: give it once", IdempotencyKeyHeader, len(values))
	case v == "" || len(v) > MaxIdempotencyKey:
		return id, fmt.Errorf("%s of %d bytes: it must have 1 to %d", IdempotencyKeyHeader, len(v), MaxIdempotencyKey)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return id, fmt.Errorf("%s byte %d is %q: only visible ASCII characters are allowed", IdempotencyKeyHeader, i, v[i])
		}
	}
	h := types.Keccak([]byte("stratus/idempotency-key\x00"), []byte(v))
	copy(id[:], h[:])
	return id, nil
}

// submitKey turns PUT /{key} with a body into one write command (replica.NewPut): its identity,
// the key and the value. The body is read up to what the transaction leaves for the value (lim).
func (s *Server) submitKey(w http.ResponseWriter, r *http.Request, key string, lim bodyLimit) {
	id, err := s.putIdentity(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "bad_request")
		return
	}
	body, release, ok := s.readBody(w, r, lim)
	if !ok {
		return
	}
	defer release()
	if size := core.PutOverhead + len(key) + len(body); size > s.opts.MaxTxSize { // a key that leaves no room even for an empty value
		s.refused.bodyTooLarge.Add(1)
		writeError(w, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("transaction of %d bytes exceeds max_tx_size %d: the key and the write's %d bytes of framing alone take %d",
				size, s.opts.MaxTxSize, core.PutOverhead, core.PutOverhead+len(key)), tooLargeReason)
		return
	}
	s.submit(w, r, []types.Tx{core.NewPut(id, key, body)}, true)
}

// HeightHeader carries the height of the block that delivered a read key's value.
const HeightHeader = "Stratus-Height"

// getKey answers GET /{key} with the committed value. consistency=local (the default) reads the
// state delivered here; consistency=linearizable first submits a read barrier and waits until it
// is delivered here (bounded like wait=commit, by ?timeout= and WaitLimit), so the answer reflects
// every write committed before the request.
func (s *Server) getKey(w http.ResponseWriter, r *http.Request, key string) {
	q := r.URL.Query()
	linearizable := false
	switch q.Get("consistency") {
	case "", "local":
	case "linearizable":
		linearizable = true
	default:
		writeError(w, http.StatusBadRequest,
			fmt.Sprintf("consistency=%q: want local (the default) or linearizable", q.Get("consistency")), "bad_request")
		return
	}
	ctx, cancel, limit, ok := s.deadline(w, r)
	if !ok {
		return
	}
	defer cancel()
	var after uint64 // a linearizable read must see the barrier's block, even across a restart
	if linearizable {
		info, err := s.node.Barrier(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
				writeError(w, http.StatusGatewayTimeout,
					fmt.Sprintf("the read barrier was not delivered within %v", limit), "timeout")
				return
			}
			s.nodeError(w, r, err, "the read barrier")
			return
		}
		after = info.Height
	}
	value, height, found, err := s.node.Get(ctx, key, after)
	switch {
	case err != nil:
		s.nodeError(w, r, err, "the read barrier")
	case !found:
		writeError(w, http.StatusNotFound, fmt.Sprintf("key %q was never written (no committed write delivered here)", key), "not_found")
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set(HeightHeader, strconv.FormatUint(height, 10))
		w.Header().Set("Content-Length", strconv.Itoa(len(value)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(value)
		}
	}
}

// deadline is the request's context bounded by ?timeout= (and WaitLimit); it answers 400 itself
// when the parameter is bad.
func (s *Server) deadline(w http.ResponseWriter, r *http.Request) (context.Context, context.CancelFunc, time.Duration, bool) {
	limit, ok := s.timeout(w, r.URL.Query().Get("timeout"))
	if !ok {
		return nil, nil, 0, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), limit)
	return ctx, cancel, limit, true
}

// timeout parses ?timeout=, bounded by WaitLimit; it answers 400 itself when t is bad.
func (s *Server) timeout(w http.ResponseWriter, t string) (time.Duration, bool) {
	limit := s.opts.WaitLimit
	if t != "" {
		d, err := parseDuration(t)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("timeout=%q: want a duration such as 10s", t), "bad_request")
			return 0, false
		}
		limit = min(d, limit)
	}
	return limit, true
}

// nodeError answers an error the node returned for a submission or a read; lost names what a
// crash cost the request.
func (s *Server) nodeError(w http.ResponseWriter, r *http.Request, err error, lost string) {
	switch {
	case errors.Is(err, mempool.ErrFull):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err.Error(), "mempool_full")
	case errors.Is(err, replica.ErrStopped):
		writeError(w, http.StatusServiceUnavailable, "the replica is shutting down", "stopped")
	case errors.Is(err, replica.ErrCrashed):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the replica is down, or crashed before delivering "+lost+"; it restarts later", "crashed")
	case r.Context().Err() != nil:
		// The client went away; nobody reads an answer.
	default:
		writeError(w, http.StatusServiceUnavailable, err.Error(), "refused")
	}
}

// Answers without a body carry the counts of SubmitResponse in these headers.
const (
	AcceptedHeader   = "Stratus-Accepted"
	DuplicatesHeader = "Stratus-Duplicates"
)

// submit hands txs to the node and answers. With bare, an accepted submission that does not wait
// is answered without a body (the counts in AcceptedHeader and DuplicatesHeader): clients that close answers unread,
// as the original prototype's does, keep their connections, which Go's HTTP client reuses only
// once a body was read to its end.
func (s *Server) submit(w http.ResponseWriter, r *http.Request, txs []types.Tx, bare bool) {
	q := r.URL.Query()
	wait := false
	switch q.Get("wait") {
	case "":
	case "commit":
		wait = true
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("wait=%q: the only value is commit", q.Get("wait")), "bad_request")
		return
	}
	ctx, cancel, limit, ok := s.deadline(w, r)
	if !ok {
		return
	}
	defer cancel()
	info, err := s.node.Submit(ctx, txs, wait)
	switch {
	case err == nil && bare && !wait:
		w.Header().Set(AcceptedHeader, strconv.Itoa(info.Accepted))
		w.Header().Set(DuplicatesHeader, strconv.Itoa(info.Duplicates))
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	case err == nil:
		resp := SubmitResponse{Accepted: info.Accepted, Duplicates: info.Duplicates, Delivered: wait}
		if wait {
			resp.View, resp.Height, resp.Block = info.View, info.Height, info.Block.Hex()
		}
		writeJSON(w, http.StatusOK, resp)
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		writeError(w, http.StatusGatewayTimeout,
			fmt.Sprintf("accepted but not delivered within %v; it stays in the mempool", limit), "timeout")
	default:
		s.nodeError(w, r, err, "the batch")
	}
}

// parseDuration accepts Go durations and plain seconds.
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(n) || math.IsInf(n, 0) || n > 1e9 {
			return 0, fmt.Errorf("%q is not a usable number of seconds", s)
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg, reason string) {
	writeJSON(w, code, ErrorResponse{Error: msg, Reason: reason})
}
