package simnet

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/stratusbft/stratus/internal/fifo"
	"github.com/stratusbft/stratus/types"
)

// Links is the bandwidth and latency model of a simulated network. Every replica has an uplink
// and a downlink of fixed rate, each a serialization queue: a message occupies the link for its
// encoded size ÷ rate, and a broadcast is one copy per peer, queued one after the other on the
// sender's uplink. On the uplink consensus messages (proposals, votes, timeouts, acks, proofs) go
// before queued data (microblocks, fetch answers, forwards), unless FIFOUplink puts every copy in
// one queue; a copy that has started is never interrupted. The downlink is one FIFO, as a router's queue in front of the receiver is. Between
// the two a copy travels the link's one-way latency, plus jitter and any asynchrony window.
type Links struct {
	Uplink   float64 // bits per second per replica; 0: unlimited
	Downlink float64 // bits per second per replica; 0: unlimited
	// Matrix, when set, gives the constant one-way latency from replica i+1 to replica j+1 in
	// Matrix[i][j] and replaces Options.Latency; Options.Jitter still adds to it.
	Matrix [][]time.Duration
	// Async adds extra delay to every message that leaves an uplink inside a window.
	Async []AsyncWindow
	// FIFOUplink sends every copy in the order it was queued, consensus messages behind queued
	// data, as a sender without priorities does (the paper's prototype writes every message to
	// its peer's one connection as it comes).
	FIFOUplink bool
}

// AsyncWindow delays every message sent during [From, To) by Delay plus uniform jitter in
// [-Jitter, +Jitter] (the paper's asynchrony experiment: 200 ms ± 100 ms from 10 s to 20 s).
type AsyncWindow struct {
	From, To      time.Duration
	Delay, Jitter time.Duration
}

// Validate checks the links of n replicas: rates, the latency matrix's shape, the windows.
func (l *Links) Validate(n int) error {
	if l.Uplink < 0 || l.Downlink < 0 {
		return fmt.Errorf("links: negative bandwidth (uplink %v, downlink %v bit/s)", l.Uplink, l.Downlink)
	}
	if l.Matrix != nil {
		if len(l.Matrix) != n {
			return fmt.Errorf("links: latency matrix has %d rows for %d replicas", len(l.Matrix), n)
		}
		for i, row := range l.Matrix {
			if len(row) != n {
				return fmt.Errorf("links: latency matrix row %d has %d entries for %d replicas", i+1, len(row), n)
			}
			for j, d := range row {
				if d < 0 {
					return fmt.Errorf("links: latency matrix entry %d,%d is negative", i+1, j+1)
				}
			}
		}
	}
	for i, w := range l.Async {
		if w.To <= w.From || w.Delay < 0 || w.Jitter < 0 || w.Jitter > w.Delay {
			return fmt.Errorf("links: asynchrony window %d: want from < to and 0 <= jitter <= delay", i+1)
		}
	}
	return nil
}

// copyOut is one copy of a message waiting for, or on, an uplink.
type copyOut struct {
	to    *Node
	gen   uint64 // the receiver's incarnation when it was sent
	m     types.Message
	size  int
	role  Role // the sender's when it sent the message
	epoch int  // the sender's role epoch when it queued the copy (meter.epochs)
}

// link is one direction of a replica's access link.
type link struct {
	busy  bool
	lanes [types.NumLanes]fifo.Queue[copyOut] // the uplink uses both lanes, the downlink only the first
	// queued bytes, for the queueing statistics
	bytes int
	epoch uint64 // bumped when the replica crashes: the copy in progress is gone with the queue
}

// reset empties the link (its replica crashed).
func (l *link) reset() {
	l.busy, l.lanes, l.bytes = false, [types.NumLanes]fifo.Queue[copyOut]{}, 0
	l.epoch++
}

// Serialization is how long size bytes occupy a link of rate bits per second.
func Serialization(size int, rate float64) time.Duration {
	return time.Duration(float64(size) * 8 * float64(time.Second) / rate)
}

// enqueueUp puts a copy of m for dst on from's uplink.
func (s *Sim) enqueueUp(from, dst *Node, m types.Message, size int) {
	role := RoleOther
	if from.Leading {
		role = RoleLeader
	}
	c := copyOut{to: dst, gen: dst.gen, m: m, size: size, role: role, epoch: s.meter.epoch(from.ID)}
	if s.opts.Links.Uplink <= 0 {
		s.departed(from, c)
		return
	}
	up := &from.up
	lane := m.Kind().Lane()
	if s.opts.Links.FIFOUplink {
		lane = types.LaneConsensus // one queue for every copy
	}
	up.lanes[lane].Push(c)
	up.bytes += size
	if !up.busy {
		s.nextUp(from)
	}
}

