package simnet

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/types"
)

// linkSim is a 3-replica simulation with the given links whose replicas never start, so only the
// messages a test puts on the links travel; it records when each reaches its receiver's Core.
func linkSim(t *testing.T, l Links, latency time.Duration) (*Sim, *[]arrival) {
	t.Helper()
	s, err := New(Options{N: 3, Spec: spec("hotstuff"), Seed: 1, Latency: latency, Links: l, Absent: nil})
	require.NoError(t, err)
	s.queue = nil // no Start events: the cores stay idle
	var got []arrival
	s.tap = func(from, to *Node, m types.Message) {
		got = append(got, arrival{from: from.ID, to: to.ID, kind: m.Kind(), at: s.Now()})
	}
	return s, &got
}

type arrival struct {
	from, to types.NodeID
	kind     types.Kind
	at       time.Duration
}

func microblock(size int) (*types.MicroBlock, int) {
	mb := types.NewMicroBlock(1, 1, []types.Tx{types.NewCompactTx([]byte("mb-test-tag-0001"), size/100, 100)})
	mb.Sig = make([]byte, types.SigSize)
	return mb, types.WireSize(mb)
}

func vote() (*types.Vote, int) {
	v := &types.Vote{View: 1, Voter: 1, Sig: make([]byte, types.SigSize)}
	return v, types.WireSize(v)
}

// TestUplinkSerialization: a message occupies the sender's uplink for size ÷ rate, copies queue
// one after the other, then travel the latency.
func TestUplinkSerialization(t *testing.T) {
	s, got := linkSim(t, Links{Uplink: 8e6}, 10*time.Millisecond) // 1 MB/s
	mb, size := microblock(100_000)
	require.InDelta(t, 100_000, size, 3_000, "a compact transaction costs the bytes it stands for")
	s.enqueueUp(s.Node(1), s.Node(2), mb, size)
	s.enqueueUp(s.Node(1), s.Node(3), mb, size)
	s.Run(time.Second)
	require.Len(t, *got, 2)
	tx := serialization(size, 8e6)
	require.Equal(t, tx+10*time.Millisecond, (*got)[0].at)
	require.Equal(t, 2*tx+10*time.Millisecond, (*got)[1].at, "the second copy waits for the first")
	up, down := s.Queued(1)
	require.Zero(t, up+down)
}

// TestConsensusOvertakesData: a vote queued behind microblocks leaves right after the copy on
// the wire, before the queued ones.
func TestConsensusOvertakesData(t *testing.T) {
	s, got := linkSim(t, Links{Uplink: 8e6}, time.Millisecond)
	mb, size := microblock(50_000)
	v, vsize := vote()
	for i := 0; i < 3; i++ {
		s.enqueueUp(s.Node(1), s.Node(2), mb, size)
	}
	s.enqueueUp(s.Node(1), s.Node(2), v, vsize)
	s.Run(time.Second)
	require.Len(t, *got, 4)
	tx := serialization(size, 8e6)
	require.Equal(t, types.KindMicroBlock, (*got)[0].kind)
	require.Equal(t, types.KindVote, (*got)[1].kind, "the vote goes right after the copy in progress")
	require.Equal(t, tx+serialization(vsize, 8e6)+time.Millisecond, (*got)[1].at)
	require.Equal(t, types.KindMicroBlock, (*got)[3].kind)
}

// TestDownlinkQueue: two senders with unlimited uplinks share the receiver's downlink.
func TestDownlinkQueue(t *testing.T) {
	s, got := linkSim(t, Links{Downlink: 8e6}, 5*time.Millisecond)
	mb, size := microblock(100_000)
	s.enqueueUp(s.Node(1), s.Node(3), mb, size)
	s.enqueueUp(s.Node(2), s.Node(3), mb, size)
	s.Run(time.Second)
	require.Len(t, *got, 2)
	tx := serialization(size, 8e6)
	require.Equal(t, 5*time.Millisecond+tx, (*got)[0].at)
	require.Equal(t, 5*time.Millisecond+2*tx, (*got)[1].at)
}

// TestLatencyMatrixAndAsyncWindow: the matrix gives each link its latency; inside a window every
// message gets the extra delay within its jitter.
func TestLatencyMatrixAndAsyncWindow(t *testing.T) {
	m := [][]time.Duration{{0, 10 * time.Millisecond, 70 * time.Millisecond}, {10 * time.Millisecond, 0, 5 * time.Millisecond}, {70 * time.Millisecond, 5 * time.Millisecond, 0}}
	s, got := linkSim(t, Links{Matrix: m, Async: []AsyncWindow{{From: 100 * time.Millisecond, To: 200 * time.Millisecond, Delay: 200 * time.Millisecond, Jitter: 100 * time.Millisecond}}}, time.Millisecond)
	v, size := vote()
	s.enqueueUp(s.Node(1), s.Node(2), v, size)
	s.enqueueUp(s.Node(1), s.Node(3), v, size)
	s.at(150*time.Millisecond, func() { s.enqueueUp(s.Node(2), s.Node(3), v, size) })
	s.Run(time.Second)
	require.Len(t, *got, 3)
	require.Equal(t, 10*time.Millisecond, (*got)[0].at)
	require.Equal(t, 70*time.Millisecond, (*got)[1].at)
	d := (*got)[2].at - 150*time.Millisecond - 5*time.Millisecond
	require.GreaterOrEqual(t, d, 100*time.Millisecond)
	require.LessOrEqual(t, d, 300*time.Millisecond)

	_, err := New(Options{N: 3, Spec: spec("hotstuff"), Links: Links{Matrix: m[:2]}})
	require.ErrorContains(t, err, "2 rows for 3 replicas")
}

