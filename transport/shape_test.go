package transport

import (
	"encoding/json"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

// microBlock returns a microblock of about n bytes of transactions (64 KiB each), with a
// signature of the right size so that it also passes a wire codec.
func microBlock(n int) *types.MicroBlock {
	const txSize = 64 << 10
	data := make([]byte, txSize)
	data[0] = 1
	txs := make([]types.Tx, 0, n/txSize+1)
	for len(txs)*txSize < n {
		txs = append(txs, types.NewTx(data))
	}
	mb := types.NewMicroBlock(1, 1, txs)
	mb.Sig = make([]byte, types.SigSize)
	return mb
}

// fullVote is a vote of realistic size (it carries a signature).
func fullVote(v types.View) *types.Vote {
	return &types.Vote{View: v, Voter: 1, Sig: make([]byte, types.SigSize)}
}

// txTimeAt is how long size bytes take at bps bits per second.
func txTimeAt(size int, bps float64) time.Duration {
	return time.Duration(float64(size) * 8 / bps * float64(time.Second))
}

// arrival is a message seen by a receiver and when.
type arrival struct {
	msg types.Message
	at  time.Duration // since the test's start
}

// collect reads both lanes of ep until want messages arrived or a generous timeout, recording
// the order and time of arrival.
func collect(t *testing.T, ep Endpoint, start time.Time, want int, timeout time.Duration) []arrival {
	t.Helper()
	var got []arrival
	deadline := time.After(timeout)
	for len(got) < want {
		select {
		case env := <-ep.Inbox(types.LaneConsensus):
			got = append(got, arrival{env.Msg, time.Since(start)})
		case env := <-ep.Inbox(types.LaneData):
			got = append(got, arrival{env.Msg, time.Since(start)})
		case <-deadline:
			t.Fatalf("node %d: %d of %d messages arrived", ep.Self(), len(got), want)
		}
	}
	return got
}

// quiet checks that nothing arrives at ep for a while.
func quiet(t *testing.T, ep Endpoint, wait time.Duration) {
	t.Helper()
	select {
	case env := <-ep.Inbox(types.LaneConsensus):
		t.Fatalf("node %d: unexpected %v from %d", ep.Self(), env.Msg.Kind(), env.From)
	case env := <-ep.Inbox(types.LaneData):
		t.Fatalf("node %d: unexpected %v from %d", ep.Self(), env.Msg.Kind(), env.From)
	case <-time.After(wait):
	}
}

func within(t *testing.T, got, want time.Duration, lo, hi float64, what string) {
	t.Helper()
	assert.GreaterOrEqual(t, got, time.Duration(float64(want)*lo), "%s: %v, expected about %v", what, got, want)
	assert.LessOrEqual(t, got, time.Duration(float64(want)*hi), "%s: %v, expected about %v", what, got, want)
}

func TestShapeOptionsValidate(t *testing.T) {
	require.NoError(t, ShapeOptions{N: 4}.Validate())
	require.NoError(t, ShapeOptions{N: 4, Delay: time.Millisecond, Jitter: 2 * time.Millisecond, Bandwidth: 1e6, Loss: 0.5, QueueBytes: 1}.Validate())
	err := ShapeOptions{N: 0, Delay: -1, Jitter: -1, Bandwidth: -5, Loss: 1, QueueBytes: -1}.Validate()
	require.Error(t, err)
	for _, want := range []string{"N 0 is outside [1, 1024]", "delay -1ns is negative", "jitter -1ns is negative",
		"bandwidth -5 bit/s", "loss 1 is outside [0, 1)", "queue bytes -1 is negative"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.ErrorContains(t, ShapeOptions{N: 2000}.Validate(), "N 2000")
	var nan float64
	nan = nan / nan
	assert.ErrorContains(t, ShapeOptions{N: 4, Loss: nan}.Validate(), "loss NaN")
	assert.ErrorContains(t, ShapeOptions{N: 4, Bandwidth: nan}.Validate(), "bandwidth NaN")
}

// TestShapePassthrough: with nothing configured the shaper adds no goroutine hop and no allocation
// on the send path.
func TestShapePassthrough(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 4096})
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN, Seed: 1})
	defer s.Close()
	assert.Equal(t, types.NodeID(1), s.Self())

	v, f := vote(1), forward()
	s.Send(2, v)
	require.Len(t, h.Endpoint(2).Inbox(types.LaneConsensus), 1, "delivered before Send returned")
	assert.Same(t, v, recv(t, h.Endpoint(2), types.LaneConsensus).Msg)
	s.Broadcast(f)
	for _, id := range []types.NodeID{2, 3, 4} {
		require.Len(t, h.Endpoint(id).Inbox(types.LaneData), 1, "node %d: delivered before Broadcast returned", id)
		assert.Same(t, f, recv(t, h.Endpoint(id), types.LaneData).Msg)
	}
	assertEmpty(t, h.Endpoint(1))
	assert.Equal(t, Counters{Sent: 4}, totals(s.Counters()))

	drain := func() {
		for id := types.NodeID(2); id <= testN; id++ {
			for len(h.Endpoint(id).Inbox(types.LaneConsensus)) > 0 {
				<-h.Endpoint(id).Inbox(types.LaneConsensus)
			}
		}
	}
	inner := testing.AllocsPerRun(200, func() { h.Endpoint(1).Send(2, v); h.Endpoint(1).Broadcast(v); drain() })
	shaped := testing.AllocsPerRun(200, func() { s.Send(2, v); s.Broadcast(v); drain() })
	assert.Equal(t, inner, shaped, "allocations per send")
}

