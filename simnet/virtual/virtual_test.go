package virtual

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/simnet"
)

func smallRun(alg, engine, mem string, n int) Config {
	c := Config{Algorithm: alg, N: n, Spec: simnet.ScenarioSpec(engine, mem, n, false, false), Net: "custom",
		Links: simnet.Links{Uplink: 10e6, Downlink: 10e6}, Latency: 5 * time.Millisecond, Duration: 3 * time.Second,
		Warmup: time.Second, TxSize: 128, Seed: 7, Fit: true, ClientLatency: time.Millisecond}
	c.Spec.BSize = 0
	c.Spec.Shared.MSize = 16 << 10
	c.Spec.Shared.BatchTimeout = 100 * time.Millisecond
	c.Spec.Timeout = time.Second
	return c
}

// TestVirtualDeterminism: the same seed gives the same JSON, apart from the wall-clock fields.
func TestVirtualDeterminism(t *testing.T) {
	run := func(seed int64) map[string]any {
		c := smallRun("s-hs", "hotstuff", "stratus", 4)
		c.Rate, c.Seed, c.Jitter = 20_000, seed, 3*time.Millisecond
		res, err := Run(c)
		require.NoError(t, err)
		require.Empty(t, res.Violations)
		require.Positive(t, res.ThroughputTPS)
		data, err := json.Marshal(res)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(data, &m))
		delete(m, "wall_clock_s")
		delete(m, "sim_seconds_per_wall_second")
		return m
	}
	a, b, c := run(3), run(3), run(4)
	require.Equal(t, a, b)
	require.NotEqual(t, a["trace_hash"], c["trace_hash"], "another seed, another run")
}

// TestBandwidthLimitHolds: offered what the links carry and twice that, no protocol delivers more
// than the limit (uplink ÷ tx size for a shared mempool; the leader's uplink ÷ ((N-1) × tx size)
// for a native one, with a static leader); just under the limit each delivers most of it.
func TestBandwidthLimitHolds(t *testing.T) {
	for _, p := range []struct{ alg, engine, mem string }{{"hotstuff", "hotstuff", "native"}, {"smp-hs", "hotstuff", "smp"}, {"s-hs", "hotstuff", "stratus"}, {"s-sl", "streamlet", "stratus"}} {
		t.Run(p.alg, func(t *testing.T) {
			c := smallRun(p.alg, p.engine, p.mem, 4)
			if p.mem == "native" {
				c.Spec.Master = 1 // the bound is one leader's uplink
			}
			c.Duration, c.Warmup = 6*time.Second, 2*time.Second
			for _, load := range []float64{0.8, 2} {
				c.Rate = load * c.limitTPS()
				res, err := Run(c)
				require.NoError(t, err)
				require.Empty(t, res.Violations)
				require.LessOrEqual(t, res.ThroughputTPS, res.LimitTPS, "faster than the links allow")
				if load < 1 {
					require.Greater(t, res.ThroughputTPS, 0.5*res.LimitTPS, "far below the link limit: %+v", res.Bandwidth)
				}
			}
		})
	}
}

// TestCPUModelShowsCPUBound: with 1 Gbit/s links the network limit is far away; charging the
// signature and hashing costs caps what one core per replica can do.
func TestCPUModelShowsCPUBound(t *testing.T) {
	c := smallRun("s-hs", "hotstuff", "stratus", 4)
	c.Links = simnet.Links{Uplink: 1e9, Downlink: 1e9}
	c.Rate = 400_000
	free, err := Run(c)
	require.NoError(t, err)
	c.CPU = &simnet.CPU{Sign: time.Millisecond, Verify: time.Millisecond, HashPerByte: 20, Measured: "test"}
	bound, err := Run(c)
	require.NoError(t, err)
	require.Empty(t, bound.Violations)
	require.NotNil(t, bound.CPUUtilisation)
	require.Greater(t, bound.CPUUtilisation.Max, 0.8, "the CPU is the bottleneck")
	require.Less(t, bound.ThroughputTPS, free.ThroughputTPS/2)
	require.Contains(t, bound.Config.CPUModel, "verify 1ms")
	require.Equal(t, "off", free.Config.CPUModel)
}

// TestZipfWeights: Zipf(1.01, 1) over 99 loaded replicas gives the top one about 0.196 of the
// load (the paper's arrays), a static leader none.
func TestZipfWeights(t *testing.T) {
	c := Config{N: 100, Zipf: &Zipf{S: 1.01, V: 1}}
	c.Spec.Master = 1
	w := c.weights()
	require.Zero(t, w[0])
	require.InDelta(t, 0.196, w[1], 0.005)
	c.Zipf = &Zipf{S: 1.01, V: 10}
	require.InDelta(t, 0.041, c.weights()[1], 0.003)
}

// TestFittedMSize: with Fit, a microblock is halved until a creator's uplink sends it to the N-1
// others within MSizeSendBudget, where its size costs a proposal nothing (by reference, or no
// proofs); inline proofs, a native mempool and fast links keep the configured size.
func TestFittedMSize(t *testing.T) {
	wan := NetPresets["wan"]
	at := func(mem string, n int, byRef bool, uplink float64) int {
		c := Config{N: n, Spec: simnet.ScenarioSpec("hotstuff", mem, n, false, false), Links: simnet.Links{Uplink: uplink}}
		c.Spec.Shared.MSize, c.Spec.Shared.ProofsByRef = 128<<10, byRef
		return FittedMSize(c)
	}
	require.Equal(t, 128<<10, at("stratus", 128, true, wan.Uplink), "1.3 s at N=128: kept")
	require.Equal(t, 64<<10, at("stratus", 256, true, wan.Uplink), "2.7 s at N=256: halved")
	require.Equal(t, 64<<10, at("stratus", 400, true, wan.Uplink), "4.1 s at N=400: halved once (2.1 s)")
	require.Equal(t, 16<<10, at("stratus", 1000, true, 10e6), "never below 16 KB")
	require.Equal(t, 64<<10, at("smp", 400, false, wan.Uplink), "no proofs at all: as by reference")
	require.Equal(t, 128<<10, at("stratus", 400, false, wan.Uplink), "inline proofs: kept")
	require.Equal(t, 128<<10, at("native", 400, true, wan.Uplink), "native mempool: no microblocks")
	require.Equal(t, 128<<10, at("stratus", 400, true, NetPresets["lan"].Uplink), "LAN: 0.4 s, kept")
	require.Equal(t, 128<<10, at("stratus", 400, true, 0), "unlimited links: kept")
}
