package stats

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// fakeClock is a manually advanced clock, safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var testInfo = Info{Node: 2, N: 4, Algorithm: "hotstuff", Engine: "hotstuff", MemType: "native"}

// assertFinite walks a value and fails on any NaN or infinite float.
func assertFinite(t *testing.T, v any) {
	t.Helper()
	var walk func(path string, rv reflect.Value)
	walk = func(path string, rv reflect.Value) {
		switch rv.Kind() {
		case reflect.Float32, reflect.Float64:
			f := rv.Float()
			assert.False(t, math.IsNaN(f) || math.IsInf(f, 0), "%s = %v", path, f)
		case reflect.Struct:
			for i := 0; i < rv.NumField(); i++ {
				if rv.Type().Field(i).IsExported() {
					walk(path+"."+rv.Type().Field(i).Name, rv.Field(i))
				}
			}
		}
	}
	walk("Snapshot", reflect.ValueOf(v))
}

func TestFreshCollector(t *testing.T) {
	clk := newFakeClock()
	c := New(testInfo, clk.Now)
	s := c.Snapshot()
	assert.Equal(t, types.NodeID(2), s.Node)
	assert.Equal(t, 4, s.N)
	assert.Equal(t, "hotstuff", s.Algorithm)
	assert.Equal(t, "native", s.MemType)
	assert.Equal(t, 0.0, s.UptimeS)
	assert.Equal(t, types.View(0), s.View)
	assert.Equal(t, 0.0, s.AveViewTimeMs)
	assert.Equal(t, 0.0, s.ThroughputTPS)
	assert.Equal(t, 0.0, s.ThroughputTotalTPS)
	assert.Equal(t, Latency{}, s.Latency)
	assert.Equal(t, Latency{}, s.LatencyWindow)
	assert.NotNil(t, s.Rejected)
	assertFinite(t, s)

	data, err := json.Marshal(s)
	require.NoError(t, err)
	var back map[string]any
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Contains(t, back, "throughput_tps")
	assert.Contains(t, back, "latency_ms")

	// Also finite after time passes with nothing happening.
	clk.Advance(3 * time.Second)
	s = c.Snapshot()
	assertFinite(t, s)
	assert.Equal(t, 3.0, s.UptimeS)
	_, err = json.Marshal(s)
	require.NoError(t, err)
}

func TestCollectorEvents(t *testing.T) {
	clk := newFakeClock()
	c := New(testInfo, clk.Now)
	c.Event(consensus.ViewChange{View: 1, Leader: 1, Cause: "start"})
	c.Event(consensus.Proposed{View: 1, Items: 10})
	c.Event(consensus.Voted{View: 1})
	c.Event(consensus.ViewChange{View: 2, Leader: 2, Cause: "qc"})
	c.Event(consensus.Proposed{View: 2, Items: 20})
	c.Event(consensus.Voted{View: 2})
	c.Event(consensus.TimedOut{View: 2, Backoff: 1})
	c.Event(consensus.ViewChange{View: 3, Leader: 3, Cause: "tc"})
	c.Event(consensus.ViewChange{View: 4, Leader: 4, Cause: "tc"})
	c.Event(consensus.Rejected{Kind: types.KindVote, From: 3, Rule: "bad-signature"})
	c.Event(consensus.Rejected{Kind: types.KindVote, From: 4, Rule: "bad-signature"})
	c.Rejected(types.KindBlock, "structure")
	clk.Advance(2 * time.Second)

	s := c.Snapshot()
	assert.Equal(t, types.View(4), s.View)
	assert.Equal(t, types.NodeID(4), s.Leader)
	assert.Equal(t, uint64(4), s.ViewChanges)
	assert.Equal(t, uint64(2), s.ViewChangesByTC)
	assert.Equal(t, uint64(1), s.Timeouts)
	assert.Equal(t, uint64(2), s.ProposedBlocks)
	assert.Equal(t, 15.0, s.AveProposalSize)
	assert.Equal(t, uint64(2), s.Votes)
	assert.Equal(t, 500.0, s.AveViewTimeMs) // 2000 ms over 4 views
	assert.Equal(t, map[string]uint64{"Vote/bad-signature": 2, "Block/structure": 1}, s.Rejected)
	assertFinite(t, s)

	text := s.Text()
	assert.Contains(t, text, "Rejected Block/structure: 1\n")
	assert.Contains(t, text, "Rejected Vote/bad-signature: 2\n")
	assert.Less(t, strings.Index(text, "Rejected Block/"), strings.Index(text, "Rejected Vote/"), "sorted")
	assert.Contains(t, text, "View: 4\n")
	assert.Contains(t, text, "Leader: 4\n")
	assert.Contains(t, text, "View changes: 4 (2 by TC)\n")
}

