package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/stratusbft/stratus/benchmark"
	"github.com/stratusbft/stratus/config"
)

// maxDuration is the longest run benchmark.T allows.
const maxDuration = 7 * 24 * time.Hour

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitNotLinearizable: -check found a history with no linearization.
	exitNotLinearizable = 3
	// exitCheckUnknown: -check gave up (check_timeout) without a verdict.
	exitCheckUnknown = 4
	// exitNothingCommitted: the run committed nothing.
	exitNothingCommitted = 5
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// flags are the command line; set records which ones were given, the others default to the
// configuration file.
type flags struct {
	config, ips       string
	duration          string
	concurrency, rate int
	payload, batch    int
	n                 int64
	zipf              bool
	targets           string
	out               string
	logDir, logLevel  string
	timeout           time.Duration
	merge             bool
	kv, check         bool
	keys              int
	writes            float64
	checkTimeout      time.Duration
	files             []string // with -merge
	set               map[string]bool
}

// usageError is a bad flag or configuration value: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf("client: "+format, args...)}
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	def := config.Default()
	fromConfig := func(key string, v any) string {
		return fmt.Sprintf("(default: the config's %s; %v when the config does not set it)", key, v)
	}
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "config.json", "configuration `file`")
	fs.StringVar(&f.ips, "ips", "ips.txt", "replica hosts `file`, one per line")
	fs.StringVar(&f.duration, "duration", "", "run `time`: whole seconds (20) or a Go duration (20s, 1m); the run ends at -duration or -n, whichever comes first "+fromConfig("benchmark.T", fmt.Sprintf("%d s", def.Benchmark.T)))
	fs.IntVar(&f.concurrency, "concurrency", 0, "requests in flight "+fromConfig("benchmark.Concurrency", def.Benchmark.Concurrency))
	fs.IntVar(&f.rate, "rate", 0, "tx/s across all workers, 0 = unlimited "+fromConfig("benchmark.Throttle", def.Benchmark.Throttle))
	fs.IntVar(&f.payload, "payload", 0, "transaction size in `bytes` "+fromConfig("payload_size", def.PayloadSize))
	fs.IntVar(&f.batch, "batch", 0, "transactions per request "+fromConfig("benchmark.Batch", def.Benchmark.Batch))
	fs.Int64Var(&f.n, "n", 0, "stop after this many committed transactions, 0 = no limit "+fromConfig("benchmark.N", def.Benchmark.N))
	fs.BoolVar(&f.zipf, "zipf", false, "pick replicas by a Zipf law (zipfian_s, zipfian_v; replica 1 gets the most load) instead of uniformly\n(default true iff benchmark.Distribution is \"zipf\" or zipf is true)")
	fs.StringVar(&f.targets, "targets", "", "comma-separated node `IDs` to send to (default all)")
	fs.StringVar(&f.out, "out", "", "JSON summary `file` (default client.<pid>.json in -log_dir)")
	fs.StringVar(&f.logDir, "log_dir", ".", "`directory` of client.<pid>.log and the default -out")
	fs.StringVar(&f.logLevel, "log_level", "info", "debug|info|warn|error")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.BoolVar(&f.kv, "kv", false, "key-value workload instead of transaction batches: each request is PUT /k<n>?wait=commit\nwith a unique value or GET /k<n>?consistency=linearizable (-n then counts operations)")
	fs.IntVar(&f.keys, "keys", 1000, "with -kv: number of keys k0 … k<K-1>, picked uniformly")
	fs.Float64Var(&f.writes, "writes", 0.5, "with -kv: fraction of operations that are writes, in [0, 1]")
	fs.BoolVar(&f.check, "check", false, "with -kv: check the recorded history for linearizability after the run (porcupine);\nexit code 3 when it is not linearizable")
	fs.DurationVar(&f.checkTimeout, "check_timeout", time.Minute, "with -check: give up the check after this long (verdict unknown), 0 = no limit")
	fs.BoolVar(&f.merge, "merge", false, "instead of a run: merge the JSON summaries given as arguments (clients that ran side by side)\ninto one, with exact percentiles; prints it and writes it to -out if given (flags go before the files)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: client [flags]\n\nGenerates load against the replicas and writes a JSON summary.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	switch {
	case f.merge && fs.NArg() == 0:
		return f, usagef("-merge needs the summary files to merge, e.g. client -merge client.*.json")
	case f.merge:
		f.files = fs.Args()
	case fs.NArg() > 0:
		return f, usagef("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	f.set = make(map[string]bool)
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, nil
}

// parseDuration accepts whole seconds ("20") or a Go duration ("20s", "1m30s").
func parseDuration(s string) (time.Duration, error) {
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		if secs > math.MaxInt64/int64(time.Second) {
			return 0, fmt.Errorf("%d seconds is too long", secs)
		}
		return time.Duration(secs) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want whole seconds (20) or a Go duration (20s, 1m)")
	}
	return d, nil
}

