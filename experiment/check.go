package experiment

import (
	"fmt"
	"sort"
	"strings"
)

// CheckResult is the verdict of a check or a baseline.
type CheckResult struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
	Known  string `json:"known_difference,omitempty"` // why a failure is expected
	// Skipped: the points the check is about were left out of this run (quick variant, a subset
	// of N).
	Skipped bool `json:"skipped,omitempty"`
}

// Verdict is PASS, FAIL, KNOWN (a failure the spec explains) or SKIP (its points were not run).
func (c CheckResult) Verdict() string {
	switch {
	case c.Skipped:
		return "SKIP"
	case c.Pass:
		return "PASS"
	case c.Known != "":
		return "KNOWN"
	}
	return "FAIL"
}

// absent is the result of a check whose points are not among the summaries: skipped when the
// run left points out on purpose, else failed.
func (s *Spec) absent(name, detail string) CheckResult {
	if s.partial != "" {
		return CheckResult{Name: name, Skipped: true, Detail: detail + " in this run (" + s.partial + ")"}
	}
	return CheckResult{Name: name, Detail: detail}
}

// select returns the summaries whose point matches where.
func selectSummaries(sums []Summary, where map[string]any) []Summary {
	var out []Summary
	for _, s := range sums {
		if s.Point.matches(where) {
			out = append(out, s)
		}
	}
	return out
}

func describeWhere(w map[string]any) string {
	var parts []string
	for _, k := range sortedKeys(w) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, w[k]))
	}
	return strings.Join(parts, " ")
}

// check evaluates the spec's checks and baselines.
func (s *Spec) check(sums []Summary) []CheckResult {
	var out []CheckResult
	for _, c := range s.Checks {
		for _, r := range s.evalCheck(c, sums) {
			r.Known = c.Known
			out = append(out, r)
		}
	}
	for _, b := range s.Baselines {
		out = append(out, s.evalBaseline(b, sums)...)
	}
	return out
}

func metricOf(s Summary, metric string) (Stat, bool) {
	st, ok := s.Metrics[metric]
	if !ok && (strings.HasPrefix(metric, "leader_mbps.") || strings.HasPrefix(metric, "others_mbps.")) && s.Runs > 0 {
		return Stat{}, true // a message type the role never sent
	}
	return st, ok && s.Runs > 0
}

func (s *Spec) evalCheck(c Check, sums []Summary) []CheckResult {
	name := c.Name
	at := selectSummaries(sums, c.Where)
	if len(at) == 0 {
		return []CheckResult{s.absent(name, fmt.Sprintf("no point matches %s", describeWhere(c.Where)))}
	}
	ref := 1.0
	refText := ""
	if len(c.RatioOf) > 0 {
		rs := selectSummaries(sums, c.RatioOf)
		if len(rs) != 1 {
			return []CheckResult{{Name: name, Detail: fmt.Sprintf("ratio_of %s matches %d points, want one", describeWhere(c.RatioOf), len(rs))}}
		}
		st, ok := metricOf(rs[0], c.Metric)
		if !ok {
			return []CheckResult{{Name: name, Detail: fmt.Sprintf("no %s at %s (the runs failed)", c.Metric, describeWhere(c.RatioOf))}}
		}
		ref = st.Mean
		refText = fmt.Sprintf(" × %.4g (%s at %s)", st.Mean, c.Metric, describeWhere(c.RatioOf))
	}
	var out []CheckResult
	for _, s := range at {
		st, ok := metricOf(s, c.Metric)
		if !ok {
			out = append(out, CheckResult{Name: name, Detail: fmt.Sprintf("no %s at %s (the runs failed)", c.Metric, s.Point.label())})
			continue
		}
		bound := c.Value * ref
		pass := st.Mean >= bound
		if c.Op == "<=" {
			pass = st.Mean <= bound
		}
		ci := ""
		if st.N > 1 {
			ci = fmt.Sprintf(" ± %.3g", st.CI95)
		}
		out = append(out, CheckResult{Name: name, Pass: pass, Detail: fmt.Sprintf("%s = %.4g%s at %s %s %.4g%s = %.4g",
			c.Metric, st.Mean, ci, describeWhere(c.Where), c.Op, c.Value, refText, bound)})
	}
	return out
}

func (s *Spec) evalBaseline(b Baseline, sums []Summary) []CheckResult {
	name := fmt.Sprintf("baseline %s at %s", b.Metric, describeWhere(b.Where))
	at := selectSummaries(sums, b.Where)
	if len(at) == 0 {
		return []CheckResult{s.absent(name, "no point matches")}
	}
	var out []CheckResult
	for _, s := range at {
		st, ok := metricOf(s, b.Metric)
		if !ok {
			out = append(out, CheckResult{Name: name, Detail: fmt.Sprintf("no %s at %s (the runs failed)", b.Metric, s.Point.label())})
			continue
		}
		var pass bool
		var bound float64
		if b.Higher == "lower" {
			bound = b.Value * (1 + b.Tolerance)
			pass = st.Mean <= bound
		} else {
			bound = b.Value * (1 - b.Tolerance)
			pass = st.Mean >= bound
		}
		verb := "at least"
		if b.Higher == "lower" {
			verb = "at most"
		}
		out = append(out, CheckResult{Name: name, Pass: pass, Detail: fmt.Sprintf("%s = %.4g at %s; baseline %.4g, want %s %.4g (tolerance %.0f %%)",
			b.Metric, st.Mean, s.Point.label(), b.Value, verb, bound, b.Tolerance*100)})
	}
	return out
}

// FailedChecks lists the checks of a report that failed (known differences apart).
func (r *Report) FailedChecks() []CheckResult {
	var out []CheckResult
	for _, c := range r.Checks {
		if c.Verdict() == "FAIL" {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
