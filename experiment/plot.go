package experiment

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// axisLabels name the axes.
var axisLabels = map[string]string{
	"n": "replicas (N)", "rate": "offered load (tx/s)", "load_share": "offered load (× bandwidth limit)",
	"msize": "microblock size (bytes)", "byzantine": "Byzantine replicas", "t": "time (s)",
	"throughput_ktps": "throughput (KTx/s)", "offered_ktps": "offered load (KTx/s)", "p50_ms": "latency p50 (ms)",
	"p99_ms": "latency p99 (ms)", "latency_mean_ms": "mean latency (ms)", "tps_at_t": "throughput (KTx/s)",
	"leader_mbps": "leader outbound (Mbit/s)", "others_mbps": "non-leader outbound (Mbit/s)", "share_of_limit": "share of the bandwidth limit",
}

func axisLabel(s string) string {
	if l, ok := axisLabels[s]; ok {
		return l
	}
	return s
}

// xyErr is a series with confidence intervals in both directions.
type xyErr struct {
	plotter.XYs
	plotter.YErrors
	plotter.XErrors
}

// drawPlots draws every plot of the spec as PNG and SVG into dir and returns the files.
func (s *Spec) drawPlots(dir string, rep *Report) ([]string, error) {
	var files []string
	for _, pl := range s.Plots {
		p, err := s.buildPlot(pl, rep.Summary)
		if err != nil {
			// A quick run leaves out points some plots need.
			rep.PlotNotes = append(rep.PlotNotes, fmt.Sprintf("plot %s not drawn: %v", pl.File, err))
			continue
		}
		for _, ext := range []string{"png", "svg"} {
			f := filepath.Join(dir, pl.File+"."+ext)
			if err := p.Save(7*vg.Inch, 4.5*vg.Inch, f); err != nil {
				return files, fmt.Errorf("plot %s: %w", f, err)
			}
			files = append(files, f)
		}
	}
	return files, nil
}

