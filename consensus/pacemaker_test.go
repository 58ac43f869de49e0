package consensus_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/types"
)

func newEnv(self types.NodeID) (*enginetest.Env, *enginetest.Fixture) {
	f := enginetest.NewFixture(1, 4)
	return enginetest.NewEnv(self, 4, f.Signer(self), f.Verifier, 1), f
}

// "2f+1 of them form a TC" — once per view, from distinct senders.
func TestPacemakerAddTimeout(t *testing.T) {
	type step struct {
		sender types.NodeID
		view   types.View
		count  int
		tc     []types.NodeID // signers of the TC returned, nil = none
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"TC at exactly 2f+1 distinct senders, once", []step{
			{4, 1, 1, nil},
			{2, 1, 2, nil},
			{1, 1, 3, []types.NodeID{1, 2, 4}},
			{3, 1, 4, nil},
		}},
		{"a repeated sender counts once", []step{
			{1, 1, 1, nil},
			{1, 1, 1, nil},
			{2, 1, 2, nil},
			{2, 1, 2, nil},
			{3, 1, 3, []types.NodeID{1, 2, 3}},
			{3, 1, 3, nil},
		}},
		{"views are counted apart", []step{
			{1, 1, 1, nil},
			{2, 1, 2, nil},
			{3, 2, 1, nil},
			{4, 2, 2, nil},
			{1, 2, 3, []types.NodeID{1, 3, 4}},
			{4, 1, 3, []types.NodeID{1, 2, 4}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, f := newEnv(1)
			pm := consensus.NewPacemaker(env, time.Second, 0)
			for i, s := range tt.steps {
				count, tc, _ := pm.AddTimeout(f.Timeout(s.sender, s.view, nil), true)
				require.Equal(t, s.count, count, "step %d", i)
				if s.tc == nil {
					require.Nil(t, tc, "step %d", i)
					continue
				}
				require.NotNil(t, tc, "step %d", i)
				require.Equal(t, s.view, tc.View)
				require.Equal(t, s.tc, types.SignerIDs(tc.Signers))
				require.NoError(t, consensus.VerifyTC(f.Verifier, tc))
			}
		})
	}
}

// "view timer (timeout ms, doubling after each consecutive timeout, reset on progress)".
func TestPacemakerTimer(t *testing.T) {
	const T = time.Second
	env, _ := newEnv(1)
	pm := consensus.NewPacemaker(env, T, 3)
	last := func() *enginetest.TimerCall { return env.Timers[len(env.Timers)-1] }

	pm.Enter(1)
	require.Len(t, env.Timers, 1)
	require.Equal(t, T, last().After)
	first := last().Timer.(consensus.ViewTimer)
	require.Equal(t, types.View(1), first.View)

	require.True(t, pm.Expired(first))
	require.Equal(t, 1, pm.Backoff())
	require.Equal(t, 2*T, last().After, "re-armed, doubled")
	require.False(t, pm.Expired(first), "a timer that was replaced is stale")
	require.Len(t, env.Timers, 2)
	second := last().Timer.(consensus.ViewTimer)
	require.False(t, pm.Expired(consensus.ViewTimer{View: 2, Seq: second.Seq}), "a timer of another view")

	pm.Enter(2)
	require.Equal(t, 2*T, last().After, "the backoff carries over to the next view")
	require.False(t, pm.Expired(second), "entering a view makes the old timer stale")
	for _, want := range []time.Duration{4 * T, 8 * T, 8 * T, 8 * T} {
		require.True(t, pm.Expired(last().Timer.(consensus.ViewTimer)))
		require.Equal(t, want, last().After, "capped at 2^3")
	}
	require.Equal(t, 5, pm.Backoff())
	pm.Progress()
	require.Equal(t, 0, pm.Backoff())
	require.Equal(t, T, pm.Duration())
	pm.Enter(3)
	require.Equal(t, T, last().After, "reset on progress")
}

func TestPacemakerSentAndPrune(t *testing.T) {
	env, f := newEnv(1)
	pm := consensus.NewPacemaker(env, time.Second, 0)
	require.False(t, pm.Sent(1))
	pm.MarkSent(1)
	pm.MarkSent(5)
	require.True(t, pm.Sent(1))
	pm.AddTimeout(f.Timeout(1, 1, nil), true)
	pm.AddTimeout(f.Timeout(2, 1, nil), true)
	pm.Prune(2)
	require.False(t, pm.Sent(1))
	require.True(t, pm.Sent(5))
	count, tc, _ := pm.AddTimeout(f.Timeout(3, 1, nil), true)
	require.Equal(t, 1, count, "timeouts of pruned views are forgotten")
	require.Nil(t, tc)
}
