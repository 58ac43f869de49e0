package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/types"
)

// serveHTTP runs the API of node with opts as a node does (HTTPServer on Listener) on a free
// loopback port and returns it with its address.
func serveHTTP(t *testing.T, node Node, opts Options) (*Server, string) {
	t.Helper()
	col := stats.New(stats.Info{Node: 1, N: 4, Algorithm: "hotstuff", Engine: "hotstuff", MemType: "native"}, time.Now)
	s := New(node, col, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := s.HTTPServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(s.Listener(ln))
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return s, ln.Addr().String()
}

// dialFrom connects to addr from the loopback address from (127.0.0.1, 127.0.0.2, ...).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends one request on c and reads its answer (nil when the connection ended first).
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, req string) (*http.Response, []byte) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return nil, nil
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, nil
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body
}

const getStats = "GET /stats HTTP/1.1\r\nHost: node\r\n\r\n"

// sendLarge sends a request with a body of size bytes (declared in Content-Length, or chunked)
// from one reused buffer, and returns the answer as soon as it comes.
func sendLarge(t *testing.T, addr, target string, size int, chunked bool) (*http.Response, []byte) {
	t.Helper()
	c := dialFrom(t, "127.0.0.1", addr)
	hdr := "PUT " + target + " HTTP/1.1\r\nHost: node\r\n"
	if chunked {
		hdr += "Transfer-Encoding: chunked\r\n\r\n"
	} else {
		hdr += "Content-Length: " + strconv.Itoa(size) + "\r\n\r\n"
	}
	buf := make([]byte, 64<<10)
	chunkHdr := []byte(strconv.FormatInt(int64(len(buf)), 16) + "\r\n")
	go func() {
		if _, err := io.WriteString(c, hdr); err != nil {
			return
		}
		for sent := 0; sent < size; sent += len(buf) {
			if chunked {
				if _, err := c.Write(chunkHdr); err != nil {
					return
				}
			}
			if _, err := c.Write(buf); err != nil {
				return // the server closed the connection: it read no further
			}
			if chunked {
				if _, err := c.Write([]byte("\r\n")); err != nil {
					return
				}
			}
		}
		if chunked {
			_, _ = c.Write([]byte("0\r\n\r\n"))
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body
}

// TestLargePutRefusedAtRouteLimit: a 32 MiB PUT /{key} is refused 413 after reading little more
// than what the route accepts (a transaction: max_tx_size less the key and the write's framing), whether
// its length is declared or not; the answer names the limit. The allocations of the whole
// exchange, client included, stay within 4 times that limit and a fixed overhead: reading the
// body up to the 64 MiB batch limit allocated 105.8 MiB.
func TestLargePutRefusedAtRouteLimit(t *testing.T) {
	s, addr := serveHTTP(t, &fakeNode{}, Options{})
	const size = 32 << 20
	limit := int64(s.opts.MaxTxSize) - int64(len("k")) - int64(core.PutOverhead)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			before := s.Refused().BodyTooLarge
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			resp, body := sendLarge(t, addr, "/k", size, chunked)
			runtime.ReadMemStats(&m1)
			alloc := m1.TotalAlloc - m0.TotalAlloc
			t.Logf("32 MiB PUT (chunked %v): %d, %d bytes allocated (route limit %d)", chunked, resp.StatusCode, alloc, limit)

			require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, string(body))
			var e ErrorResponse
			require.NoError(t, json.Unmarshal(body, &e), string(body))
			assert.Equal(t, "too_large", e.Reason)
			assert.Contains(t, e.Error, fmt.Sprintf("limit of %d bytes", limit))
			assert.Contains(t, e.Error, "max_tx_size 65536")
			if !chunked {
				assert.Contains(t, e.Error, fmt.Sprintf("a body of %d bytes", size))
			}
			assert.Less(t, alloc, uint64(4*limit+512<<10), "allocated while refusing a 32 MiB body")
			assert.Equal(t, before+1, s.Refused().BodyTooLarge)
		})
	}
}