func (s *Spec) buildPlot(pl Plot, sums []Summary) (*plot.Plot, error) {
	if pl.X == "protocol" {
		return s.buildBars(pl, sums)
	}
	p := plot.New()
	p.Title.Text = pl.Title
	if p.Title.Text == "" {
		p.Title.Text = s.Name
	}
	p.X.Label.Text, p.Y.Label.Text = axisLabel(pl.X), axisLabel(pl.Y)
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	group := pl.GroupBy
	if len(group) == 0 {
		group = []string{"protocol"}
	}
	type series struct {
		name string
		pts  []struct{ x, y, xe, ye float64 }
	}
	var order []string
	all := map[string]*series{}
	for _, sm := range selectSummaries(sums, pl.Where) {
		if sm.Runs == 0 {
			continue
		}
		var parts []string
		for _, g := range group {
			v := sm.Point.Field(g)
			if g == "protocol" || g == "algorithm" {
				parts = append(parts, fmt.Sprint(v))
			} else {
				parts = append(parts, fmt.Sprintf("%s=%v", g, fieldText(g, v)))
			}
		}
		name := strings.Join(parts, " ")
		if pl.X == "t" {
			// One series per point: its per-second throughput.
			se := &series{name: name}
			for t, st := range sm.SeriesTPS {
				se.pts = append(se.pts, struct{ x, y, xe, ye float64 }{float64(t + 1), st.Mean / 1000, 0, st.CI95 / 1000})
			}
			if _, dup := all[name]; !dup {
				order = append(order, name)
			}
			all[name] = se
			continue
		}
		x, xe, okx := value(sm, pl.X)
		y, ye, oky := value(sm, pl.Y)
		if !okx || !oky {
			continue
		}
		se, ok := all[name]
		if !ok {
			se = &series{name: name}
			all[name] = se
			order = append(order, name)
		}
		se.pts = append(se.pts, struct{ x, y, xe, ye float64 }{x, y, xe, ye})
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("no measured point matches (where %s)", describeWhere(pl.Where))
	}
	for i, name := range order {
		se := all[name]
		if pl.X != "t" {
			sort.Slice(se.pts, func(a, b int) bool { return se.pts[a].x < se.pts[b].x })
		}
		d := xyErr{XYs: make(plotter.XYs, 0, len(se.pts))}
		for _, pt := range se.pts {
			if (pl.LogX && pt.x <= 0) || (pl.LogY && pt.y <= 0) {
				continue
			}
			d.XYs = append(d.XYs, plotter.XY{X: pt.x, Y: pt.y})
			lo := math.Min(pt.ye, pt.y*0.999999)
			if !pl.LogY {
				lo = pt.ye
			}
			d.YErrors = append(d.YErrors, struct{ Low, High float64 }{lo, pt.ye})
			d.XErrors = append(d.XErrors, struct{ Low, High float64 }{pt.xe, pt.xe})
		}
		if len(d.XYs) == 0 {
			continue
		}
		col := plotutil.Color(i)
		line, scatter, err := plotter.NewLinePoints(d.XYs)
		if err != nil {
			return nil, err
		}
		line.Color, scatter.Color = col, col
		scatter.Shape = plotutil.Shape(i)
		p.Add(line, scatter)
		if hasErr(d.YErrors) {
			eb, err := plotter.NewYErrorBars(d)
			if err != nil {
				return nil, err
			}
			eb.Color = col
			p.Add(eb)
		}
		if hasErr(d.XErrors) {
			eb, err := plotter.NewXErrorBars(d)
			if err != nil {
				return nil, err
			}
			eb.Color = col
			p.Add(eb)
		}
		p.Legend.Add(name, line, scatter)
	}
	for i, r := range pl.Reference {
		var xys plotter.XYs
		for _, pt := range r.Points {
			if (pl.LogX && pt[0] <= 0) || (pl.LogY && pt[1] <= 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: pt[0], Y: pt[1]})
		}
		if len(xys) == 0 {
			continue
		}
		line, scatter, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		col := plotutil.Color(i)
		if ci := referenceColour(r.Label, order); ci >= 0 {
			col = plotutil.Color(ci)
		}
		line.Color, scatter.Color = col, col
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		scatter.Shape = draw.CircleGlyph{}
		scatter.GlyphStyle.Radius = vg.Points(2)
		line.Width = vg.Points(1)
		p.Add(line, scatter)
		p.Legend.Add(r.Label, line, scatter)
	}
	if pl.LogX {
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	if pl.X == "n" {
		// Ticks at the replica counts measured or published.
		seen := map[float64]bool{}
		var ticks []plot.Tick
		add := func(x float64) {
			if !seen[x] && (!pl.LogX || x > 0) {
				seen[x] = true
				ticks = append(ticks, plot.Tick{Value: x, Label: fmt.Sprint(x)})
			}
		}
		for _, name := range order {
			for _, pt := range all[name].pts {
				add(pt.x)
			}
		}
		for _, r := range pl.Reference {
			for _, pt := range r.Points {
				add(pt[0])
			}
		}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
	}
	if pl.LogY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	if !pl.LogY {
		// From 0, with room above the data for the legend's entries.
		p.Y.Min = math.Min(p.Y.Min, 0)
		p.Y.Max = p.Y.Min + (p.Y.Max-p.Y.Min)*(1+0.06*float64(len(order)+len(pl.Reference)))
	} else {
		p.Y.Max *= math.Pow(10, 0.12*float64(len(order)+len(pl.Reference)))
	}
	return p, nil
}

// referenceColour gives a reference series the colour of the measured series it names ("paper
// s-hs" → s-hs), or -1.
func referenceColour(label string, order []string) int {
	best, at := 0, -1
	for i, name := range order {
		if strings.Contains(strings.ToLower(label), strings.ToLower(name)) && len(name) > best {
			best, at = len(name), i
		}
	}
	return at
}

func hasErr(e []struct{ Low, High float64 }) bool {
	for _, v := range e {
		if v.Low > 0 || v.High > 0 {
			return true
		}
	}
	return false
}

