package benchmark

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stratusbft/stratus/stats"
)

// MaxKeys bounds Options.Keys.
const MaxKeys = 100_000_000

// kvState is the key-value part of a run: the history of every operation and per-kind counts.
type kvState struct {
	mu                      sync.Mutex
	history                 []KVOp
	reads, writes, notFound int64
	readErrs, writeErrs     int64
	readLat, writeLat       stats.Histogram
	prefix                  string // makes written values unique to the run
}

// KVResult summarises a key-value run.
type KVResult struct {
	Keys       int     `json:"keys"`
	WriteRatio float64 `json:"write_ratio"`
	Ops        int64   `json:"ops"` // operations answered
	Reads      int64   `json:"reads"`
	Writes     int64   `json:"writes"`
	NotFound   int64   `json:"reads_not_found"` // reads of a key never written (404)
	// ReadErrors are reads without an answer (failed, timed out or cut off by the end of the run;
	// left out of the check); WriteErrors are such writes, whose outcome is unknown (checked as
	// pending: they may take effect at any point after their call, or never).
	ReadErrors   int64         `json:"read_errors"`
	WriteErrors  int64         `json:"write_errors"`
	OpsPerSec    float64       `json:"ops_per_s"`
	ReadLatency  stats.Latency `json:"read_latency_ms"`
	WriteLatency stats.Latency `json:"write_latency_ms"`
	Check        *KVCheck      `json:"check,omitempty"`
	// History is the recorded history, kept in memory for the check (not written out).
	History []KVOp `json:"-"`
}

func (k *KVResult) writeText(b *strings.Builder) {
	fmt.Fprintf(b, "  kv:            %d ops (%.1f ops/s) on %d keys: %d reads (%d not found), %d writes; unanswered (failed, timed out or cut off by the end of the run): %d reads (dropped), %d writes (unknown outcome)\n",
		k.Ops, k.OpsPerSec, k.Keys, k.Reads, k.NotFound, k.Writes, k.ReadErrors, k.WriteErrors)
	fmt.Fprintf(b, "  read (ms):     mean %.3f  p50 %.3f  p99 %.3f  max %.3f\n", k.ReadLatency.Mean, k.ReadLatency.P50, k.ReadLatency.P99, k.ReadLatency.Max)
	fmt.Fprintf(b, "  write (ms):    mean %.3f  p50 %.3f  p99 %.3f  max %.3f\n", k.WriteLatency.Mean, k.WriteLatency.P50, k.WriteLatency.P99, k.WriteLatency.Max)
	if c := k.Check; c != nil {
		verdict := "yes"
		switch c.Result {
		case "illegal":
			verdict = "NO (key " + c.BadKey + ")"
		case "unknown":
			verdict = "unknown (check timed out)"
		}
		fmt.Fprintf(b, "  linearizable:  %s (%d ops checked, %d pending writes, %d keys, %.0f ms)\n",
			verdict, c.Ops, c.Pending, c.Keys, c.CheckMS)
	}
}

