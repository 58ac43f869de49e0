package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/experiment"
	"github.com/stratusbft/stratus/experiments"
	"github.com/stratusbft/stratus/simnet/virtual"
)

// virtualFlags are the flags of server -virtual.
type virtualFlags struct {
	on                        *bool
	n                         *int
	net                       *string
	duration, warmup          *time.Duration
	rate                      *float64
	txSize                    *int
	msize, bsize              *int
	seed                      *int64
	byz                       *int
	strategy                  *string
	zipf, async, partition    *string
	cpu                       *string
	tick, clientLat           *time.Duration
	uplink, downlink          *float64
	latency, jitter           *time.Duration
	matrix                    *string
	fifoUplink                *bool
	loss                      *float64
	scenario                  *string
	small                     *bool
	quiet                     *bool
	onlyN                     *string
	results                   *string
	fit                       *bool
	signatures                *string
	proofs                    *string
	q, timeoutMs, d           *int
	lb                        *bool
	proposeTimeout, batchTime *time.Duration
}

func registerVirtualFlags() *virtualFlags {
	return &virtualFlags{
		on:             flag.Bool("virtual", false, "run the virtual-time simulator: N replicas on a modelled network (bandwidth queues, latency), open-loop load, a JSON result; see -scenario"),
		n:              flag.Int("n", 16, "with -virtual: replicas"),
		net:            flag.String("net", "wan", "with -virtual: network preset lan (1 Gbit/s, 1 ms RTT), wan (100 Mbit/s, 100 ms RTT) or config (the config's delay, derr, bandwidth and loss)"),
		duration:       flag.Duration("duration", 30*time.Second, "with -virtual: virtual time to simulate"),
		warmup:         flag.Duration("warmup", -1, "with -virtual: virtual time before throughput and latency are measured (default: a sixth of -duration)"),
		rate:           flag.Float64("rate", 0, "with -virtual: offered load, transactions per second over all replicas (default: 0.9 × the network's bandwidth limit for the protocol, just under saturation)"),
		txSize:         flag.Int("tx_size", 0, "with -virtual: transaction size in bytes (default: the config's payload_size)"),
		msize:          flag.Int("msize", 0, "with -virtual: microblock size in bytes (default: the config's msize; with -fit and a shared mempool by reference, halved until a creator's uplink sends one to every replica within 2.5 s)"),
		bsize:          flag.Int("bsize", 0, "with -virtual: block size: transactions (native) or microblock references (shared) per proposal (default 0: fitted to the network with -fit, else the config's)"),
		seed:           flag.Int64("seed", 1, "with -virtual: random seed (same seed, same run)"),
		byz:            flag.Int("byz", 0, "with -virtual: Byzantine replicas (the last K IDs)"),
		strategy:       flag.String("strategy", "missing", "with -virtual: their strategy (package byzantine; e.g. missing, silence, slow)"),
		zipf:           flag.String("zipf", "", "with -virtual: skew client load across replicas as Zipf(s,v), e.g. 1.01,1 (default: uniform)"),
		async:          flag.String("async", "", "with -virtual: asynchrony windows FROM-TO:DELAY±JITTER, comma-separated, e.g. 10s-20s:200ms±100ms (or +- for ±)"),
		partition:      flag.String("partition", "", "with -virtual: cut replicas off from the others for a while: FROM-TO:ID,ID,... (several separated by ;), e.g. 5s-8s:1,2"),
		cpu:            flag.String("cpu", "off", "with -virtual: CPU model off, on (measured defaults) or measure (time this machine now)"),
		tick:           flag.Duration("tick", 0, "with -virtual: how often a replica takes in its clients' transactions as one compact batch (default N/2 ms, 1..200 ms)"),
		clientLat:      flag.Duration("client_latency", time.Millisecond, "with -virtual: one-way latency between a client and its replica (end-to-end latency)"),
		uplink:         flag.Float64("uplink", -1, "with -virtual: uplink Mbit/s per replica, 0: unlimited (default: -net's)"),
		downlink:       flag.Float64("downlink", -1, "with -virtual: downlink Mbit/s per replica, 0: unlimited (default: -net's)"),
		latency:        flag.Duration("latency", -1, "with -virtual: one-way latency (default: -net's)"),
		jitter:         flag.Duration("jitter", -1, "with -virtual: uniform extra latency (default: -net's)"),
		matrix:         flag.String("latency_matrix", "", "with -virtual: file of one-way latencies: one line per sender, N whitespace-separated durations (e.g. 40ms) or numbers in ms"),
		fifoUplink:     flag.Bool("uplink_fifo", false, "with -virtual: every uplink is one queue in the order messages were sent, proposals and votes behind queued microblocks and fetch answers (default: consensus messages first)"),
		loss:           flag.Float64("loss", -1, "with -virtual: message loss probability (default: none, the config's loss with -net config)"),
		scenario:       flag.String("scenario", "", "with -virtual: run an experiment spec through the experiment runner (as stratus-exp does) and write one JSON row per run: a spec file, or the name of one this repository carries: "+strings.Join(experiments.Names(), ", ")+" (or the earlier names batch, scalability-lan, scalability-wan, bandwidth, async, byzantine, zipf)"),
		small:          flag.Bool("small", false, "with -scenario: the spec's quick variant (its quick overrides: fewer N, shorter runs)"),
		results:        flag.String("results", "results", "with -scenario: the results `directory`: rows, summaries, plots and checks in DIR/<spec name>/, and a rerun skips the points finished there"),
		quiet:          flag.Bool("quiet", false, "with -virtual: no progress lines"),
		onlyN:          flag.String("only_n", "", "with -scenario: run only the points with these N (comma-separated)"),
		fit:            flag.Bool("fit", true, "with -virtual: size the protocol to the network: blocks the leader can send in a quarter of the view timeout (unless -bsize), push and fetch timeouts no shorter than sending a microblock to every replica, microblocks (unless -msize) small enough to reach every replica within 2.5 s"),
		signatures:     flag.String("signatures", "simulated", "with -virtual: simulated (keyed-hash signatures with the sizes of the config's signer, verified and unforgeable inside the simulator, cheap to make) or real (the signer's own scheme: slow at large N)"),
		proofs:         flag.String("proofs", "", "with -virtual: stratus proposals carry proofs inline (the paper's design) or name microblocks by reference (default: the config's proofs)"),
		q:              flag.Int("q", -1, "with -virtual: PAB proof threshold (default: the config's q, 0 = f+1)"),
		timeoutMs:      flag.Int("timeout", -1, "with -virtual: view timeout in ms (default: the config's)"),
		d:              flag.Int("d", -1, "with -virtual: load-balancing samples d; turns load balancing on (default: the config's)"),
		lb:             flag.Bool("lb", false, "with -virtual: distributed load balancing on"),
		proposeTimeout: flag.Duration("propose_timeout", -1, "with -virtual: how long a leader waits for payload (default: the config's)"),
		batchTime:      flag.Duration("batch_timeout", 5*time.Second, "with -virtual: how long a microblock waits to fill up to msize, not the config's batch_timeout"),
	}
}

