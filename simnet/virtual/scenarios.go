package virtual

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/simnet"
	"github.com/stratusbft/stratus/types"
)

// The paper's experiments (F. Gai, J. Niu, I. Beschastnikh, C. Feng, S. Wang, "Devouring the Leader
// Bottleneck in BFT Consensus", ICDE 2023, arXiv:2203.05158) as named lists of virtual runs. Each starts from
// the base run the command line describes (its config, seed, CPU model, tick) and sets what the
// experiment varies; small gives the same experiment at small N and a few seconds, for tests.
var scenarios = map[string]struct {
	about string
	rows  func(base Config, small bool) ([]Config, error)
}{
	"batch":             {"Fig 5: S-HS in the LAN, microblock size × offered load (N=128: 32/64/128 KB, N=256: 128/256/512 KB)", batchRows},
	"scalability-lan":   {"Fig 6 (LAN): N-HS, N-SL, SMP-HS, S-HS, S-SL for N = 16 … 400, saturating load", func(b Config, small bool) ([]Config, error) { return scalabilityRows(b, "lan", small) }},
	"scalability-wan":   {"Fig 6 (WAN): the same over 100 Mbit/s, 100 ms RTT links", func(b Config, small bool) ([]Config, error) { return scalabilityRows(b, "wan", small) }},
	"bandwidth":         {"Table III: outbound Mbit/s by role and message type at N=64 in the WAN, saturated (N-HS, SMP-HS, S-HS)", bandwidthRows},
	"async":             {"Fig 7: 25 KTx/s in the WAN, every message delayed 200 ms ± 100 ms from 10 s to 20 s (SMP-HS, S-HS; 3 seeds)", asyncRows},
	"byzantine":         {"Fig 8: Byzantine senders (missing strategy) at N=100/200 in the LAN: SMP-HS, S-HS with q = f+1 and 2f+1", byzantineRows},
	"leader-bottleneck": {"S-HS in the WAN at N = 16 … 400, offered 0.5, 0.7, 0.9 and 2 × the bandwidth limit: this framework's design (proofs by reference, BLS12-381 aggregate certificates, backpressure) against the paper's (inline secp256k1 proofs and QCs, no backpressure)", leaderBottleneckRows},
	"zipf":              {"Figs 9-10: Zipf1 (1.01,1) and Zipf10 (1.01,10) load in the WAN, 12 KB microblocks: SMP-HS, SMP-HS-G, S-HS with DLB d = 1..3, S-HS under even load, N = 100 … 400", zipfRows},
}

