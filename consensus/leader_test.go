package consensus_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// "leader of view v: round-robin ((v-1) mod N) + 1 when master is "0", else the static master node".
func TestLeaders(t *testing.T) {
	tests := []struct {
		name    string
		le      consensus.LeaderElection
		leaders map[types.View]types.NodeID
	}{
		{"round robin N=4", consensus.RoundRobin{N: 4}, map[types.View]types.NodeID{0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 1, 8: 4, 9: 1, 1001: 1}},
		{"round robin N=7", consensus.RoundRobin{N: 7}, map[types.View]types.NodeID{1: 1, 7: 7, 8: 1, 15: 1, 20: 6}},
		{"static 3", consensus.Static{ID: 3}, map[types.View]types.NodeID{0: 0, 1: 3, 2: 3, 1 << 40: 3}},
		{"master 0 means round robin", consensus.NewLeaderElection(0, 4), map[types.View]types.NodeID{1: 1, 2: 2, 6: 2}},
		{"master 2 means static", consensus.NewLeaderElection(2, 4), map[types.View]types.NodeID{1: 2, 2: 2, 6: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for v, want := range tt.leaders {
				require.Equal(t, want, tt.le.Leader(v), "view %d", v)
			}
		})
	}
	require.Equal(t, consensus.RoundRobin{N: 4}, consensus.NewLeaderElection(0, 4))
	require.Equal(t, consensus.Static{ID: 2}, consensus.NewLeaderElection(2, 4))
}

func TestQuorumSize(t *testing.T) {
	for n, want := range map[int]int{1: 1, 4: 3, 5: 4, 7: 5, 10: 7, 100: 67} {
		require.Equal(t, want, consensus.QuorumSize(n), "N=%d", n)
	}
}
