package stats

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in microseconds with log-linear buckets: exact below 128 µs, then 64
// sub-buckets per power of two (at most 1.6% error). Fixed memory, O(1) insert.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64 // µs
	max    uint64  // µs
}

const histBuckets = 128 + 64*50

func bucketOf(us uint64) int {
	if us < 128 {
		return int(us)
	}
	e := bits.Len64(us) - 7
	i := 128 + e*64 + int(us>>uint(e)) - 64
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// bucketMid is a representative value of bucket i in µs.
func bucketMid(i int) float64 {
	if i < 128 {
		return float64(i)
	}
	e := (i - 128) / 64
	m := uint64((i-128)%64 + 64)
	lo := m << uint(e)
	hi := (m + 1) << uint(e)
	return (float64(lo) + float64(hi)) / 2
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[bucketOf(us)]++
	h.n++
	h.sum += float64(us)
	if us > h.max {
		h.max = us
	}
}

// RecordN adds n samples of the same duration (a simulated batch of transactions).
func (h *Histogram) RecordN(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[bucketOf(us)] += n
	h.n += n
	h.sum += float64(us) * float64(n)
	if us > h.max {
		h.max = us
	}
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the q-quantile (0..1) in milliseconds, 0 when empty.
func (h *Histogram) Quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return math.Min(bucketMid(i), float64(h.max)) / 1000
		}
	}
	return float64(h.max) / 1000
}

// Latency is a summary in milliseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// Summary returns mean, percentiles and max in milliseconds (zeros when empty).
func (h *Histogram) Summary() Latency {
	if h.n == 0 {
		return Latency{}
	}
	return Latency{
		Mean: round3(h.sum / float64(h.n) / 1000),
		P50:  round3(h.Quantile(0.50)),
		P95:  round3(h.Quantile(0.95)),
		P99:  round3(h.Quantile(0.99)),
		Max:  round3(float64(h.max) / 1000),
	}
}

func round3(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1000) / 1000
}

// Window keeps per-second histograms and counts over the last Size seconds.
type Window struct {
	size   int
	secs   []int64
	hist   []Histogram
	counts []uint64
}

// NewWindow returns a window over size seconds.
func NewWindow(size int) *Window {
	return &Window{size: size, secs: make([]int64, size), hist: make([]Histogram, size), counts: make([]uint64, size)}
}

// NewCountWindow returns a window over size seconds that only counts: Record must not be called.
func NewCountWindow(size int) *Window {
	return &Window{size: size, secs: make([]int64, size), counts: make([]uint64, size)}
}

func (w *Window) slot(now time.Time) int {
	s := now.Unix()
	i := int(s % int64(w.size))
	if w.secs[i] != s {
		w.secs[i] = s
		if w.hist != nil {
			w.hist[i].Reset()
		}
		w.counts[i] = 0
	}
	return i
}

// Add counts n events at now.
func (w *Window) Add(now time.Time, n uint64) { w.counts[w.slot(now)] += n }

// Record adds a latency sample at now.
func (w *Window) Record(now time.Time, d time.Duration) { w.hist[w.slot(now)].Record(d) }

// Rate is events per second over the complete seconds of the window before now, measured over at
// most span of uptime so that a young node is not diluted.
func (w *Window) Rate(now time.Time, span time.Duration) float64 {
	cur := now.Unix()
	secs := min(int64(w.size-1), int64(span/time.Second))
	if secs < 1 {
		secs = 1
	}
	var total uint64
	for i := range w.secs {
		if s := w.secs[i]; s < cur && s >= cur-secs {
			total += w.counts[i]
		}
	}
	return float64(total) / float64(secs)
}

// Sum is the events counted in the window, the current second included.
func (w *Window) Sum(now time.Time) uint64 {
	cur := now.Unix()
	var total uint64
	for i := range w.secs {
		if s := w.secs[i]; s <= cur && s > cur-int64(w.size) {
			total += w.counts[i]
		}
	}
	return total
}

// Latency merges the histograms of the window (including the current second).
func (w *Window) Latency(now time.Time) Latency {
	cur := now.Unix()
	var h Histogram
	for i := range w.secs {
		if s := w.secs[i]; s <= cur && s > cur-int64(w.size) {
			h.Merge(&w.hist[i])
		}
	}
	return h.Summary()
}

// HistogramData is a histogram in a portable form: the non-empty buckets with their counts, so
// that results of several processes can be merged exactly.
type HistogramData struct {
	Buckets [][2]uint64 `json:"buckets"` // [bucket index, count], ascending index
	Count   uint64      `json:"count"`
	SumUS   float64     `json:"sum_us"`
	MaxUS   uint64      `json:"max_us"`
}

// Export returns h's data.
func (h *Histogram) Export() HistogramData {
	d := HistogramData{Count: h.n, SumUS: h.sum, MaxUS: h.max, Buckets: [][2]uint64{}}
	for i, c := range h.counts {
		if c > 0 {
			d.Buckets = append(d.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return d
}

// Import adds exported data to h. Buckets outside the histogram's range are an error and leave h
// unchanged.
func (h *Histogram) Import(d HistogramData) error {
	var n uint64
	for _, b := range d.Buckets {
		if b[0] >= histBuckets {
			return fmt.Errorf("stats: histogram bucket %d out of range", b[0])
		}
		n += b[1]
	}
	if n != d.Count {
		return fmt.Errorf("stats: histogram buckets hold %d samples but count is %d", n, d.Count)
	}
	if math.IsNaN(d.SumUS) || math.IsInf(d.SumUS, 0) || d.SumUS < 0 {
		return fmt.Errorf("stats: histogram sum %v is not a finite non-negative number", d.SumUS)
	}
	for _, b := range d.Buckets {
		h.counts[b[0]] += b[1]
	}
	h.n += d.Count
	h.sum += d.SumUS
	h.max = max(h.max, d.MaxUS)
	return nil
}