// parseTargets turns "1,3" into the matching nodes, in ascending ID order so that Zipf loads the
// lowest ID most.
func parseTargets(s string, nodes []config.Node) ([]benchmark.Target, error) {
	want := make(map[int]bool)
	if s != "" {
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			id, err := strconv.Atoi(part)
			if err != nil {
				return nil, usagef("-targets: %q is not a node ID (want e.g. 1,3)", part)
			}
			if id < 1 || id > len(nodes) {
				return nil, usagef("-targets: node %d is outside [1, %d]", id, len(nodes))
			}
			if want[id] {
				return nil, usagef("-targets: node %d is listed twice", id)
			}
			want[id] = true
		}
	}
	var targets []benchmark.Target
	for _, n := range nodes {
		if len(want) > 0 && !want[n.ID] {
			continue
		}
		if n.HTTPAddr == "" {
			return nil, usagef("node %d has no HTTP address (add it to ips.txt or http_address)", n.ID)
		}
		targets = append(targets, benchmark.Target{ID: n.ID, Addr: n.HTTPAddr})
	}
	if len(targets) == 0 {
		return nil, usagef("no replicas to send to")
	}
	return targets, nil
}

// options merges the configuration with the flags given and checks what the client uses.
func options(cfg config.Config, nodes []config.Node, f flags) (benchmark.Options, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, usagef(format, args...)) }
	b := cfg.Benchmark

	duration := time.Duration(b.T) * time.Second
	if f.set["duration"] {
		d, err := parseDuration(f.duration)
		switch {
		case err != nil:
			bad("-duration %q: %v", f.duration, err)
		case d <= 0:
			bad("-duration %q: must be positive", f.duration)
		case d > maxDuration:
			bad("-duration %q: must be at most %v", f.duration, maxDuration)
		default:
			duration = d
			b.T = int(math.Ceil(d.Seconds()))
		}
	}
	intFlag := func(name string, v int, lo, hi int, dst *int) {
		if !f.set[name] {
			return
		}
		if v < lo || v > hi {
			bad("-%s %d: must be in [%d, %d]", name, v, lo, hi)
			return
		}
		*dst = v
	}
	intFlag("concurrency", f.concurrency, 1, 100_000, &b.Concurrency)
	intFlag("rate", f.rate, 0, 100_000_000, &b.Throttle)
	intFlag("batch", f.batch, 1, 1_000_000, &b.Batch)
	if f.set["n"] {
		if f.n < 0 || f.n > 1<<40 {
			bad("-n %d: must be in [0, %d] (0 = no limit)", f.n, int64(1)<<40)
		} else {
			b.N = int(f.n)
		}
	}
	payload, payloadKey := cfg.PayloadSize, "payload_size"
	if f.set["payload"] {
		payload, payloadKey = f.payload, "-payload"
	}
	if hi := min(cfg.MaxTxSize, benchmark.MaxPayload); payload < benchmark.MinPayload || payload > hi {
		bad("%s %d: must be in [%d, %d] (max_tx_size)", payloadKey, payload, benchmark.MinPayload, hi)
	}
	if f.timeout <= 0 {
		bad("-timeout %v: must be positive", f.timeout)
	}
	zipf := b.Distribution == benchmark.Zipf || cfg.Zipf
	if f.set["zipf"] {
		zipf = f.zipf
		b.Distribution = benchmark.Uniform
		if zipf {
			b.Distribution = benchmark.Zipf
		}
	}
	if f.kv {
		if f.keys < 1 || f.keys > benchmark.MaxKeys {
			bad("-keys %d: must be in [1, %d]", f.keys, benchmark.MaxKeys)
		}
		if !(f.writes >= 0 && f.writes <= 1) {
			bad("-writes %v: must be in [0, 1]", f.writes)
		}
		if f.checkTimeout < 0 {
			bad("-check_timeout %v: must not be negative", f.checkTimeout)
		}
	} else {
		for _, name := range []string{"keys", "writes", "check", "check_timeout"} {
			if f.set[name] {
				bad("-%s needs -kv", name)
			}
		}
	}
	if len(errs) > 0 {
		return benchmark.Options{}, errors.Join(errs...)
	}
	if err := b.Validate(); err != nil {
		return benchmark.Options{}, usagef("%s: %w", f.config, err)
	}
	if zipf {
		if !(cfg.ZipfianS > 1) {
			bad("%s: zipfian_s: %v must be greater than 1", f.config, cfg.ZipfianS)
		}
		if !(cfg.ZipfianV >= 1) {
			bad("%s: zipfian_v: %v must be at least 1", f.config, cfg.ZipfianV)
		}
	}
	targets, err := parseTargets(f.targets, nodes)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return benchmark.Options{}, errors.Join(errs...)
	}
	return benchmark.Options{
		Targets:      targets,
		Duration:     duration,
		N:            int64(b.N),
		Concurrency:  b.Concurrency,
		Rate:         b.Throttle,
		Payload:      payload,
		Batch:        b.Batch,
		Zipf:         zipf,
		ZipfS:        cfg.ZipfianS,
		ZipfV:        cfg.ZipfianV,
		Timeout:      f.timeout,
		KV:           f.kv,
		Keys:         f.keys,
		Writes:       f.writes,
		Check:        f.check,
		CheckTimeout: f.checkTimeout,
	}, nil
}

