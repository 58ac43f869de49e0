package stats

import "time"

// A replica whose clients mostly submit what it already has is doing wasted work, and the
// client is usually wrong (it re-sends identical transactions, or retries the same PUT with one
// Idempotency-Key over and over). The collector keeps the share of duplicates among the
// transactions submitted in the last windowSeconds, and says when it is due to be reported.

// DuplicateReportInterval is the least time between two reports of mostly duplicate submissions.
const DuplicateReportInterval = 10 * time.Second

// duplicateReportMin is the fewest submitted transactions in the window for a report: a handful
// of retries is no pattern.
const duplicateReportMin = 100

// DuplicateReport is due at most once per DuplicateReportInterval, when more than half of the
// transactions submitted in the last windowSeconds (at least duplicateReportMin of them) were
// duplicates. It returns the counts of that window.
func (c *Collector) DuplicateReport() (dups, total uint64, due bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	total, dups = c.submitted.Sum(now), c.submittedDups.Sum(now)
	if total < duplicateReportMin || 2*dups <= total || (!c.dupReported.IsZero() && now.Sub(c.dupReported) < DuplicateReportInterval) {
		return dups, total, false
	}
	c.dupReported = now
	return dups, total, true
}

// duplicateShare is the share of duplicates among the transactions submitted in the last
// windowSeconds, 0 when none were.
func (c *Collector) duplicateShare(now time.Time) float64 {
	total, dups := c.submitted.Sum(now), c.submittedDups.Sum(now)
	if total == 0 {
		return 0
	}
	return round3(float64(dups) / float64(total))
}