func TestCollectorDelivered(t *testing.T) {
	clk := newFakeClock()
	c := New(testInfo, clk.Now)
	for i := 1; i <= 4; i++ {
		clk.Advance(time.Second)
		b := &types.Block{Height: uint64(i)}
		c.Delivered(b, 100, 1, []time.Duration{10 * time.Millisecond, 30 * time.Millisecond}, types.Hash{})
	}
	c.Delivered(&types.Block{Height: 5}, 0, 0, nil, types.Hash{}) // an empty block
	clk.Advance(time.Second)

	s := c.Snapshot()
	assert.Equal(t, uint64(5), s.CommittedBlocks)
	assert.Equal(t, uint64(5), s.CommittedHeight)
	assert.Equal(t, uint64(400), s.CommittedTx)
	assert.Equal(t, uint64(4), s.DuplicateTx)
	assert.Equal(t, 80.0, s.AveBlockSizeTx)
	assert.Equal(t, uint64(8), s.LatencySamples)
	assert.Equal(t, 20.0, s.Latency.Mean)
	assert.Equal(t, 30.0, s.Latency.Max)
	assert.InEpsilon(t, 10.0, s.Latency.P50, 0.02)
	assert.InEpsilon(t, 30.0, s.Latency.P99, 0.02)
	assert.Equal(t, 20.0, s.LatencyWindow.Mean)
	assert.Equal(t, 5.0, s.UptimeS)
	assert.Equal(t, 80.0, s.ThroughputTotalTPS) // 400 tx / 5 s
	assert.Equal(t, 80.0, s.ThroughputTPS)      // complete seconds 0..4 of the 5 s uptime: 400 tx / 5 s
	assertFinite(t, s)

	text := s.Text()
	assert.Contains(t, text, "Committed txs: 400\n")
	assert.Contains(t, text, "Committed blocks: 5\n")
	assert.Contains(t, text, "Throughput: 80.0 tx/s")
	assert.Contains(t, text, "Latency: mean 20.000 ms")
	assert.Contains(t, text, "(8 samples)")
}

