package experiment

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Options drive a run of specs.
type Options struct {
	Out      string    // results directory: one subdirectory per spec (default docs/results)
	Backend  string    // overrides the specs' backend
	Quick    bool      // apply each spec's quick overrides
	Bin      string    // directory of the server and client binaries (sim, tcp)
	SSH      string    // ssh backend: the deploy/ settings file of the cluster (overrides the spec's)
	Deploy   string    // ssh backend: the deploy/ scripts' directory (default: deploy beside Bin)
	Jobs     int       // virtual points run side by side (default 1)
	Fresh    bool      // ignore finished rows and run every point again
	Log      io.Writer // progress lines (default os.Stderr)
	NoPlots  bool
	ListOnly bool  // print the points and stop
	OnlyN    []int // run only the points with these N (after the quick variant)
}

// Report is what a spec's run produced.
type Report struct {
	Spec      *Spec
	Dir       string
	Points    []Point
	Rows      []Row // one per point, in the points' order
	Summary   []Summary
	Checks    []CheckResult
	Plots     []string
	PlotNotes []string // plots left out, and why
	Skipped   bool     // a quick run leaves the spec out
	Knees     []Knee   // a saturation search's result per protocol and setting
	Ran       int      // points run now (the others were finished before)
	Failed    int      // rows with an error
	WallClock time.Duration
}

// Run runs one spec: it expands the points, skips those whose row is already in the results
// directory, runs the others, and writes rows (rows.jsonl, rows.csv), summaries (summary.csv,
// summary.json), plots and checks (checks.txt).
func Run(ctx context.Context, s *Spec, opts Options) (*Report, error) {
	start := time.Now()
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if opts.Out == "" {
		opts.Out = filepath.Join("docs", "results")
	}
	if opts.Jobs < 1 {
		opts.Jobs = 1
	}
	if opts.Quick {
		if s.Quick != nil && s.Quick.Skip {
			fmt.Fprintf(opts.Log, "== %s: left out of quick runs (its spec says quick.skip)\n", s.Name)
			return &Report{Spec: s, Dir: filepath.Join(opts.Out, s.Name), Skipped: true}, nil
		}
		s.applyQuick()
	}
	if len(opts.OnlyN) > 0 {
		if err := s.OnlyN(opts.OnlyN); err != nil {
			return nil, err
		}
	}
	backend := opts.Backend
	if backend == "" {
		backend = s.Backend
	}
	if backend == "" {
		backend = "virtual"
	}
	switch backend {
	case "virtual", "sim", "tcp":
	case "ssh":
		if _, err := s.sshSettings(opts); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("backend %q: want virtual, sim, tcp or ssh", backend)
	}
	points, err := s.Expand(backend)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	dir := filepath.Join(opts.Out, s.Name)
	rep := &Report{Spec: s, Dir: dir, Points: points}
	if opts.ListOnly {
		for i, p := range points {
			fmt.Fprintf(opts.Log, "%3d  %s  %s  %v\n", i+1, p.Key, p.label(), p.Duration.D())
		}
		return rep, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if s.raw != nil {
		if err := os.WriteFile(filepath.Join(dir, "spec.json"), s.raw, 0o644); err != nil {
			return nil, err
		}
	}
	rowsPath := filepath.Join(dir, "rows.jsonl")
	old, err := readRows(rowsPath)
	if err != nil {
		return nil, err
	}
	// The points finished before: their last row without an error (a failed run runs again).
	done := map[string]Row{}
	for _, r := range old {
		if r.Error == "" && !opts.Fresh {
			done[r.Key] = r
		}
	}
	var todo []Point
	for _, p := range points {
		if _, ok := done[p.Key]; !ok {
			todo = append(todo, p)
		}
	}
	fmt.Fprintf(opts.Log, "== %s: %d points on %s, %d finished before, %d to run (results in %s)\n",
		s.Name, len(points), backend, len(points)-len(todo), len(todo), dir)

	f, err := os.OpenFile(rowsPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ref := SpecRef{Name: s.Name, File: s.path, Quick: opts.Quick}
	if s.raw != nil {
		h := sha256.Sum256(s.raw)
		ref.SHA256 = hex.EncodeToString(h[:])
	}
	machine, commit, binary := thisMachine(), gitCommit(), binarySum(protocolBinary(backend, opts))
	prog := newProgress(todo, opts.Log)
	var mu sync.Mutex
	jobs := opts.Jobs
	if backend != "virtual" || s.Saturation != nil {
		jobs = 1 // processes share the machine's ports and cores; a search goes up its ladder in order
	}
	// A saturation search stops a ladder at its knee: the loads above it are not run.
	knees := map[string]kneeAt{}
	for _, p := range points {
		if r, ok := done[p.Key]; ok && s.Saturation != nil && r.Error == "" {
			if why := s.Saturation.knee(r.Metrics); why != "" && knees[p.ladderKey()].why == "" {
				knees[p.ladderKey()] = kneeAt{p.LoadShare, why}
			}
		}
	}
	work := make(chan Point)
	var wg sync.WaitGroup
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if s.Saturation != nil {
					mu.Lock()
					past := knees[p.ladderKey()].why != ""
					mu.Unlock()
					if past {
						prog.skipped(p)
						continue
					}
				}
				row := Row{Key: p.Key, Point: p, Spec: ref, Backend: backend, Commit: commit, Binary: binary, Machine: machine, Start: time.Now().UTC()}
				var err error
				switch backend {
				case "virtual":
					err = s.runVirtual(ctx, p, &row)
				case "ssh":
					err = s.runSSH(ctx, p, &row, opts)
				default:
					err = s.runProcs(ctx, p, &row, opts)
				}
				row.WallS = time.Since(row.Start).Seconds()
				if err != nil {
					row.Error = err.Error()
				}
				mu.Lock()
				if ctx.Err() == nil || err == nil {
					data, merr := json.Marshal(row)
					if merr == nil {
						_, _ = f.Write(append(data, '\n'))
					}
					done[p.Key] = row
				}
				if s.Saturation != nil && row.Error == "" {
					if why := s.Saturation.knee(row.Metrics); why != "" && knees[p.ladderKey()].why == "" {
						knees[p.ladderKey()] = kneeAt{p.LoadShare, why}
					}
				}
				prog.finished(p, &row)
				if row.Error != "" {
					rep.Failed++
				}
				rep.Ran++
				mu.Unlock()
			}
		}()
	}