// A 1 MB message on a 10 Mbit/s uplink takes about 0.8 s.
func TestShapeBandwidthLargeMessage(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 16})
	defer h.Close()
	const bps = 10e6
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN, Bandwidth: bps})
	defer s.Close()
	mb := microBlock(1 << 20)
	size := types.WireSize(mb)
	require.InDelta(t, 1<<20, size, 1<<12)

	start := time.Now()
	s.Send(2, mb)
	got := collect(t, h.Endpoint(2), start, 1, 5*time.Second)
	assert.Same(t, mb, got[0].msg)
	want := txTimeAt(size, bps)
	assert.InDelta(t, 0.84, want.Seconds(), 0.01)
	assert.GreaterOrEqual(t, got[0].at, 650*time.Millisecond)
	assert.LessOrEqual(t, got[0].at, 1200*time.Millisecond)
	assert.Equal(t, Counters{Sent: 1}, totals(s.Counters()))
}

// A vote sent after several large microblocks leaves right after the one on the wire.
func TestShapeConsensusOvertakesData(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 64})
	defer h.Close()
	const bps = 10e6
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN, Bandwidth: bps})
	defer s.Close()
	const blocks = 5
	mbs := make([]*types.MicroBlock, blocks)
	for i := range mbs {
		mbs[i] = types.NewMicroBlock(1, types.View(i+1), microBlock(128<<10).Txs)
		mbs[i].Sig = make([]byte, types.SigSize)
	}
	one := txTimeAt(types.WireSize(mbs[0]), bps) // about 105 ms

	start := time.Now()
	for _, mb := range mbs {
		s.Send(2, mb)
	}
	v := fullVote(9)
	s.Send(2, v)
	got := collect(t, h.Endpoint(2), start, blocks+1, 10*time.Second)

	pos := -1
	var dataAt []time.Duration
	for i, a := range got {
		if a.msg == types.Message(v) {
			pos = i
			continue
		}
		dataAt = append(dataAt, a.at)
		assert.Same(t, mbs[len(dataAt)-1], a.msg, "microblocks keep their order")
	}
	require.GreaterOrEqual(t, pos, 0)
	assert.LessOrEqual(t, pos, 1, "the vote follows at most the microblock already on the wire: %v", got)
	voteAt := got[pos].at
	assert.Less(t, voteAt, dataAt[1], "the vote arrives before the second microblock")
	within(t, voteAt, one, 0.6, 1.6, "vote")
	within(t, dataAt[blocks-1], blocks*one, 0.7, 1.4, "last microblock")
}

