package benchmark

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/types"
)

// Run generates load until opts.Duration elapses, opts.N transactions are committed, or ctx is
// cancelled, and returns the summary. Cancelling ctx ends the run promptly: requests in flight are
// abandoned and not counted as errors, and the summary covers what happened until then. The error
// is non-nil only for invalid options.
func Run(ctx context.Context, opts Options) (Result, error) {
	if err := opts.Validate(); err != nil {
		return Result{}, err
	}
	opts = opts.withDefaults()
	src, err := NewTxSource(opts.Payload)
	if err != nil {
		return Result{}, err
	}
	seed := opts.Seed
	if seed == 0 {
		var b [8]byte
		if _, err := crand.Read(b[:]); err != nil {
			return Result{}, err
		}
		seed = int64(binary.LittleEndian.Uint64(b[:]))
	}

	rt := opts.Transport
	if rt == nil {
		tr := newTransport(opts.Concurrency)
		defer tr.CloseIdleConnections()
		rt = tr
	}
	r := &runner{
		opts:       opts,
		src:        src,
		client:     &http.Client{Transport: rt},
		limiter:    newLimiter(opts.Rate),
		quota:      newQuota(opts.N),
		urls:       make([]string, len(opts.Targets)),
		perRep:     make([]atomic.Int64, len(opts.Targets)),
		perRepErrs: make([]atomic.Int64, len(opts.Targets)),
		errs:       make(map[string]int64),
	}
	r.kv.prefix = newValuePrefix()
	for i, t := range opts.Targets {
		r.urls[i] = targetURL(t.Addr)
	}
	log := opts.Logger
	log.WithFields(logrus.Fields{
		"targets": len(opts.Targets), "concurrency": opts.Concurrency, "rate": opts.Rate,
		"payload": opts.Payload, "batch": opts.Batch, "n": opts.N, "duration": opts.Duration,
		"distribution": opts.Distribution(),
	}).Info("benchmark: starting")

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opts.Duration > 0 {
		var cancelT context.CancelFunc
		runCtx, cancelT = context.WithTimeout(runCtx, opts.Duration)
		defer cancelT()
	}

	r.start = time.Now()
	var wg sync.WaitGroup
	for i := range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed + int64(i)))
			if opts.KV {
				r.workKV(runCtx, i, rng)
				return
			}
			r.work(runCtx, rng)
		}()
	}
	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if opts.Progress != nil {
		progressWG.Add(1)
		go func() {
			defer progressWG.Done()
			r.reportProgress(progressDone)
		}()
	}
	wg.Wait()
	end := time.Now()
	close(progressDone)
	progressWG.Wait()

	res := r.result(ctx, runCtx, end)
	if opts.KV {
		res.KV = r.kvResult(res.DurationS)
	}
	log.WithFields(logrus.Fields{
		"committed": res.CommittedTx, "tps": res.ThroughputTPS, "p50_ms": res.Latency.P50,
		"p99_ms": res.Latency.P99, "errors": res.ErrorsTotal, "duplicates": res.DuplicateTx, "stop": res.StopReason,
	}).Info("benchmark: finished")
	return res, nil
}

// runner is the shared state of one run.
type runner struct {
	opts    Options
	src     *TxSource
	client  *http.Client
	limiter *limiter
	quota   *quota
	urls    []string
	start   time.Time

	committed   atomic.Int64
	duplicates  atomic.Int64 // transactions answered as duplicates in committed batches
	sent        atomic.Int64
	requests    atomic.Int64
	batches     atomic.Int64
	errorsTotal atomic.Int64
	perRep      []atomic.Int64 // committed tx by target index
	perRepErrs  []atomic.Int64 // failed requests by target index

	kv kvState // with Options.KV

	mu       sync.Mutex // guards the fields below
	total    stats.Histogram
	interval stats.Histogram // since the last progress report
	errs     map[string]int64
	first    []string // the first error of each kind (MaxFirstErrors at most)
}

// work is one worker: it keeps one request in flight until the run ends.
func (r *runner) work(ctx context.Context, rng *rand.Rand) {
	o := r.opts
	pick := newPicker(len(r.urls), o.Zipf, o.ZipfS, o.ZipfV, rng)
	txs := splitBuffer(make([]byte, o.Batch*o.Payload), o.Batch, o.Payload)
	failures := 0
	for ctx.Err() == nil {
		n := r.quota.take(ctx, o.Batch)
		if n == 0 {
			return
		}
		if err := r.limiter.wait(ctx, n); err != nil {
			r.quota.done(n, false)
			return
		}
		batch := txs[:n]
		r.src.Fill(batch)
		body := types.AppendBatch(make([]byte, 0, n*(o.Payload+binary.MaxVarintLen64)), batch)
		target := pick.pick()

		r.requests.Add(1)
		start := time.Now()
		out := post(ctx, r.client, r.urls[target], body, batch[0], o.Timeout)
		latency := time.Since(start)
		if out.kind != ErrConnect && out.kind != errCancelled {
			// An abandoned request may or may not have reached the replica; it is not counted.
			r.sent.Add(int64(n))
		}

		switch out.kind {
		case "":
			r.quota.done(n, true)
			r.recordCommit(target, n, min(out.duplicates, n), latency)
			failures = 0
		case errCancelled:
			r.quota.done(n, false)
			return
		default:
			r.quota.done(n, false)
			r.recordError(out, target)
			failures++
			if sleep(ctx, r.backoff(failures, out.retryAfter, rng)) != nil {
				return
			}
		}
	}
}

