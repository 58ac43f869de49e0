package consensus

import "github.com/stratusbft/stratus/types"

// LeaderElection maps views to leaders.
type LeaderElection interface {
	Leader(v types.View) types.NodeID
}

// RoundRobin rotates the leader: view v is led by ((v-1) mod N) + 1.
type RoundRobin struct{ N int }

// Leader implements LeaderElection.
func (r RoundRobin) Leader(v types.View) types.NodeID {
	if v == 0 {
		return 0
	}
	return types.NodeID((uint64(v)-1)%uint64(r.N) + 1)
}

// Static keeps one leader for every view.
type Static struct{ ID types.NodeID }

// Leader implements LeaderElection.
func (s Static) Leader(v types.View) types.NodeID {
	if v == 0 {
		return 0
	}
	return s.ID
}

// NewLeaderElection returns round-robin election for master 0, else static election of master.
func NewLeaderElection(master, n int) LeaderElection {
	if master == 0 {
		return RoundRobin{N: n}
	}
	return Static{ID: types.NodeID(master)}
}