// TestRouteBodyLimits: each route has its own limit, named in the 413: the batch route its batch
// limit, a key its transaction, the routes that take no body a few KiB; a body within the limit
// of a route that takes none is ignored.
func TestRouteBodyLimits(t *testing.T) {
	node := &fakeNode{}
	s, addr := serveHTTP(t, node, Options{MaxBodyBytes: 1 << 20, MaxTxSize: 1000})
	cases := []struct {
		method, target string
		size           int
		code           int
		text           string
	}{
		{"POST", "/txs", 1<<20 + 1, 413, "POST /txs: a body of 1048577 bytes (Content-Length) exceeds this route's limit of 1048576 bytes (the batch body limit)"},
		{"PUT", "/abc", 968, 413, "PUT /{key}: a body of 968 bytes (Content-Length) exceeds this route's limit of 967 bytes (max_tx_size 1000 less the key (3 bytes) and the write's 30 bytes of framing"},
		{"PUT", "/abc", 967, 200, ""},
		{"GET", "/query", DefaultControlBodyBytes + 1, 413, "GET /query: a body of 4097 bytes (Content-Length) exceeds this route's limit of 4096 bytes (this route takes no body"},
		{"GET", "/query", 100, 200, ""},
		{"POST", "/metrics", DefaultControlBodyBytes + 1, 413, "limit of 4096 bytes"},
	}
	for _, tc := range cases {
		c := dialFrom(t, "127.0.0.1", addr)
		req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: node\r\nContent-Length: %d\r\n\r\n%s", tc.method, tc.target, tc.size, strings.Repeat("x", tc.size))
		resp, body := roundTrip(t, c, bufio.NewReader(c), req)
		require.NotNil(t, resp, "%s %s", tc.method, tc.target)
		require.Equal(t, tc.code, resp.StatusCode, "%s %s: %s", tc.method, tc.target, body)
		if tc.text != "" {
			assert.Contains(t, string(body), tc.text)
		}
	}
	assert.Equal(t, uint64(4), s.Refused().BodyTooLarge)
	require.Len(t, node.submissions(), 1)
	assert.Len(t, node.submissions()[0][0].Data(), 1000, "the largest value fits the transaction exactly")
}

// TestSlowBodyCutOff: a body sent a byte every 200 ms is cut off when the body timeout passes
// (408, the connection closed), not held for as long as the client keeps sending.
func TestSlowBodyCutOff(t *testing.T) {
	const bodyTimeout = time.Second
	s, addr := serveHTTP(t, &fakeNode{}, Options{BodyTimeout: bodyTimeout})
	c := dialFrom(t, "127.0.0.1", addr)
	_, err := io.WriteString(c, "PUT /slow HTTP/1.1\r\nHost: node\r\nContent-Length: 1000\r\n\r\n")
	require.NoError(t, err)
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; i < 1000; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := c.Write([]byte{'x'}); err != nil {
				return
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	held := time.Since(start)
	body, _ := io.ReadAll(resp.Body)
	t.Logf("slow body answered %d after %v", resp.StatusCode, held)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, string(body))
	assert.Contains(t, string(body), "did not arrive within 1s")
	assert.Contains(t, string(body), `"reason":"body_timeout"`)
	assert.GreaterOrEqual(t, held, bodyTimeout-100*time.Millisecond)
	assert.Less(t, held, bodyTimeout+time.Second, "held past the body timeout")
	// The connection is closed after the answer: an end, or a reset when a byte of the client's
	// arrived after the close.
	_, err = br.ReadByte()
	assert.True(t, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET), "the connection is closed after the answer: %v", err)
	assert.Equal(t, uint64(1), s.Refused().BodyTimeout)
}