// ScenarioNames lists the scenarios, sorted.
func ScenarioNames() []string {
	var out []string
	for k := range scenarios {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ScenarioAbout describes a scenario.
func ScenarioAbout(name string) string { return scenarios[name].about }

// PaperScenario returns the runs of a named experiment.
func PaperScenario(name string, base Config, small bool) ([]Config, error) {
	sc, ok := scenarios[name]
	if !ok {
		return nil, fmt.Errorf("-scenario %q: want one of %s", name, strings.Join(ScenarioNames(), ", "))
	}
	rows, err := sc.rows(base, small)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		if err := rows[i].Validate(); err != nil {
			return nil, fmt.Errorf("scenario %s, run %d: %v", name, i+1, err)
		}
	}
	return rows, nil
}

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

// leaderBottleneckRows compares the designs of proposals and certificates where the leader's
// uplink decides: every N and load, ours and the paper's.
func leaderBottleneckRows(base Config, small bool) ([]Config, error) {
	ns := []int{16, 64, 128, 256, 400}
	loads := []float64{0.5, 0.7, 0.9, 2}
	if small {
		ns, loads = []int{4}, []float64{0.5, 2}
	}
	designs := []struct {
		label  string
		byRef  bool
		scheme string
		bp     time.Duration
	}{
		{config.AlgSHS, true, crypto.SchemeBLS, time.Second},
		{"s-hs (paper: inline secp256k1)", false, "secp256k1", 0},
	}
	var out []Config
	for _, n := range ns {
		for _, load := range loads {
			for _, d := range designs {
				c := with(base, d.label, config.EngineHotStuff, config.MemStratus, n, "wan")
				c.Spec.Shared.ProofsByRef, c.Scheme, c.Spec.Shared.MaxBacklog = d.byRef, d.scheme, d.bp
				if small {
					c.Links = simnet.Links{Uplink: 10e6, Downlink: 10e6}
					c.Spec.Shared.MSize = 16 << 10
				}
				c.Rate = float64(int(load * c.limitTPS()))
				durations(&c, small, base.Duration)
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// paperProtocols maps the paper's protocol labels to presets.
var paperProtocols = []struct{ label, engine, mem string }{
	{config.AlgHotStuff, config.EngineHotStuff, config.MemNative},
	{config.AlgStreamlet, config.EngineStreamlet, config.MemNative},
	{config.AlgSMPHS, config.EngineHotStuff, config.MemSMP},
	{config.AlgSHS, config.EngineHotStuff, config.MemStratus},
	{config.AlgSSL, config.EngineStreamlet, config.MemStratus},
}

// with returns base set up for protocol p at n replicas on net.
func with(base Config, label, engine, mem string, n int, net string) Config {
	c := base
	c.Algorithm, c.N = label, n
	c.Spec.Engine, c.Spec.MemType = engine, mem
	c.Spec.Shared.Q = config.Faults(n) + 1
	c.Spec.Shared.Gossip = false
	c.Spec.Shared.LoadBalance = false
	c.Byzantine, c.Strategy, c.Zipf = nil, "", nil
	if p, ok := NetPresets[net]; ok {
		c.Net = net
		c.Links = simnet.Links{Uplink: p.Uplink, Downlink: p.Downlink}
		c.Latency, c.Jitter = p.Latency, p.Jitter
	}
	return c
}

// paperMSize is the paper's microblock size: 128 KB up to N=128, 256 KB above.
func paperMSize(n int) int {
	if n >= 256 {
		return 256 << 10
	}
	return 128 << 10
}

func durations(c *Config, small bool, full time.Duration) {
	if small {
		c.Duration, c.Warmup = 3*time.Second, time.Second
		return
	}
	c.Duration, c.Warmup = full, full/6
}

func batchRows(base Config, small bool) ([]Config, error) {
	series := []struct{ n, msize int }{{128, 32 << 10}, {128, 64 << 10}, {128, 128 << 10}, {256, 128 << 10}, {256, 256 << 10}, {256, 512 << 10}}
	rates := []float64{50_000, 100_000, 150_000, 200_000, 300_000}
	if small {
		series = series[:2]
		for i := range series {
			series[i].n = 4
			series[i].msize /= 8
		}
		rates = []float64{2_000, 8_000}
	}
	var out []Config
	for _, s := range series {
		for _, r := range rates {
			c := with(base, config.AlgSHS, config.EngineHotStuff, config.MemStratus, s.n, "lan")
			c.Spec.Shared.MSize, c.Rate = s.msize, r
			durations(&c, small, base.Duration)
			out = append(out, c)
		}
	}
	return out, nil
}

func scalabilityRows(base Config, net string, small bool) ([]Config, error) {
	ns := []int{16, 32, 64, 128, 256, 400}
	if small {
		ns = []int{4, 7}
	}
	var out []Config
	for _, n := range ns {
		for _, p := range paperProtocols {
			c := with(base, p.label, p.engine, p.mem, n, net)
			c.Spec.Shared.MSize = paperMSize(n)
			if small {
				c.Spec.Shared.MSize = 16 << 10
			}
			durations(&c, small, base.Duration)
			// Every protocol gets the same load: 0.9 × what the shared mempools' links can carry
			// (DefaultRate; the native ones saturate far below it).
			shared := with(base, config.AlgSHS, config.EngineHotStuff, config.MemStratus, n, net)
			c.Rate = DefaultRate(shared)
			if small {
				c.Rate = min(c.Rate, 20_000) // a smoke test: few events
			}
			if base.Rate > 0 {
				c.Rate = base.Rate
			}
			out = append(out, c)
		}
	}
	return out, nil
}

func bandwidthRows(base Config, small bool) ([]Config, error) {
	n := 64
	if small {
		n = 4
	}
	var out []Config
	for _, p := range []int{0, 2, 3} { // N-HS, SMP-HS, S-HS
		pp := paperProtocols[p]
		c := with(base, pp.label, pp.engine, pp.mem, n, "wan")
		c.Spec.Shared.MSize = paperMSize(n)
		durations(&c, small, base.Duration)
		c.Rate = DefaultRate(with(base, config.AlgSHS, config.EngineHotStuff, config.MemStratus, n, "wan"))
		out = append(out, c)
	}
	return out, nil
}

func asyncRows(base Config, small bool) ([]Config, error) {
	n, seeds := 16, []int64{base.Seed, base.Seed + 1, base.Seed + 2}
	window := simnet.AsyncWindow{From: 10 * time.Second, To: 20 * time.Second, Delay: 200 * time.Millisecond, Jitter: 100 * time.Millisecond}
	dur := 30 * time.Second
	if small {
		n, seeds = 4, seeds[:1]
		window = simnet.AsyncWindow{From: time.Second, To: 2 * time.Second, Delay: 200 * time.Millisecond, Jitter: 100 * time.Millisecond}
		dur = 3 * time.Second
	}
	var out []Config
	for _, p := range []int{2, 3} { // SMP-HS, S-HS
		for _, seed := range seeds {
			pp := paperProtocols[p]
			c := with(base, pp.label, pp.engine, pp.mem, n, "wan")
			c.Spec.Shared.MSize = paperMSize(n)
			c.Spec.Timeout = time.Second
			c.Links.Async = []simnet.AsyncWindow{window}
			c.Rate, c.Seed = 25_000, seed
			c.Duration, c.Warmup = dur, 0
			out = append(out, c)
		}
	}
	return out, nil
}

func byzantineRows(base Config, small bool) ([]Config, error) {
	type setup struct {
		n    int
		byzs []int
	}
	setups := []setup{{100, []int{0, 10, 20, 30}}, {200, []int{0, 20, 40, 60}}}
	if small {
		setups = []setup{{7, []int{0, 2}}}
	}
	var out []Config
	for _, st := range setups {
		f := config.Faults(st.n)
		for _, k := range st.byzs {
			for _, v := range []struct {
				label string
				mem   string
				q     int
			}{{config.AlgSMPHS, config.MemSMP, f + 1}, {"s-hs-f", config.MemStratus, f + 1}, {"s-hs-2f", config.MemStratus, 2*f + 1}} {
				c := with(base, v.label, config.EngineHotStuff, v.mem, st.n, "lan")
				c.Spec.Shared.Q = v.q
				c.Spec.Shared.MSize = 500_000
				if small {
					c.Spec.Shared.MSize = 16 << 10
				}
				if k > 0 {
					c.Byzantine, c.Strategy = LastK(st.n, k, "missing"), "missing"
				}
				durations(&c, small, base.Duration)
				c.Rate = 200_000
				if small {
					c.Rate = 8_000
				}
				if base.Rate > 0 {
					c.Rate = base.Rate
				}
				out = append(out, c)
			}
		}
	}
	return out, nil
}

func zipfRows(base Config, small bool) ([]Config, error) {
	ns := []int{100, 200, 300, 400}
	if small {
		ns = []int{7}
	}
	skews := []struct {
		name string
		z    Zipf
	}{{"zipf1", Zipf{S: 1.01, V: 1}}, {"zipf10", Zipf{S: 1.01, V: 10}}}
	var out []Config
	for _, sk := range skews {
		for _, n := range ns {
			variants := []struct {
				label  string
				mem    string
				gossip bool
				d      int
				even   bool
			}{{config.AlgSMPHS, config.MemSMP, false, 0, false}, {"smp-hs-g", config.MemSMP, true, 0, false},
				{"s-hs-d1", config.MemStratus, false, 1, false}, {"s-hs-d2", config.MemStratus, false, 2, false},
				{"s-hs-d3", config.MemStratus, false, 3, false}, {"s-hs-even", config.MemStratus, false, 0, true}}
			for _, v := range variants {
				c := with(base, v.label, config.EngineHotStuff, v.mem, n, "wan")
				c.Spec.Shared.MSize = 12 << 10
				c.Spec.Shared.Gossip = v.gossip
				c.Spec.Shared.Fanout = 3
				if v.d > 0 {
					c.Spec.Shared.LoadBalance, c.Spec.Shared.D = true, v.d
				}
				if !v.even {
					z := sk.z
					c.Zipf = &z
				}
				durations(&c, small, base.Duration)
				c.Rate = 40_000
				if small {
					c.Rate = 4_000
				}
				if base.Rate > 0 {
					c.Rate = base.Rate
				}
				c.Algorithm = v.label + "/" + sk.name
				out = append(out, c)
			}
		}
	}
	return out, nil
}