// A broadcast costs N-1 transmissions on the sender's uplink.
func TestShapeBroadcastCostsNMinusOneTransmissions(t *testing.T) {
	const n, bps = 5, 10e6
	h := NewHub(n, HubOptions{Buffer: 16})
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{N: n, Bandwidth: bps})
	defer s.Close()
	mb := microBlock(128 << 10)
	one := txTimeAt(types.WireSize(mb), bps)

	start := time.Now()
	s.Broadcast(mb)
	var times []time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id := types.NodeID(2); id <= n; id++ {
		wg.Add(1)
		go func(ep Endpoint) {
			defer wg.Done()
			got := collect(t, ep, start, 1, 10*time.Second)
			mu.Lock()
			times = append(times, got[0].at)
			mu.Unlock()
		}(h.Endpoint(id))
	}
	wg.Wait()
	require.Len(t, times, n-1)
	first, last := times[0], times[0]
	for _, at := range times {
		first, last = min(first, at), max(last, at)
	}
	within(t, first, one, 0.6, 1.6, "first copy")
	within(t, last, (n-1)*one, 0.7, 1.4, "last copy")
	assertEmpty(t, h.Endpoint(1))
	c := s.Counters()
	assert.Equal(t, uint64(n-1), c.Sent)
	assert.Equal(t, uint64(n-1), c.ByKind[types.KindMicroBlock].SentMsgs)
	assert.Equal(t, uint64((n-1)*types.WireSize(mb)), c.ByKind[types.KindMicroBlock].SentBytes)
}

// Many small messages keep the configured rate: the uplink does not pay a timer per message.
func TestShapeManySmallMessagesKeepRate(t *testing.T) {
	const bps, count = 20e6, 8000
	h := NewHub(testN, HubOptions{Buffer: count + 10})
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN, Bandwidth: bps})
	defer s.Close()
	v := fullVote(1)
	want := txTimeAt(count*types.WireSize(v), bps) // about 0.4 s

	start := time.Now()
	go func() {
		for i := 0; i < count; i++ {
			s.Send(2, v)
		}
	}()
	got := collect(t, h.Endpoint(2), start, count, 20*time.Second)
	within(t, got[count-1].at, want, 0.6, 1.4, "last vote")
	assert.Equal(t, uint64(0), s.Counters().Dropped)
}

func TestShapeDelayAndJitterBounds(t *testing.T) {
	const delay, jitter, count = 60 * time.Millisecond, 30 * time.Millisecond, 60
	h := NewHub(testN, HubOptions{Buffer: 256})
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN, Delay: delay, Jitter: jitter, Seed: 3})
	defer s.Close()

	sent := make(map[types.View]time.Time)
	for i := 1; i <= count; i++ {
		sent[types.View(i)] = time.Now()
		s.Send(2, vote(types.View(i)))
	}
	var minD, maxD time.Duration = time.Hour, 0
	reordered := false
	last := types.View(0)
	for i := 0; i < count; i++ {
		env := recv(t, h.Endpoint(2), types.LaneConsensus)
		view := env.Msg.(*types.Vote).View
		d := time.Since(sent[view])
		assert.GreaterOrEqual(t, d, delay-jitter, "view %d", view)
		assert.Less(t, d, delay+jitter+time.Second, "view %d", view)
		minD, maxD = min(minD, d), max(maxD, d)
		reordered = reordered || view < last
		last = view
	}
	assert.True(t, reordered, "jitter of ±%v over %d messages sent at once reorders some", jitter, count)
	assert.Less(t, minD, delay, "some messages are early")
	t.Logf("delays between %v and %v", minD, maxD)
}

