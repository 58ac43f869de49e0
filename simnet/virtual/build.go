package virtual

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/simnet"
	"github.com/stratusbft/stratus/types"
)

// Params are the knobs of one virtual run as server -virtual's flags give them: a negative
// number (or an empty string) leaves the preset's or the config's value. Build turns them,
// a loaded config and a protocol preset into a Config; server -virtual and the experiment
// runner both build their runs with it, so that the same knobs give the same run.
type Params struct {
	N                   int
	Net                 string        // lan, wan or config
	Duration            time.Duration // virtual time to simulate
	Warmup              time.Duration // < 0: a sixth of Duration
	Rate                float64       // 0: DefaultRate
	TxSize              int           // 0: the config's payload_size
	MSize, BSize        int           // 0: the config's msize (fitted with Fit), fitted block size
	Seed                int64
	Byz                 int
	Strategy            string
	Zipf                string // "s,v"
	Async               string // FROM-TO:DELAY±JITTER, comma-separated
	Partition           string // FROM-TO:ID,ID,... separated by ;
	CPU                 string // off, on or measure
	Tick, ClientLatency time.Duration
	Uplink, Downlink    float64       // Mbit/s, < 0: the preset's
	Latency, Jitter     time.Duration // < 0: the preset's
	LatencyMatrix       string        // file of one-way latencies
	FIFOUplink          bool          // one queue per uplink, no priority for consensus messages
	Loss                float64       // < 0: none (the config's with Net config)
	Fit                 bool
	Signatures          string // simulated or real
	Proofs              string // inline, reference or "" (the config's)
	Q, TimeoutMs, D     int    // < 0: the config's
	LB                  bool
	ProposeTimeout      time.Duration // < 0: the config's
	BatchTimeout        time.Duration
	ConfigName          string // for error messages
}

// DefaultParams are server -virtual's defaults.
func DefaultParams() Params {
	return Params{
		N: 16, Net: "wan", Duration: 30 * time.Second, Warmup: -1, Seed: 1, Strategy: "missing",
		CPU: "off", ClientLatency: time.Millisecond, Uplink: -1, Downlink: -1, Latency: -1, Jitter: -1,
		Loss: -1, Fit: true, Signatures: "simulated", Q: -1, TimeoutMs: -1, D: -1, ProposeTimeout: -1,
		BatchTimeout: 5 * time.Second, ConfigName: "config.json",
	}
}