func smallRun(alg, engine, mem string, n int) VirtualConfig {
	c := VirtualConfig{Algorithm: alg, N: n, Spec: ScenarioSpec(engine, mem, n, false, false), Net: "custom",
		Links: Links{Uplink: 10e6, Downlink: 10e6}, Latency: 5 * time.Millisecond, Duration: 3 * time.Second,
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
		res, err := RunVirtual(c)
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
				res, err := RunVirtual(c)
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
	c.Links = Links{Uplink: 1e9, Downlink: 1e9}
	c.Rate = 400_000
	free, err := RunVirtual(c)
	require.NoError(t, err)
	c.CPU = &CPU{Sign: time.Millisecond, Verify: time.Millisecond, HashPerByte: 20, Measured: "test"}
	bound, err := RunVirtual(c)
	require.NoError(t, err)
	require.Empty(t, bound.Violations)
	require.NotNil(t, bound.CPUUtilisation)
	require.Greater(t, bound.CPUUtilisation.Max, 0.8, "the CPU is the bottleneck")
	require.Less(t, bound.ThroughputTPS, free.ThroughputTPS/2)
	require.Contains(t, bound.Config.CPUModel, "verify 1ms")
	require.Equal(t, "off", free.Config.CPUModel)
}

// TestScenariosSmall runs every paper scenario at small N: each row completes with well-formed
// JSON, no invariant violation, and no throughput above the bandwidth limit.
func TestScenariosSmall(t *testing.T) {
	base := smallRun("s-hs", "hotstuff", "stratus", 4)
	base.Spec = ScenarioSpec("hotstuff", "stratus", 4, false, false)
	base.Spec.BSize = 0
	base.Spec.Shared.BatchTimeout = 100 * time.Millisecond
	for _, name := range ScenarioNames() {
		t.Run(name, func(t *testing.T) {
			rows, err := PaperScenario(name, base, true)
			require.NoError(t, err)
			require.NotEmpty(t, rows)
			for _, c := range rows {
				res, err := RunVirtual(c)
				require.NoError(t, err, "%s %s N=%d", name, c.Algorithm, c.N)
				data, err := json.Marshal(res)
				require.NoError(t, err)
				var back Result
				require.NoError(t, json.Unmarshal(data, &back))
				require.Equal(t, c.N, back.Config.N)
				require.Empty(t, res.Violations, "%s %s N=%d", name, c.Algorithm, c.N)
				require.Len(t, res.Series, int(c.Duration/time.Second))
				if res.LimitTPS > 0 {
					require.LessOrEqual(t, res.ThroughputTPS, res.LimitTPS, "%s %s N=%d", name, c.Algorithm, c.N)
				}
				if c.Rate > 0 && len(c.Byzantine) == 0 && c.Spec.MemType != config.MemNative {
					require.Positive(t, res.ThroughputTPS, "%s %s N=%d delivered nothing", name, c.Algorithm, c.N)
				}
			}
		})
	}
	_, err := PaperScenario("fig11", base, true)
	require.ErrorContains(t, err, "want one of")
}

// TestZipfWeights: Zipf(1.01, 1) over 99 loaded replicas gives the top one about 0.196 of the
// load (the paper's arrays), a static leader none.
func TestZipfWeights(t *testing.T) {
	c := VirtualConfig{N: 100, Zipf: &Zipf{S: 1.01, V: 1}}
	c.Spec.Master = 1
	w := c.weights()
	require.Zero(t, w[0])
	require.InDelta(t, 0.196, w[1], 0.005)
	c.Zipf = &Zipf{S: 1.01, V: 10}
	require.InDelta(t, 0.041, c.weights()[1], 0.003)
}

// TestCrashEmptiesLinks: a replica that crashes loses what waits on its links, and after its
// restart its uplink carries new messages at once.
func TestCrashEmptiesLinks(t *testing.T) {
	s, got := linkSim(t, Links{Uplink: 8e6}, time.Millisecond)
	s.opts.Crash = map[types.NodeID]CrashPlan{1: {At: 50 * time.Millisecond, Down: 50 * time.Millisecond}}
	mb, size := microblock(100_000)
	for i := 0; i < 3; i++ {
		s.enqueueUp(s.Node(1), s.Node(2), mb, size)
	}
	s.at(50*time.Millisecond, func() { s.Node(1).crash() })
	s.at(100*time.Millisecond, func() {
		n := s.Node(1)
		n.Down = false // back, without starting a core: only the link matters here
		n.gen++
		v, vsize := vote()
		s.enqueueUp(n, s.Node(2), v, vsize)
	})
	s.Run(time.Second)
	require.Len(t, *got, 1, "the queued copies died with the crash")
	require.Equal(t, types.KindVote, (*got)[0].kind)
	require.Equal(t, 100*time.Millisecond+serialization(int(types.WireSize(&types.Vote{View: 1, Voter: 1, Sig: make([]byte, types.SigSize)})), 8e6)+time.Millisecond, (*got)[0].at,
		"the restarted replica's uplink is free at once")
}

// TestFittedMSize: with Fit, a microblock is halved until a creator's uplink sends it to the N-1
// others within MSizeSendBudget, where its size costs a proposal nothing (by reference, or no
// proofs); inline proofs, a native mempool and fast links keep the configured size.
func TestFittedMSize(t *testing.T) {
	wan := NetPresets["wan"]
	at := func(mem string, n int, byRef bool, uplink float64) int {
		c := VirtualConfig{N: n, Spec: ScenarioSpec("hotstuff", mem, n, false, false), Links: Links{Uplink: uplink}}
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
