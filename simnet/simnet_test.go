package simnet

import (
	"encoding/binary"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/mempool"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/types"
)

var seedFlag = flag.Int64("seed", 0, "run the simulations with this seed only (0 = the built-in seeds)")

func seeds() []int64 {
	if *seedFlag != 0 {
		return []int64{*seedFlag}
	}
	return []int64{1, 2, 3}
}

// firstSeeds returns at most k of the seeds.
func firstSeeds(k int) []int64 {
	s := seeds()
	return s[:min(k, len(s))]
}

func spec(engine string) core.Spec { return ScenarioSpec(engine, "native", 4, false, false) }

// makeTxs returns n distinct transactions tagged with tag.
func makeTxs(tag string, n int) []types.Tx {
	txs := make([]types.Tx, n)
	for i := range txs {
		b := make([]byte, 32)
		copy(b, tag)
		binary.BigEndian.PutUint64(b[24:], uint64(i))
		txs[i] = types.NewTx(b)
	}
	return txs
}

// load submits batches of txs to honest replicas in turn, one batch every interval.
func load(s *Sim, txs []types.Tx, batch int, interval time.Duration) {
	honest := s.Honest()
	for i, k := 0, 0; i < len(txs); i, k = i+batch, k+1 {
		end := min(i+batch, len(txs))
		s.Submit(time.Duration(k)*interval, honest[k%len(honest)].ID, txs[i:end])
	}
}

func requireSafeAndComplete(t *testing.T, s *Sim, txs []types.Tx) {
	t.Helper()
	require.Empty(t, s.Violations(), "invariant violations (rerun with -seed=%d)", s.Seed())
	honest := s.Honest()
	// Exactly once: every submitted transaction delivered by every honest replica, no others.
	for _, n := range honest {
		require.Len(t, n.Txs, len(txs), "replica %d delivered %d of %d transactions (seed %d)", n.ID, len(n.Txs), len(txs), s.Seed())
	}
	// Same sequence everywhere.
	for _, n := range honest[1:] {
		require.Equal(t, honest[0].Txs, n.Txs, "replicas %d and %d delivered different sequences (seed %d)", honest[0].ID, n.ID, s.Seed())
	}
}

func TestReplicasAgree(t *testing.T) {
	cases := []struct {
		engine string
		silent []types.NodeID
	}{
		{"hotstuff", nil},
		{"hotstuff", []types.NodeID{3}},
		{"streamlet", nil},
		{"streamlet", []types.NodeID{2}},
	}
	for _, tc := range cases {
		for _, seed := range seeds() {
			name := fmt.Sprintf("%s/silent=%v/seed=%d", tc.engine, tc.silent, seed)
			t.Run(name, func(t *testing.T) {
				s, err := New(Options{N: 4, Spec: spec(tc.engine), Seed: seed, Latency: time.Millisecond, Jitter: 2 * time.Millisecond, Absent: tc.silent})
				require.NoError(t, err)
				txs := makeTxs(name, 600)
				load(s, txs, 20, 3*time.Millisecond)
				ok := s.RunUntil(60*time.Second, func() bool { return s.AllDelivered(txs) })
				require.True(t, ok, "not every transaction was delivered by every honest replica within 60 virtual seconds (seed %d)", seed)
				requireSafeAndComplete(t, s, txs)
				// Let the system go idle: no more deliveries, and at most one empty block per
				// propose timeout (no busy loop of empty blocks).
				blocks := len(s.Honest()[0].Blocks)
				s.Run(s.Now() + 2*time.Second)
				require.Empty(t, s.Violations())
				idleBlocks := len(s.Honest()[0].Blocks) - blocks
				require.LessOrEqual(t, idleBlocks, 2000/20+3, "too many blocks while idle")
				requireSafeAndComplete(t, s, txs)
			})
		}
	}
}

// TestDeterministic runs the same seed twice and expects the same deliveries and the same number
// of events: the core has no hidden source of nondeterminism.
func TestDeterministic(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		run := func() ([]types.Hash, uint64) {
			s, err := New(Options{N: 4, Spec: spec(engine), Seed: 42, Jitter: 3 * time.Millisecond, Absent: []types.NodeID{4}})
			require.NoError(t, err)
			txs := makeTxs("det", 200)
			load(s, txs, 10, 2*time.Millisecond)
			s.Run(5 * time.Second)
			return s.Node(1).Txs, s.Steps()
		}
		a, stepsA := run()
		b, stepsB := run()
		require.NotEmpty(t, a, engine)
		require.Equal(t, a, b, engine)
		require.Equal(t, stepsA, stepsB, engine)
	}
}

// TestStaticLeaderForwarding: with a static leader the other replicas forward their transactions to
// it, and everything submitted anywhere is delivered everywhere exactly once.
func TestStaticLeaderForwarding(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		sp := spec(engine)
		sp.Master = 2
		s, err := New(Options{N: 4, Spec: sp, Seed: 5, Jitter: time.Millisecond})
		require.NoError(t, err)
		txs := makeTxs("static-"+engine, 300)
		load(s, txs, 15, 2*time.Millisecond)
		require.True(t, s.RunUntil(30*time.Second, func() bool { return s.AllDelivered(txs) }), engine)
		requireSafeAndComplete(t, s, txs)
	}
}