// Without jitter every destination receives in the order sent, even when a slow fault ends in
// the middle of the stream and later messages would otherwise arrive first.
func TestShapeFIFOWithoutJitter(t *testing.T) {
	for _, opts := range []ShapeOptions{
		{N: testN, Delay: 2 * time.Millisecond},
		{N: testN, Delay: 2 * time.Millisecond, Bandwidth: 50e6},
		{N: testN},
	} {
		h := NewHub(testN, HubOptions{Buffer: 1024})
		s := Shape(h.Endpoint(1), opts)
		const per = 200
		s.Slow(80*time.Millisecond, time.Hour)
		for i := 1; i <= per; i++ {
			s.Send(2, vote(types.View(i)))
			s.Send(3, vote(types.View(i)))
		}
		s.Slow(0, 0)
		for i := per + 1; i <= 2*per; i++ {
			s.Send(2, vote(types.View(i)))
			s.Send(3, vote(types.View(i)))
		}
		for _, id := range []types.NodeID{2, 3} {
			for i := 1; i <= 2*per; i++ {
				env := recv(t, h.Endpoint(id), types.LaneConsensus)
				require.Equal(t, types.View(i), env.Msg.(*types.Vote).View, "%+v: node %d", opts, id)
			}
		}
		require.NoError(t, s.Close())
		h.Close()
	}
}

func TestShapeLossRate(t *testing.T) {
	const count, p = 20000, 0.3
	h := NewHub(testN, HubOptions{Buffer: count})
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN, Loss: p, Seed: 42})
	defer s.Close()
	v := vote(1)
	for i := 0; i < count; i++ {
		s.Send(2, v)
	}
	got := len(h.Endpoint(2).Inbox(types.LaneConsensus)) // delivered at once: no delay configured
	rate := 1 - float64(got)/count
	assert.InDelta(t, p, rate, 0.02, "loss rate")
	c := s.Counters()
	assert.Equal(t, uint64(count-got), c.Dropped, "every loss is counted")
	assert.Equal(t, uint64(got), c.Sent)

	// A broadcast loses each copy on its own.
	h2 := NewHub(3, HubOptions{Buffer: count})
	defer h2.Close()
	s2 := Shape(h2.Endpoint(1), ShapeOptions{N: 3, Loss: 0.5, Seed: 7})
	defer s2.Close()
	for i := 0; i < 2000; i++ {
		s2.Broadcast(v)
	}
	a, b := len(h2.Endpoint(2).Inbox(types.LaneConsensus)), len(h2.Endpoint(3).Inbox(types.LaneConsensus))
	assert.InDelta(t, 1000, a, 150)
	assert.InDelta(t, 1000, b, 150)
	assert.Equal(t, uint64(4000-a-b), s2.Counters().Dropped)
}

// The uplink holds at most QueueBytes per lane; beyond it messages are dropped and counted, and
// the other lane is not affected.
func TestShapeQueueBound(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 64})
	defer h.Close()
	mb := microBlock(128 << 10)
	size := types.WireSize(mb)
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN, Bandwidth: 1e6, QueueBytes: size * 5 / 2}) // one takes about 1 s
	defer s.Close()

	s.Send(2, mb)
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.onWire
	}, 5*time.Second, time.Millisecond, "the first microblock goes on the wire")
	noBlock(t, "sends to a full uplink", func() {
		for i := 0; i < 9; i++ {
			s.Send(2, mb)
		}
	})
	// Two fit in the queue behind the one on the wire; seven are dropped.
	assert.Equal(t, uint64(7), s.Counters().Dropped)
	s.mu.Lock()
	assert.Equal(t, 2*size, s.laneBytes[types.LaneData])
	s.mu.Unlock()

	// Consensus messages have their own bound.
	s.Send(2, fullVote(1))
	assert.Equal(t, uint64(7), s.Counters().Dropped)
	env := recv(t, h.Endpoint(2), types.LaneConsensus)
	assert.Equal(t, types.KindVote, env.Msg.Kind())

	// A message larger than the bound still goes when its lane is empty.
	s2 := Shape(h.Endpoint(3), ShapeOptions{N: testN, Bandwidth: 1e9, QueueBytes: 1000})
	defer s2.Close()
	s2.Send(4, mb)
	assert.Same(t, mb, recv(t, h.Endpoint(4), types.LaneData).Msg)
	assert.Equal(t, uint64(0), s2.Counters().Dropped)
}

