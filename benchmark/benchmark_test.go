package benchmark

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

func baseOptions(targets ...Target) Options {
	return Options{
		Targets:     targets,
		Concurrency: 2,
		Payload:     64,
		Batch:       10,
		Timeout:     5 * time.Second,
		MaxBackoff:  5 * time.Millisecond,
		Seed:        1,
	}
}

func TestTxSourceUniqueAndSized(t *testing.T) {
	a, err := NewTxSource(128)
	require.NoError(t, err)
	b, err := NewTxSource(128)
	require.NoError(t, err)
	assert.NotEqual(t, a.nonce, b.nonce, "two sources (processes) draw different nonces")

	seen := make(map[types.Hash]bool)
	for _, src := range []*TxSource{a, b} {
		for range 3 {
			for _, tx := range src.NewBatch(500) {
				require.Len(t, tx, 128)
				id := types.IDHash(tx)
				require.False(t, seen[id], "duplicate transaction %x", tx[:16])
				seen[id] = true
			}
		}
	}
	assert.Len(t, seen, 2*3*500)

	// Reused buffers stay unique.
	txs := splitBuffer(make([]byte, 4*128), 4, 128)
	a.Fill(txs)
	first := string(txs[0])
	a.Fill(txs)
	assert.NotEqual(t, first, string(txs[0]))

	_, err = NewTxSource(MinPayload - 1)
	assert.ErrorContains(t, err, "minimum")
	assert.Panics(t, func() { a.Fill([][]byte{make([]byte, 10)}) })
}

func TestBatchEncodingRoundTrip(t *testing.T) {
	src, err := NewTxSource(MinPayload + 300) // length prefix needs two uvarint bytes
	require.NoError(t, err)
	txs := src.NewBatch(7)
	body := types.AppendBatch(nil, txs)
	got, err := types.DecodeBatch(body, 100, types.MaxTxSize)
	require.NoError(t, err)
	require.Len(t, got, len(txs))
	for i := range txs {
		assert.Equal(t, txs[i], got[i].Data())
	}
}

func TestRunCommitsExactlyNAcrossReplicas(t *testing.T) {
	seen := newSeen()
	reps := []*fakeReplica{newFakeReplica(t, 64, seen), newFakeReplica(t, 64, seen), newFakeReplica(t, 64, seen)}
	opts := baseOptions(reps[0].target(1), reps[1].target(2), reps[2].target(3))
	opts.Concurrency = 4
	opts.N = 2005 // not a multiple of the batch: the last request is short

	res, err := Run(context.Background(), opts)
	require.NoError(t, err)

	assert.Equal(t, StopN, res.StopReason)
	assert.EqualValues(t, 2005, res.CommittedTx)
	assert.EqualValues(t, 2005, res.SentTx)
	assert.EqualValues(t, 201, res.Batches)
	assert.EqualValues(t, 201, res.Requests)
	assert.Zero(t, res.ErrorsTotal)
	assert.Empty(t, res.Errors)

	var sum int64
	for i, rep := range reps {
		txs, _, dups, badSize, badQuery, _ := rep.stats()
		assert.EqualValues(t, txs, res.PerReplica[itoa(i+1)], "replica %d", i+1)
		assert.Zero(t, dups, "every transaction is unique")
		assert.Zero(t, badSize, "every transaction has the payload size")
		assert.Zero(t, badQuery, "every request asks for wait=commit")
		sum += res.PerReplica[itoa(i+1)]
	}
	assert.EqualValues(t, 2005, sum)

	assert.Greater(t, res.Latency.Max, 0.0)
	assert.LessOrEqual(t, res.Latency.P50, res.Latency.P99)
	assert.Greater(t, res.DurationS, 0.0)
	assert.InDelta(t, float64(res.CommittedTx)/res.DurationS, res.ThroughputTPS, res.ThroughputTPS*0.01+1)
	assert.Equal(t, 4, res.Concurrency)
	assert.Equal(t, Uniform, res.Distribution)
	assert.Len(t, res.Targets, 3)
}

