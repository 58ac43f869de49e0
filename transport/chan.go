package transport

import (
	"sync/atomic"

	"github.com/stratusbft/stratus/types"
)

// HubOptions configures an in-process network. Delay, bandwidth and loss are the Shape
// decorator's, on top of any transport.
type HubOptions struct {
	Buffer int // messages per inbound lane
}

// Hub connects the endpoints of all replicas of one process over Go channels. Messages are passed
// as immutable values, not copied.
type Hub struct {
	opts HubOptions
	eps  []*chanEndpoint // index = node ID; 0 unused
}

// NewHub returns a hub for replicas 1..n.
func NewHub(n int, opts HubOptions) *Hub {
	if opts.Buffer <= 0 {
		opts.Buffer = 1024
	}
	h := &Hub{opts: opts, eps: make([]*chanEndpoint, n+1)}
	for i := 1; i <= n; i++ {
		ep := &chanEndpoint{hub: h, id: types.NodeID(i)}
		for l := range ep.lanes {
			ep.lanes[l] = make(chan Envelope, opts.Buffer)
		}
		h.eps[i] = ep
	}
	return h
}

// Endpoint returns replica id's endpoint.
func (h *Hub) Endpoint(id types.NodeID) Endpoint { return h.eps[id] }

// Close closes every endpoint.
func (h *Hub) Close() {
	for _, ep := range h.eps[1:] {
		_ = ep.Close()
	}
}

// Envelopes carry their wire size (computed once per message, not per receiver) for the traffic
// counters.
type chanEndpoint struct {
	hub    *Hub
	id     types.NodeID
	lanes  [types.NumLanes]chan Envelope
	closed atomic.Bool
	counters
}

func (e *chanEndpoint) Self() types.NodeID { return e.id }

func (e *chanEndpoint) Inbox(l types.Lane) <-chan Envelope { return e.lanes[l] }

func (e *chanEndpoint) Counters() Counters { return e.load() }

func (e *chanEndpoint) Close() error {
	e.closed.Store(true)
	return nil
}

func (e *chanEndpoint) Send(to types.NodeID, m types.Message) {
	e.send(to, m, types.WireSize(m))
}

func (e *chanEndpoint) send(to types.NodeID, m types.Message, size int) {
	if e.closed.Load() || to == e.id || int(to) >= len(e.hub.eps) || to == 0 {
		return
	}
	e.countSent(m.Kind(), size)
	env := Envelope{From: e.id, Msg: m, Size: size}
	e.hub.eps[to].deliver(env)
}

func (e *chanEndpoint) Broadcast(m types.Message) {
	size := types.WireSize(m)
	for id := 1; id < len(e.hub.eps); id++ {
		if types.NodeID(id) != e.id {
			e.send(types.NodeID(id), m, size)
		}
	}
}

// deliver enqueues without blocking; a full lane drops the message.
func (e *chanEndpoint) deliver(env Envelope) {
	if e.closed.Load() {
		return
	}
	select {
	case e.lanes[env.Msg.Kind().Lane()] <- env:
		e.countRecv(env.Msg.Kind(), env.Size)
	default:
		e.dropped.Add(1)
	}
}