// TestWaitOutlastsBodyTimeout: the body deadline ends with the body: a PUT that waits for its
// commit, and a linearizable read, wait their whole timeout even when it is longer than the body
// and header timeouts together.
func TestWaitOutlastsBodyTimeout(t *testing.T) {
	s, addr := serveHTTP(t, &fakeNode{block: true}, Options{BodyTimeout: 300 * time.Millisecond,
		HeaderTimeout: 300 * time.Millisecond, WaitLimit: 5 * time.Second})
	for _, req := range []string{
		"PUT /k?wait=commit&timeout=1.5 HTTP/1.1\r\nHost: node\r\nContent-Length: 2\r\n\r\nv1",
		"GET /k?consistency=linearizable&timeout=1.5 HTTP/1.1\r\nHost: node\r\n\r\n",
	} {
		c := dialFrom(t, "127.0.0.1", addr)
		start := time.Now()
		resp, body := roundTrip(t, c, bufio.NewReader(c), req)
		require.NotNil(t, resp, req)
		assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, string(body))
		assert.GreaterOrEqual(t, time.Since(start), 1400*time.Millisecond, req)
	}
	assert.Zero(t, s.Refused().Total())
}

// TestConnectionCapPerAddress: above MaxConnsPerAddr open connections from one address, a new
// one is answered 503 too_many_connections (readable by a plain Go client) and closed, while
// another address is still served; closing one connection makes room again.
func TestConnectionCapPerAddress(t *testing.T) {
	const cap = 4
	s, addr := serveHTTP(t, &fakeNode{}, Options{MaxConnsPerAddr: cap})
	var open []net.Conn
	for i := 0; i < cap; i++ {
		c := dialFrom(t, "127.0.0.1", addr)
		resp, _ := roundTrip(t, c, bufio.NewReader(c), getStats)
		require.NotNil(t, resp, "connection %d", i+1)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		open = append(open, c)
	}

	extra := dialFrom(t, "127.0.0.1", addr)
	br := bufio.NewReader(extra)
	resp, body := roundTrip(t, extra, br, getStats)
	require.NotNil(t, resp, "the refused connection gets an answer")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	var e ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	assert.Equal(t, "too_many_connections", e.Reason)
	assert.Contains(t, e.Error, "too many connections from 127.0.0.1: at most 4")
	_, err := br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "then closed")

	// A plain client reads the refusal as an answer.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	r, err := client.Get("http://" + addr + "/stats")
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, r.StatusCode)

	// Another address is served.
	other := dialFrom(t, "127.0.0.2", addr)
	resp, body = roundTrip(t, other, bufio.NewReader(other), getStats)
	require.NotNil(t, resp, "127.0.0.2 is served")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))

	// The connections still open are still served; one closed makes room for a new one.
	resp, _ = roundTrip(t, open[0], bufio.NewReader(open[0]), getStats)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, open[1].Close())
	require.Eventually(t, func() bool {
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}).Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		resp, _ := roundTrip(t, c, bufio.NewReader(c), getStats)
		return resp != nil && resp.StatusCode == http.StatusOK
	}, 3*time.Second, 50*time.Millisecond, "a closed connection frees its place")
	assert.GreaterOrEqual(t, s.Refused().TooManyConnections, uint64(2))
}

