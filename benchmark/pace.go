package benchmark

import (
	"context"
	"math/rand"
	"sync"
	"time"
)

// picker chooses the target index of each request. It belongs to one worker (rand.Rand and
// rand.Zipf are not safe for concurrent use).
type picker struct {
	n    int
	rng  *rand.Rand
	zipf *rand.Zipf
}

// newPicker picks among n targets uniformly, or by a Zipf law (s > 1, v >= 1) under which index k
// has probability proportional to (v+k)^-s: index 0 (replica 1 when targets are sorted by node ID)
// is the most loaded.
func newPicker(n int, zipf bool, s, v float64, rng *rand.Rand) *picker {
	p := &picker{n: n, rng: rng}
	if zipf && n > 1 {
		p.zipf = rand.NewZipf(rng, s, v, uint64(n-1))
	}
	return p
}

func (p *picker) pick() int {
	switch {
	case p.n <= 1:
		return 0
	case p.zipf != nil:
		return int(p.zipf.Uint64())
	default:
		return p.rng.Intn(p.n)
	}
}

// limiter spaces out transactions to a rate shared by all workers. It schedules each reservation
// after the previous one (no burst credit accumulates while workers are busy elsewhere) and callers
// sleep on a timer until their slot: there is no polling.
type limiter struct {
	perTx time.Duration // 0 = unlimited

	mu   sync.Mutex
	next time.Time
}

func newLimiter(rate int) *limiter {
	if rate <= 0 {
		return &limiter{}
	}
	return &limiter{perTx: time.Second / time.Duration(rate)}
}

// wait blocks until n transactions may be sent, or ctx is done.
func (l *limiter) wait(ctx context.Context, n int) error {
	if l.perTx == 0 {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = l.next.Add(time.Duration(n) * l.perTx)
	l.mu.Unlock()
	return sleep(ctx, time.Until(at))
}

// sleep waits for d or until ctx is done, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// quota hands out the N transactions of a bounded run. A worker takes up to a batch before sending
// and gives it back if the request fails, so the run ends exactly when N have been committed (or
// earlier, by time or cancellation). A worker that finds the quota empty while others are in flight
// waits for them: one of them may fail and return its share.
type quota struct {
	unlimited bool

	mu       sync.Mutex
	left     int64
	inflight int
	changed  chan struct{} // closed and replaced whenever left or inflight changes
}

func newQuota(n int64) *quota {
	return &quota{unlimited: n == 0, left: n, changed: make(chan struct{})}
}

// take reserves up to want transactions. It returns 0 when the quota is spent and nothing is in
// flight any more, or when ctx is done.
func (q *quota) take(ctx context.Context, want int) int {
	if q.unlimited {
		if ctx.Err() != nil {
			return 0
		}
		return want
	}
	for {
		q.mu.Lock()
		if q.left > 0 {
			n := int(min(int64(want), q.left))
			q.left -= int64(n)
			q.inflight++
			q.mu.Unlock()
			return n
		}
		if q.inflight == 0 {
			q.mu.Unlock()
			return 0
		}
		ch := q.changed
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0
		}
	}
}

// done ends a reservation of n transactions; unless they were committed they go back to the quota.
func (q *quota) done(n int, committed bool) {
	if q.unlimited {
		return
	}
	q.mu.Lock()
	q.inflight--
	if !committed {
		q.left += int64(n)
	}
	close(q.changed)
	q.changed = make(chan struct{})
	q.mu.Unlock()
}

// exhausted reports whether every transaction of a bounded run has been committed.
func (q *quota) exhausted() bool {
	if q.unlimited {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.left == 0 && q.inflight == 0
}