func TestCollectorSubmittedAndGauges(t *testing.T) {
	c := New(testInfo, newFakeClock().Now)
	c.Submitted(10, 2, false)
	c.Submitted(5, 0, false)
	c.Submitted(99, 4, true)
	c.SetGauges(Gauges{MempoolTxs: 7, MempoolBytes: 700, InFlightTxs: 3, DeliveryBacklog: 2, LocalWaiting: 9}, 11, 42, [types.NumKinds]Traffic{})
	s := c.Snapshot()
	assert.Equal(t, uint64(15), s.SubmittedTx)
	assert.Equal(t, uint64(2), s.SubmittedDupTx, "duplicates of a refused submission are not counted")
	assert.Equal(t, uint64(1), s.RefusedSubmissions)
	assert.Equal(t, MempoolStats{PendingTx: 7, PendingBytes: 700, InFlightTx: 3, DeliveryBacklog: 2, LocalWaiting: 9}, s.Mempool)
	assert.Equal(t, types.View(11), s.HighQCView)
	assert.Equal(t, uint64(42), s.TransportDropped)
	text := s.Text()
	assert.Contains(t, text, "Submitted txs: 15\n")
	assert.Contains(t, text, "Duplicate txs answered: 2\n")
	data, err := json.Marshal(s)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"submitted_duplicate_tx":2`)
	assert.Contains(t, text, "Transport drops: 42\n")
	assert.Contains(t, text, "High QC view: 11\n")
}

func TestTextLabelsAndReadsDoNotReset(t *testing.T) {
	clk := newFakeClock()
	c := New(testInfo, clk.Now)
	c.Event(consensus.ViewChange{View: 1, Leader: 1})
	c.Delivered(&types.Block{Height: 1}, 3, 0, []time.Duration{time.Millisecond}, types.Hash{})
	clk.Advance(time.Second)

	first := c.Snapshot()
	text := first.Text()
	for _, label := range []string{"Throughput", "Ave. View Time", "Committed txs", "Latency", "Node", "View", "Leader", "Timeouts", "Mempool"} {
		assert.Contains(t, text, label+": ", label)
	}
	// Every line is "Label: value".
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		assert.True(t, ok && k != "" && v != "", "line %q", line)
		assert.NotContains(t, line, "NaN")
		assert.NotContains(t, line, "Inf")
	}

	second := c.Snapshot()
	assert.Equal(t, first, second, "reading twice changes nothing")
	assert.Equal(t, uint64(3), second.CommittedTx)
	assert.Equal(t, uint64(1), second.LatencySamples)
	assert.Equal(t, text, second.Text())
}

func TestSnapshotRejectedIsACopy(t *testing.T) {
	c := New(testInfo, newFakeClock().Now)
	c.Rejected(types.KindVote, "x")
	s := c.Snapshot()
	s.Rejected["Vote/x"] = 100
	assert.Equal(t, uint64(1), c.Snapshot().Rejected["Vote/x"])
}

func TestSnapshotFiniteWithOddClock(t *testing.T) {
	// A clock that goes backwards must not produce NaN or Inf.
	clk := newFakeClock()
	c := New(testInfo, clk.Now)
	c.Event(consensus.ViewChange{View: 3, Leader: 1})
	c.Delivered(&types.Block{Height: 1}, 5, 0, []time.Duration{-time.Second}, types.Hash{})
	clk.Advance(-10 * time.Second)
	s := c.Snapshot()
	assertFinite(t, s)
	_, err := json.Marshal(s)
	require.NoError(t, err)
}

func TestCollectorConcurrent(t *testing.T) {
	clk := newFakeClock()
	c := New(testInfo, clk.Now)
	const workers, iters = 4, 500
	var wg sync.WaitGroup
	var heights sync.Mutex // a replica delivers heights in order
	var height uint64
	for w := 0; w < workers; w++ {
		wg.Add(3)
		go func() {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				c.Event(consensus.ViewChange{View: types.View(i + 1), Leader: 1})
				c.Event(consensus.Voted{View: types.View(i + 1)})
				c.Rejected(types.KindVote, "r")
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				heights.Lock()
				height++
				c.Delivered(&types.Block{Height: height}, 2, 0, []time.Duration{time.Millisecond}, types.Hash{})
				heights.Unlock()
				c.Submitted(1, 0, false)
				if i%100 == 0 {
					clk.Advance(time.Second)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < iters/5; i++ {
				s := c.Snapshot()
				_ = s.Text()
				if _, err := json.Marshal(s); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s := c.Snapshot()
	assert.Equal(t, uint64(workers*iters), s.ViewChanges)
	assert.Equal(t, uint64(workers*iters), s.Votes)
	assert.Equal(t, uint64(workers*iters), s.CommittedBlocks)
	assert.Equal(t, uint64(2*workers*iters), s.CommittedTx)
	assert.Equal(t, uint64(workers*iters), s.LatencySamples)
	assert.Equal(t, uint64(workers*iters), s.SubmittedTx)
	assert.Equal(t, uint64(workers*iters), s.Rejected["Vote/r"])
	assertFinite(t, s)
}

// Mempool events and transport readings become the microblock numbers and per-kind traffic rates.
func TestMicroblockAndTrafficStats(t *testing.T) {
	now := time.Unix(1000, 0)
	c := New(Info{Node: 1, N: 4}, func() time.Time { return now })
	c.Event(consensus.MBCreated{Txs: 10, Bytes: 1280})
	c.Event(consensus.MBReceived{Bytes: 640})
	c.Event(consensus.MBReceived{Bytes: 640, Redundant: true})
	c.Event(consensus.MBMissing{})
	c.Event(consensus.MBFetched{})
	c.Event(consensus.MBStable{StableTime: 4 * time.Millisecond})
	c.Event(consensus.MBStable{StableTime: 8 * time.Millisecond, Proxy: true})
	c.Event(consensus.ProofChecked{OK: true})
	c.Event(consensus.ProofChecked{OK: false})
	c.Event(consensus.MBForwarded{Proxy: 3})
	c.Event(consensus.LoadChanged{Busy: true, Load: 25 * time.Millisecond})

	var tr [types.NumKinds]Traffic
	tr[types.KindMicroBlock] = Traffic{SentMsgs: 10, SentBytes: 10_000}
	c.SetGauges(Gauges{Microblocks: 5, Banned: 1, Busy: true, Load: 25 * time.Millisecond}, 0, 0, tr)
	now = now.Add(2 * time.Second)
	tr[types.KindMicroBlock] = Traffic{SentMsgs: 30, SentBytes: 260_000, RecvMsgs: 4, RecvBytes: 4000}
	c.SetGauges(Gauges{Microblocks: 5, Banned: 1, Busy: true, Load: 25 * time.Millisecond}, 0, 0, tr)

	s := c.Snapshot()
	mb := s.Microblocks
	assert.Equal(t, uint64(1), mb.Created)
	assert.Equal(t, uint64(1), mb.Received)
	assert.Equal(t, uint64(1), mb.Redundant)
	assert.Equal(t, uint64(1), mb.Missing)
	assert.Equal(t, uint64(1), mb.Fetched)
	assert.Equal(t, 960.0, mb.AveSizeBytes)
	assert.Equal(t, 10.0, mb.AveSizeTxs)
	assert.InDelta(t, 8.0, mb.StableTimeMs.P95, 0.2)
	assert.Equal(t, uint64(1), mb.ProofsVerified)
	assert.Equal(t, uint64(1), mb.ProofsRejected)
	assert.Equal(t, uint64(1), mb.Forwarded)
	assert.Equal(t, uint64(1), mb.PushedAsProxy)
	assert.True(t, mb.Busy)
	assert.Equal(t, 25.0, mb.LoadMs)
	assert.Equal(t, 1, mb.BannedProxies)
	k := s.Traffic["MicroBlock"]
	assert.Equal(t, 10.0, k.SentMsgs)
	assert.Equal(t, 125_000.0, k.SentBytes)
	assert.Equal(t, 2.0, k.RecvMsgs)
	assert.Equal(t, uint64(30), k.SentMsgsTotal)
	assert.Equal(t, 1.0, s.SendMbps)
	assert.NotContains(t, s.Traffic, "Vote", "kinds without traffic are left out")
	text := s.Text()
	for _, label := range []string{"Total microblocks: 1 created", "Stable time:", "Proofs: 1 verified, 1 rejected", "Load balancing: busy true", "Traffic MicroBlock:", "Send Rate: 1.000 Mbps"} {
		assert.Contains(t, text, label)
	}
}

// A replica restarted without its state delivers the chain again from the start (or skips by
// state transfer): the statistics count every height once, and follow the digest.
func TestCollectorCountsRedeliveriesOnce(t *testing.T) {
	c := New(testInfo, newFakeClock().Now)
	for h := uint64(1); h <= 3; h++ {
		c.Delivered(&types.Block{Height: h}, 10, 0, nil, types.Keccak([]byte{byte(h)}))
	}
	c.Restarted()
	for h := uint64(1); h <= 4; h++ {
		c.Delivered(&types.Block{Height: h}, 10, 0, nil, types.Keccak([]byte{byte(h)}))
	}
	s := c.Snapshot()
	assert.Equal(t, uint64(4), s.CommittedBlocks)
	assert.Equal(t, uint64(40), s.CommittedTx)
	assert.Equal(t, uint64(4), s.CommittedHeight)
	assert.Equal(t, types.Keccak([]byte{4}).Hex(), s.ChainDigest)
	assert.Equal(t, uint64(1), s.Restarts)
	c.Event(consensus.StateSynced{From: 4, To: 64, Digest: types.Keccak([]byte("64")), SkippedTxs: 600})
	s = c.Snapshot()
	assert.Equal(t, uint64(64), s.CommittedHeight)
	assert.Equal(t, StateTransfer{Syncs: 1, SkippedBlocks: 60, SkippedTx: 600}, s.StateTransfer)
	assert.Contains(t, s.Text(), "Chain digest: "+types.Keccak([]byte("64")).Hex())
}

// The load estimate is a gauge: it follows every reading, also while the busy state never flips
// (a hot replica under its busy threshold used to show load 0 while its stable times were not).
func TestLoadIsLiveWithoutBusyChange(t *testing.T) {
	now := time.Unix(1000, 0)
	c := New(Info{Node: 1, N: 4}, func() time.Time { return now })
	var tr [types.NumKinds]Traffic
	c.SetGauges(Gauges{Load: 7 * time.Millisecond}, 0, 0, tr)
	s := c.Snapshot()
	assert.False(t, s.Microblocks.Busy)
	assert.Equal(t, 7.0, s.Microblocks.LoadMs)
	c.SetGauges(Gauges{Load: 3500 * time.Microsecond}, 0, 0, tr)
	assert.Equal(t, 3.5, c.Snapshot().Microblocks.LoadMs, "the current value, not the first")
	c.SetGauges(Gauges{Microblocks: 1, Busy: true, Load: 30 * time.Millisecond}, 0, 0, tr)
	s = c.Snapshot()
	assert.True(t, s.Microblocks.Busy)
	assert.Equal(t, 30.0, s.Microblocks.LoadMs)
	assert.Contains(t, s.Text(), "load 30.000 ms")
}

// TestDuplicateShareAndReport: the share of duplicates covers the last 10 s of submissions, and a
// report of mostly duplicate submissions is due once per interval, only past the minimum count.
func TestDuplicateShareAndReport(t *testing.T) {
	clk := newFakeClock()
	c := New(testInfo, clk.Now)
	assert.Zero(t, c.Snapshot().SubmittedDupShare)
	c.Submitted(40, 10, false)
	_, _, due := c.DuplicateReport()
	assert.False(t, due, "a fifth are duplicates")
	assert.Equal(t, 0.2, c.Snapshot().SubmittedDupShare)
	assert.Contains(t, c.Snapshot().Text(), "Duplicate share of submissions: 20.0 % (last 10 s)\n")

	clk.Advance(3 * time.Second)
	c.Submitted(0, 60, false) // 70 of 110: more than half
	dups, total, due := c.DuplicateReport()
	assert.True(t, due)
	assert.Equal(t, [2]uint64{70, 110}, [2]uint64{dups, total})
	_, _, due = c.DuplicateReport()
	assert.False(t, due, "once per interval")
	c.Submitted(0, 500, true)
	assert.Equal(t, 0.636, c.Snapshot().SubmittedDupShare, "a refused submission is no submission")

	clk.Advance(DuplicateReportInterval)
	c.Submitted(100, 20, false) // the first two seconds have left the window
	_, _, due = c.DuplicateReport()
	assert.False(t, due, "20 of 120 in the window")
	c.Submitted(0, 200, false)
	dups, total, due = c.DuplicateReport()
	assert.True(t, due, "due again after the interval")
	assert.Equal(t, [2]uint64{220, 320}, [2]uint64{dups, total})
	clk.Advance(11 * time.Second)
	assert.Zero(t, c.Snapshot().SubmittedDupShare, "nothing submitted in the window")
}
