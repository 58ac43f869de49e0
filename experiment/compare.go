package experiment

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Comparison is one point measured on two backends.
type Comparison struct {
	Protocol string  `json:"protocol"`
	N        int     `json:"n"`
	Offered  float64 `json:"offered_tps"`
	ATput    float64 `json:"a_throughput_ktps"`
	BTput    float64 `json:"b_throughput_ktps"`
	TputErr  float64 `json:"throughput_error"` // (a - b) / b
	AP50     float64 `json:"a_p50_ms"`
	BP50     float64 `json:"b_p50_ms"`
	P50Err   float64 `json:"p50_error"`
	// NetworkBound says whether b's run reached at least 90 % of what was offered or of the
	// bandwidth limit: where it did not, something other than the network (CPU) bounds it.
	NetworkBound bool `json:"network_bound"`
}

func readSummaries(dir string) ([]Summary, string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		return nil, "", err
	}
	var s []Summary
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, "", fmt.Errorf("%s: %v", dir, err)
	}
	backend := ""
	if len(s) > 0 {
		backend = s[0].Point.Backend
	}
	return s, backend, nil
}

// Compare matches the points of two results directories of the same spec (say virtual against
// tcp) and writes compare.md, compare.json and a plot of throughput and p50 latency against N
// into out. Tolerance is the share within which a's figures count as predicting b's.
func Compare(dirA, dirB, out string, tolerance float64) (string, error) {
	a, backA, err := readSummaries(dirA)
	if err != nil {
		return "", err
	}
	b, backB, err := readSummaries(dirB)
	if err != nil {
		return "", err
	}
	key := func(p Point) string {
		return fmt.Sprintf("%s|%d|%g|%d|%d|%s", p.Protocol, p.N, p.Rate, p.MSize, p.Byzantine, p.Zipf)
	}
	byKey := map[string]Summary{}
	for _, s := range b {
		byKey[key(s.Point)] = s
	}
	var rows []Comparison
	for _, sa := range a {
		sb, ok := byKey[key(sa.Point)]
		if !ok || sa.Runs == 0 || sb.Runs == 0 {
			continue
		}
		c := Comparison{Protocol: sa.Point.Protocol, N: sa.Point.N, Offered: sb.Point.Rate,
			ATput: sa.Metrics["throughput_ktps"].Mean, BTput: sb.Metrics["throughput_ktps"].Mean,
			AP50: sa.Metrics["p50_ms"].Mean, BP50: sb.Metrics["p50_ms"].Mean}
		c.TputErr = relErr(c.ATput, c.BTput)
		c.P50Err = relErr(c.AP50, c.BP50)
		lim := sb.Metrics["limit_ktps"].Mean
		c.NetworkBound = c.BTput >= 0.9*c.Offered/1000 || (lim > 0 && c.BTput >= 0.9*lim)
		rows = append(rows, c)
	}
	if len(rows) == 0 {
		return "", fmt.Errorf("no point of %s matches one of %s", dirA, dirB)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "%s (A) against %s (B); error = (A − B) ÷ B. B is bound by the network where it delivered at least 90 %% of the offered load or of the bandwidth limit.\n\n", dirA, dirB)
	fmt.Fprintf(&md, "| protocol | N | offered tx/s | %s KTx/s | %s KTx/s | error | %s p50 ms | %s p50 ms | error | bound by the network on %s | within ±%.0f %% |\n",
		backA, backB, backA, backB, backB, tolerance*100)
	md.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range rows {
		within := math.Abs(c.TputErr) <= tolerance && math.Abs(c.P50Err) <= tolerance
		fmt.Fprintf(&md, "| %s | %d | %.0f | %.2f | %.2f | %+.0f %% | %.0f | %.0f | %+.0f %% | %s | %s |\n",
			c.Protocol, c.N, c.Offered, c.ATput, c.BTput, c.TputErr*100, c.AP50, c.BP50, c.P50Err*100, yesNo(c.NetworkBound), yesNo(within))
	}
	if err := os.WriteFile(filepath.Join(out, "compare.md"), []byte(md.String()), 0o644); err != nil {
		return "", err
	}
	data, _ := json.MarshalIndent(rows, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "compare.json"), data, 0o644); err != nil {
		return "", err
	}
	for _, m := range []struct {
		file, label string
		get         func(Comparison) (float64, float64)
	}{
		{"compare-throughput", "throughput (KTx/s)", func(c Comparison) (float64, float64) { return c.ATput, c.BTput }},
		{"compare-p50", "latency p50 (ms)", func(c Comparison) (float64, float64) { return c.AP50, c.BP50 }},
	} {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s against %s: %s", backA, backB, m.label)
		p.X.Label.Text, p.Y.Label.Text = "replicas (N)", m.label
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		series := map[string][2]plotter.XYs{}
		var order []string
		for _, c := range rows {
			s, ok := series[c.Protocol]
			if !ok {
				order = append(order, c.Protocol)
			}
			va, vb := m.get(c)
			s[0] = append(s[0], plotter.XY{X: float64(c.N), Y: va})
			s[1] = append(s[1], plotter.XY{X: float64(c.N), Y: vb})
			series[c.Protocol] = s
		}
		for i, name := range order {
			for j, back := range []string{backA, backB} {
				l, sc, err := plotter.NewLinePoints(series[name][j])
				if err != nil {
					return "", err
				}
				l.Color, sc.Color = plotutil.Color(i), plotutil.Color(i)
				sc.Shape = plotutil.Shape(j)
				if j == 0 {
					l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
				}
				p.Add(l, sc)
				p.Legend.Add(name+" "+back, l, sc)
			}
		}
		p.Y.Min = 0
		for _, ext := range []string{"png", "svg"} {
			if err := p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(out, m.file+"."+ext)); err != nil {
				return "", err
			}
		}
	}
	return md.String(), nil
}

func relErr(a, b float64) float64 {
	if b == 0 {
		if a == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return (a - b) / b
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
