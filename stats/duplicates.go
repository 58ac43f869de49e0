package stats

import "time"

// A replica whose clients mostly submit what it already has is doing wasted work, and the
// client is usually wrong (it re-sends identical transactions, or retries without an
// Idempotency-Key being the same write). The collector keeps the share of duplicates among the
// transactions submitted in the last windowSeconds, and says when it is due to be reported.

// DuplicateReportInterval is the least time between two reports of mostly duplicate submissions.
const DuplicateReportInterval = 10 * time.Second

// duplicateReportMin is the fewest submitted transactions in the window for a report: a handful
// of retries is no pattern.
const duplicateReportMin = 100

// submitWindow counts submitted transactions and their duplicates per second.
type submitWindow struct {
	secs        [windowSeconds]int64
	total, dups [windowSeconds]uint64
}

func (w *submitWindow) add(now time.Time, total, dups uint64) {
	s := now.Unix()
	i := int(s % windowSeconds)
	if w.secs[i] != s {
		w.secs[i], w.total[i], w.dups[i] = s, 0, 0
	}
	w.total[i] += total
	w.dups[i] += dups
}

// sum returns the counts of the last windowSeconds seconds up to now, the current one included.
func (w *submitWindow) sum(now time.Time) (total, dups uint64) {
	s := now.Unix()
	for i := range w.secs {
		if w.secs[i] > s-windowSeconds && w.secs[i] <= s {
			total += w.total[i]
			dups += w.dups[i]
		}
	}
	return total, dups
}

// DuplicateReport is due at most once per DuplicateReportInterval, when more than half of the
// transactions submitted in the last windowSeconds (at least duplicateReportMin of them) were
// duplicates. It returns the counts of that window.
func (c *Collector) DuplicateReport() (dups, total uint64, due bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	total, dups = c.submitWin.sum(now)
	if total < duplicateReportMin || 2*dups <= total || (!c.dupReported.IsZero() && now.Sub(c.dupReported) < DuplicateReportInterval) {
		return dups, total, false
	}
	c.dupReported = now
	return dups, total, true
}

// duplicateShare is the share of duplicates among the transactions submitted in the last
// windowSeconds, 0 when none were.
func (c *Collector) duplicateShare(now time.Time) float64 {
	total, dups := c.submitWin.sum(now)
	if total == 0 {
		return 0
	}
	return round3(float64(dups) / float64(total))
}