// run is the whole client; main only adds the signal context and the exit.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, err)
		} // the flag package has already reported its own errors
		return exitUsage
	}
	if f.merge {
		return mergeFiles(f, stdout, stderr)
	}
	opts, logger, outPath, err := setup(f)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}

	opts.Logger = logger
	opts.Progress = func(p benchmark.Progress) {
		fmt.Fprintln(stdout, p.String())
		logger.Info(p.String())
	}
	if opts.Rate > 0 && opts.Rate < opts.Batch {
		msg := fmt.Sprintf("client: rate %d tx/s is below the batch of %d: one request every %.1f s",
			opts.Rate, opts.Batch, float64(opts.Batch)/float64(opts.Rate))
		fmt.Fprintln(stderr, msg)
		logger.Warn(msg)
	}
	res, err := benchmark.Run(ctx, opts)
	if err != nil { // options were checked above; this is a bug, not a usage error
		fmt.Fprintln(stderr, err)
		logger.WithError(err).Error("client: run failed")
		return exitError
	}
	if err := res.WriteText(stdout); err != nil {
		logger.WithError(err).Warn("client: print summary")
	}
	if err := res.WriteFile(outPath); err != nil {
		fmt.Fprintf(stderr, "client: %v\n", err)
		logger.WithError(err).Error("client: summary file not written")
		return exitError
	}
	fmt.Fprintf(stdout, "Summary written to %s\n", outPath)
	logger.WithField("file", outPath).Info("client: summary written")
	if res.CommittedTx == 0 {
		fmt.Fprintf(stderr, "client: nothing was committed: %d requests, %d failed\n", res.Requests, res.ErrorsTotal)
		for _, e := range res.FirstErrors {
			fmt.Fprintf(stderr, "  %s\n", e)
		}
		logger.WithFields(logrus.Fields{"requests": res.Requests, "errors": res.ErrorsTotal}).Error("client: nothing was committed")
		return exitNothingCommitted
	}
	if res.KV != nil && res.KV.Check != nil {
		c := res.KV.Check
		logger.WithFields(logrus.Fields{"result": c.Result, "ops": c.Ops, "pending": c.Pending, "key": c.BadKey}).Info("client: linearizability check")
		if c.Result == "illegal" {
			fmt.Fprintf(stderr, "client: the history is NOT linearizable (key %s)\n", c.BadKey)
			return exitNotLinearizable
		}
		if c.Result == "unknown" {
			fmt.Fprintf(stderr, "client: the linearizability check gave up after -check_timeout without a verdict\n")
			return exitCheckUnknown
		}
	}
	return exitOK
}

