package transport

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

const testN = 4

func vote(v types.View) *types.Vote { return &types.Vote{View: v, Voter: 1} }

func forward() *types.TxForward { return &types.TxForward{Txs: []types.Tx{types.NewTx([]byte("x"))}} }

// recv returns the next envelope of a lane or fails after a generous timeout.
func recv(t *testing.T, ep Endpoint, l types.Lane) Envelope {
	t.Helper()
	select {
	case env := <-ep.Inbox(l):
		return env
	case <-time.After(5 * time.Second):
		t.Fatalf("node %d lane %d: nothing received", ep.Self(), l)
		return Envelope{}
	}
}

// assertEmpty checks that no lane of ep holds a message right now.
func assertEmpty(t *testing.T, ep Endpoint) {
	t.Helper()
	for l := types.Lane(0); l < types.NumLanes; l++ {
		select {
		case env := <-ep.Inbox(l):
			t.Errorf("node %d lane %d: unexpected %v from %d", ep.Self(), l, env.Msg.Kind(), env.From)
		default:
		}
	}
}

// noBlock fails if f does not return within a generous bound.
func noBlock(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked", what)
	}
}

func TestHubEndpoints(t *testing.T) {
	h := NewHub(testN, HubOptions{})
	defer h.Close()
	for i := 1; i <= testN; i++ {
		assert.Equal(t, types.NodeID(i), h.Endpoint(types.NodeID(i)).Self())
		assert.Equal(t, Counters{}, totals(h.Endpoint(types.NodeID(i)).Counters()))
	}
	assert.NotEqual(t, h.Endpoint(1).Inbox(types.LaneConsensus), h.Endpoint(1).Inbox(types.LaneData))
}

func TestSendDeliversToTheRightEndpointAndLane(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 8})
	defer h.Close()
	e1, e3 := h.Endpoint(1), h.Endpoint(3)

	v := vote(5)
	e1.Send(3, v)
	env := recv(t, e3, types.LaneConsensus)
	assert.Equal(t, types.NodeID(1), env.From)
	assert.Same(t, v, env.Msg, "messages are passed by reference, not copied")

	f := forward()
	e1.Send(3, f)
	env = recv(t, e3, types.LaneData)
	assert.Equal(t, types.NodeID(1), env.From)
	assert.Same(t, f, env.Msg)

	for _, m := range []types.Message{&types.Block{}, &types.Timeout{}, &types.TC{}, &types.BlockRequest{}, &types.BlockResponse{}} {
		e1.Send(3, m)
		env = recv(t, e3, types.LaneConsensus)
		assert.Equal(t, m.Kind(), env.Msg.Kind())
	}

	for _, id := range []types.NodeID{1, 2, 4} {
		assertEmpty(t, h.Endpoint(id))
	}
	assertEmpty(t, e3)
	assert.Equal(t, Counters{Sent: 7}, totals(e1.Counters()))
	assert.Equal(t, Counters{Received: 7}, totals(e3.Counters()))
}

func TestSendNeverToSelfOrUnknown(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 8})
	defer h.Close()
	e2 := h.Endpoint(2)
	for _, to := range []types.NodeID{2, 0, testN + 1, 1000} {
		e2.Send(to, vote(1))
	}
	for id := types.NodeID(1); id <= testN; id++ {
		assertEmpty(t, h.Endpoint(id))
		assert.Equal(t, Counters{}, totals(h.Endpoint(id).Counters()), "node %d", id)
	}
}

func TestBroadcast(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 8})
	defer h.Close()
	for from := types.NodeID(1); from <= testN; from++ {
		v := vote(types.View(from))
		h.Endpoint(from).Broadcast(v)
		f := forward()
		h.Endpoint(from).Broadcast(f)
		for to := types.NodeID(1); to <= testN; to++ {
			ep := h.Endpoint(to)
			if to == from {
				assertEmpty(t, ep)
				continue
			}
			env := recv(t, ep, types.LaneConsensus)
			assert.Equal(t, from, env.From)
			assert.Same(t, v, env.Msg)
			env = recv(t, ep, types.LaneData)
			assert.Equal(t, from, env.From)
			assert.Same(t, f, env.Msg)
			assertEmpty(t, ep)
		}
	}
	for id := types.NodeID(1); id <= testN; id++ {
		c := h.Endpoint(id).Counters()
		assert.Equal(t, uint64(2*(testN-1)), c.Sent, "node %d", id)
		assert.Equal(t, uint64(2*(testN-1)), c.Received, "node %d", id)
		assert.Equal(t, uint64(0), c.Dropped, "node %d", id)
	}
}

