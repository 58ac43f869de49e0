package transport

import (
	"sync/atomic"
	"time"

	"github.com/stratusbft/stratus/types"
)

// Envelope is a received message and its sender.
type Envelope struct {
	From types.NodeID
	Msg  types.Message
	Size int // bytes on the wire (or as if on the wire, for in-process transports)
}

// Endpoint is one replica's attachment to the network.
type Endpoint interface {
	Self() types.NodeID
	// Send queues m for one peer. It never blocks.
	Send(to types.NodeID, m types.Message)
	// Broadcast queues m for every peer but Self. It never blocks.
	Broadcast(m types.Message)
	// Inbox returns the receive queue of a lane; consensus traffic has its own lane so that it is
	// never stuck behind bulk data.
	Inbox(l types.Lane) <-chan Envelope
	// Counters reports traffic counters.
	Counters() Counters
	// Close detaches the endpoint; later sends are dropped.
	Close() error
}

// ConnRefuser is an endpoint that counts the inbound connections it refused before they carried
// a message, by reason.
type ConnRefuser interface {
	Refusals() map[string]uint64
}

// Backlogger is an endpoint that knows how long its uplink needs to send what waits on it.
type Backlogger interface {
	Backlog() time.Duration
	UplinkRate() float64 // bytes per second
}

// Counters are an endpoint's traffic totals.
type Counters struct {
	Sent, Received, Dropped uint64
	// ByKind counts messages and bytes per message kind (index = types.Kind).
	ByKind [types.NumKinds]Traffic
}

// Traffic counts the messages and bytes of one kind.
type Traffic struct {
	SentMsgs, SentBytes, RecvMsgs, RecvBytes uint64
}

type counters struct {
	sent, received, dropped atomic.Uint64
	kinds                   [types.NumKinds]struct{ sentMsgs, sentBytes, recvMsgs, recvBytes atomic.Uint64 }
}

func (c *counters) countSent(k types.Kind, bytes int) {
	c.sent.Add(1)
	if int(k) < types.NumKinds {
		c.kinds[k].sentMsgs.Add(1)
		c.kinds[k].sentBytes.Add(uint64(bytes))
	}
}

func (c *counters) countRecv(k types.Kind, bytes int) {
	c.received.Add(1)
	if int(k) < types.NumKinds {
		c.kinds[k].recvMsgs.Add(1)
		c.kinds[k].recvBytes.Add(uint64(bytes))
	}
}

func (c *counters) load() Counters {
	out := Counters{Sent: c.sent.Load(), Received: c.received.Load(), Dropped: c.dropped.Load()}
	for i := range c.kinds {
		k := &c.kinds[i]
		out.ByKind[i] = Traffic{SentMsgs: k.sentMsgs.Load(), SentBytes: k.sentBytes.Load(), RecvMsgs: k.recvMsgs.Load(), RecvBytes: k.recvBytes.Load()}
	}
	return out
}
