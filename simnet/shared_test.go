package simnet

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/types"
)

// preset is a protocol of the paper as the simulator runs it.
type preset struct {
	name    string
	engine  string
	memType string
	gossip  bool
	lb      bool
}

var presets = []preset{
	{"smp-hs", "hotstuff", "smp", false, false},
	{"s-hs", "hotstuff", "stratus", false, false},
	{"s-sl", "streamlet", "stratus", false, false},
	{"s-hs-g", "hotstuff", "stratus", true, false},
	{"smp-hs-g", "hotstuff", "smp", true, false},
	{"s-hs+dlb", "hotstuff", "stratus", false, true},
	{"smp-sl+dlb", "streamlet", "smp", false, true},
}

func sharedSpec(p preset, n int) core.Spec {
	return ScenarioSpec(p.engine, p.memType, n, p.gossip, p.lb)
}

// loadAll submits batches to every replica in turn, the withholding ones included.
func loadAll(s *Sim, txs []types.Tx, batch int, interval time.Duration) {
	nodes := s.Nodes()
	for i, k := 0, 0; i < len(txs); i, k = i+batch, k+1 {
		s.Submit(time.Duration(k)*interval, nodes[k%len(nodes)].ID, txs[i:min(i+batch, len(txs))])
	}
}

// TestPresetsAgree runs every preset, with and without a replica that withholds its microblocks
// (the missing strategy), and expects safety and every transaction an honest replica accepted
// delivered exactly once everywhere. Under PAB the withholder's own transactions are delivered
// too: its microblocks have proofs, so an honest signer holds their data and serves it. Under
// smp nothing guarantees that, and the withholder's own transactions may stay out.
func TestPresetsAgree(t *testing.T) {
	for _, p := range presets {
		for _, withhold := range [][]types.NodeID{nil, {2}} {
			for _, seed := range firstSeeds(2) {
				name := fmt.Sprintf("%s/withhold=%v/seed=%d", p.name, withhold, seed)
				t.Run(name, func(t *testing.T) {
					s, err := New(Options{N: 4, Spec: sharedSpec(p, 4), Seed: seed, Latency: time.Millisecond, Jitter: 2 * time.Millisecond, Withhold: withhold})
					require.NoError(t, err)
					txs := makeTxs(name, 800)
					loadAll(s, txs, 20, 2*time.Millisecond)
					want := txs
					if withhold != nil && p.memType != "stratus" {
						want = nil
						for i := 0; i < len(txs); i += 20 {
							if k := i / 20; s.Nodes()[k%4].ID != withhold[0] {
								want = append(want, txs[i:min(i+20, len(txs))]...)
							}
						}
					}
					ok := s.RunUntil(60*time.Second, func() bool { return s.AllDelivered(want) })
					require.True(t, ok, "not delivered everywhere (seed %d)", seed)
					require.Empty(t, s.Violations())
					if len(want) == len(txs) {
						requireSafeAndComplete(t, s, txs)
					}
					var fetched, created int
					for _, n := range s.Nodes() {
						for _, e := range n.Events {
							switch e.(type) {
							case consensus.MBFetched:
								fetched++
							case consensus.MBCreated:
								created++
							}
						}
					}
					require.GreaterOrEqual(t, created, 800/10, "transactions travel in microblocks")
					if withhold != nil && p.memType == "stratus" {
						require.Positive(t, fetched, "withheld microblocks must have been fetched from their signers")
					}
					// Idle afterwards: every honest replica's shared mempool is empty again (garbage collected).
					s.Run(s.Now() + 2*time.Second)
					for _, n := range s.Honest() {
						g := n.Core.Gauges()
						require.Zero(t, g.MempoolBytes, "node %d still holds own transactions", n.ID)
					}
				})
			}
		}
	}
}

// TestSharedUnderJitterAndSilence: PAB and smp with a silent replica and heavy reordering, N = 4
// and 7.
func TestSharedUnderJitterAndSilence(t *testing.T) {
	for _, p := range []preset{presets[0], presets[1], presets[2], presets[3]} {
		for _, n := range []int{4, 7} {
			seed := int64(n)
			silent := []types.NodeID{types.NodeID(n)}
			name := fmt.Sprintf("%s/n=%d", p.name, n)
			t.Run(name, func(t *testing.T) {
				s, err := New(Options{N: n, Spec: sharedSpec(p, n), Seed: seed, Latency: 2 * time.Millisecond, Jitter: 40 * time.Millisecond, Absent: silent})
				require.NoError(t, err)
				txs := makeTxs(name, 600)
				load(s, txs, 15, 3*time.Millisecond)
				require.True(t, s.RunUntil(120*time.Second, func() bool { return s.AllDelivered(txs) }))
				requireSafeAndComplete(t, s, txs)
			})
		}
	}
}

// TestMemoryStaysFlat pushes 30,000 transactions through S-HS over 20 virtual seconds and samples
// the mempools: what they hold stays bounded by the load in flight (not by the total pushed), the
// retained data never exceeds memsize, and once idle nothing but retained data is left.
func TestMemoryStaysFlat(t *testing.T) {
	p := presets[1]
	sp := sharedSpec(p, 4)
	sp.MemSize = 32 * 2000
	s, err := New(Options{N: 4, Spec: sp, Seed: 3, Latency: time.Millisecond, Jitter: time.Millisecond})
	require.NoError(t, err)
	txs := makeTxs("flat", 30_000)
	load(s, txs, 30, 20*time.Millisecond) // 1,500 tx/s for 20 s
	peak := 0
	for at := time.Second; at <= 21*time.Second; at += time.Second {
		s.Run(at)
		for _, n := range s.Honest() {
			g := n.Core.Gauges()
			peak = max(peak, g.Microblocks)
			require.LessOrEqual(t, g.RetainedBytes, sp.MemSize, "node %d retains more than memsize", n.ID)
		}
	}
	require.True(t, s.RunUntil(40*time.Second, func() bool { return s.AllDelivered(txs) }))
	requireSafeAndComplete(t, s, txs)
	// 3,000 microblocks went through; at most a few dozen were ever held at once.
	t.Logf("peak microblocks held by a replica: %d of 3000", peak)
	require.Less(t, peak, 200, "microblocks held at once")
	s.Run(s.Now() + 2*time.Second)
	for _, n := range s.Honest() {
		g := n.Core.Gauges()
		require.Zero(t, g.Microblocks, "node %d", n.ID)
		require.Zero(t, g.Fetching, "node %d", n.ID)
		require.Zero(t, g.PeerBytes, "node %d", n.ID)
		require.Zero(t, g.MempoolBytes, "node %d", n.ID)
		require.Positive(t, g.RetainedBytes)
	}
}
