package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratusbft/stratus/replica/core"
)

// Defaults of what one request or one client may take of a node's HTTP server.
const (
	// DefaultControlBodyBytes bounds the body of every route that takes none (all but POST /txs
	// and PUT|POST /{key}); such a body is read and ignored.
	DefaultControlBodyBytes = 4 << 10
	// DefaultHeaderTimeout bounds receiving a request's line and header.
	DefaultHeaderTimeout = 10 * time.Second
	// DefaultBodyTimeout bounds receiving a request's body. With the 20 s WaitLimit it stays
	// within the load client's 30 s request timeout; a 64 MiB batch needs about 54 Mbit/s.
	DefaultBodyTimeout = 10 * time.Second
	// DefaultIdleTimeout is how long a keep-alive connection may wait for its next request; it is
	// above the load client's 90 s, so that the client, not the server, closes an idle connection.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxConnsPerAddr caps the open connections of one client IP address. The load client
	// keeps at most one connection per worker and replica (benchmark.Concurrency, 16 by
	// default), and the bundled scripts run four clients on a host: 64 at most towards one
	// replica, a quarter of the cap.
	DefaultMaxConnsPerAddr = 256
)

// Writing the answer to a request may take this long after the longest a request may
// legitimately take to arrive and to be answered (BodyTimeout + WaitLimit).
const answerWriteTime = 30 * time.Second

// A connection refused for its address's cap is answered 503 and closed; answering it may take
// refuseTime, and at most maxRefusing such answers are in progress (further ones are closed
// without an answer).
const (
	refuseTime     = 2 * time.Second
	refuseDrain    = 64 << 10
	maxRefusing    = 64
	refusedReason  = "too_many_connections"
	timeoutReason  = "body_timeout"
	tooLargeReason = "too_large"
	bodiesReason   = "bodies_in_flight"
)

// HTTPRefusals counts what a node's HTTP server refused since it started, by reason.
type HTTPRefusals struct {
	// BodyTooLarge: requests answered 413, their body (or the transaction it makes) above the
	// route's limit.
	BodyTooLarge uint64 `json:"body_too_large"`
	// BodyTimeout: requests answered 408, their body not received within BodyTimeout.
	BodyTimeout uint64 `json:"body_timeout"`
	// HeaderTimeout: connections closed because a request's header, begun, was not complete
	// within HeaderTimeout.
	HeaderTimeout uint64 `json:"header_timeout"`
	// TooManyConnections: connections refused (503) because their address had
	// MaxConnsPerAddr open.
	TooManyConnections uint64 `json:"too_many_connections"`
	// BodiesInFlight: requests refused (503) because reading their body would have held more
	// than MaxBodiesInFlight bytes of bodies at once.
	BodiesInFlight uint64 `json:"bodies_in_flight"`
}

// Total is the sum of every reason.
func (h HTTPRefusals) Total() uint64 {
	return h.BodyTooLarge + h.BodyTimeout + h.HeaderTimeout + h.TooManyConnections + h.BodiesInFlight
}

type refusals struct {
	bodyTooLarge, bodyTimeout, headerTimeout, tooManyConns, bodiesInFlight atomic.Uint64
}

func (r *refusals) snapshot() HTTPRefusals {
	return HTTPRefusals{
		BodyTooLarge:       r.bodyTooLarge.Load(),
		BodyTimeout:        r.bodyTimeout.Load(),
		HeaderTimeout:      r.headerTimeout.Load(),
		TooManyConnections: r.tooManyConns.Load(),
		BodiesInFlight:     r.bodiesInFlight.Load(),
	}
}

// Refused returns what the HTTP server refused so far.
func (s *Server) Refused() HTTPRefusals { return s.refused.snapshot() }