feed:
	for _, p := range todo {
		select {
		case work <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return rep, fmt.Errorf("%s: interrupted after %d of %d points (a rerun continues)", s.Name, rep.Ran, len(todo))
	}
	for _, p := range points {
		if r, ok := done[p.Key]; ok {
			rep.Rows = append(rep.Rows, r)
		}
	}
	if err := writeCSV(filepath.Join(dir, "rows.csv"), rep.Rows); err != nil {
		return rep, err
	}
	rep.Summary = Summarise(points, rep.Rows)
	if s.Saturation != nil {
		rep.Knees = saturationKnees(points, rep.Summary, knees)
	}
	if err := writeSummary(dir, rep.Summary); err != nil {
		return rep, err
	}
	if !opts.NoPlots {
		files, err := s.drawPlots(dir, rep)
		if err != nil {
			return rep, err
		}
		rep.Plots = files
	}
	rep.Checks = s.check(rep.Summary)
	if err := writeChecks(filepath.Join(dir, "checks.txt"), rep); err != nil {
		return rep, err
	}
	if err := writeSummaryMarkdown(dir, rep); err != nil {
		return rep, err
	}
	rep.WallClock = time.Since(start)
	return rep, nil
}

func writeCSV(path string, rows []Row) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write(csvHeader())
	for i := range rows {
		_ = w.Write(rows[i].csv())
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// progress prints a line per finished point: points done, wall-clock so far and an estimate of
// the time left (each remaining point costed by its N × duration at the rate measured so far).
type progress struct {
	total, done int
	start       time.Time
	doneCost    float64
	leftCost    float64
	w           io.Writer
}

func cost(p Point) float64 { return float64(p.N) * p.Duration.D().Seconds() }

func newProgress(todo []Point, w io.Writer) *progress {
	pr := &progress{total: len(todo), start: time.Now(), w: w}
	for _, p := range todo {
		pr.leftCost += cost(p)
	}
	return pr
}

func (pr *progress) skipped(p Point) {
	pr.done++
	pr.leftCost -= cost(p)
	fmt.Fprintf(pr.w, "[skip] %d/%d  %s: above the knee of its saturation search\n", pr.done, pr.total, p.label())
}

func (pr *progress) finished(p Point, r *Row) {
	pr.done++
	pr.doneCost += cost(p)
	pr.leftCost -= cost(p)
	el := time.Since(pr.start)
	left := "?"
	if pr.doneCost > 0 {
		left = fmtDur(time.Duration(float64(el) / pr.doneCost * pr.leftCost))
	}
	status := fmt.Sprintf("%.1f kTx/s, p50 %.0f ms, p99 %.0f ms", r.Metrics["throughput_ktps"], r.Metrics["p50_ms"], r.Metrics["p99_ms"])
	if r.Error != "" {
		status = "FAILED: " + firstLine(r.Error)
	}
	bar := strings.Repeat("#", pr.done*20/max(pr.total, 1)) + strings.Repeat(".", 20-pr.done*20/max(pr.total, 1))
	fmt.Fprintf(pr.w, "[%s] %d/%d  %s: %s (%.1f s)  elapsed %s, left ~%s\n", bar, pr.done, pr.total, p.label(), status, r.WallS, fmtDur(el), left)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func fmtDur(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	}
	return fmt.Sprintf("%dm%02ds", m, s)
}

func writeChecks(path string, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s — %s\n", rep.Spec.Name, rep.Spec.About)
	if len(rep.Checks) == 0 {
		b.WriteString("no checks in the spec\n")
	}
	for _, c := range rep.Checks {
		fmt.Fprintf(&b, "%-5s  %s: %s\n", c.Verdict(), c.Name, c.Detail)
		if c.Verdict() == "KNOWN" {
			fmt.Fprintf(&b, "       known difference: %s\n", c.Known)
		}
	}
	for _, n := range rep.PlotNotes {
		fmt.Fprintf(&b, "note   %s\n", n)
	}
	for _, k := range rep.Knees {
		fmt.Fprintf(&b, "knee   %s\n", k)
	}
	if rep.Failed > 0 {
		fmt.Fprintf(&b, "%d run(s) failed: see the error column of rows.csv\n", rep.Failed)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Knee is a saturation search's result: the highest load below the knee and what it delivered.
type Knee struct {
	Ladder     string  `json:"ladder"` // protocol|n|msize|byzantine|zipf
	Share      float64 `json:"load_share"`
	Rate       float64 `json:"rate"`
	Throughput Stat    `json:"throughput_ktps"`
	P99        Stat    `json:"p99_ms"`
	Why        string  `json:"knee"` // the first load past the knee and why ("" if the ladder never reached it)
}

func (k Knee) String() string {
	why := k.Why
	if why == "" {
		why = "no knee within the ladder"
	}
	if k.Rate == 0 {
		return fmt.Sprintf("%s: saturated at the first step (%s)", k.Ladder, why)
	}
	return fmt.Sprintf("%s: %.3g × limit (%.0f tx/s) delivers %.2f KTx/s, p99 %.0f ms; knee at %s", k.Ladder, k.Share, k.Rate, k.Throughput.Mean, k.P99.Mean, why)
}

// kneeAt is the first load of a ladder past its knee, and why.
type kneeAt struct {
	share float64
	why   string
}

// saturationKnees picks, per ladder, the highest load below the knee.
func saturationKnees(points []Point, sums []Summary, knees map[string]kneeAt) []Knee {
	var order []string
	best := map[string]Knee{}
	for _, p := range points {
		if _, ok := best[p.ladderKey()]; !ok {
			order = append(order, p.ladderKey())
			k := Knee{Ladder: p.ladderKey()}
			if at := knees[p.ladderKey()]; at.why != "" {
				k.Why = fmt.Sprintf("%.3g × limit: %s", at.share, at.why)
			}
			best[p.ladderKey()] = k
		}
	}
	for _, sm := range sums {
		k := best[sm.Point.ladderKey()]
		if sm.Runs == 0 {
			continue
		}
		at := knees[sm.Point.ladderKey()]
		pastKnee := at.why != "" && sm.Point.LoadShare >= at.share
		if !pastKnee && sm.Point.LoadShare > k.Share {
			k.Share, k.Rate = sm.Point.LoadShare, sm.Point.Rate
			k.Throughput, k.P99 = sm.Metrics["throughput_ktps"], sm.Metrics["p99_ms"]
			best[sm.Point.ladderKey()] = k
		}
	}
	var out []Knee
	for _, k := range order {
		out = append(out, best[k])
	}
	return out
}
