package simnet

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// restartRun crashes replica 4 at 500 ms for down, under a load that lasts well beyond its
// restart, and returns the simulation once every transaction is delivered by every replica (the
// restarted one included).
func restartRun(t *testing.T, engine, memType string, down time.Duration, seed int64) *Sim {
	t.Helper()
	sp := matrixSpec(engine, memType, 4, false)
	s, err := New(Options{N: 4, Spec: sp, Seed: seed, Latency: time.Millisecond, Jitter: 2 * time.Millisecond,
		Crash: map[types.NodeID]CrashPlan{4: {At: 500 * time.Millisecond, Down: down}}})
	require.NoError(t, err)
	txs := makeTxs(fmt.Sprintf("restart-%s-%s-%v", engine, memType, down), 3000)
	span := down + 2*time.Second
	per := span / time.Duration(len(txs)/20)
	for i, k := 0, 0; i < len(txs); i, k = i+20, k+1 {
		s.Submit(time.Duration(k)*per, types.NodeID(1+k%3), txs[i:min(i+20, len(txs))])
	}
	ok := s.RunUntil(span+60*time.Second, func() bool { return s.AllDelivered(txs) })
	require.Empty(t, s.Violations(), "replay with -seed=%d", seed)
	require.True(t, ok, "%s/%s: the restarted replica did not catch up (height %d of %d)", engine, memType,
		s.Checker().Height(4), s.Checker().Height(1))
	require.Equal(t, 1, s.Node(4).Restarts)
	return s
}

func syncs(n *Node) []consensus.StateSynced {
	var out []consensus.StateSynced
	for _, e := range n.Events {
		if x, ok := e.(consensus.StateSynced); ok {
			out = append(out, x)
		}
	}
	return out
}

// docs/spec.md §4.3: "A replica that crashes and restarts never votes twice in a view (its voting state
// survives the restart) and catches up — by block sync within the retained history". Down for
// 1.5 s (about a hundred blocks, fewer than the 256 retained), replica 4 restarts with nothing
// but its voting state, fetches the chain block by block and delivers the same sequence as the
// others. The checker holds its votes before and after the crash to one per view.
func TestRestartCatchesUpByBlockSync(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		for _, mem := range []string{"native", "stratus"} {
			t.Run(engine+"/"+mem, func(t *testing.T) {
				s := restartRun(t, engine, mem, 1500*time.Millisecond, seedOr(21))
				require.Empty(t, syncs(s.Node(4)), "within the retained history: no state transfer")
				require.Equal(t, s.Checker().Height(1), s.Checker().Height(4))
			})
		}
	}
}

// "... by state sync beyond it." Down for 40 s (several hundred blocks: the others no longer
// retain what it misses), replica 4 gives up on block sync, asks for snapshots, applies one that
// f+1 peers sent identically, reports what it skipped, and delivers the rest.
func TestRestartCatchesUpByStateTransfer(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		for _, mem := range []string{"native", "stratus"} {
			t.Run(engine+"/"+mem, func(t *testing.T) {
				s := restartRun(t, engine, mem, 40*time.Second, seedOr(22))
				got := syncs(s.Node(4))
				require.NotEmpty(t, got, "beyond the retained history: state transfer")
				require.Positive(t, got[0].To-got[0].From, "it reports the blocks it skipped")
				require.Positive(t, got[0].SkippedTxs, "and the transactions")
				s.Run(s.Now() + 3*time.Second)
				require.Empty(t, s.Violations())
				t.Logf("%s/%s: skipped heights %d..%d (%d transactions); delivered height %d, others %d",
					engine, mem, got[0].From, got[0].To, got[0].SkippedTxs, s.Checker().Height(4), s.Checker().Height(1))
				require.Greater(t, s.Checker().Height(4), got[0].To, "it delivers block by block after the snapshot")
				require.InDelta(t, s.Checker().Height(1), s.Checker().Height(4), 3, "and keeps up with the others")
			})
		}
	}
}