// Build builds the run p describes from cfg (a loaded config, which it changes) with the
// protocol preset algorithm.
func Build(cfg config.Config, algorithm string, p Params) (Config, error) {
	var c Config
	if p.N < 1 || p.N > 1000 {
		return c, fmt.Errorf("-n %d: want 1..1000 replicas", p.N)
	}
	engine, err := cfg.ApplyAlgorithm(algorithm)
	if err != nil {
		return c, err
	}
	// The knobs the simulator's flags set override the file's.
	if p.MSize > 0 {
		cfg.MSize = p.MSize
	}
	if p.BSize > 0 {
		cfg.BSize = p.BSize
	}
	if p.Q >= 0 {
		cfg.Q = p.Q
	}
	if p.Proofs != "" {
		cfg.Proofs = p.Proofs
	}
	if p.TimeoutMs >= 0 {
		cfg.Timeout = p.TimeoutMs
	}
	if p.ProposeTimeout >= 0 {
		cfg.ProposeTimeout = int(p.ProposeTimeout / time.Millisecond)
	}
	// Microblocks fill up to msize (the paper's batches): BatchTimeout (default 5 s) replaces
	// the config's few milliseconds, which at hundreds of replicas would cut a batch of a few
	// transactions, each with its own acks and proof.
	cfg.BatchTimeout = int(p.BatchTimeout / time.Millisecond)
	if p.D > 0 {
		cfg.D, cfg.LoadBalance = p.D, true
	}
	if p.LB {
		cfg.LoadBalance = true
	}
	if p.MSize < 0 || p.BSize < 0 {
		return c, errors.New("-msize and -bsize must not be negative")
	}
	if err := cfg.Validate(p.N); err != nil {
		return c, fmt.Errorf("%s: invalid configuration for %d replicas:\n  %s", p.ConfigName, p.N, strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	c.Algorithm, c.N, c.Seed = algorithm, p.N, p.Seed
	c.Spec = core.SpecFromConfig(cfg, engine, c.N)
	c.Scheme = cfg.Signer
	c.Spec.DedupWindow = core.DefaultDedupWindow
	c.Fit = p.Fit
	if p.BSize == 0 && c.Fit {
		c.Spec.BSize = 0 // fitted to the network
	}
	c.TxSize = cfg.PayloadSize
	if p.TxSize != 0 {
		c.TxSize = p.TxSize
	}
	c.Duration = p.Duration
	c.Warmup = p.Warmup
	if c.Warmup < 0 {
		c.Warmup = c.Duration / 6
	}
	c.Tick, c.ClientLatency = p.Tick, p.ClientLatency

	c.Net = p.Net
	switch pr, ok := NetPresets[c.Net]; {
	case ok:
		c.Links.Uplink, c.Links.Downlink, c.Latency, c.Jitter = pr.Uplink, pr.Downlink, pr.Latency, pr.Jitter
	case c.Net == "config":
		c.Links.Uplink = float64(cfg.Bandwidth) * 1e6
		c.Links.Downlink = c.Links.Uplink
		c.Latency = time.Duration(cfg.Delay) * time.Millisecond
		c.Jitter = time.Duration(cfg.DErr) * time.Millisecond
		c.Loss = cfg.Loss
	default:
		return c, fmt.Errorf("-net %q: want lan, wan or config", c.Net)
	}
	if p.Uplink >= 0 {
		c.Links.Uplink, c.Net = p.Uplink*1e6, "custom"
	}
	if p.Downlink >= 0 {
		c.Links.Downlink, c.Net = p.Downlink*1e6, "custom"
	}
	if p.Latency >= 0 {
		c.Latency, c.Net = p.Latency, "custom"
	}
	if p.Jitter >= 0 {
		c.Jitter, c.Net = p.Jitter, "custom"
	}
	if p.Loss >= 0 {
		c.Loss = p.Loss
	}
	if p.LatencyMatrix != "" {
		if c.Links.Matrix, err = ReadLatencyMatrix(p.LatencyMatrix, c.N); err != nil {
			return c, err
		}
	}
	c.Links.FIFOUplink = p.FIFOUplink
	if p.Async != "" {
		if c.Links.Async, err = ParseAsync(p.Async); err != nil {
			return c, err
		}
	}
	if p.Partition != "" {
		if c.Partitions, err = ParsePartitions(p.Partition); err != nil {
			return c, err
		}
	}
	if p.Zipf != "" {
		z, err := ParseZipf(p.Zipf)
		if err != nil {
			return c, err
		}
		c.Zipf = z
	}
	switch p.CPU {
	case "off":
	case "on":
		c.CPU = simnet.DefaultCPUFor(c.Scheme)
	case "measure":
		c.CPU = simnet.MeasureCPUFor(c.Scheme)
	default:
		return c, fmt.Errorf("-cpu %q: want off, on or measure", p.CPU)
	}
	if p.Byz < 0 || p.Byz > config.Faults(c.N) {
		return c, fmt.Errorf("-byz %d: want 0..f (f = %d for %d replicas)", p.Byz, config.Faults(c.N), c.N)
	}
	if p.Byz > 0 {
		if err := config.CheckStrategy(p.Strategy); err != nil {
			return c, fmt.Errorf("-strategy: %v", err)
		}
		c.Byzantine, c.Strategy = LastK(c.N, p.Byz, p.Strategy), p.Strategy
	}
	switch p.Signatures {
	case "simulated":
	case "real":
		c.RealSignatures = true
	case c.Scheme:
		c.RealSignatures = true // the scheme's name says real too
	default:
		return c, fmt.Errorf("-signatures %q: want simulated or real (the config's signer, %s)", p.Signatures, c.Scheme)
	}
	if p.MSize == 0 && c.Fit {
		c.Spec.Shared.MSize = FittedMSize(c)
	}
	c.Rate = p.Rate
	if c.Rate == 0 {
		c.Rate = DefaultRate(c)
	}
	return c, c.Validate()
}

// ParseZipf reads "s,v".
func ParseZipf(s string) (*Zipf, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 2 {
		return nil, fmt.Errorf("-zipf %q: want s,v (e.g. 1.01,1)", s)
	}
	a, err1 := strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
	b, err2 := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
	if err1 != nil || err2 != nil || a <= 1 || b < 1 {
		return nil, fmt.Errorf("-zipf %q: want s > 1 and v >= 1 (e.g. 1.01,1)", s)
	}
	return &Zipf{S: a, V: b}, nil
}

var asyncRE = regexp.MustCompile(`^([^-]+)-([^:]+):([^±+]+)(?:(?:±|\+-)(.+))?$`)

// ParseAsync reads asynchrony windows like 10s-20s:200ms±100ms (comma-separated).
func ParseAsync(s string) ([]simnet.AsyncWindow, error) {
	var out []simnet.AsyncWindow
	for _, part := range strings.Split(s, ",") {
		m := asyncRE.FindStringSubmatch(strings.TrimSpace(part))
		if m == nil {
			return nil, fmt.Errorf("-async %q: want FROM-TO:DELAY±JITTER, e.g. 10s-20s:200ms±100ms", part)
		}
		var w simnet.AsyncWindow
		var err error
		for i, dst := range []*time.Duration{&w.From, &w.To, &w.Delay, &w.Jitter} {
			if m[i+1] == "" {
				continue
			}
			if *dst, err = time.ParseDuration(m[i+1]); err != nil {
				return nil, fmt.Errorf("-async %q: %v", part, err)
			}
		}
		if w.To <= w.From || w.Delay < 0 || w.Jitter < 0 || w.Jitter > w.Delay {
			return nil, fmt.Errorf("-async %q: want FROM < TO and 0 <= JITTER <= DELAY", part)
		}
		out = append(out, w)
	}
	return out, nil
}

var partitionRE = regexp.MustCompile(`^([^-]+)-([^:]+):([0-9, ]+)$`)

// ParsePartitions reads windows like 5s-8s:1,2 separated by ';'.
func ParsePartitions(s string) ([]simnet.Partition, error) {
	var out []simnet.Partition
	for _, part := range strings.Split(s, ";") {
		m := partitionRE.FindStringSubmatch(strings.TrimSpace(part))
		if m == nil {
			return nil, fmt.Errorf("-partition %q: want FROM-TO:ID,ID,..., e.g. 5s-8s:1,2", part)
		}
		var p simnet.Partition
		var err error
		if p.From, err = time.ParseDuration(m[1]); err != nil {
			return nil, fmt.Errorf("-partition %q: %v", part, err)
		}
		if p.To, err = time.ParseDuration(m[2]); err != nil {
			return nil, fmt.Errorf("-partition %q: %v", part, err)
		}
		for _, f := range strings.Split(m[3], ",") {
			id, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return nil, fmt.Errorf("-partition %q: %q is not a replica ID", part, f)
			}
			p.Side = append(p.Side, types.NodeID(id))
		}
		out = append(out, p)
	}
	return out, nil
}

// ReadLatencyMatrix reads an N×N file of one-way latencies: one line per sender, N
// whitespace-separated durations (40ms) or numbers of milliseconds; # starts a comment.
func ReadLatencyMatrix(path string, n int) ([][]time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-latency_matrix: %v", err)
	}
	defer f.Close()
	var m [][]time.Duration
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var row []time.Duration
		for _, field := range strings.Fields(text) {
			d, err := time.ParseDuration(field)
			if err != nil {
				v, err2 := strconv.ParseFloat(field, 64)
				if err2 != nil {
					return nil, fmt.Errorf("-latency_matrix %s:%d: %q is neither a duration nor milliseconds", path, line, field)
				}
				d = time.Duration(v * float64(time.Millisecond))
			}
			if d < 0 {
				return nil, fmt.Errorf("-latency_matrix %s:%d: negative latency %v", path, line, d)
			}
			row = append(row, d)
		}
		if len(row) != n {
			return nil, fmt.Errorf("-latency_matrix %s:%d: %d entries, want %d (one per replica)", path, line, len(row), n)
		}
		m = append(m, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("-latency_matrix: %v", err)
	}
	if len(m) != n {
		return nil, fmt.Errorf("-latency_matrix %s: %d rows, want %d (one per replica)", path, len(m), n)
	}
	return m, nil
}

// LimitTPS is the most the network of c can carry for its protocol (bandwidth_limit_tps of a
// result; +Inf without a bandwidth limit).
func LimitTPS(c Config) float64 { return c.limitTPS() }

// LastK makes the last k replicas run strategy.
func LastK(n, k int, strategy string) map[types.NodeID]string {
	out := make(map[types.NodeID]string, k)
	for i := n - k + 1; i <= n; i++ {
		out[types.NodeID(i)] = strategy
	}
	return out
}

// DefaultRate offers 0.9 × the network's bandwidth limit for the protocol (just under saturation), or
// 100,000 tx/s without a bandwidth limit.
func DefaultRate(c Config) float64 {
	lim := c.limitTPS()
	if lim > 1e7 || lim <= 0 {
		return 100_000
	}
	return float64(int(0.9 * lim))
}