func TestSingleNodeHub(t *testing.T) {
	h := NewHub(1, HubOptions{})
	defer h.Close()
	h.Endpoint(1).Broadcast(vote(1))
	assertEmpty(t, h.Endpoint(1))
	assert.Equal(t, Counters{}, totals(h.Endpoint(1).Counters()))
}

func TestFullLaneDropsWithoutBlocking(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 2})
	defer h.Close()
	e1, e2 := h.Endpoint(1), h.Endpoint(2)
	noBlock(t, "send to a full lane", func() {
		for i := 0; i < 5; i++ {
			e1.Send(2, vote(types.View(i+1)))
		}
	})
	assert.Equal(t, Counters{Received: 2, Dropped: 3}, totals(e2.Counters()))
	assert.Equal(t, uint64(5), e1.Counters().Sent)

	// The data lane is a separate queue: a full consensus lane does not stop data, and vice versa.
	e1.Send(2, forward())
	assert.Equal(t, Counters{Received: 3, Dropped: 3}, totals(e2.Counters()))

	// The oldest messages were kept, in order.
	assert.Equal(t, types.View(1), recv(t, e2, types.LaneConsensus).Msg.(*types.Vote).View)
	assert.Equal(t, types.View(2), recv(t, e2, types.LaneConsensus).Msg.(*types.Vote).View)
	recv(t, e2, types.LaneData)
	assertEmpty(t, e2)

	// Room again: delivery resumes.
	e1.Send(2, vote(9))
	assert.Equal(t, types.View(9), recv(t, e2, types.LaneConsensus).Msg.(*types.Vote).View)
	assert.Equal(t, Counters{Received: 4, Dropped: 3}, totals(e2.Counters()))
}

func TestBroadcastToFullPeerStillReachesOthers(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 1})
	defer h.Close()
	h.Endpoint(1).Send(3, vote(1)) // fills node 3
	noBlock(t, "broadcast", func() { h.Endpoint(1).Broadcast(vote(2)) })
	assert.Equal(t, Counters{Received: 1, Dropped: 1}, totals(h.Endpoint(3).Counters()))
	for _, id := range []types.NodeID{2, 4} {
		assert.Equal(t, types.View(2), recv(t, h.Endpoint(id), types.LaneConsensus).Msg.(*types.Vote).View)
	}
}

func TestDefaultBuffer(t *testing.T) {
	h := NewHub(2, HubOptions{})
	defer h.Close()
	for i := 0; i < 1100; i++ {
		h.Endpoint(1).Send(2, vote(1))
	}
	assert.Equal(t, Counters{Received: 1024, Dropped: 76}, totals(h.Endpoint(2).Counters()))
}

func TestCloseMakesSendsNoOps(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 8})
	defer h.Close()
	e1, e2 := h.Endpoint(1), h.Endpoint(2)
	require.NoError(t, e1.Close())
	e1.Send(2, vote(1))
	e1.Broadcast(vote(2))
	assert.Equal(t, Counters{}, totals(e1.Counters()))
	for id := types.NodeID(2); id <= testN; id++ {
		assertEmpty(t, h.Endpoint(id))
	}

	// A closed endpoint receives nothing either; the sender's send still counts.
	e2.Send(1, vote(3))
	assertEmpty(t, e1)
	assert.Equal(t, uint64(0), e1.Counters().Received)
	assert.Equal(t, uint64(1), e2.Counters().Sent)

	// Closing twice is harmless.
	require.NoError(t, e1.Close())
}

func TestHubCloseClosesEverything(t *testing.T) {
	for _, opts := range []HubOptions{{Buffer: 8}, {Buffer: 1}} {
		h := NewHub(testN, opts)
		noBlock(t, "hub close", h.Close)
		for id := types.NodeID(1); id <= testN; id++ {
			h.Endpoint(id).Broadcast(vote(1))
		}
		for id := types.NodeID(1); id <= testN; id++ {
			assertEmpty(t, h.Endpoint(id))
			assert.Equal(t, Counters{}, totals(h.Endpoint(id).Counters()))
		}
		noBlock(t, "second hub close", h.Close)
	}
}

