package benchmark

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Error kinds that the client itself assigns. Refusals with a "reason" in their JSON body (such as
// "mempool_full", "stopped" or "timeout") are counted under that reason; other non-200 answers
// under "http_<status>".
const (
	ErrConnect          = "connect"           // the TCP connection could not be made (the request was not sent)
	ErrConnectionClosed = "connection_closed" // the connection broke before the answer was complete
	ErrClientTimeout    = "client_timeout"    // no complete answer within Options.Timeout
	ErrNetwork          = "network"           // any other transport failure
	ErrBadResponse      = "bad_response"      // 200 whose body is not a delivered commit notice
)

// maxResponse bounds how much of an answer is read; commit notices are a few hundred bytes.
const maxResponse = 1 << 20

// txsPath is the batch submission route; wait=commit makes the answer a commit notice.
const txsPath = "/txs?wait=commit"

// commitNotice is the JSON answer of POST /txs, on success or refusal.
type commitNotice struct {
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates"`
	Delivered  bool   `json:"delivered"`
	View       uint64 `json:"view"`
	Height     uint64 `json:"height"`
	Block      string `json:"block"`
	Error      string `json:"error"`
	Reason     string `json:"reason"`
}

// outcome is how one request ended. kind is empty on success; then duplicates says how many of
// the batch's transactions the replica already had (pending or delivered): they are committed,
// but not by this request.
type outcome struct {
	kind       string
	detail     error
	retryAfter time.Duration
	duplicates int
}

// newTransport returns a keep-alive transport that keeps an idle connection per worker and host,
// so connections are reused whichever replica a worker picks next.
func newTransport(concurrency int) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		// Benchmark traffic goes straight to the replicas, never through an environment proxy.
		Proxy:               nil,
		DialContext:         d.DialContext,
		MaxIdleConns:        0, // no global cap: MaxIdleConnsPerHost bounds it
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      16 << 10,
	}
}

// targetURL turns a Target address into the URL of its batch route.
func targetURL(addr string) string {
	addr = strings.TrimRight(addr, "/")
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return addr + txsPath
}

// post submits one batch body and classifies the answer. ctx is the run's context: when it is
// done the request is abandoned and the outcome is errCancelled.
func post(ctx context.Context, client *http.Client, url string, body []byte, firstTx []byte, timeout time.Duration) outcome {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return outcome{kind: ErrNetwork, detail: err}
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	// The server deduplicates transactions by hash, so sending a batch twice is harmless. Saying so
	// lets net/http resend it when a keep-alive connection turns out to have been closed by the
	// server, instead of reporting a spurious error.
	req.Header.Set("Idempotency-Key", hex.EncodeToString(firstTx[:min(len(firstTx), MinPayload)]))

	resp, err := client.Do(req)
	if err != nil {
		return transportOutcome(ctx, err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	// Drain a little of whatever is left so the connection can be reused, then release it.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	if err != nil {
		return transportOutcome(ctx, err)
	}
	return responseOutcome(resp, data)
}

// errCancelled marks a request abandoned because the run ended; it is not an error of the run.
const errCancelled = "cancelled"

func transportOutcome(ctx context.Context, err error) outcome {
	if ctx.Err() != nil {
		return outcome{kind: errCancelled, detail: err}
	}
	return outcome{kind: classifyTransport(err), detail: err}
}

// classifyTransport names a failure to get a complete answer.
func classifyTransport(err error) string {
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.As(err, &op) && op.Op == "dial", errors.Is(err, syscall.ECONNREFUSED):
		return ErrConnect // including dials that time out: the request never left
	case errors.Is(err, context.DeadlineExceeded):
		return ErrClientTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed):
		return ErrConnectionClosed
	case errors.As(err, &ne) && ne.Timeout():
		return ErrClientTimeout
	}
	return ErrNetwork
}

// responseOutcome classifies a complete answer.
func responseOutcome(resp *http.Response, data []byte) outcome {
	var notice commitNotice
	jsonErr := json.Unmarshal(data, &notice)
	if resp.StatusCode == http.StatusOK {
		switch {
		case jsonErr != nil:
			return outcome{kind: ErrBadResponse, detail: fmt.Errorf("status 200 with a body that is not a commit notice: %w", jsonErr)}
		case !notice.Delivered:
			return outcome{kind: ErrBadResponse, detail: fmt.Errorf("status 200 but delivered is false (accepted %d)", notice.Accepted)}
		case notice.Duplicates < 0 || notice.Accepted < 0:
			return outcome{kind: ErrBadResponse, detail: fmt.Errorf("status 200 with accepted %d, duplicates %d", notice.Accepted, notice.Duplicates)}
		}
		return outcome{duplicates: notice.Duplicates}
	}
	kind := "http_" + strconv.Itoa(resp.StatusCode)
	if jsonErr == nil && validReason(notice.Reason) {
		kind = notice.Reason
	}
	msg := notice.Error
	if jsonErr != nil || msg == "" {
		msg = strings.TrimSpace(string(data[:min(len(data), 200)]))
	}
	return outcome{
		kind:       kind,
		detail:     fmt.Errorf("status %d: %s", resp.StatusCode, msg),
		retryAfter: parseRetryAfter(resp.Header.Get("Retry-After")),
	}
}

// validReason accepts short snake_case reasons so that a misbehaving server cannot fill the error
// map with arbitrary keys.
func validReason(r string) bool {
	if r == "" || len(r) > 32 || r == errCancelled {
		return false
	}
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// parseRetryAfter reads a Retry-After header given in seconds or as an HTTP date (0 when absent
// or unreadable).
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(min(s, 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}