// HTTPServer returns the http.Server that serves this API with its limits: the header and body
// timeouts, the idle timeout, a write timeout above the longest legitimate request, and the
// connection states that let Listener's connections count slow headers. Serve it on
// s.Listener(ln).
//
// The body deadline is set per request when a body comes (admitBody), and net/http lifts the
// read deadline once the body is read, so a request that waits for a commit keeps waiting.
// ReadTimeout, the header and body timeouts together, only bounds what no route reads.
func (s *Server) HTTPServer() *http.Server {
	o := s.opts
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: o.HeaderTimeout,
		ReadTimeout:       o.HeaderTimeout + o.BodyTimeout,
		WriteTimeout:      o.BodyTimeout + o.WaitLimit + answerWriteTime,
		IdleTimeout:       o.IdleTimeout,
		ConnState:         connState,
	}
}

// bodyLimit is the largest body a route accepts, and where that number comes from.
type bodyLimit struct {
	route string // e.g. "PUT /{key}", for messages
	bytes int64
	why   string
	takes bool // the handler reads the body; otherwise it is read and ignored here
}

// bodyLimitOf returns the body limit of the route r asks for.
func (s *Server) bodyLimitOf(r *http.Request) bodyLimit {
	path := r.URL.Path
	switch {
	case path == "/txs" && r.Method == http.MethodPost:
		return bodyLimit{route: "POST /txs", bytes: s.batchLimit(), why: s.batchWhy(), takes: true}
	case isKey(path) && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		key := len(path) - 1
		return bodyLimit{route: r.Method + " /{key}", bytes: max(0, int64(s.opts.MaxTxSize)-int64(core.PutOverhead)-int64(key)), takes: true,
			why: fmt.Sprintf("max_tx_size %d less the key (%d bytes) and the write's %d bytes of framing (prefix, identity, a zero byte)", s.opts.MaxTxSize, key, core.PutOverhead)}
	default:
		return bodyLimit{route: r.Method + " " + routeName(path), bytes: s.opts.ControlBodyBytes,
			why: "this route takes no body; what is sent is ignored"}
	}
}

// routeName names a path in messages: a key as /{key}, any other path as itself, cut short.
func routeName(path string) string {
	const most = 80
	switch {
	case isKey(path):
		return "/{key}"
	case len(path) > most:
		return path[:most] + "..."
	default:
		return path
	}
}

// batchLimit is the largest valid batch: MaxBodyBytes, or less when MaxBatchTxs transactions of
// MaxTxSize bytes with their length prefixes take less.
func (s *Server) batchLimit() int64 {
	var prefix [binary.MaxVarintLen64]byte
	perTx := int64(s.opts.MaxTxSize) + int64(binary.PutUvarint(prefix[:], uint64(s.opts.MaxTxSize)))
	if full := int64(s.opts.MaxBatchTxs) * perTx; full/perTx == int64(s.opts.MaxBatchTxs) && full < s.opts.MaxBodyBytes {
		return full
	}
	return s.opts.MaxBodyBytes
}

func (s *Server) batchWhy() string {
	if s.batchLimit() < s.opts.MaxBodyBytes {
		return fmt.Sprintf("%d transactions of at most max_tx_size %d bytes with their length prefixes", s.opts.MaxBatchTxs, s.opts.MaxTxSize)
	}
	return "the batch body limit"
}

// admitBody applies the route's body limit before the route runs: a declared Content-Length
// above it is refused before the body is read, any body must arrive within BodyTimeout, and a
// route that takes no body reads and ignores it, up to its limit. It answers itself and returns
// false when the request is refused.
func (s *Server) admitBody(w http.ResponseWriter, r *http.Request, lim bodyLimit) bool {
	if r.ContentLength == 0 {
		return true // no body (ContentLength is -1 when its length is not declared)
	}
	// A ResponseWriter that cannot set deadlines (a test recorder) leaves the server's ReadTimeout.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.opts.BodyTimeout))
	if r.ContentLength > lim.bytes {
		// Reading one byte past a limit of 0 tells net/http to close the connection after the
		// answer without reading the rest; a client that waits for 100 Continue sent nothing.
		if r.Header.Get("Expect") == "" {
			var one [1]byte
			_, _ = http.MaxBytesReader(w, r.Body, 0).Read(one[:])
		}
		s.tooLarge(w, lim, fmt.Sprintf("a body of %d bytes (Content-Length)", r.ContentLength))
		return false
	}
	if !lim.takes {
		if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, lim.bytes)); err != nil {
			s.bodyError(w, lim, err)
			return false
		}
	}
	return true
}