// runVirtual is server -virtual: one run, or a scenario (an experiment spec).
func runVirtual(vf *virtualFlags, cfgPath string, sets []string, algorithm string, out, cpuProfile string) int {
	stop, err := startProfile(cpuProfile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: -cpuprofile: %v\n", err)
		return 1
	}
	defer stop()
	if *vf.scenario != "" {
		return runScenario(vf, out)
	}
	c, err := virtualBase(vf, cfgPath, sets, algorithm)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server -virtual: %v\n", err)
		return 2
	}
	w, closeOut, err := openOut(out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server -virtual: -out: %v\n", err)
		return 1
	}
	defer closeOut()
	c.Progress = func(p virtual.Progress) {
		if !*vf.quiet && (p.Virtual%(5*time.Second) == 0 || p.Virtual == c.Duration) {
			fmt.Fprintf(os.Stderr, "  t=%5.1fs  %9.0f tx/s  height %5d  uplink queue %6.1f MB  wall %6.1fs (%.2f sim s per wall s)\n",
				p.Virtual.Seconds(), p.TPS, p.Height, float64(p.QueuedUp)/1e6, p.Wall.Seconds(), p.Virtual.Seconds()/max(p.Wall.Seconds(), 1e-9))
		}
	}
	fmt.Fprintf(os.Stderr, "== %s, N=%d, %s, %v, offered %.0f tx/s%s\n", c.Algorithm, c.N, c.Net, c.Duration, c.Rate, describeExtra(c))
	res, err := virtual.Run(c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server -virtual: %v\n", err)
		return 2
	}
	fmt.Fprintln(os.Stderr, summary(res))
	if err := writeJSON(w, res, true); err != nil {
		fmt.Fprintf(os.Stderr, "server -virtual: %v\n", err)
		return 1
	}
	if len(res.Violations) > 0 {
		fmt.Fprintln(os.Stderr, "server -virtual: INVARIANT VIOLATIONS (see invariant_violations in the output)")
		return 3
	}
	return 0
}

