package mempool

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

// TestOwnMicroblockRestoredThenCutAgain: after a restart a replica's own microblock comes back
// from its store as data (Restore), counted among the peers' microblocks. A client's retry of the
// same transactions, cut in the same view, is that microblock: it becomes the replica's own again
// — counted once, as its own, and pushed for its proof — and once committed nothing of it counts.
// (Replacing the restored entry left its bytes counted among the peers' for good.)
func TestOwnMicroblockRestoredThenCutAgain(t *testing.T) {
	r := newRig(t, 1, 4, pabCfg())
	batch := txs('r', 0, 10)
	mb := mbOf(1, 0, batch)
	r.m.Restore([]*types.MicroBlock{mb})
	require.Equal(t, mbCost(mb), r.m.Gauges().PeerBytes, "restored as data")

	require.NoError(t, r.m.AddTxs(batch)) // a full microblock: cut at once
	sent := pick[*types.MicroBlock](r.take())
	require.Len(t, sent, 1, "pushed for its proof")
	require.Equal(t, mb.ID, sent[0].m.ID, "the same microblock")
	g := r.m.Gauges()
	require.Zero(t, g.PeerBytes, "no longer a peer's")
	require.Equal(t, 10, g.InFlightTxs)
	require.Equal(t, mbCost(mb)-MBOverhead, g.PendingBytes, "counted once, as own")
	require.Equal(t, 1, g.Microblocks)

	r.m.OnMessage(2, r.ackBy(2, mb))
	r.m.OnMessage(3, r.ackBy(3, mb))
	proofs := pick[*types.Proof](r.take())
	require.Len(t, proofs, 1, "its proof formed and broadcast")
	blk := blockOf(1, 2, refOf(proofs[0].m))
	r.m.Decided(blk)
	r.m.Committed(blk)
	g = r.m.Gauges()
	require.Zero(t, g.PeerBytes)
	require.Zero(t, g.PendingBytes)
	require.Zero(t, g.InFlightTxs)
	require.Zero(t, g.Microblocks)
}
