package experiment

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Summary is a point over its repetitions: per metric the mean and the half-width of its 95 %
// confidence interval (Student's t with n-1 degrees of freedom; 0 with one repetition).
type Summary struct {
	Point   Point           `json:"point"` // Rep and Seed of the first repetition
	Runs    int             `json:"runs"`  // successful repetitions
	Failed  int             `json:"failed"`
	Seeds   []int64         `json:"seeds"`
	Metrics map[string]Stat `json:"metrics"`
	// SeriesTPS is the per-second throughput, mean over the repetitions, with its CI.
	SeriesTPS []Stat `json:"series_tps,omitempty"`
	Measured  string `json:"measured"`
}

// Stat is a mean with its 95 % confidence interval.
type Stat struct {
	Mean float64 `json:"mean"`
	CI95 float64 `json:"ci95"` // half-width
	SD   float64 `json:"sd"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
	N    int     `json:"n"`
}

// tTable holds Student's t quantile t(0.975, df) for df = 1..30.
var tTable = [...]float64{0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
	2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
	2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}

// T975 is Student's t quantile at 0.975 for df degrees of freedom (two-sided 95 %).
func T975(df int) float64 {
	switch {
	case df < 1:
		return math.NaN()
	case df < len(tTable):
		return tTable[df]
	case df <= 40:
		return 2.042 + (2.021-2.042)*float64(df-30)/10
	case df <= 60:
		return 2.021 + (2.000-2.021)*float64(df-40)/20
	case df <= 120:
		return 2.000 + (1.980-2.000)*float64(df-60)/60
	}
	return 1.960
}

// Describe is the mean, sample standard deviation and 95 % CI half-width of xs.
func Describe(xs []float64) Stat {
	st := Stat{N: len(xs), Min: math.Inf(1), Max: math.Inf(-1)}
	if len(xs) == 0 {
		return Stat{}
	}
	for _, x := range xs {
		st.Mean += x
		st.Min = math.Min(st.Min, x)
		st.Max = math.Max(st.Max, x)
	}
	st.Mean /= float64(len(xs))
	if len(xs) > 1 {
		ss := 0.0
		for _, x := range xs {
			ss += (x - st.Mean) * (x - st.Mean)
		}
		st.SD = math.Sqrt(ss / float64(len(xs)-1))
		st.CI95 = T975(len(xs)-1) * st.SD / math.Sqrt(float64(len(xs)))
	}
	return st
}

// Summarise groups rows by point (all but the repetition) in the points' order.
func Summarise(points []Point, rows []Row) []Summary {
	byKey := map[string]*Row{}
	for i := range rows {
		byKey[rows[i].Key] = &rows[i]
	}
	var order []string
	groups := map[string][]*Row{}
	firsts := map[string]Point{}
	for _, p := range points {
		g := p.group()
		if _, ok := firsts[g]; !ok {
			order = append(order, g)
			firsts[g] = p
		}
		if r, ok := byKey[p.Key]; ok {
			groups[g] = append(groups[g], r)
		}
	}
	var out []Summary
	for _, g := range order {
		s := Summary{Point: firsts[g], Metrics: map[string]Stat{}}
		values := map[string][]float64{}
		var series [][]float64
		for _, r := range groups[g] {
			if r.Error != "" {
				s.Failed++
				continue
			}
			s.Runs++
			s.Seeds = append(s.Seeds, r.Point.Seed)
			s.Measured = r.Measure
			for k, v := range r.Metrics {
				values[k] = append(values[k], v)
			}
			series = append(series, r.SeriesTPS)
		}
		for k, v := range values {
			s.Metrics[k] = Describe(v)
		}
		if len(series) > 0 {
			secs := len(series[0])
			for t := 0; t < secs; t++ {
				var xs []float64
				for _, sr := range series {
					if t < len(sr) {
						xs = append(xs, sr[t])
					}
				}
				s.SeriesTPS = append(s.SeriesTPS, Describe(xs))
			}
		}
		out = append(out, s)
	}
	return out
}

// summaryColumns are the metrics summary.csv lists (mean and CI each).
var summaryColumns = []string{"throughput_ktps", "p50_ms", "p99_ms", "latency_mean_ms", "share_of_limit", "saturated", "refused_share", "timed_out_views", "leader_mbps", "others_mbps"}

func writeSummary(dir string, sums []Summary) error {
	data, err := json.MarshalIndent(sums, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), data, 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "summary.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	head := []string{"protocol", "algorithm", "n", "rate", "load_share", "msize", "byzantine", "zipf", "runs", "failed"}
	for _, c := range summaryColumns {
		head = append(head, c, c+"_ci95")
	}
	_ = w.Write(append(head, "measured"))
	for _, s := range sums {
		p := s.Point
		rec := []string{p.Protocol, p.Algorithm, strconv.Itoa(p.N), fnum(p.Rate), fnum(p.LoadShare), strconv.Itoa(p.MSize),
			strconv.Itoa(p.Byzantine), p.Zipf, strconv.Itoa(s.Runs), strconv.Itoa(s.Failed)}
		for _, c := range summaryColumns {
			if st, ok := s.Metrics[c]; ok {
				rec = append(rec, fnum(st.Mean), fnum(st.CI95))
			} else {
				rec = append(rec, "", "")
			}
		}
		_ = w.Write(append(rec, s.Measured))
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeSummaryMarkdown writes summary.md: the spec, one table row per point (mean ± 95 % CI over
// the repetitions) and the checks.
func writeSummaryMarkdown(dir string, rep *Report) error {
	var b strings.Builder
	s := rep.Spec
	fmt.Fprintf(&b, "# %s", s.Name)
	if s.Figure != "" {
		fmt.Fprintf(&b, " (the paper's %s)", s.Figure)
	}
	fmt.Fprintf(&b, "\n\n%s\n\n", s.About)
	if len(rep.Summary) > 0 {
		fmt.Fprintf(&b, "Measured: %s. Mean ± half-width of the 95 %% confidence interval (Student's t) over the runs of each point.\n\n", rep.Summary[0].Measured)
	}
	b.WriteString("| protocol | N | offered tx/s | msize | Byzantine | Zipf | runs | KTx/s | mean latency ms | p50 ms | p99 ms | leader Mbit/s | others Mbit/s | refused | saturated |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	cell := func(st Stat, ok bool, prec int) string {
		if !ok {
			return "–"
		}
		if st.N > 1 && st.CI95 > 0 {
			return fmt.Sprintf("%.*f ± %.*f", prec, st.Mean, prec, st.CI95)
		}
		return fmt.Sprintf("%.*f", prec, st.Mean)
	}
	for _, sm := range rep.Summary {
		p := sm.Point
		get := func(m string, prec int) string {
			st, ok := sm.Metrics[m]
			return cell(st, ok && sm.Runs > 0, prec)
		}
		ms := "–"
		if p.MSize > 0 {
			ms = fmt.Sprintf("%d KB", p.MSize/1024)
		}
		z := p.Zipf
		if z == "" {
			z = "–"
		}
		sat := "no"
		if st, ok := sm.Metrics["saturated"]; ok && st.Mean > 0 {
			sat = "yes"
		}
		runs := fmt.Sprint(sm.Runs)
		if sm.Failed > 0 {
			runs += fmt.Sprintf(" (%d failed)", sm.Failed)
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			p.Protocol, p.N, p.Rate, ms, p.Byzantine, z, runs, get("throughput_ktps", 1), get("latency_mean_ms", 0), get("p50_ms", 0),
			get("p99_ms", 0), get("leader_mbps", 1), get("others_mbps", 1), get("refused_share", 2), sat)
	}
	if len(rep.Knees) > 0 {
		b.WriteString("\n## Saturation search\n\n")
		for _, k := range rep.Knees {
			fmt.Fprintf(&b, "- %s\n", k)
		}
	}
	if len(rep.Checks) > 0 {
		b.WriteString("\n## Checks\n\n")
		for _, c := range rep.Checks {
			fmt.Fprintf(&b, "- **%s** %s: %s", c.Verdict(), c.Name, c.Detail)
			if c.Verdict() == "KNOWN" {
				fmt.Fprintf(&b, " — known difference: %s", c.Known)
			}
			b.WriteString("\n")
		}
	}
	if len(rep.Plots) > 0 {
		b.WriteString("\n## Plots\n\n")
		for _, f := range rep.Plots {
			if strings.HasSuffix(f, ".png") {
				name := filepath.Base(f)
				fmt.Fprintf(&b, "![%s](%s)\n", strings.TrimSuffix(name, ".png"), name)
			}
		}
	}
	return os.WriteFile(filepath.Join(dir, "summary.md"), []byte(b.String()), 0o644)
}
