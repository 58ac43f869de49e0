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
}

func (m *meter) init(n int) {
	m.nodeBytes = make([]uint64, n)
	m.timedOut = make(map[types.View]bool)
	m.changed = make(map[types.View]bool)
}

// sent counts a copy that left from's uplink.
func (m *meter) sent(from *Node, msg types.Message, size int, r Role) {
	m.bytes[r][msg.Kind()] += uint64(size)
	m.msgs[r][msg.Kind()]++
	m.nodeBytes[from.ID-1] += uint64(size)
}

func (m *meter) event(n *Node, e consensus.Event) {
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
}

// Traffic reports the bytes sent so far.
func (s *Sim) Traffic() Traffic {
	return Traffic{Bytes: s.meter.bytes, Messages: s.meter.msgs, NodeBytes: append([]uint64(nil), s.meter.nodeBytes...),
		CPUBusy: append([]time.Duration(nil), s.busy...)}
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