func TestShapeSendToSelfOrUnknown(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 8})
	defer h.Close()
	s := Shape(h.Endpoint(2), ShapeOptions{N: testN, Delay: time.Millisecond, Loss: 0.01})
	defer s.Close()
	for _, to := range []types.NodeID{2, 0, testN + 1, 1000} {
		s.Send(to, vote(1))
	}
	time.Sleep(20 * time.Millisecond)
	for id := types.NodeID(1); id <= testN; id++ {
		assertEmpty(t, h.Endpoint(id))
	}
	assert.Equal(t, Counters{}, totals(s.Counters()))
}

// With N unknown a broadcast is one transmission handed to the wrapped endpoint.
func TestShapeUnknownN(t *testing.T) {
	h := NewHub(3, HubOptions{Buffer: 8})
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{Delay: 10 * time.Millisecond})
	defer s.Close()
	start := time.Now()
	s.Broadcast(vote(1))
	for _, id := range []types.NodeID{2, 3} {
		recv(t, h.Endpoint(id), types.LaneConsensus)
	}
	assert.GreaterOrEqual(t, time.Since(start), 10*time.Millisecond)
	s.Send(3, vote(2))
	assert.Equal(t, types.View(2), recv(t, h.Endpoint(3), types.LaneConsensus).Msg.(*types.Vote).View)
}

func TestShapeSlowFault(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 64})
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN})
	defer s.Close()
	const extra = 200 * time.Millisecond

	before := time.Now()
	until := s.Slow(extra, time.Hour)
	assert.WithinDuration(t, before.Add(time.Hour), until, time.Second)
	active := s.Active()
	require.Len(t, active, 1)
	assert.Equal(t, FaultState{Fault: FaultSlow, Extra: extra, Until: until}, active[0])

	start := time.Now()
	s.Send(2, vote(1))
	quiet(t, h.Endpoint(2), extra/2)
	recv(t, h.Endpoint(2), types.LaneConsensus)
	assert.GreaterOrEqual(t, time.Since(start), extra)

	// A new call replaces the previous one.
	until2 := s.Slow(extra/2, time.Minute)
	assert.Equal(t, []FaultState{{Fault: FaultSlow, Extra: extra / 2, Until: until2}}, s.Active())

	// Duration 0 clears it: sends are direct again.
	assert.True(t, s.Slow(extra, 0).IsZero())
	assert.Empty(t, s.Active())
	require.Eventually(t, func() bool { s.Active(); return !s.detour.Load() }, 5*time.Second, time.Millisecond)
	s.Send(2, vote(2))
	require.Len(t, h.Endpoint(2).Inbox(types.LaneConsensus), 1, "delivered before Send returned")
	recv(t, h.Endpoint(2), types.LaneConsensus)

	// It ends by itself.
	s.Slow(extra, 50*time.Millisecond)
	require.Eventually(t, func() bool { return len(s.Active()) == 0 }, 5*time.Second, 5*time.Millisecond)
	start = time.Now()
	s.Send(2, vote(3))
	recv(t, h.Endpoint(2), types.LaneConsensus)
	assert.Less(t, time.Since(start), extra)
	assert.Equal(t, uint64(0), s.Counters().Dropped)
}

