package mempool

// A static master under PAB: what a creator does for its proven microblocks until the master
// proposes them.

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

// Stratus (PAB) with a static master (1): creator 2's push completes with replica 3's ack while
// the master hears nothing (its copies of the microblock and of the proof are lost, or it is cut
// off, or it restarts and Restore gives it data without proofs). The creator holds a proven,
// undecided microblock that only the master may propose, and the master never asks for proofs
// (it votes on no one else's proposal): the creator sends the proof to the master again until the
// microblock is proposed. It used to send nothing more (the push was over, masterTimer was smp's,
// recoverTimer is for forwarded microblocks), and the microblock waited for the stale re-issue,
// StaleViews/2 = 32,768 views away.
func TestPABStaticMasterGetsTheProofAgain(t *testing.T) {
	cfg := pabCfg()
	cfg.Master = 1
	cfg.PushTimeout = 60 * time.Millisecond
	r := newRig(t, 2, 4, cfg)
	r.m.SetView(1)
	require.NoError(t, r.m.AddTxs(txs('s', 0, 10)))
	mbs := pick[*types.MicroBlock](r.take())
	require.Len(t, mbs, 1)
	r.m.OnMessage(3, r.ackBy(3, mbs[0].m))
	proofs := pick[*types.Proof](r.take())
	require.Len(t, proofs, 1, "stable: the proof is broadcast (the master's copy is lost)")

	// A minute of virtual time, the views moving on, nothing decided.
	for v := types.View(2); v <= 300; v++ {
		r.m.SetView(v)
		r.advance(200 * time.Millisecond)
	}
	toMaster := 0
	for _, s := range r.take() {
		if s.To == 1 || s.To == 0 { // to the master, or broadcast
			toMaster++
		}
	}
	require.Equal(t, 10, r.m.Gauges().InFlightTxs, "its transactions are still in flight")
	require.Positive(t, toMaster, "an own proven microblock undecided for a minute: nothing was ever sent again for the master to propose it (%d timers set in all)", len(r.env.Timers))
}