// TestRefusalsCounted: every reason is counted in /query (JSON and text), /stats, /cluster.json
// and /metrics; a connection that never sends anything, or stays idle between requests, is
// closed by its timeout without being counted.
func TestRefusalsCounted(t *testing.T) {
	s, addr := serveHTTP(t, &fakeNode{}, Options{MaxTxSize: 100, BodyTimeout: 300 * time.Millisecond,
		HeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond, MaxConnsPerAddr: 3})
	closed := func(c net.Conn) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := io.Copy(io.Discard, c)
		require.NoError(t, err, "the server closes the connection")
	}

	// 413.
	c := dialFrom(t, "127.0.0.1", addr)
	resp, _ := roundTrip(t, c, bufio.NewReader(c), "PUT /k HTTP/1.1\r\nHost: node\r\nContent-Length: 200\r\n\r\n"+strings.Repeat("x", 200))
	require.NotNil(t, resp)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	// 408.
	c = dialFrom(t, "127.0.0.1", addr)
	resp, _ = roundTrip(t, c, bufio.NewReader(c), "PUT /k HTTP/1.1\r\nHost: node\r\nContent-Length: 10\r\n\r\nx")
	require.NotNil(t, resp)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	// A header that stops half-way.
	c = dialFrom(t, "127.0.0.1", addr)
	_, err := io.WriteString(c, "GET /stats HTTP/1.1\r\nHo")
	require.NoError(t, err)
	closed(c)
	// Silent and idle connections: closed, not counted.
	closed(dialFrom(t, "127.0.0.1", addr))
	c = dialFrom(t, "127.0.0.1", addr)
	br := bufio.NewReader(c)
	resp, _ = roundTrip(t, c, br, getStats)
	require.NotNil(t, resp)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = br.ReadByte()
	require.ErrorIs(t, err, io.EOF)
	// Too many connections: three held, the fourth refused.
	for i := 0; i < 3; i++ {
		c := dialFrom(t, "127.0.0.1", addr)
		_, err := io.WriteString(c, "GET /stats HTTP/1.1\r\nHost: node\r\n") // keeps them open until the header timeout
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		c := dialFrom(t, "127.0.0.1", addr)
		resp, _ := roundTrip(t, c, bufio.NewReader(c), getStats)
		return resp != nil && resp.StatusCode == http.StatusServiceUnavailable
	}, 3*time.Second, 20*time.Millisecond)

	require.Eventually(t, func() bool { return s.Refused().HeaderTimeout == 4 }, 3*time.Second, 20*time.Millisecond,
		"the half header and the three held ones")
	want := HTTPRefusals{BodyTooLarge: 1, BodyTimeout: 1, HeaderTimeout: 4, TooManyConnections: 1}
	require.Equal(t, want, s.Refused())

	// Read from other addresses, each below its cap: the server frees a closed connection's
	// place only once it reads the close, which a loaded machine may delay past the next dial.
	from := 1
	get := func(path string) string {
		from++
		c := dialFrom(t, fmt.Sprintf("127.0.0.%d", from), addr)
		defer c.Close()
		resp, body := roundTrip(t, c, bufio.NewReader(c), "GET "+path+" HTTP/1.1\r\nHost: node\r\n\r\n")
		require.NotNil(t, resp, path)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		return string(body)
	}
	for _, path := range []string{"/query?format=json", "/stats"} {
		var got struct {
			Node        types.NodeID `json:"node"`
			HTTPRefused HTTPRefusals `json:"http_refused"`
		}
		require.NoError(t, json.Unmarshal([]byte(get(path)), &got), path)
		assert.Equal(t, types.NodeID(1), got.Node, path)
		assert.Equal(t, want, got.HTTPRefused, path)
	}
	var cl ClusterResponse
	require.NoError(t, json.Unmarshal([]byte(get("/cluster.json")), &cl))
	require.Len(t, cl.Nodes, 1)
	var self NodeStats
	require.NoError(t, json.Unmarshal(cl.Nodes[0].Stats, &self))
	assert.Equal(t, want, self.HTTPRefused)
	assert.Contains(t, get("/query"), "HTTP refused: 1 body too large, 1 body timeout, 4 header timeout, 1 too many connections, 0 bodies in flight\n")
	metrics := get("/metrics")
	for reason, v := range map[string]int{"body_too_large": 1, "body_timeout": 1, "header_timeout": 4, "too_many_connections": 1} {
		assert.Contains(t, metrics, fmt.Sprintf(`stratus_http_refused_total{node="1",protocol="hotstuff",reason=%q} %d`, reason, v))
	}
	assert.Contains(t, metrics, "# TYPE stratus_http_refused_total counter")
}