func TestShapeFlakyFault(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 8192})
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN, Seed: 5})
	defer s.Close()

	until := s.Flaky(1, time.Hour)
	assert.Equal(t, []FaultState{{Fault: FaultFlaky, P: 1, Until: until}}, s.Active())
	s.Broadcast(vote(1))
	s.Send(2, vote(2))
	for id := types.NodeID(2); id <= testN; id++ {
		assertEmpty(t, h.Endpoint(id))
	}
	assert.Equal(t, uint64(4), s.Counters().Dropped)

	// Share p of the messages.
	s.Flaky(0.5, time.Hour)
	const count = 4000
	for i := 0; i < count; i++ {
		s.Send(2, vote(1))
	}
	got := len(h.Endpoint(2).Inbox(types.LaneConsensus))
	assert.InDelta(t, count/2, got, count/20)
	assert.Equal(t, uint64(4+count-got), s.Counters().Dropped)
	for len(h.Endpoint(2).Inbox(types.LaneConsensus)) > 0 {
		<-h.Endpoint(2).Inbox(types.LaneConsensus)
	}

	// p above 1 counts as 1; duration 0 clears.
	s.Flaky(7, time.Hour)
	assert.Equal(t, 1.0, s.Active()[0].P)
	assert.True(t, s.Flaky(0.5, 0).IsZero())
	assert.Empty(t, s.Active())
	s.Send(2, vote(3))
	recv(t, h.Endpoint(2), types.LaneConsensus)

	// It ends by itself.
	s.Flaky(1, 50*time.Millisecond)
	s.Send(2, vote(4))
	assertEmpty(t, h.Endpoint(2))
	require.Eventually(t, func() bool { return len(s.Active()) == 0 }, 5*time.Second, 5*time.Millisecond)
	s.Send(2, vote(5))
	assert.Equal(t, types.View(5), recv(t, h.Endpoint(2), types.LaneConsensus).Msg.(*types.Vote).View)
}

func TestShapeDropFault(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 64})
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN})
	defer s.Close()

	u3 := s.Drop(3, time.Hour)
	u4 := s.Drop(4, 50*time.Millisecond)
	assert.Equal(t, []FaultState{{Fault: FaultDrop, To: 3, Until: u3}, {Fault: FaultDrop, To: 4, Until: u4}}, s.Active())
	s.Broadcast(vote(1))
	assert.Equal(t, types.View(1), recv(t, h.Endpoint(2), types.LaneConsensus).Msg.(*types.Vote).View)
	assertEmpty(t, h.Endpoint(3))
	assertEmpty(t, h.Endpoint(4))
	assert.Equal(t, uint64(2), s.Counters().Dropped)

	// Peer 4's drop ends by itself; peer 3's goes on.
	require.Eventually(t, func() bool { return len(s.Active()) == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, []FaultState{{Fault: FaultDrop, To: 3, Until: u3}}, s.Active())
	s.Broadcast(vote(2))
	recv(t, h.Endpoint(2), types.LaneConsensus)
	recv(t, h.Endpoint(4), types.LaneConsensus)
	assertEmpty(t, h.Endpoint(3))

	// Not a peer: ignored.
	for _, to := range []types.NodeID{0, 1, testN + 1} {
		assert.True(t, s.Drop(to, time.Hour).IsZero(), "peer %d", to)
	}
	assert.Len(t, s.Active(), 1)

	// Duration 0 clears one peer.
	assert.True(t, s.Drop(3, 0).IsZero())
	assert.Empty(t, s.Active())
	s.Send(3, vote(3))
	recv(t, h.Endpoint(3), types.LaneConsensus)
}

// A dropped link or isolation also loses what was already under way.
func TestShapeFaultLosesMessagesUnderWay(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 64})
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN, Delay: 100 * time.Millisecond})
	defer s.Close()
	s.Send(2, vote(1))
	s.Send(3, vote(1))
	s.Drop(2, time.Hour)
	recv(t, h.Endpoint(3), types.LaneConsensus)
	quiet(t, h.Endpoint(2), 100*time.Millisecond)
	assert.Equal(t, uint64(1), s.Counters().Dropped)

	s.Send(3, vote(2))
	s.Isolate(time.Hour)
	quiet(t, h.Endpoint(3), 200*time.Millisecond)
	assert.Equal(t, uint64(2), s.Counters().Dropped)
}