// readBody reads a body admitted by admitBody, at most lim.bytes of it. It first reserves what
// the body may hold (its declared length, else the route's limit) against MaxBodiesInFlight, and
// answers 503 with Retry-After when the bodies being read and answered hold that much already:
// the per-route limits and the per-address connection cap alone would let 256 connections hold
// 64 MiB each. The caller calls release once it no longer needs the body.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, lim bodyLimit) (body []byte, release func(), ok bool) {
	bound := lim.bytes + 1 // the read that passes the limit fails
	if r.ContentLength >= 0 {
		bound = r.ContentLength // at most lim.bytes: admitBody refused more
	}
	if held := s.inflight.Add(bound); held > s.opts.MaxBodiesInFlight {
		s.inflight.Add(-bound)
		s.refused.bodiesInFlight.Add(1)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%d bytes of request bodies are being read or answered (max %d): try again", held-bound, s.opts.MaxBodiesInFlight), bodiesReason)
		return nil, nil, false
	}
	release = func() { s.inflight.Add(-bound) }
	body, err := readAll(http.MaxBytesReader(w, r.Body, lim.bytes), bound)
	if err != nil {
		release()
		s.bodyError(w, lim, err)
		return nil, nil, false
	}
	return body, release, true
}

// readAll reads r to its end, expecting at most bound bytes. It reads into chunks that start at
// 64 KiB (one transaction, or a typical batch, in one chunk) and double up to 4 MiB, never past
// bound, so what it holds follows what arrived, and joins them at the end. Unlike io.ReadAll it
// drops what it read when reading fails (a body too large or too slow) instead of joining it.
func readAll(r io.Reader, bound int64) ([]byte, error) {
	const first, most = 64 << 10, 4 << 20
	var chunks [][]byte
	held := int64(0) // bytes in chunks
	b := make([]byte, 0, max(0, min(bound, first)))
	for {
		if len(b) == cap(b) {
			if held+int64(len(b)) >= bound {
				// All that was expected is here: only the end is left to see.
				var probe [1]byte
				n, err := r.Read(probe[:])
				switch {
				case n > 0:
					bound = held + int64(len(b)) + first // more than expected: read on
				case err == io.EOF:
					return join(chunks, b), nil
				case err != nil:
					return nil, err
				}
				if n == 0 {
					continue
				}
				chunks, held = append(chunks, b), held+int64(len(b))
				b = append(make([]byte, 0, first), probe[0])
				continue
			}
			if len(b) > 0 {
				chunks, held = append(chunks, b), held+int64(len(b))
			}
			b = make([]byte, 0, min(max(2*int64(cap(b)), 512), most, bound-held))
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		switch {
		case err == io.EOF:
			return join(chunks, b), nil
		case err != nil:
			return nil, err
		}
	}
}

// join returns the chunks followed by last as one slice; last alone when there are no chunks.
func join(chunks [][]byte, last []byte) []byte {
	if len(chunks) == 0 {
		return last
	}
	n := len(last)
	for _, c := range chunks {
		n += len(c)
	}
	out := make([]byte, 0, n)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return append(out, last...)
}

// bodyError answers a body that could not be read: too large (413), too slow (408) or broken
// (400).
func (s *Server) bodyError(w http.ResponseWriter, lim bodyLimit, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		s.tooLarge(w, lim, "the body")
	case isTimeout(err):
		s.refused.bodyTimeout.Add(1)
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestTimeout, fmt.Sprintf(
			"%s: the request body did not arrive within %v; send it at once, or smaller", lim.route, s.opts.BodyTimeout), timeoutReason)
	default:
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error(), "bad_request")
	}
}