// writeJSON writes v and a newline: indented, or as one line.
func writeJSON(w io.Writer, v any, indent bool) error {
	var data []byte
	var err error
	if indent {
		data, err = json.MarshalIndent(v, "", "  ")
	} else {
		data, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// openOut opens -out (standard output without it).
func openOut(out string) (io.Writer, func(), error) {
	if out == "" {
		return os.Stdout, func() {}, nil
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// runScenario is server -virtual -scenario: a thin wrapper over the experiment runner, so that a
// scenario and stratus-exp run the same spec the same way. The spec's rows, summaries, plots and
// checks go to -results/<name>/ (a rerun skips the points finished there); every row, with its
// provenance and the simulator's result, goes to -out (or standard output) as one JSON line.
func runScenario(vf *virtualFlags, out string) int {
	if given := scenarioConflicts(); given != "" {
		fmt.Fprintf(os.Stderr, "server -virtual -scenario: -%s: the spec sets the runs; edit a copy of the spec, or run without -scenario\n", given)
		return 2
	}
	s, err := experiment.Resolve(*vf.scenario)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server -virtual -scenario: %v\n", err)
		return 2
	}
	opts := experiment.Options{Out: *vf.results, Backend: "virtual", Quick: *vf.small, Jobs: 1, Log: os.Stderr}
	if *vf.quiet {
		opts.Log = io.Discard
	}
	if *vf.onlyN != "" {
		if opts.OnlyN, err = experiment.ParseNs(*vf.onlyN); err != nil {
			fmt.Fprintf(os.Stderr, "server -virtual: -only_n %v\n", err)
			return 2
		}
	}
	w, closeOut, err := openOut(out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server -virtual: -out: %v\n", err)
		return 1
	}
	defer closeOut()
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	rep, err := experiment.Run(ctx, s, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server -virtual -scenario: %v\n", err)
		return 2
	}
	status := 0
	for _, row := range rep.Rows {
		if err := writeJSON(w, row, false); err != nil {
			fmt.Fprintf(os.Stderr, "server -virtual: %v\n", err)
			return 1
		}
		if row.Error != "" {
			fmt.Fprintf(os.Stderr, "server -virtual -scenario: %s: %s\n", row.Point.Protocol, row.Error)
			status = 1
			if strings.Contains(row.Error, "invariant violations") {
				status = 3
			}
		}
	}
	for _, c := range rep.Checks {
		fmt.Fprintf(os.Stderr, "  %-5s  %s: %s\n", c.Verdict(), c.Name, c.Detail)
		if c.Verdict() == "FAIL" && status == 0 {
			status = 1
		}
	}
	fmt.Fprintf(os.Stderr, "== %s: %d runs (%d now), %d checks failed; results in %s\n", s.Name, len(rep.Rows), rep.Ran, len(rep.FailedChecks()), rep.Dir)
	return status
}

// scenarioConflicts names a flag that describes a run given beside -scenario, whose spec
// describes its runs ("" if none).
func scenarioConflicts() string {
	allowed := map[string]bool{"virtual": true, "scenario": true, "small": true, "only_n": true, "results": true, "quiet": true, "out": true, "cpuprofile": true}
	given := ""
	flag.Visit(func(f *flag.Flag) {
		if given != "" || allowed[f.Name] {
			return
		}
		if strings.HasPrefix(f.Usage, "with -virtual") || f.Name == "algorithm" || f.Name == "config" || f.Name == "set" {
			given = f.Name
		}
	})
	return given
}

func describeExtra(c virtual.Config) string {
	var b strings.Builder
	if c.Spec.MemType != config.MemNative {
		fmt.Fprintf(&b, ", msize %d KB", c.Spec.Shared.MSize/1024)
	}
	if len(c.Byzantine) > 0 {
		fmt.Fprintf(&b, ", %d Byzantine (%s), q=%d", len(c.Byzantine), c.Strategy, c.Spec.Shared.Q)
	}
	if c.Zipf != nil {
		fmt.Fprintf(&b, ", Zipf(%v,%v)", c.Zipf.S, c.Zipf.V)
	}
	if c.Spec.Shared.LoadBalance {
		fmt.Fprintf(&b, ", DLB d=%d", c.Spec.Shared.D)
	}
	if len(c.Links.Async) > 0 {
		b.WriteString(", asynchrony window")
	}
	if c.CPU != nil {
		b.WriteString(", CPU model")
	}
	return b.String()
}

func summary(r *virtual.Result) string {
	lim := ""
	if r.LimitTPS > 0 {
		lim = fmt.Sprintf(" (%.1f%% of the bandwidth limit %.0f)", r.ShareOfLimit*100, r.LimitTPS)
	}
	return fmt.Sprintf("   throughput %.0f tx/s%s, latency mean %.0f / p50 %.0f / p99 %.0f ms (end to end p50 %.0f ms), "+
		"%d view changes, %d views timed out, height %d, %d invariant violations; leader sends %.1f Mbit/s, others %.1f; "+
		"%.1f s wall, %.2f simulated s per wall s",
		r.ThroughputTPS, lim, r.Latency.Mean, r.Latency.P50, r.Latency.P99, r.EndToEnd.P50, r.ViewChanges, r.TimedOutViews,
		r.Height, len(r.Violations), r.Bandwidth["leader"].Total, r.Bandwidth["others"].Total, r.WallClockSeconds, r.SimSecondsPerWall)
}

// virtualBase builds the run the flags describe from the config file.
func virtualBase(vf *virtualFlags, cfgPath string, sets []string, algorithm string) (virtual.Config, error) {
	var c virtual.Config
	cfg := config.Default()
	if _, err := os.Stat(cfgPath); err == nil || flagGiven("config") {
		cfg, err = config.LoadWith(cfgPath, sets)
		if err != nil {
			return c, err
		}
	} else if len(sets) > 0 {
		// No config file: the overrides apply to the defaults.
		data, err := config.Override([]byte("{}"), "the defaults", sets)
		if err != nil {
			return c, err
		}
		if cfg, err = config.Parse(data); err != nil {
			return c, fmt.Errorf("config: the defaults with %s: %w", strings.Join(sets, " "), err)
		}
	}
	return virtual.Build(cfg, algorithm, virtual.Params{
		N: *vf.n, Net: *vf.net, Duration: *vf.duration, Warmup: *vf.warmup, Rate: *vf.rate,
		TxSize: *vf.txSize, MSize: *vf.msize, BSize: *vf.bsize, Seed: *vf.seed,
		Byz: *vf.byz, Strategy: *vf.strategy, Zipf: *vf.zipf, Async: *vf.async, Partition: *vf.partition,
		CPU: *vf.cpu, Tick: *vf.tick, ClientLatency: *vf.clientLat,
		Uplink: *vf.uplink, Downlink: *vf.downlink, Latency: *vf.latency, Jitter: *vf.jitter,
		LatencyMatrix: *vf.matrix, FIFOUplink: *vf.fifoUplink, Loss: *vf.loss, Fit: *vf.fit, Signatures: *vf.signatures, Proofs: *vf.proofs,
		Q: *vf.q, TimeoutMs: *vf.timeoutMs, D: *vf.d, LB: *vf.lb,
		ProposeTimeout: *vf.proposeTimeout, BatchTimeout: *vf.batchTime,
		ConfigName: cfgPath,
	})
}

// virtualOnlyFlags names a flag of -virtual given without it ("" if none).
func virtualOnlyFlags() string {
	given := ""
	flag.Visit(func(f *flag.Flag) { // every flag of -virtual says so in its usage
		if given == "" && (strings.HasPrefix(f.Usage, "with -virtual") || strings.HasPrefix(f.Usage, "with -scenario")) {
			given = f.Name
		}
	})
	return given
}