// workKV is one key-value worker (client id): one operation in flight until the run ends.
func (r *runner) workKV(ctx context.Context, id int, rng *rand.Rand) {
	o := r.opts
	pick := newPicker(len(r.urls), o.Zipf, o.ZipfS, o.ZipfV, rng)
	failures := 0
	for seq := 0; ctx.Err() == nil; seq++ {
		if r.quota.take(ctx, 1) == 0 {
			return
		}
		if err := r.limiter.wait(ctx, 1); err != nil {
			r.quota.done(1, false)
			return
		}
		target := pick.pick()
		// Keys carry the run's prefix: the store outlives a run, and the check assumes every key
		// starts unwritten.
		op := KVOp{Client: id, Key: "k" + r.kv.prefix + "-" + strconv.Itoa(rng.Intn(o.Keys)), Write: rng.Float64() < o.Writes}
		if op.Write {
			op.Value = fmt.Sprintf("%s-%d-%d", r.kv.prefix, id, seq)
		}
		base := strings.TrimSuffix(r.urls[target], txsPath)
		r.requests.Add(1)
		start := time.Now()
		op.Call = int64(start.Sub(r.start))
		var out outcome
		if op.Write {
			out = kvPut(ctx, r.client, base+"/"+op.Key+"?wait=commit", op.Value, o.Timeout)
		} else {
			out, op.Value = kvGet(ctx, r.client, base+"/"+op.Key+"?consistency=linearizable", o.Timeout)
		}
		end := time.Now()
		op.Return = int64(end.Sub(r.start))
		latency := end.Sub(start)

		if out.kind != "" && op.Write {
			// The write may still take effect: it stays in the history with no response.
			op.Return = math.MaxInt64
		}
		r.kv.record(op, out.kind == "", out.kind == errNotFound, latency)
		switch out.kind {
		case "", errNotFound:
			r.quota.done(1, true)
			r.recordCommit(target, 1, 0, latency)
			failures = 0
		case errCancelled:
			r.quota.done(1, false)
			return
		default:
			r.quota.done(1, false)
			r.recordError(out, target)
			failures++
			if sleep(ctx, r.backoff(failures, out.retryAfter, rng)) != nil {
				return
			}
		}
	}
}

// errNotFound marks a read of a key never written: a successful read of "".
const errNotFound = "not_found"

func (k *kvState) record(op KVOp, ok, notFound bool, latency time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ok = ok || notFound
	switch {
	case op.Write && ok:
		k.writes++
		k.writeLat.Record(latency)
	case op.Write:
		k.writeErrs++
	case ok:
		k.reads++
		k.readLat.Record(latency)
		if notFound {
			k.notFound++
		}
	default:
		k.readErrs++
		return // a failed read says nothing: left out of the history
	}
	k.history = append(k.history, op)
}

// kvResult summarises the key-value part and runs the check if asked.
func (r *runner) kvResult(durationS float64) *KVResult {
	k := &r.kv
	k.mu.Lock()
	res := &KVResult{
		Keys: r.opts.Keys, WriteRatio: r.opts.Writes,
		Reads: k.reads, Writes: k.writes, NotFound: k.notFound,
		ReadErrors: k.readErrs, WriteErrors: k.writeErrs,
		ReadLatency: k.readLat.Summary(), WriteLatency: k.writeLat.Summary(),
		History: append([]KVOp(nil), k.history...),
	}
	k.mu.Unlock()
	res.Ops = res.Reads + res.Writes
	if durationS > 0 {
		res.OpsPerSec = finite(float64(res.Ops) / durationS)
	}
	if r.opts.Check {
		c := CheckKV(res.History, r.opts.CheckTimeout)
		res.Check = &c
	}
	return res
}

func newValuePrefix() string {
	var b [6]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// kvPut writes one value and waits for its commit notice.
func kvPut(ctx context.Context, client *http.Client, url, value string, timeout time.Duration) outcome {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPut, url, strings.NewReader(value))
	if err != nil {
		return outcome{kind: ErrNetwork, detail: err}
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		return transportOutcome(ctx, err)
	}
	data, err := readBody(resp)
	if err != nil {
		return transportOutcome(ctx, err)
	}
	return responseOutcome(resp, data)
}

// kvGet reads one key: the value on 200, "" with kind errNotFound on 404.
func kvGet(ctx context.Context, client *http.Client, url string, timeout time.Duration) (outcome, string) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return outcome{kind: ErrNetwork, detail: err}, ""
	}
	resp, err := client.Do(req)
	if err != nil {
		return transportOutcome(ctx, err), ""
	}
	data, err := readBody(resp)
	if err != nil {
		return transportOutcome(ctx, err), ""
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return outcome{}, string(data)
	case resp.StatusCode == http.StatusNotFound && bytes.Contains(data, []byte(errNotFound)):
		return outcome{kind: errNotFound}, ""
	}
	return responseOutcome(resp, data), ""
}

func readBody(resp *http.Response) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	return data, err
}