func TestDeliveryToFullLaneDrops(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 1})
	defer h.Close()
	for i := 0; i < 3; i++ {
		h.Endpoint(1).Send(2, vote(1))
	}
	require.Eventually(t, func() bool {
		c := h.Endpoint(2).Counters()
		return c.Received+c.Dropped == 3
	}, 5*time.Second, time.Millisecond)
	assert.Equal(t, Counters{Received: 1, Dropped: 2}, totals(h.Endpoint(2).Counters()))
}

func TestConcurrentTraffic(t *testing.T) {
	for _, opts := range []HubOptions{{Buffer: 4096}} {
		h := NewHub(testN, opts)
		const per = 200
		want := per * 2 * (testN - 1) // each node receives (testN-1) senders × per × 2 kinds
		var wg sync.WaitGroup
		got := make([]int, testN+1)
		for id := types.NodeID(1); id <= testN; id++ {
			wg.Add(1)
			go func(id types.NodeID) {
				defer wg.Done()
				ep := h.Endpoint(id)
				timeout := time.After(10 * time.Second)
				for got[id] < want {
					select {
					case env := <-ep.Inbox(types.LaneConsensus):
						assert.NotEqual(t, id, env.From)
						got[id]++
					case env := <-ep.Inbox(types.LaneData):
						assert.Equal(t, types.KindTxForward, env.Msg.Kind())
						got[id]++
					case <-timeout:
						t.Errorf("node %d received %d of %d", id, got[id], want)
						return
					}
				}
			}(id)
		}
		var sendWG sync.WaitGroup
		for id := types.NodeID(1); id <= testN; id++ {
			sendWG.Add(1)
			go func(id types.NodeID) {
				defer sendWG.Done()
				ep := h.Endpoint(id)
				v, f := vote(1), forward()
				for i := 0; i < per; i++ {
					ep.Broadcast(v)
					ep.Broadcast(f)
					_ = ep.Counters()
				}
			}(id)
		}
		sendWG.Wait()
		wg.Wait()
		for id := types.NodeID(1); id <= testN; id++ {
			ep := h.Endpoint(id)
			assert.Equal(t, want, got[id], "node %d", id)
			require.Eventually(t, func() bool { return ep.Counters().Received == uint64(want) },
				5*time.Second, time.Millisecond, "node %d: %+v", id, ep.Counters())
			c := ep.Counters()
			assert.Equal(t, uint64(want), c.Sent)
			assert.Equal(t, uint64(0), c.Dropped)
		}
		noBlock(t, "close", h.Close)
	}
}

func TestConcurrentCloseAndSend(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 16})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for id := types.NodeID(1); id <= testN; id++ {
		wg.Add(1)
		go func(id types.NodeID) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					h.Endpoint(id).Broadcast(vote(1))
				}
			}
		}(id)
	}
	time.Sleep(10 * time.Millisecond)
	noBlock(t, "close under load", h.Close)
	close(stop)
	noBlock(t, "senders after close", wg.Wait)
}

// totals drops the per-kind counters.
func totals(c Counters) Counters {
	return Counters{Sent: c.Sent, Received: c.Received, Dropped: c.Dropped}
}

// Per-kind counters: messages and their exact wire size, counted once per receiver.
func TestCountersByKind(t *testing.T) {
	h := NewHub(3, HubOptions{Buffer: 8})
	defer h.Close()
	v := &types.Vote{View: 1, Voter: 1, Sig: make([]byte, types.SigSize)}
	h.Endpoint(1).Broadcast(v)
	h.Endpoint(1).Send(2, &types.TxForward{})
	size := uint64(types.WireSize(v))
	c1 := h.Endpoint(1).Counters()
	assert.Equal(t, Traffic{SentMsgs: 2, SentBytes: 2 * size}, c1.ByKind[types.KindVote])
	assert.Equal(t, uint64(1), c1.ByKind[types.KindTxForward].SentMsgs)
	assert.Equal(t, Traffic{RecvMsgs: 1, RecvBytes: size}, h.Endpoint(3).Counters().ByKind[types.KindVote])
}