// TestMempoolFullRefuses: a submission beyond memsize is refused with an error, and what was
// accepted is still delivered.
func TestMempoolFullRefuses(t *testing.T) {
	sp := spec("hotstuff")
	sp.MemSize = (32 + mempool.TxOverhead) * 100 // room for 100 of our 32-byte transactions
	s, err := New(Options{N: 4, Spec: sp, Seed: 9})
	require.NoError(t, err)
	first := makeTxs("full-a", 100)
	second := makeTxs("full-b", 10)
	r1 := s.Submit(0, 1, first)
	r2 := s.Submit(0, 1, second)
	s.Run(time.Microsecond)
	require.NoError(t, *r1)
	require.ErrorContains(t, *r2, "mempool full")
	require.True(t, s.RunUntil(30*time.Second, func() bool { return s.AllDelivered(first) }))
	require.Empty(t, s.Violations())
	for _, n := range s.Honest() {
		require.Len(t, n.Txs, 100)
	}
}

// TestAgreeUnderJitterAndSilence: heavy reordering (jitter 30× the base latency) with up to f
// silent replicas, N = 4 and 7, both engines: safety always, and every transaction delivered.
func TestAgreeUnderJitterAndSilence(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		for _, n := range []int{4, 7} {
			for seed := int64(1); seed <= 6; seed++ {
				var silent []types.NodeID
				switch {
				case n == 7 && seed%2 == 0:
					silent = []types.NodeID{1, 2} // f = 2, adjacent leaders
				case seed%3 != 0:
					silent = []types.NodeID{types.NodeID(seed%int64(n)) + 1}
				}
				name := fmt.Sprintf("%s/n=%d/seed=%d/silent=%v", engine, n, seed, silent)
				t.Run(name, func(t *testing.T) {
					s, err := New(Options{N: n, Spec: spec(engine), Seed: seed, Latency: 2 * time.Millisecond, Jitter: 60 * time.Millisecond, Absent: silent})
					require.NoError(t, err)
					txs := makeTxs(name, 400)
					load(s, txs, 10, 5*time.Millisecond)
					require.True(t, s.RunUntil(120*time.Second, func() bool { return s.AllDelivered(txs) }), "seed %d", seed)
					requireSafeAndComplete(t, s, txs)
				})
			}
		}
	}
}

// TestLiveWhenViewsOutlastTheTimeout: when a view needs longer than the base view timeout (here
// a round trip of 300 ms against a 200-ms timeout, as after a misjudged timeout or a lasting slow
// network), the backoff must grow until views complete and stay there until blocks commit. A
// backoff that fell back to the base timeout on every new QC gave every view after a successful
// one the short timeout again, so three consecutive views never certified and HotStuff committed
// nothing, forever.
func TestLiveWhenViewsOutlastTheTimeout(t *testing.T) {
	for _, tc := range []struct{ engine, mem string }{
		{"hotstuff", "native"}, {"streamlet", "native"}, {"hotstuff", "stratus"}, {"streamlet", "stratus"},
	} {
		t.Run(tc.engine+"/"+tc.mem, func(t *testing.T) {
			sp := ScenarioSpec(tc.engine, tc.mem, 4, false, false)
			sp.Timeout = 200 * time.Millisecond
			if tc.mem != "native" {
				sp.Shared.FetchTimeout, sp.Shared.PushTimeout = time.Second, time.Second
			}
			s, err := New(Options{N: 4, Spec: sp, Seed: 1, Latency: 150 * time.Millisecond})
			require.NoError(t, err)
			txs := makeTxs(t.Name(), 400)
			load(s, txs, 20, 50*time.Millisecond)
			ok := s.RunUntil(60*time.Second, func() bool { return s.AllDelivered(txs) })
			require.True(t, ok, "%s committed %d of %d transactions in 60 virtual seconds with views longer than the view timeout", tc.engine, len(s.Honest()[0].Txs), len(txs))
			requireSafeAndComplete(t, s, txs)
		})
	}
}

// TestUplinkLanes: on an uplink consensus messages leave before queued data, unless FIFOUplink
// keeps every copy in the order it was queued.
func TestUplinkLanes(t *testing.T) {
	for _, fifo := range []bool{false, true} {
		s, err := New(Options{N: 2, Spec: spec("hotstuff"), Seed: 1, Links: Links{Uplink: 8e6, FIFOUplink: fifo}})
		require.NoError(t, err)
		from, to := s.Node(1), s.Node(2)
		from.up.busy = true // a copy is on the wire, so what follows queues
		s.enqueueUp(from, to, &types.MicroBlock{}, 100_000)
		s.enqueueUp(from, to, &types.Vote{}, 100)
		s.nextUp(from) // the copy on the wire has left: the next one starts
		left := 100_000
		if fifo {
			left = 100 // the microblock went first; the vote waits behind it
		}
		require.Equal(t, left, from.up.bytes, "FIFOUplink=%v: bytes still queued after the first copy started", fifo)
	}
}