// TestBodyErrors: a broken chunked body is a 400 naming the problem, not a refusal.
func TestBodyErrors(t *testing.T) {
	s, addr := serveHTTP(t, &fakeNode{}, Options{})
	c := dialFrom(t, "127.0.0.1", addr)
	resp, body := roundTrip(t, c, bufio.NewReader(c), "PUT /k HTTP/1.1\r\nHost: node\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
	assert.Contains(t, string(body), "reading body")
	assert.Zero(t, s.Refused().Total())
}

// TestReadAll: the body reader returns what arrived whatever the declared length and however the
// reads are cut, and nothing when reading fails.
func TestReadAll(t *testing.T) {
	data := []byte(strings.Repeat("0123456789", 20_000))
	for _, size := range []int{0, 1, 511, 512, 64 << 10, 100_000, len(data)} {
		want := data[:size]
		for _, bound := range []int64{0, 1, int64(size), int64(len(data)) + 1} {
			for name, r := range map[string]io.Reader{
				"plain":      bytes.NewReader(want),
				"one byte":   iotest.OneByteReader(bytes.NewReader(want)),
				"eof inline": iotest.DataErrReader(bytes.NewReader(want)),
				"half":       iotest.HalfReader(bytes.NewReader(want)),
			} {
				got, err := readAll(r, bound)
				require.NoError(t, err, "%s, size %d, bound %d", name, size, bound)
				require.Equal(t, want, got, "%s, size %d, bound %d", name, size, bound)
			}
		}
	}
	boom := errors.New("boom")
	got, err := readAll(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), int64(len(data))+1)
	require.ErrorIs(t, err, boom)
	require.Nil(t, got)
	// A declared length takes one buffer of that length, not a doubled one and a final copy.
	rd := bytes.NewReader(nil)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range 100 {
		rd.Reset(data[:50_000])
		_, _ = readAll(rd, 50_000)
	}
	runtime.ReadMemStats(&m1)
	perRead := (m1.TotalAlloc - m0.TotalAlloc) / 100
	require.Less(t, perRead, uint64(50_000*5/4), "bytes allocated per read of 50,000 declared bytes (one buffer, rounded up to its size class)")
}

// TestBodiesInFlightBounded: the per-route limits and the per-address cap alone let 256
// connections hold a 64 MiB batch body each. Bodies being read or answered hold at most
// MaxBodiesInFlight bytes together: a request that would pass it is answered 503 with
// Retry-After before its body is read, and its place comes back when a body is done with.
func TestBodiesInFlightBounded(t *testing.T) {
	const limit = 1 << 20
	s, addr := serveHTTP(t, &fakeNode{}, Options{MaxBodyBytes: limit, MaxBodiesInFlight: 2 * limit, BodyTimeout: 5 * time.Second})
	hold := func() net.Conn { // declares a full batch body and sends half of it
		c := dialFrom(t, "127.0.0.1", addr)
		_, err := io.WriteString(c, "POST /txs HTTP/1.1\r\nHost: node\r\nContent-Length: "+strconv.Itoa(limit)+"\r\n\r\n")
		require.NoError(t, err)
		_, err = c.Write(make([]byte, limit/2))
		require.NoError(t, err)
		return c
	}
	a := hold()
	hold()
	require.Eventually(t, func() bool { return s.inflight.Load() == 2*limit }, 3*time.Second, 10*time.Millisecond)
	c := dialFrom(t, "127.0.0.2", addr)
	resp, body := roundTrip(t, c, bufio.NewReader(c), "POST /txs HTTP/1.1\r\nHost: node\r\nContent-Length: "+strconv.Itoa(limit)+"\r\n\r\n")
	require.NotNil(t, resp)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, string(body))
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.Contains(t, string(body), "bodies_in_flight")
	require.Equal(t, uint64(1), s.Refused().BodiesInFlight)

	_ = a.Close() // its body will never come: its reservation is released
	require.Eventually(t, func() bool { return s.inflight.Load() == limit }, 3*time.Second, 10*time.Millisecond)
}
