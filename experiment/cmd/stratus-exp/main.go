// Command stratus-exp runs experiment specs (experiments/*.json): every point on a backend
// (virtual, sim or tcp), one result row per run with its provenance, mean and 95 % confidence
// interval per point, plots (PNG and SVG) and the spec's pass/fail checks. A rerun skips the
// points already finished.
//
//	stratus-exp [-quick] [-only_n 16,64] [-backend virtual|sim|tcp|ssh] [-out docs/results] [-j 1] [-fresh] [-list] SPEC ...
//	stratus-exp -compare [-out DIR] [-tolerance 0.2] RESULTS_DIR_A RESULTS_DIR_B
//
// SPEC is a spec file or the name of one this repository carries (fig5-batch, leader-bottleneck, …).
//
// Exit status: 0 when every check passed, 1 when a check or a run failed, 2 for a bad spec or
// command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stratusbft/stratus/experiment"
	"github.com/stratusbft/stratus/experiments"
)

func main() {
	os.Exit(run())
}

func run() int {
	glogs := map[string]bool{} // registered by glog, which the packages below import, before main runs
	flag.VisitAll(func(f *flag.Flag) { glogs[f.Name] = true })
	var opts experiment.Options
	flag.StringVar(&opts.Out, "out", filepath.Join("docs", "results"), "results `directory`: one subdirectory per spec")
	flag.StringVar(&opts.Backend, "backend", "", "run on this backend instead of the spec's: virtual (in-process virtual time), sim (one server -sim process), tcp (a server process per replica on this machine) or ssh (a cluster of hosts through deploy/)")
	flag.BoolVar(&opts.Quick, "quick", os.Getenv("PAPER_QUICK") == "1", "apply each spec's quick overrides (default: true when PAPER_QUICK=1)")
	flag.StringVar(&opts.Bin, "bin", "bin", "`directory` of the server and client binaries (sim and tcp backends)")
	flag.StringVar(&opts.SSH, "ssh", "", "ssh backend: the deploy/ `settings` file of the cluster (instead of the spec's ssh.settings)")
	flag.StringVar(&opts.Deploy, "deploy", "", "ssh backend: the `directory` of the deploy/ scripts (default: deploy beside -bin)")
	flag.IntVar(&opts.Jobs, "j", 1, "virtual points run side by side")
	flag.BoolVar(&opts.Fresh, "fresh", false, "run every point again instead of skipping those already in rows.jsonl")
	flag.BoolVar(&opts.ListOnly, "list", false, "validate the specs and list their points without running them")
	flag.BoolVar(&opts.NoPlots, "noplots", false, "draw no plots")
	onlyN := flag.String("only_n", "", "run only the points with these N, comma-separated (after -quick)")
	validate := flag.Bool("validate", false, "only validate the specs")
	compare := flag.Bool("compare", false, "instead of running specs: compare two results directories of one spec (DIR_A DIR_B, e.g. its virtual and tcp runs) and write compare.md, compare.json and plots into -out")
	tolerance := flag.Float64("tolerance", 0.2, "with -compare: the share within which A's figures count as predicting B's")
	own := map[string]bool{}
	flag.VisitAll(func(f *flag.Flag) { own[f.Name] = !glogs[f.Name] })
	flag.Usage = func() {
		out := flag.CommandLine.Output()
		fmt.Fprintf(out, "Usage: stratus-exp [flags] SPEC ...\n\nRuns experiment specs (see experiments/README.md): spec files, or the names of the specs this\nrepository carries: %s.\n\n", strings.Join(experiments.Names(), ", "))
		printFlags(out, own)
		fmt.Fprintln(out, "\nglog's tracing flags (-v, -vmodule, -log_dir, -logtostderr, ...) are accepted too.")
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		return 2
	}
	if *compare {
		if flag.NArg() != 2 {
			fmt.Fprintln(os.Stderr, "stratus-exp -compare: give two results directories (e.g. docs/results/virtual/sim-vs-tcp docs/results/tcp/sim-vs-tcp)")
			return 2
		}
		md, err := experiment.Compare(flag.Arg(0), flag.Arg(1), opts.Out, *tolerance)
		if err != nil {
			fmt.Fprintf(os.Stderr, "stratus-exp -compare: %v\n", err)
			return 1
		}
		fmt.Print(md)
		return 0
	}
	var specs []*experiment.Spec
	bad := false
	for _, path := range flag.Args() {
		s, err := experiment.Resolve(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "stratus-exp: %v\n", err)
			bad = true
			continue
		}
		specs = append(specs, s)
	}
	if bad {
		return 2
	}
	if *onlyN != "" {
		ns, err := experiment.ParseNs(*onlyN)
		if err != nil {
			fmt.Fprintf(os.Stderr, "stratus-exp: -only_n %v\n", err)
			return 2
		}
		opts.OnlyN = ns
	}
	if *validate {
		for _, s := range specs {
			fmt.Printf("%s: valid\n", s.Name)
		}
		return 0
	}
	if opts.Backend == "sim" || opts.Backend == "tcp" {
		if abs, err := filepath.Abs(opts.Bin); err == nil {
			opts.Bin = abs
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	status := 0
	for _, s := range specs {
		rep, err := experiment.Run(ctx, s, opts)
		if err != nil {
			fmt.Fprintf(os.Stderr, "stratus-exp: %v\n", err)
			if errors.Is(ctx.Err(), context.Canceled) {
				return 130
			}
			status = 1
			continue
		}
		if opts.ListOnly || rep.Skipped {
			continue
		}
		for _, c := range rep.Checks {
			if c.Verdict() == "FAIL" {
				status = 1
			}
			fmt.Fprintf(os.Stderr, "  %-5s  %s: %s\n", c.Verdict(), c.Name, c.Detail)
		}
		for _, n := range rep.PlotNotes {
			fmt.Fprintf(os.Stderr, "  note   %s\n", n)
		}
		for _, k := range rep.Knees {
			fmt.Fprintf(os.Stderr, "  knee   %s\n", k)
		}
		if rep.Failed > 0 {
			status = 1
		}
		fmt.Fprintf(os.Stderr, "== %s: %d points (%d run now, %d failed), %d plots, %d/%d checks passed, known or skipped, %s; results in %s\n",
			s.Name, len(rep.Points), rep.Ran, rep.Failed, len(rep.Plots)/2, len(rep.Checks)-len(rep.FailedChecks()), len(rep.Checks),
			rep.WallClock.Round(time.Second), rep.Dir)
	}
	fmt.Fprintf(os.Stderr, "stratus-exp: done in %s\n", time.Since(start).Round(time.Second))
	return status
}

// printFlags prints the defaults of the command line's flags named in names, as
// flag.PrintDefaults prints them all.
func printFlags(out io.Writer, names map[string]bool) {
	fs := flag.NewFlagSet("stratus-exp", flag.ContinueOnError)
	fs.SetOutput(out)
	flag.VisitAll(func(f *flag.Flag) {
		if names[f.Name] {
			fs.Var(f.Value, f.Name, f.Usage)
			fs.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	fs.PrintDefaults()
}