func TestRunReusesConnections(t *testing.T) {
	rep := newFakeReplica(t, 64, nil)
	opts := baseOptions(rep.target(1))
	opts.N = 1000
	opts.Batch = 5
	res, err := Run(context.Background(), opts)
	require.NoError(t, err)
	assert.EqualValues(t, 1000, res.CommittedTx)
	_, requests, _, _, _, conns := rep.stats()
	assert.Equal(t, 200, requests)
	assert.LessOrEqual(t, conns, 2*opts.Concurrency, "keep-alive connections are reused")
}

func TestRunGivesBackQuotaOfFailedRequests(t *testing.T) {
	rep := newFakeReplica(t, 64, nil)
	var calls atomic.Int64
	rep.respond = func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%3 == 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "full", "reason": "mempool_full"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"accepted": 1, "delivered": true})
	}
	opts := baseOptions(rep.target(1))
	opts.N = 300
	res, err := Run(context.Background(), opts)
	require.NoError(t, err)
	assert.Equal(t, StopN, res.StopReason)
	assert.EqualValues(t, 300, res.CommittedTx)
	assert.Positive(t, res.Errors["mempool_full"])
	assert.Equal(t, res.SentTx, res.CommittedTx+10*res.ErrorsTotal)
}

// TestRunCountsDuplicatesApart: transactions a replica answers as duplicates are committed but
// not by this run: they are counted in duplicate_tx, not in committed_tx nor as errors, and shown
// in the progress line, the text summary and the JSON result.
func TestRunCountsDuplicatesApart(t *testing.T) {
	rep := newFakeReplica(t, 64, nil)
	rep.respond = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"accepted": 7, "duplicates": 3, "delivered": true, "height": 2})
	}
	opts := baseOptions(rep.target(1))
	opts.N = 300
	var mu sync.Mutex
	var lines []string
	opts.ProgressInterval = 5 * time.Millisecond
	opts.Progress = func(p Progress) {
		mu.Lock()
		lines = append(lines, p.String())
		mu.Unlock()
	}
	res, err := Run(context.Background(), opts)
	require.NoError(t, err)
	assert.Equal(t, StopN, res.StopReason)
	assert.EqualValues(t, 300, res.SentTx)
	assert.EqualValues(t, 210, res.CommittedTx)
	assert.EqualValues(t, 90, res.DuplicateTx)
	assert.Zero(t, res.ErrorsTotal)
	assert.EqualValues(t, 210, res.PerReplica["1"])
	assert.EqualValues(t, 210, res.LatencyHistogram.Count)

	var text strings.Builder
	require.NoError(t, res.WriteText(&text))
	assert.Contains(t, text.String(), "duplicates:    90")
	assert.Contains(t, text.String(), "errors:        0")
	path := filepath.Join(t.TempDir(), "r.json")
	require.NoError(t, res.WriteFile(path))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"duplicate_tx": 90`)
	assert.Contains(t, Progress{Committed: 7, Dups: 3, Errors: 1}.String(), "duplicates 3  errors 1")
}

func TestRunRespectsRate(t *testing.T) {
	rep := newFakeReplica(t, 64, nil)
	opts := baseOptions(rep.target(1))
	opts.Concurrency = 4
	opts.Rate = 1000
	opts.Duration = 500 * time.Millisecond
	res, err := Run(context.Background(), opts)
	require.NoError(t, err)
	assert.Equal(t, StopDuration, res.StopReason)
	assert.InDelta(t, 0.5, res.DurationS, 0.1)
	// 1000 tx/s for 0.5 s is 500 transactions. A loaded machine may deschedule the process, and the
	// limiter does not let time lost that way be made up in a burst, so the lower bound is loose.
	assert.GreaterOrEqual(t, res.CommittedTx, int64(100))
	assert.LessOrEqual(t, res.CommittedTx, int64(650))
}

func TestLimiterSpacesReservations(t *testing.T) {
	l := newLimiter(100) // 10 ms per transaction
	start := time.Now()
	for range 3 {
		require.NoError(t, l.wait(context.Background(), 2))
	}
	// Slots at 0, 20 and 40 ms.
	assert.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Error(t, l.wait(ctx, 1000), "a cancelled wait returns at once")
	assert.NoError(t, newLimiter(0).wait(context.Background(), 1<<20))
}

func TestErrorClassification(t *testing.T) {
	refuse := func(status int, body any, header map[string]string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			for k, v := range header {
				w.Header().Set(k, v)
			}
			if s, ok := body.(string); ok {
				w.WriteHeader(status)
				_, _ = w.Write([]byte(s))
				return
			}
			writeJSON(w, status, body)
		}
	}
	cases := []struct {
		name    string
		respond func(http.ResponseWriter, *http.Request)
		kind    string
		timeout time.Duration // 0 = the default of baseOptions
	}{
		{"mempool full", refuse(503, map[string]any{"error": "mempool is full", "reason": "mempool_full"}, map[string]string{"Retry-After": "1"}), "mempool_full", 0},
		{"stopped", refuse(503, map[string]any{"error": "stopping", "reason": "stopped"}, nil), "stopped", 0},
		{"503 without reason", refuse(503, "unavailable", nil), "http_503", 0},
		{"commit timeout", refuse(504, map[string]any{"error": "not delivered in time", "reason": "timeout"}, nil), "timeout", 0},
		{"bad request", refuse(400, map[string]any{"error": "batch: record 1: truncated"}, nil), "http_400", 0},
		{"internal error", refuse(500, "boom", nil), "http_500", 0},
		{"odd reason", refuse(503, map[string]any{"error": "x", "reason": "Not A Token!"}, nil), "http_503", 0},
		{"200 not JSON", refuse(200, "ok", nil), ErrBadResponse, 0},
		{"200 not delivered", refuse(200, map[string]any{"accepted": 10, "delivered": false}, nil), ErrBadResponse, 0},
		{"closed connection", func(w http.ResponseWriter, r *http.Request) {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
		}, ErrConnectionClosed, 0},
		{"client timeout", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, ErrClientTimeout, 30 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := newFakeReplica(t, 64, nil)
			rep.respond = tc.respond
			opts := baseOptions(rep.target(1))
			opts.Duration = 150 * time.Millisecond
			if tc.timeout > 0 {
				opts.Timeout = tc.timeout
			}
			res, err := Run(context.Background(), opts)
			require.NoError(t, err)
			assert.Zero(t, res.CommittedTx)
			require.Positive(t, res.ErrorsTotal)
			assert.Equal(t, map[string]int64{tc.kind: res.ErrorsTotal}, res.Errors)
		})
	}

	t.Run("connect", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		opts := baseOptions(Target{ID: 1, Addr: addr})
		opts.Duration = 100 * time.Millisecond
		res, err := Run(context.Background(), opts)
		require.NoError(t, err)
		require.Positive(t, res.ErrorsTotal)
		assert.Equal(t, map[string]int64{ErrConnect: res.ErrorsTotal}, res.Errors)
		assert.Equal(t, map[string]int64{"1": res.ErrorsTotal}, res.PerReplicaErrors)
		assert.Zero(t, res.SentTx, "nothing left the client")
		// Requests still dialling when the run ends are abandoned: counted as attempts, not errors.
		assert.GreaterOrEqual(t, res.Requests, res.ErrorsTotal)
		assert.LessOrEqual(t, res.Requests-res.ErrorsTotal, int64(opts.Concurrency))
	})
}

func TestBackoffBounds(t *testing.T) {
	r := &runner{opts: Options{MaxBackoff: 100 * time.Millisecond}}
	rng := rand.New(rand.NewSource(1))
	for failures := 1; failures < 40; failures++ {
		d := r.backoff(failures, 0, rng)
		assert.GreaterOrEqual(t, d, 5*time.Millisecond)
		assert.LessOrEqual(t, d, 100*time.Millisecond)
	}
	assert.GreaterOrEqual(t, r.backoff(1, time.Second, rng), 50*time.Millisecond, "Retry-After stretches the pause to the cap")
	assert.Equal(t, 2*time.Second, parseRetryAfter("2"))
	assert.Zero(t, parseRetryAfter("soon"))
	assert.Zero(t, parseRetryAfter("-1"))
}

func assertFiniteJSON(t *testing.T, res Result) map[string]any {
	t.Helper()
	data, err := json.Marshal(res)
	require.NoError(t, err, "a result always encodes (no NaN or Inf)")
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	for _, key := range []string{"committed_tx", "sent_tx", "throughput_tps", "duration_s", "latency_ms",
		"errors", "errors_total", "batches", "per_replica", "per_replica_errors", "concurrency", "rate", "payload", "batch",
		"distribution", "targets"} {
		assert.Contains(t, m, key)
	}
	lat, ok := m["latency_ms"].(map[string]any)
	require.True(t, ok)
	for _, key := range []string{"mean", "p50", "p95", "p99", "max"} {
		assert.Contains(t, lat, key)
	}
	return m
}

func TestEmptyRunHasFiniteZeroSummary(t *testing.T) {
	rep := newFakeReplica(t, 64, nil)
	rep.respond = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "full", "reason": "mempool_full"})
	}
	opts := baseOptions(rep.target(1), rep.target(2))
	opts.Duration = 100 * time.Millisecond
	res, err := Run(context.Background(), opts)
	require.NoError(t, err)
	assert.Zero(t, res.CommittedTx)
	assert.Zero(t, res.ThroughputTPS)
	assert.Zero(t, res.Batches)
	assert.Equal(t, stats.Latency{}, res.Latency)
	assert.Equal(t, map[string]int64{"1": 0, "2": 0}, res.PerReplica)
	m := assertFiniteJSON(t, res)
	assert.EqualValues(t, 0, m["committed_tx"])

	var text bytes.Buffer
	require.NoError(t, res.WriteText(&text))
	assert.Contains(t, text.String(), "mempool_full=")

	path := filepath.Join(t.TempDir(), "client.json")
	require.NoError(t, res.WriteFile(path))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var back Result
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, res.ErrorsTotal, back.ErrorsTotal)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left behind")
}

func TestCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Run(ctx, baseOptions(Target{ID: 1, Addr: "127.0.0.1:1"}))
	require.NoError(t, err)
	assert.Equal(t, StopInterrupted, res.StopReason)
	assert.Zero(t, res.CommittedTx)
	assert.Zero(t, res.ErrorsTotal)
	assertFiniteJSON(t, res)
	var text bytes.Buffer
	require.NoError(t, res.WriteText(&text))
	assert.NotContains(t, text.String(), "NaN")
}

func TestCancelStopsInFlightRequests(t *testing.T) {
	rep := newFakeReplica(t, 64, nil)
	started := make(chan struct{}, 16)
	rep.respond = func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done() // a commit that never comes
	}
	opts := baseOptions(rep.target(1))
	opts.Concurrency = 3
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for range opts.Concurrency {
			<-started
		}
		cancel()
	}()
	begin := time.Now()
	res, err := Run(ctx, opts) // no duration and no N: only cancellation ends it
	require.NoError(t, err)
	assert.Less(t, time.Since(begin), 3*time.Second)
	assert.Equal(t, StopInterrupted, res.StopReason)
	assert.Zero(t, res.ErrorsTotal, "abandoned requests are not errors")
	assert.EqualValues(t, 3, res.Requests)
	assert.Zero(t, res.CommittedTx)
}

func TestZipfLoadsReplicaOneMost(t *testing.T) {
	p := newPicker(4, true, 2, 1, rand.New(rand.NewSource(7)))
	counts := make([]int, 4)
	for range 20000 {
		counts[p.pick()]++
	}
	assert.Greater(t, counts[0], counts[1])
	assert.Greater(t, counts[1], counts[2])
	assert.Greater(t, counts[2], counts[3])
	assert.Greater(t, counts[0], 20000/2)

	u := newPicker(4, false, 0, 0, rand.New(rand.NewSource(7)))
	counts = make([]int, 4)
	for range 20000 {
		counts[u.pick()]++
	}
	for i, c := range counts {
		assert.InDelta(t, 5000, c, 500, "uniform choice, replica %d", i+1)
	}
	assert.Equal(t, 0, newPicker(1, true, 2, 1, rand.New(rand.NewSource(1))).pick())

	seen := newSeen()
	reps := []*fakeReplica{newFakeReplica(t, 64, seen), newFakeReplica(t, 64, seen), newFakeReplica(t, 64, seen)}
	opts := baseOptions(reps[0].target(1), reps[1].target(2), reps[2].target(3))
	opts.N = 2000
	opts.Zipf, opts.ZipfS, opts.ZipfV = true, 2, 1
	res, err := Run(context.Background(), opts)
	require.NoError(t, err)
	assert.EqualValues(t, 2000, res.CommittedTx)
	assert.Greater(t, res.PerReplica["1"], res.PerReplica["2"])
	assert.Greater(t, res.PerReplica["1"], res.PerReplica["3"])
	assert.Equal(t, Zipf, res.Distribution)
	assert.Equal(t, 2.0, res.ZipfS)
}

func TestProgressReports(t *testing.T) {
	rep := newFakeReplica(t, 64, nil)
	opts := baseOptions(rep.target(1))
	opts.ProgressInterval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []Progress
	opts.Progress = func(p Progress) {
		mu.Lock()
		got = append(got, p)
		if len(got) == 3 {
			cancel() // the run has no other end
		}
		mu.Unlock()
	}
	res, err := Run(ctx, opts)
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(got), 3)
	var last int64
	for _, p := range got {
		assert.GreaterOrEqual(t, p.Committed, last)
		last = p.Committed
		for _, v := range []float64{p.TPS, p.P50, p.P99} {
			assert.False(t, math.IsNaN(v) || math.IsInf(v, 0))
		}
		assert.True(t, strings.HasPrefix(p.String(), "["), p.String())
	}
	assert.LessOrEqual(t, last, res.CommittedTx)
}

func TestOptionsValidate(t *testing.T) {
	good := baseOptions(Target{ID: 1, Addr: "127.0.0.1:8070"})
	require.NoError(t, good.Validate())
	cases := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"no targets", func(o *Options) { o.Targets = nil }, "no targets"},
		{"duplicate target", func(o *Options) { o.Targets = append(o.Targets, o.Targets[0]) }, "twice"},
		{"target without address", func(o *Options) { o.Targets[0].Addr = "" }, "no address"},
		{"concurrency", func(o *Options) { o.Concurrency = 0 }, "concurrency"},
		{"rate", func(o *Options) { o.Rate = -1 }, "rate"},
		{"payload", func(o *Options) { o.Payload = 8 }, "payload"},
		{"batch", func(o *Options) { o.Batch = 0 }, "batch"},
		{"n", func(o *Options) { o.N = -1 }, "n -1"},
		{"zipf s", func(o *Options) { o.Zipf, o.ZipfS, o.ZipfV = true, 1, 1 }, "zipf s"},
		{"zipf v", func(o *Options) { o.Zipf, o.ZipfS, o.ZipfV = true, 2, 0.5 }, "zipf v"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			o.Targets = append([]Target(nil), good.Targets...)
			tc.mutate(&o)
			err := o.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "benchmark: "), err.Error())
			_, err = Run(context.Background(), o)
			assert.Error(t, err)
		})
	}
}

func TestClassifyTransport(t *testing.T) {
	assert.Equal(t, ErrClientTimeout, classifyTransport(fmt.Errorf("post: %w", context.DeadlineExceeded)))
	assert.Equal(t, ErrNetwork, classifyTransport(fmt.Errorf("something else")))
	assert.True(t, validReason("mempool_full"))
	assert.False(t, validReason(strings.Repeat("a", 33)))
	assert.False(t, validReason(errCancelled))
	assert.Equal(t, "http://h:1/txs?wait=commit", targetURL("h:1"))
	assert.Equal(t, "https://h:1/txs?wait=commit", targetURL("https://h:1/"))
}
