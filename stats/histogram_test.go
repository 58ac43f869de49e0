package stats

import (
	"math"
	"math/rand"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exactQuantile is the nearest-rank quantile of sorted samples: the ceil(q·n)-th smallest.
func exactQuantile(sorted []uint64, q float64) uint64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestHistogramEmpty(t *testing.T) {
	var h Histogram
	assert.Equal(t, uint64(0), h.Count())
	for _, q := range []float64{0, 0.5, 0.99, 1} {
		assert.Equal(t, 0.0, h.Quantile(q))
	}
	assert.Equal(t, Latency{}, h.Summary())
}

func TestHistogramExactBelow128us(t *testing.T) {
	var h Histogram
	for us := 0; us < 128; us++ {
		h.Record(time.Duration(us) * time.Microsecond)
	}
	require.Equal(t, uint64(128), h.Count())
	for rank := 1; rank <= 128; rank++ {
		q := float64(rank) / 128
		assert.Equal(t, float64(rank-1)/1000, h.Quantile(q), "rank %d", rank)
	}
	for us := 0; us < 128; us++ {
		var one Histogram
		one.Record(time.Duration(us)*time.Microsecond + 999) // sub-µs part is truncated
		assert.Equal(t, float64(us)/1000, one.Quantile(0.5), "%d µs", us)
	}
}

func TestHistogramRandomQuantilesWithin2Percent(t *testing.T) {
	rng := rand.New(rand.NewSource(12345))
	for _, dist := range []struct {
		name string
		gen  func() uint64
	}{
		{"uniform 0..1s", func() uint64 { return uint64(rng.Int63n(1_000_000)) }},
		{"exponential mean 20ms", func() uint64 { return uint64(rng.ExpFloat64() * 20_000) }},
		{"lognormal", func() uint64 { return uint64(math.Exp(rng.NormFloat64()*2 + 8)) }},
		{"wide 1µs..1000s", func() uint64 { return uint64(math.Pow(10, rng.Float64()*9)) }},
	} {
		var h Histogram
		samples := make([]uint64, 20000)
		var sum float64
		for i := range samples {
			us := dist.gen()
			samples[i] = us
			sum += float64(us)
			h.Record(time.Duration(us) * time.Microsecond)
		}
		sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
		for _, q := range []float64{0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1} {
			want := float64(exactQuantile(samples, q)) / 1000
			got := h.Quantile(q)
			assert.InEpsilon(t, want+1e-9, got+1e-9, 0.02, "%s q=%v", dist.name, q)
		}
		maxUS := samples[len(samples)-1]
		s := h.Summary()
		assert.Equal(t, math.Round(float64(maxUS))/1000, s.Max, dist.name)
		assert.InDelta(t, sum/float64(len(samples))/1000, s.Mean, 0.0011, dist.name)
		assert.LessOrEqual(t, s.P50, s.P95, dist.name)
		assert.LessOrEqual(t, s.P95, s.P99, dist.name)
		assert.LessOrEqual(t, s.P99, s.Max, dist.name)
		assert.LessOrEqual(t, h.Quantile(1), s.Max, "%s: no quantile above the max", dist.name)
	}
}

func TestHistogramMaxMeanSummary(t *testing.T) {
	var h Histogram
	for _, d := range []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 10 * time.Millisecond} {
		h.Record(d)
	}
	s := h.Summary()
	assert.Equal(t, 4.0, s.Mean)
	assert.Equal(t, 10.0, s.Max)
	assert.InEpsilon(t, 2.0, s.P50, 0.02)
	assert.Equal(t, 10.0, s.P95)
	assert.Equal(t, 10.0, s.P99)
	assert.Equal(t, uint64(4), h.Count())
}

func TestHistogramNegativeAndHuge(t *testing.T) {
	var h Histogram
	h.Record(-time.Second)
	assert.Equal(t, 0.0, h.Quantile(1))
	assert.Equal(t, uint64(1), h.Count())

	h.Record(time.Duration(math.MaxInt64))
	s := h.Summary()
	for _, v := range []float64{s.Mean, s.P50, s.P95, s.P99, s.Max} {
		assert.False(t, math.IsNaN(v) || math.IsInf(v, 0))
	}
	assert.InEpsilon(t, float64(uint64(math.MaxInt64)/1000)/1000, h.Quantile(1), 0.01)
	assert.Equal(t, math.Round(float64(uint64(math.MaxInt64)/1000))/1000, s.Max)
}