func TestShapeIsolateFault(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 64})
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN})
	defer s.Close()

	until := s.Isolate(time.Hour)
	assert.Equal(t, []FaultState{{Fault: FaultIsolate, Until: until}}, s.Active())

	// Nothing leaves.
	s.Broadcast(vote(1))
	s.Send(2, forward())
	for id := types.NodeID(2); id <= testN; id++ {
		assertEmpty(t, h.Endpoint(id))
	}
	assert.Equal(t, uint64(4), s.Counters().Dropped)

	// Nothing is heard: inbound messages are taken from the wrapped endpoint and discarded.
	h.Endpoint(2).Send(1, vote(2))
	h.Endpoint(3).Send(1, forward())
	require.Eventually(t, func() bool { return s.Counters().Dropped == 6 }, 5*time.Second, time.Millisecond)
	quiet(t, s, 20*time.Millisecond)

	// Duration 0 ends it: both directions work again.
	assert.True(t, s.Isolate(0).IsZero())
	assert.Empty(t, s.Active())
	h.Endpoint(2).Send(1, vote(3))
	env := recv(t, s, types.LaneConsensus)
	assert.Equal(t, types.NodeID(2), env.From)
	assert.Equal(t, types.View(3), env.Msg.(*types.Vote).View)
	s.Send(2, vote(4))
	recv(t, h.Endpoint(2), types.LaneConsensus)

	// It ends by itself.
	s.Isolate(50 * time.Millisecond)
	h.Endpoint(2).Send(1, vote(5))
	require.Eventually(t, func() bool { return len(s.Active()) == 0 }, 5*time.Second, 5*time.Millisecond)
	h.Endpoint(2).Send(1, vote(6))
	assert.Equal(t, types.View(6), recv(t, s, types.LaneConsensus).Msg.(*types.Vote).View)
	s.Send(3, vote(7))
	recv(t, h.Endpoint(3), types.LaneConsensus)
}

func TestShapeFaultsTogether(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 64})
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN})
	defer s.Close()
	s.Isolate(time.Hour)
	s.Drop(2, time.Hour)
	s.Flaky(0.25, time.Hour)
	s.Slow(time.Millisecond, time.Hour)
	var kinds []string
	for _, f := range s.Active() {
		kinds = append(kinds, f.Fault)
	}
	assert.Equal(t, []string{FaultSlow, FaultFlaky, FaultDrop, FaultIsolate}, kinds)
	data, err := json.Marshal(s.Active())
	require.NoError(t, err)
	var out []map[string]any
	require.NoError(t, json.Unmarshal(data, &out))
	require.Len(t, out, 4)
	assert.Equal(t, 1.0, out[0]["ms"])
	assert.Equal(t, 0.25, out[1]["p"])
	assert.Equal(t, 2.0, out[2]["to"])
	for _, f := range out {
		until, err := time.Parse(time.RFC3339Nano, f["until"].(string))
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now().Add(time.Hour), until, time.Minute)
	}
}

// goroutinesBackTo waits until no more than base goroutines run. It polls on the test's goroutine:
// require.Eventually would count its own.
func goroutinesBackTo(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before", runtime.NumGoroutine(), base)
		}
		time.Sleep(time.Millisecond)
	}
}

