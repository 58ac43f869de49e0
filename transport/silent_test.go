package transport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

func TestSilentSendsNothing(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 8})
	defer h.Close()
	s := Silent(h.Endpoint(3))
	defer s.Close()
	assert.Equal(t, types.NodeID(3), s.Self())

	s.Send(1, vote(1))
	s.Send(2, forward())
	s.Broadcast(vote(2))
	s.Broadcast(forward())
	for _, id := range []types.NodeID{1, 2, 4} {
		assertEmpty(t, h.Endpoint(id))
		assert.Equal(t, Counters{}, totals(h.Endpoint(id).Counters()), "node %d", id)
	}
	assert.Equal(t, uint64(0), h.Endpoint(3).Counters().Sent, "nothing reached the wrapped endpoint")
	assert.Equal(t, Counters{}, totals(s.Counters()))
}

func TestSilentHearsNothingAndDrains(t *testing.T) {
	const buffer = 2
	h := NewHub(testN, HubOptions{Buffer: buffer})
	defer h.Close()
	inner := h.Endpoint(3)
	s := Silent(inner)
	defer s.Close()

	// Send many more messages than the lanes hold, one at a time, waiting for the silent node to
	// drain its inbox in between: no sender ever sees a drop.
	const n = 10 * buffer
	for i := 0; i < n; i++ {
		h.Endpoint(1).Send(3, vote(types.View(i+1)))
		h.Endpoint(2).Send(3, forward())
		require.Eventually(t, func() bool {
			return len(inner.Inbox(types.LaneConsensus)) == 0 && len(inner.Inbox(types.LaneData)) == 0
		}, 5*time.Second, 100*time.Microsecond, "message %d not drained", i)
	}
	c := inner.Counters()
	assert.Equal(t, uint64(2*n), c.Received)
	assert.Equal(t, uint64(0), c.Dropped)

	// The replica behind the silent endpoint hears nothing.
	for l := types.Lane(0); l < types.NumLanes; l++ {
		select {
		case env := <-s.Inbox(l):
			t.Fatalf("silent inbox %d yielded %v", l, env.Msg.Kind())
		case <-time.After(20 * time.Millisecond):
		}
	}
	assert.Equal(t, Counters{}, totals(s.Counters()))
}

func TestSilentInboxDistinctFromInner(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 8})
	defer h.Close()
	inner := h.Endpoint(2)
	s := Silent(inner)
	defer s.Close()
	for l := types.Lane(0); l < types.NumLanes; l++ {
		assert.NotEqual(t, inner.Inbox(l), s.Inbox(l))
		assert.NotNil(t, s.Inbox(l))
	}
}

func TestSilentClose(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 4})
	defer h.Close()
	inner := h.Endpoint(4)
	s := Silent(inner)
	noBlock(t, "silent close", func() { require.NoError(t, s.Close()) })

	// The wrapped endpoint is closed: it gets nothing and sends nothing.
	h.Endpoint(1).Send(4, vote(1))
	assert.Equal(t, uint64(0), inner.Counters().Received)
	inner.Send(1, vote(1))
	assertEmpty(t, h.Endpoint(1))

	noBlock(t, "second close", func() { require.NoError(t, s.Close()) })
}

func TestSilentConcurrent(t *testing.T) {
	h := NewHub(testN, HubOptions{Buffer: 4096})
	inner := h.Endpoint(2)
	s := Silent(inner)
	done := make(chan struct{})
	for _, id := range []types.NodeID{1, 3, 4} {
		go func(id types.NodeID) {
			for i := 0; i < 500; i++ {
				h.Endpoint(id).Broadcast(vote(1))
				h.Endpoint(id).Broadcast(forward())
			}
			done <- struct{}{}
		}(id)
	}
	go func() {
		for i := 0; i < 500; i++ {
			s.Broadcast(vote(2))
			_ = s.Counters()
		}
	}()
	for i := 0; i < 3; i++ {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("senders blocked")
		}
	}
	require.Eventually(t, func() bool {
		return len(inner.Inbox(types.LaneConsensus)) == 0 && len(inner.Inbox(types.LaneData)) == 0
	}, 5*time.Second, time.Millisecond)
	assert.Equal(t, uint64(3000), inner.Counters().Received)
	assert.Equal(t, uint64(0), inner.Counters().Dropped)
	noBlock(t, "close", func() { _ = s.Close() })
	h.Close()
}