// nextUp starts the next copy on from's uplink: consensus first (with FIFOUplink every copy is
// in the first lane).
func (s *Sim) nextUp(from *Node) {
	up := &from.up
	var c copyOut
	switch {
	case up.lanes[types.LaneConsensus].Len() > 0:
		c, _ = up.lanes[types.LaneConsensus].Pop()
	case up.lanes[types.LaneData].Len() > 0:
		c, _ = up.lanes[types.LaneData].Pop()
	default:
		up.busy = false
		return
	}
	up.busy = true
	up.bytes -= c.size
	epoch := up.epoch
	s.At(Serialization(c.size, s.opts.Links.Uplink), func() {
		if up.epoch != epoch {
			return // the sender crashed meanwhile: the copy and the queue are gone
		}
		s.departed(from, c)
		s.nextUp(from)
	})
}

// departed: the copy has left the sender; it arrives at the receiver's downlink after the link's
// latency, unless a partition or loss takes it.
func (s *Sim) departed(from *Node, c copyOut) {
	s.meter.sent(from, c.m, c.size, c.role)
	s.meter.onLink(c.epoch, c.m.Kind(), c.size, s.Now())
	if !c.to.alive() || s.cut(from.ID, c.to.ID) {
		return
	}
	if s.opts.Loss > 0 && (s.opts.GST == 0 || s.Now() < s.opts.GST) && s.rng.Float64() < s.opts.Loss {
		return
	}
	d := s.latency(from.ID, c.to.ID)
	var id types.Hash
	if b, ok := c.m.(*types.Block); ok {
		id = b.ID()
	}
	s.record("send", uint64(from.ID), uint64(c.to.ID), uint64(c.m.Kind()), uint64(d), binary.BigEndian.Uint64(id[:8]))
	s.At(d, func() { s.arrived(from, c) })
}

// latency is the one-way delay of a copy leaving a's uplink now for b.
func (s *Sim) latency(a, b types.NodeID) time.Duration {
	l := &s.opts.Links
	d := s.opts.Latency
	if l.Matrix != nil {
		d = l.Matrix[a-1][b-1]
	}
	d += s.opts.SlowSender[a]
	if s.opts.Jitter > 0 {
		d += time.Duration(s.rng.Int63n(int64(s.opts.Jitter) + 1))
	}
	now := s.Now()
	for _, w := range l.Async {
		if now >= w.From && now < w.To {
			d += w.Delay
			if w.Jitter > 0 {
				d += time.Duration(s.rng.Int63n(2*int64(w.Jitter)+1)) - w.Jitter
			}
		}
	}
	return d
}

// arrived: the copy reaches the receiver's downlink.
func (s *Sim) arrived(from *Node, c copyOut) {
	if s.opts.Links.Downlink <= 0 {
		s.received(from, c)
		return
	}
	dst := c.to
	down := &dst.down
	// A copy carries its sender in the queue: keep it with the copy.
	down.lanes[0].Push(copyOut{to: from, gen: c.gen, m: c.m, size: c.size})
	down.bytes += c.size
	if !down.busy {
		s.nextDown(dst)
	}
}

// nextDown delivers the next copy off dst's downlink.
func (s *Sim) nextDown(dst *Node) {
	down := &dst.down
	if down.lanes[0].Len() == 0 {
		down.busy = false
		return
	}
	c, _ := down.lanes[0].Pop()
	down.busy = true
	down.bytes -= c.size
	epoch := down.epoch
	s.At(Serialization(c.size, s.opts.Links.Downlink), func() {
		if down.epoch != epoch {
			return // the receiver crashed meanwhile
		}
		s.received(c.to, copyOut{to: dst, gen: c.gen, m: c.m, size: c.size})
		s.nextDown(dst)
	})
}

// received hands a copy that came off the wire to the receiver's CPU, then its Core.
func (s *Sim) received(from *Node, c copyOut) {
	dst := c.to
	if !dst.alive() || dst.gen != c.gen {
		return
	}
	s.process(dst, c.m.Kind().Lane(), s.cpu.receiveCost(dst, from.ID, c.m, c.size), func() { s.handle(from, dst, c.gen, c.m) })
}

// handle gives a message to the receiver's Core once it validates.
func (s *Sim) handle(from, dst *Node, gen uint64, m types.Message) {
	if err := types.Validate(m); err != nil {
		if !from.Faulty() {
			s.check.fail("replica %d sent an invalid %v: %v", from.ID, m.Kind(), err)
		}
		return
	}
	if dst.alive() && dst.gen == gen {
		if s.tap != nil {
			s.tap(from, dst, m)
		}
		s.check.received(dst, m)
		dst.Core.Handle(from.ID, m)
		dst.flush()
	}
}