// Close stops every goroutine of the shaper, closes the wrapped endpoint, and later calls are
// harmless.
func TestShapeCloseLeaksNothing(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 64})
	defer h.Close()
	base := runtime.NumGoroutine()
	var shapers []*Shaper
	for id := types.NodeID(1); id <= testN; id++ {
		s := Shape(h.Endpoint(id), ShapeOptions{N: testN, Delay: time.Millisecond, Bandwidth: 1e6})
		s.Broadcast(microBlock(128 << 10)) // still on the wire when closed
		s.Broadcast(vote(1))
		s.Isolate(time.Hour)
		shapers = append(shapers, s)
	}
	assert.Greater(t, runtime.NumGoroutine(), base)
	for _, s := range shapers {
		noBlock(t, "close", func() { require.NoError(t, s.Close()) })
	}
	goroutinesBackTo(t, base)

	s := shapers[0]
	noBlock(t, "calls after close", func() {
		s.Send(2, vote(2))
		s.Broadcast(vote(2))
		s.Slow(time.Second, time.Second)
		s.Send(2, vote(2))
		require.NoError(t, s.Close())
	})
	for id := types.NodeID(1); id <= testN; id++ {
		assertEmpty(t, h.Endpoint(id))
	}
	// The wrapped endpoint is closed: it receives nothing.
	h.Endpoint(2).Send(1, vote(3))
	assert.Equal(t, uint64(0), h.Endpoint(1).Counters().Received)
}

func TestShapeCloseWhileReceiverBlocked(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 64})
	defer h.Close()
	base := runtime.NumGoroutine()
	s := Shape(h.Endpoint(1), ShapeOptions{N: testN})
	for i := 0; i < 10; i++ {
		h.Endpoint(2).Send(1, vote(1)) // nobody reads the shaper's inbox
	}
	noBlock(t, "close", func() { require.NoError(t, s.Close()) })
	goroutinesBackTo(t, base)
}

func TestShapeConcurrent(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 1 << 16})
	shapers := make([]*Shaper, testN+1)
	for id := types.NodeID(1); id <= testN; id++ {
		shapers[id] = Shape(h.Endpoint(id), ShapeOptions{N: testN, Delay: time.Millisecond, Jitter: time.Millisecond,
			Bandwidth: 200e6, Loss: 0.01, Seed: int64(id)})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for id := types.NodeID(1); id <= testN; id++ {
		s := shapers[id]
		wg.Add(3)
		go func() { // sender
			defer wg.Done()
			v, f := vote(1), forward()
			for i := 0; i < 300; i++ {
				s.Broadcast(v)
				s.Send(types.NodeID(i%testN+1), f)
				_ = s.Counters()
			}
		}()
		go func() { // faults switched on and off
			defer wg.Done()
			for i := 0; i < 50; i++ {
				s.Slow(time.Millisecond, time.Millisecond)
				s.Flaky(0.1, 2*time.Millisecond)
				s.Drop(types.NodeID(i%testN+1), time.Millisecond)
				s.Isolate(time.Duration(i%2) * time.Millisecond)
				_ = s.Active()
				time.Sleep(100 * time.Microsecond)
			}
		}()
		go func() { // receiver
			defer wg.Done()
			for {
				select {
				case <-s.Inbox(types.LaneConsensus):
				case <-s.Inbox(types.LaneData):
				case <-stop:
					return
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	noBlock(t, "workers", wg.Wait)
	for id := types.NodeID(1); id <= testN; id++ {
		noBlock(t, "close", func() { require.NoError(t, shapers[id].Close()) })
	}
	h.Close()
}

// BenchmarkShapeBroadcast measures the cost of queueing a broadcast on a shaped uplink (the
// leader's side of dissemination), not the emulated transmission time.
func BenchmarkShapeBroadcast(b *testing.B) {
	const n = 16
	h := NewHub(n, HubOptions{Buffer: 1024}) // receivers overflow and drop: only the sender is measured
	defer h.Close()
	s := Shape(h.Endpoint(1), ShapeOptions{N: n, Bandwidth: 1e12, Delay: time.Millisecond, QueueBytes: 1 << 30})
	defer s.Close()
	v := fullVote(1)
	b.ReportAllocs()
	for b.Loop() {
		s.Broadcast(v)
	}
}