// setup loads the configuration, checks flags against it and opens the log.
func setup(f flags) (benchmark.Options, *logrus.Logger, string, error) {
	level, err := logrus.ParseLevel(f.logLevel)
	if err != nil || level > logrus.DebugLevel || level < logrus.ErrorLevel {
		return benchmark.Options{}, nil, "", usagef("-log_level %q: want debug, info, warn or error", f.logLevel)
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		return benchmark.Options{}, nil, "", usagef("%w", err)
	}
	hosts, err := config.ReadIPs(f.ips)
	if err != nil { // ips.txt defines the nodes; address maps only override single nodes

		return benchmark.Options{}, nil, "", usagef("%w", err)
	}
	opts, err := options(cfg, cfg.Nodes(hosts), f)
	if err != nil {
		return benchmark.Options{}, nil, "", err
	}

	if err := os.MkdirAll(f.logDir, 0o755); err != nil {
		return benchmark.Options{}, nil, "", usagef("-log_dir: %w", err)
	}
	pid := os.Getpid()
	outPath := f.out
	if outPath == "" {
		outPath = filepath.Join(f.logDir, fmt.Sprintf("client.%d.json", pid))
	} else if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return benchmark.Options{}, nil, "", usagef("-out: %w", err)
	}
	logPath := filepath.Join(f.logDir, fmt.Sprintf("client.%d.log", pid))
	file, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return benchmark.Options{}, nil, "", usagef("-log_dir: %w", err)
	}
	// The file stays open for the life of the process; the OS closes it at exit.
	logger := logrus.New()
	logger.SetOutput(file)
	logger.SetLevel(level)
	logger.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})
	logger.WithFields(logrus.Fields{
		"pid": pid, "config": f.config, "ips": f.ips, "out": outPath,
	}).Info("client: starting")
	return opts, logger, outPath, nil
}

// mergeFiles prints (and with -out writes) the merge of the summaries in f.files.
func mergeFiles(f flags, stdout, stderr io.Writer) int {
	var results []benchmark.Result
	for _, path := range f.files {
		r, err := benchmark.ReadResult(path)
		if err != nil {
			fmt.Fprintf(stderr, "client: -merge: %v\n", err)
			return exitUsage
		}
		results = append(results, r)
	}
	merged, err := benchmark.Merge(results)
	if err != nil {
		fmt.Fprintf(stderr, "client: -merge: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "Each client over its whole run:\n")
	for i, r := range results {
		fmt.Fprintf(stdout, "  %s  %s\n", filepath.Base(f.files[i]), r.Line())
	}
	fmt.Fprintf(stdout, "Merged %d client summaries\n", len(results))
	if err := merged.WriteText(stdout); err != nil {
		return exitError
	}
	if f.out != "" {
		if err := merged.WriteFile(f.out); err != nil {
			fmt.Fprintf(stderr, "client: %v\n", err)
			return exitError
		}
		fmt.Fprintf(stdout, "Summary written to %s\n", f.out)
	}
	return exitOK
}
