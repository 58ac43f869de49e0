package consensus_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// "It proposes as soon as it has a QC for v-1 (or a TC) and either a non-empty payload or
// propose_timeout has passed (no busy loop of empty blocks)". ProposeGate also opens while an
// uncommitted ancestor carries payload (documented in base.go), so that payload reaches commit.
func TestProposeGate(t *testing.T) {
	const pt = 50 * time.Millisecond
	env, _ := newEnv(1)
	tr := consensus.NewTree(8, 100)
	empty, err := tr.Add(mk(1, 1, types.Genesis(), ""))
	require.NoError(t, err)
	full, err := tr.Add(mk(2, 1, types.Genesis(), "tx"))
	require.NoError(t, err)

	g := consensus.NewProposeGate(pt)
	require.False(t, g.Open(env, 2, false, empty), "idle: wait")
	require.False(t, g.Open(env, 2, false, empty), "still idle")
	timers := env.Timers
	require.Len(t, timers, 1, "the propose timer is armed once per view")
	require.Equal(t, pt, timers[0].After)
	require.Equal(t, consensus.ProposeTimer{View: 2}, timers[0].Timer)

	require.True(t, g.Open(env, 2, true, empty), "payload ready: open")
	require.True(t, g.Open(env, 2, false, full), "uncommitted payload on the chain: open")

	require.False(t, g.Fired(consensus.ProposeTimer{View: 1}, 2), "a timer of another view")
	require.False(t, g.Open(env, 2, false, empty))
	require.True(t, g.Fired(consensus.ProposeTimer{View: 2}, 2))
	require.True(t, g.Open(env, 2, false, empty), "after propose_timeout: open")

	require.False(t, g.Open(env, 3, false, empty), "a new view waits again")
	require.Len(t, env.Timers, 2)
	require.Equal(t, consensus.ProposeTimer{View: 3}, env.Timers[1].Timer)
}