// backoff is the pause after the failures-th consecutive error: exponential from
// DefaultMinBackoff, capped at MaxBackoff, with jitter so that workers do not retry in lockstep.
// A Retry-After hint from the server stretches it to the cap.
func (r *runner) backoff(failures int, retryAfter time.Duration, rng *rand.Rand) time.Duration {
	ceiling := r.opts.MaxBackoff
	d := min(DefaultMinBackoff, ceiling) << min(failures-1, 16)
	if d > ceiling || d <= 0 {
		d = ceiling
	}
	if retryAfter > 0 {
		d = max(d, min(retryAfter, ceiling))
	}
	// Uniform in [d/2, d].
	return d/2 + time.Duration(rng.Int63n(int64(d/2)+1))
}

// recordCommit counts a committed batch of n transactions of which dups were duplicates: the
// replica had them already, so they are counted apart and not as this run's commits.
func (r *runner) recordCommit(target, n, dups int, latency time.Duration) {
	n -= dups
	r.mu.Lock()
	for range n {
		r.total.Record(latency)
		r.interval.Record(latency)
	}
	r.mu.Unlock()
	r.duplicates.Add(int64(dups))
	r.committed.Add(int64(n))
	r.batches.Add(1)
	r.perRep[target].Add(int64(n))
}

// MaxFirstErrors bounds Result.FirstErrors.
const MaxFirstErrors = 5

func (r *runner) recordError(out outcome, target int) {
	r.mu.Lock()
	r.errs[out.kind]++
	first := r.errs[out.kind] == 1
	if first && len(r.first) < MaxFirstErrors {
		r.first = append(r.first, fmt.Sprintf("%s (node %d): %v", out.kind, r.opts.Targets[target].ID, out.detail))
	}
	r.mu.Unlock()
	r.errorsTotal.Add(1)
	r.perRepErrs[target].Add(1)
	if first {
		r.opts.Logger.WithFields(logrus.Fields{
			"kind": out.kind, "node": r.opts.Targets[target].ID,
		}).WithError(out.detail).Warn("benchmark: first error of this kind (later ones are only counted)")
	}
}

// reportProgress calls opts.Progress every interval until done is closed.
func (r *runner) reportProgress(done <-chan struct{}) {
	t := time.NewTicker(r.opts.ProgressInterval)
	defer t.Stop()
	last, lastCommitted := r.start, int64(0)
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			committed := r.committed.Load()
			r.mu.Lock()
			p50, p99 := r.interval.Quantile(0.50), r.interval.Quantile(0.99)
			r.interval.Reset()
			r.mu.Unlock()
			p := Progress{
				Elapsed:   now.Sub(r.start),
				Committed: committed,
				TPS:       finite(float64(committed-lastCommitted) / now.Sub(last).Seconds()),
				P50:       finite(p50),
				P99:       finite(p99),
				Errors:    r.errorsTotal.Load(),
				Dups:      r.duplicates.Load(),
			}
			last, lastCommitted = now, committed
			r.opts.Progress(p)
		}
	}
}

// result builds the summary once every worker has returned.
func (r *runner) result(parent, runCtx context.Context, end time.Time) Result {
	o := r.opts
	elapsed := end.Sub(r.start)
	reason := StopDuration
	switch {
	case parent.Err() != nil:
		reason = StopInterrupted
	case r.quota.exhausted():
		reason = StopN
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		// Workers notice the deadline a moment after it passes; nothing they did after it counts.
		elapsed = min(elapsed, o.Duration)
	}
	res := Result{
		Start:            r.start,
		End:              end,
		StopReason:       reason,
		DurationS:        math.Round(elapsed.Seconds()*1e6) / 1e6, // µs, so throughput agrees with it
		CommittedTx:      r.committed.Load(),
		DuplicateTx:      r.duplicates.Load(),
		SentTx:           r.sent.Load(),
		Requests:         r.requests.Load(),
		Batches:          r.batches.Load(),
		ErrorsTotal:      r.errorsTotal.Load(),
		Errors:           make(map[string]int64),
		PerReplica:       make(map[string]int64, len(o.Targets)),
		PerReplicaErrors: make(map[string]int64, len(o.Targets)),
		Settings: Settings{
			Concurrency:    o.Concurrency,
			Rate:           o.Rate,
			Payload:        o.Payload,
			Batch:          o.Batch,
			N:              o.N,
			DurationLimitS: finite(o.Duration.Seconds()),
			TimeoutMS:      o.Timeout.Milliseconds(),
			Distribution:   o.Distribution(),
			Targets:        append([]Target(nil), o.Targets...),
		},
	}
	if o.Zipf {
		res.ZipfS, res.ZipfV = finite(o.ZipfS), finite(o.ZipfV)
	}
	if res.DurationS > 0 {
		res.ThroughputTPS = finite(float64(res.CommittedTx) / res.DurationS)
	}
	r.mu.Lock()
	res.Latency = r.total.Summary()
	res.LatencyHistogram = r.total.Export()
	for k, v := range r.errs {
		res.Errors[k] = v
	}
	res.FirstErrors = append([]string(nil), r.first...)
	r.mu.Unlock()
	for i, t := range o.Targets {
		res.PerReplica[strconv.Itoa(t.ID)] = r.perRep[i].Load()
		res.PerReplicaErrors[strconv.Itoa(t.ID)] = r.perRepErrs[i].Load()
	}
	return res
}