// value is a summary's value on an axis: a point field, or a metric's mean and CI.
func value(s Summary, name string) (float64, float64, bool) {
	if isField(name) {
		f, ok := toFloat(s.Point.Field(name))
		return f, 0, ok
	}
	st, ok := s.Metrics[name]
	if !ok {
		if strings.Contains(name, "_mbps.") {
			return 0, 0, s.Runs > 0
		}
		return 0, 0, false
	}
	return st.Mean, st.CI95, true
}

func fieldText(name string, v any) string {
	if name == "msize" {
		if n, ok := v.(int); ok && n > 0 && n%1024 == 0 {
			return fmt.Sprintf("%dK", n/1024)
		}
	}
	if name == "zipf" && v == "" {
		return "uniform"
	}
	return fmt.Sprint(v)
}

var _ color.Color = plotutil.Color(0)

// buildBars draws one group of bars per protocol: a bar per value of group_by (the other fields),
// with its confidence interval, and the reference values as bars of their own.
func (s *Spec) buildBars(pl Plot, sums []Summary) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = pl.Title
	p.Y.Label.Text = axisLabel(pl.Y)
	p.Legend.Top = true
	var cats []string
	catIndex := map[string]int{}
	type bar struct{ y, ci float64 }
	var groups []string
	vals := map[string]map[int]bar{}
	for _, sm := range selectSummaries(sums, pl.Where) {
		if sm.Runs == 0 {
			continue
		}
		c := sm.Point.Protocol
		if _, ok := catIndex[c]; !ok {
			catIndex[c] = len(cats)
			cats = append(cats, c)
		}
		var parts []string
		for _, g := range pl.GroupBy {
			if g != "protocol" {
				parts = append(parts, fmt.Sprintf("%s=%v", g, fieldText(g, sm.Point.Field(g))))
			}
		}
		name := strings.Join(parts, " ")
		if name == "" {
			name = "measured"
		}
		if _, ok := vals[name]; !ok {
			vals[name] = map[int]bar{}
			groups = append(groups, name)
		}
		y, ci, ok := value(sm, pl.Y)
		if ok {
			vals[name][catIndex[c]] = bar{y, ci}
		}
	}
	if len(cats) == 0 {
		return nil, fmt.Errorf("no measured point matches (where %s)", describeWhere(pl.Where))
	}
	for _, r := range pl.Reference {
		m := map[int]bar{}
		for k, v := range r.Values {
			if i, ok := catIndex[k]; ok {
				m[i] = bar{v, 0}
			}
		}
		vals[r.Label] = m
		groups = append(groups, r.Label)
	}
	top := 0.0
	for _, m := range vals {
		for _, b := range m {
			top = math.Max(top, b.y+b.ci)
		}
	}
	width := vg.Points(math.Max(2, 0.8*430/float64(len(cats))/float64(len(groups))))
	for gi, g := range groups {
		v := make(plotter.Values, len(cats))
		var eb xyErr
		shift := -0.4 + (float64(gi)+0.5)*0.8/float64(len(groups))
		for i := range cats {
			b := vals[g][i]
			v[i] = b.y
			if b.ci > 0 {
				eb.XYs = append(eb.XYs, plotter.XY{X: float64(i) + shift, Y: b.y})
				eb.YErrors = append(eb.YErrors, struct{ Low, High float64 }{b.ci, b.ci})
				eb.XErrors = append(eb.XErrors, struct{ Low, High float64 }{0, 0})
			}
		}
		bc, err := plotter.NewBarChart(v, width)
		if err != nil {
			return nil, err
		}
		bc.XMin = shift
		bc.Color = plotutil.Color(gi)
		bc.LineStyle.Width = vg.Length(0)
		p.Add(bc)
		p.Legend.Add(g, bc)
		if len(eb.XYs) > 0 {
			e, err := plotter.NewYErrorBars(eb)
			if err != nil {
				return nil, err
			}
			p.Add(e)
		}
	}
	p.NominalX(cats...)
	p.X.Min, p.X.Max = -0.5, float64(len(cats))-0.5
	p.Y.Min, p.Y.Max = 0, top*(1+0.08*float64(len(groups))) // room for the legend
	return p, nil
}
