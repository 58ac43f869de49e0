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
	// linkBytes are the bytes as they leave the uplinks, by the role their sender has while they
	// leave (a copy whose sending spans a role change is split in proportion to the time on each
	// side), and roleTime how long the replicas held each role: bytes ÷ time cannot exceed the
	// link's rate, whereas bytes counted by the role at queueing time can (a leader's queued copies
	// leave in the next views, while the next leader sends too).
	linkBytes [numRoles][types.NumKinds]float64
	leading   []bool
	since     []time.Duration // when each replica's role last changed
	roleTime  [numRoles]time.Duration
}

func (m *meter) init(n int) {
	m.nodeBytes = make([]uint64, n)
	m.timedOut = make(map[types.View]bool)
	m.changed = make(map[types.View]bool)
	m.leading = make([]bool, n)
	m.since = make([]time.Duration, n)
}

// role is what replica i is now.
func (m *meter) role(i int) Role {
	if m.leading[i] {
		return RoleLeader
	}
	return RoleOther
}

// setRole records that replica id leads (or not) from now on.
func (m *meter) setRole(id types.NodeID, leading bool, now time.Duration) {
	i := int(id) - 1
	if i < 0 || i >= len(m.leading) || m.leading[i] == leading {
		return
	}
	m.roleTime[m.role(i)] += now - m.since[i]
	m.leading[i], m.since[i] = leading, now
}

// onLink credits a copy that finished leaving from's uplink now, having started at start.
func (m *meter) onLink(from *Node, kind types.Kind, size int, start, now time.Duration) {
	i := int(from.ID) - 1
	r := m.role(i)
	if sw := m.since[i]; sw > start && now > start {
		before := float64(size) * float64(sw-start) / float64(now-start)
		m.linkBytes[1-r][kind] += before
		m.linkBytes[r][kind] += float64(size) - before
		return
	}
	m.linkBytes[r][kind] += float64(size)
}

// sent counts a copy that left from's uplink.
func (m *meter) sent(from *Node, msg types.Message, size int, r Role) {
	m.bytes[r][msg.Kind()] += uint64(size)
	m.msgs[r][msg.Kind()]++
	m.nodeBytes[from.ID-1] += uint64(size)
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
	// LinkBytes are the bytes that left the uplinks by the role their sender had as they left,
	// and RoleTime the time the replicas spent in each role (summed over replicas): LinkBytes ÷
	// RoleTime is a role's uplink rate per replica, which no link can exceed.
	LinkBytes [numRoles][types.NumKinds]float64
	RoleTime  [numRoles]time.Duration
}

// Traffic reports the bytes sent so far.
func (s *Sim) Traffic() Traffic {
	t := Traffic{Bytes: s.meter.bytes, Messages: s.meter.msgs, NodeBytes: append([]uint64(nil), s.meter.nodeBytes...),
		CPUBusy: append([]time.Duration(nil), s.busy...), LinkBytes: s.meter.linkBytes, RoleTime: s.meter.roleTime}
	now := s.Now()
	for i := range s.meter.leading {
		t.RoleTime[s.meter.role(i)] += now - s.meter.since[i]
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