func TestHistogramMergeReset(t *testing.T) {
	var a, b, both Histogram
	for i := 1; i <= 100; i++ {
		d := time.Duration(i*i) * time.Microsecond * 37
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
		both.Record(d)
	}
	a.Merge(&b)
	assert.Equal(t, both, a)
	a.Reset()
	assert.Equal(t, Histogram{}, a)
	assert.Equal(t, 0.0, a.Quantile(0.5))
}

func TestBucketsMonotoneAndBounded(t *testing.T) {
	prev := -1
	for us := uint64(0); us < 1<<20; us += 1 + us/97 {
		i := bucketOf(us)
		require.GreaterOrEqual(t, i, prev, "us=%d", us)
		require.Less(t, i, histBuckets)
		mid := bucketMid(i)
		if us < 128 {
			require.Equal(t, float64(us), mid)
		} else {
			require.InEpsilon(t, float64(us), mid, 1.0/64, "us=%d", us)
		}
		prev = i
	}
	assert.Equal(t, histBuckets-1, bucketOf(math.MaxUint64))
}

func TestRound3(t *testing.T) {
	assert.Equal(t, 1.235, round3(1.23456))
	assert.Equal(t, 0.0, round3(math.NaN()))
	assert.Equal(t, 0.0, round3(math.Inf(1)))
	assert.Equal(t, 0.0, round3(math.Inf(-1)))
}

func TestWindowRate(t *testing.T) {
	w := NewWindow(10)
	t0 := time.Unix(1_000_000, 0)
	for s := 0; s < 5; s++ {
		w.Add(t0.Add(time.Duration(s)*time.Second+300*time.Millisecond), 10)
		w.Add(t0.Add(time.Duration(s)*time.Second+700*time.Millisecond), 10)
	}
	// 20 events in each of seconds 0..4; the current second (5) is incomplete and not counted.
	now := t0.Add(5*time.Second + 500*time.Millisecond)
	w.Add(now, 1000)
	assert.Equal(t, 20.0, w.Rate(now, 5500*time.Millisecond))
	// A young node is measured over its uptime only.
	assert.Equal(t, 20.0, w.Rate(now, 2*time.Second)) // seconds 3 and 4: 40 events / 2 s
	w.Add(t0.Add(4*time.Second), 60)                  // second 4 now has 80 events
	assert.Equal(t, 50.0, w.Rate(now, 2*time.Second))
	assert.Equal(t, 80.0, w.Rate(now, time.Second))
	// A short uptime still divides by at least one second.
	assert.Equal(t, 80.0, w.Rate(now, 100*time.Millisecond))
	// Over the full window (9 complete seconds) the idle seconds dilute.
	assert.InDelta(t, 160.0/9, w.Rate(now, time.Hour), 1e-9)
	// Much later, everything has left the window.
	later := t0.Add(time.Minute)
	assert.Equal(t, 0.0, w.Rate(later, time.Hour))
	// Slots are reused: old counts do not leak into a new second.
	w.Add(later, 7)
	assert.Equal(t, 7.0, w.Rate(later.Add(time.Second), time.Second))
}

func TestWindowLatency(t *testing.T) {
	w := NewWindow(10)
	t0 := time.Unix(2_000_000, 0)
	w.Record(t0, 100*time.Millisecond) // leaves the window
	for s := 1; s <= 10; s++ {
		w.Record(t0.Add(time.Duration(s)*time.Second), time.Duration(s)*time.Millisecond)
	}
	now := t0.Add(10*time.Second + 900*time.Millisecond)
	l := w.Latency(now)
	assert.Equal(t, 10.0, l.Max, "the 100 ms sample of second 0 is out of the window")
	assert.Equal(t, 5.5, l.Mean)
	assert.InEpsilon(t, 5.0, l.P50, 0.02)

	assert.Equal(t, Latency{}, NewWindow(10).Latency(now))
	assert.Equal(t, Latency{}, w.Latency(t0.Add(time.Hour)))
}