func (s *Server) tooLarge(w http.ResponseWriter, lim bodyLimit, what string) {
	s.refused.bodyTooLarge.Add(1)
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
		"%s: %s exceeds this route's limit of %d bytes (%s)", lim.route, what, lim.bytes, lim.why), tooLargeReason)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// Listener wraps ln so that one client IP address holds at most MaxConnsPerAddr open
// connections: a connection above the cap is answered 503 too_many_connections and closed, and
// counted. The connections it returns also count the requests whose header stalls past
// HeaderTimeout when served by HTTPServer.
func (s *Server) Listener(ln net.Listener) net.Listener {
	return &connLimiter{Listener: ln, max: s.opts.MaxConnsPerAddr, refused: &s.refused,
		open: make(map[string]int), refusing: make(chan struct{}, maxRefusing)}
}

type connLimiter struct {
	net.Listener
	max     int
	refused *refusals

	mu       sync.Mutex
	open     map[string]int // open connections by client address
	refusing chan struct{}  // a slot per refused connection being answered
}

// Accept returns the next connection whose address is below the cap.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := clientAddr(c)
		l.mu.Lock()
		n := l.open[addr]
		if n < l.max {
			l.open[addr] = n + 1
			l.mu.Unlock()
			return &trackedConn{Conn: c, l: l, addr: addr}, nil
		}
		l.mu.Unlock()
		l.refused.tooManyConns.Add(1)
		l.refuse(c, addr)
	}
}

func (l *connLimiter) release(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[addr] <= 1 {
		delete(l.open, addr)
	} else {
		l.open[addr]--
	}
}

// refuse answers c 503 once its request begins to arrive (a client reads an answer only after
// it sent its request), then closes it after reading what the client sent, so that the close
// does not reset the connection before the client read the answer. All of it takes at most
// refuseTime.
func (l *connLimiter) refuse(c net.Conn, addr string) {
	select {
	case l.refusing <- struct{}{}:
	default:
		_ = c.Close() // enough refusals are being answered: this one gets none
		return
	}
	msg := fmt.Sprintf(`{"error":%q,"reason":%q}`+"\n", fmt.Sprintf(
		"too many connections from %s: at most %d may be open at once per client address; close idle ones or retry later", addr, l.max), refusedReason)
	answer := "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n" +
		"Retry-After: 1\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(msg)) + "\r\n\r\n" + msg
	go func() {
		defer func() { <-l.refusing }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refuseTime))
		var first [1]byte
		if _, err := c.Read(first[:]); err != nil {
			return
		}
		if _, err := io.WriteString(c, answer); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.CopyN(io.Discard, c, refuseDrain)
	}()
}

// clientAddr is the IP address of c's client (IPv4 in IPv6 as IPv4), or its whole remote
// address when it has none.
func clientAddr(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap().String()
	}
	return c.RemoteAddr().String()
}

// trackedConn is a connection counted against its address's cap until it is closed. Between
// requests (before the first, and idle after each) it watches the reads: a read deadline that
// passes after part of a request arrived is a header that came too slowly.
type trackedConn struct {
	net.Conn
	l       *connLimiter
	addr    string
	closed  sync.Once
	active  atomic.Bool // a request's header was read; the server is serving it
	partial atomic.Bool // bytes of a request arrived since the last one was served
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.active.Load() {
		if n > 0 {
			c.partial.Store(true)
		}
		if err != nil && isTimeout(err) && c.partial.Swap(false) {
			c.l.refused.headerTimeout.Add(1)
		}
	}
	return n, err
}

// CloseWrite lets net/http half-close the connection after an answer refusing a body, as it
// does with a bare TCP connection.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *trackedConn) Close() error {
	c.closed.Do(func() { c.l.release(c.addr) })
	return c.Conn.Close()
}

// connState follows a trackedConn between requests and requests being served.
func connState(c net.Conn, st http.ConnState) {
	tc, ok := c.(*trackedConn)
	if !ok {
		return
	}
	switch st {
	case http.StateActive:
		tc.active.Store(true)
		tc.partial.Store(false)
	case http.StateIdle:
		tc.active.Store(false)
		tc.partial.Store(false)
	}
}
