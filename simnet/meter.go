package simnet

import (
	"time"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// Role is what a replica was when it sent a message: the leader of the view it was in, or not.
type Role int

// Roles.
const (
	RoleLeader Role = iota
	RoleOther
	numRoles
)

// meter counts what the link model carries, by role and message kind, and the views that ended
// in a timeout.
type meter struct {
	bytes     [numRoles][types.NumKinds]uint64
	msgs      [numRoles][types.NumKinds]uint64
	nodeBytes []uint64
	timedOut  map[types.View]bool // views some replica timed out in
	changed   map[types.View]bool // views some replica entered through timeouts or a TC
	// Role epochs: each replica's run is cut into epochs, one per stretch in one role (leading
	// the view it is in, or not). A copy belongs to the epoch in which it was queued and is
	// credited when it leaves the uplink; an epoch lasts from its start to its end or to its last
	// copy's departure, whichever is later. Every byte of an epoch left the link within that span,
	// so bytes ÷ span cannot exceed the link's rate — whereas bytes over the run's duration can
	// (a leader's queued copies leave in the next views, while the next leader sends too).
	epochs []roleEpoch
	cur    []int // each replica's current epoch
}

// roleEpoch is one replica's stretch in one role.
type roleEpoch struct {
	role       Role
	start, end time.Duration // end: when the role changed (-1 while it lasts)
	last       time.Duration // the last departure of a copy queued in it
	bytes      [types.NumKinds]uint64
}

func (m *meter) init(n int) {
	m.nodeBytes = make([]uint64, n)
	m.timedOut = make(map[types.View]bool)
	m.changed = make(map[types.View]bool)
	m.cur = make([]int, n)
	for i := range m.cur {
		m.cur[i] = len(m.epochs)
		m.epochs = append(m.epochs, roleEpoch{role: RoleOther, end: -1})
	}
}

// setRole records that replica id leads (or not) from now on.
func (m *meter) setRole(id types.NodeID, leading bool, now time.Duration) {
	i := int(id) - 1
	if i < 0 || i >= len(m.cur) {
		return
	}
	r := RoleOther
	if leading {
		r = RoleLeader
	}
	e := &m.epochs[m.cur[i]]
	if e.role == r {
		return
	}
	e.end = now
	m.cur[i] = len(m.epochs)
	m.epochs = append(m.epochs, roleEpoch{role: r, start: now, end: -1})
}

// epoch is replica id's current epoch, for the copies it queues now.
func (m *meter) epoch(id types.NodeID) int { return m.cur[int(id)-1] }

// sent counts a copy that left from's uplink.
func (m *meter) sent(from *Node, msg types.Message, size int, r Role) {
	m.bytes[r][msg.Kind()] += uint64(size)
	m.msgs[r][msg.Kind()]++
	m.nodeBytes[from.ID-1] += uint64(size)
}

// onLink credits a copy of epoch e that left its uplink now.
func (m *meter) onLink(e int, kind types.Kind, size int, now time.Duration) {
	ep := &m.epochs[e]
	ep.bytes[kind] += uint64(size)
	ep.last = max(ep.last, now)
}

func (m *meter) event(n *Node, e consensus.Event) {
	if vc, ok := e.(consensus.ViewChange); ok {
		m.setRole(n.ID, vc.Leader == n.ID, n.sim.Now())
	}
	if n.Faulty() {
		return
	}
	switch e := e.(type) {
	case consensus.TimedOut:
		m.timedOut[e.View] = true
	case consensus.ViewChange:
		if e.Cause == "tc" || e.Cause == "timeouts" {
			m.changed[e.View] = true
		}
	}
}

// Traffic is what the link model carried (only with bandwidth, a latency matrix, asynchrony
// windows or the CPU model on).
type Traffic struct {
	Bytes     [numRoles][types.NumKinds]uint64 // by the sender's role and the message kind
	Messages  [numRoles][types.NumKinds]uint64
	NodeBytes []uint64 // by sender, index ID-1
	// CPUBusy is the CPU time each replica used under the CPU model.
	CPUBusy []time.Duration
	// LinkBytes are the bytes that left the uplinks, by the role their sender had when it queued
	// them, and RoleTime the spans of the replicas' role epochs (see meter.epochs), summed:
	// LinkBytes ÷ RoleTime is a role's uplink rate per replica, which no link can exceed.
	LinkBytes [numRoles][types.NumKinds]uint64
	RoleTime  [numRoles]time.Duration
}

// Traffic reports the bytes sent so far.
func (s *Sim) Traffic() Traffic {
	t := Traffic{Bytes: s.meter.bytes, Messages: s.meter.msgs, NodeBytes: append([]uint64(nil), s.meter.nodeBytes...),
		CPUBusy: append([]time.Duration(nil), s.busy...)}
	now := s.Now()
	for _, e := range s.meter.epochs {
		end := e.end
		if end < 0 {
			end = now
		}
		t.RoleTime[e.role] += max(end, e.last) - e.start
		for k, b := range e.bytes {
			t.LinkBytes[e.role][k] += b
		}
	}
	return t
}

// TimedOutViews is the number of views in which some honest replica's timer expired;
// ViewChanges the number of views honest replicas entered through timeouts (not a QC).
func (s *Sim) TimedOutViews() int { return len(s.meter.timedOut) }

// ViewChanges: see TimedOutViews.
func (s *Sim) ViewChanges() int { return len(s.meter.changed) }

// Queued is the number of bytes waiting on replica id's uplink and downlink.
func (s *Sim) Queued(id types.NodeID) (up, down int) {
	n := s.Node(id)
	return n.up.bytes, n.down.bytes
}
