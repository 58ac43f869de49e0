package core

import (
	"testing"
	"time"

	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
	"github.com/stretchr/testify/require"
)

// Suspected: a Byzantine creator re-submitting already delivered transactions after the dedup
// window rolled over. Confirmed, as a bound of the guarantee: duplicates are dropped within the
// last DedupWindow..2×DedupWindow delivered transactions; a transaction resubmitted later is
// delivered again — by every replica alike, since the window is a function of the delivered
// sequence only.
func TestDedupWindowBoundsDuplicateSuppression(t *testing.T) {
	const window = 1024
	deliverAll := func() []types.Hash {
		c, err := NewCore(coreEnv(), Spec{Engine: "hotstuff", MemType: "native", BSize: 1, MemSize: 1 << 20, DedupWindow: window, Timeout: time.Second, ProposeTimeout: time.Millisecond}, nil)
		require.NoError(t, err)
		var got []types.Hash
		rec := &recObserver{deliver: func(txs []types.Tx) {
			for _, tx := range txs {
				got = append(got, tx.ID())
			}
		}}
		c.obs, c.txObs = rec, rec
		replayed := enginetest.TxBatch("x", 0, 1)
		height := uint64(0)
		block := func(txs []types.Tx) {
			height++
			c.queue = append(c.queue, &types.Block{Height: height, View: types.View(height), Payload: &types.Payload{Txs: txs}})
			c.drain()
		}
		block(replayed)
		block(replayed) // a duplicate within the window: dropped
		for k := 0; k < 2*window; k++ {
			block(enginetest.TxBatch("filler", k, 1))
		}
		block(replayed) // beyond the window: delivered again
		return got
	}
	a, b := deliverAll(), deliverAll()
	require.Equal(t, a, b, "every replica decides alike")
	replayed := enginetest.TxBatch("x", 0, 1)[0].ID()
	n := 0
	for _, id := range a {
		if id == replayed {
			n++
		}
	}
	require.Equal(t, 2, n, "once within the window, again after it")
}

// coreEnv is a recording Env for a Core driven by hand: replica 1 of 4, with its real keys.
func coreEnv() *enginetest.Env {
	signers, ver := crypto.SimKeys(1, 4)
	env := enginetest.NewEnv(1, 4, signers[0], ver, 1)
	env.Clock = time.Unix(0, 0)
	return env
}

type recObserver struct {
	NopObserver
	deliver func([]types.Tx)
}

func (r *recObserver) DeliveredTxs(_ *types.Block, txs []types.Tx) { r.deliver(txs) }

// A 10-byte StateRequest made the replica copy its whole delivered state into a snapshot, every
// time (0.77 s on the event loop with a full dedup window): each Byzantine peer could ask again
// every few timeouts. The snapshot of a block is built once and reused until the replica
// delivers another block.
func TestSnapshotIsBuiltOncePerBlock(t *testing.T) {
	env := coreEnv()
	env.Clock = time.Unix(100, 0)
	c, err := NewCore(env, Spec{Engine: "hotstuff", MemType: "native", BSize: 1, MemSize: 1 << 20, DedupWindow: 1 << 10, Timeout: time.Second, ProposeTimeout: time.Millisecond}, nil)
	require.NoError(t, err)
	b := &types.Block{View: 7, Height: 7, Parent: types.Hash{1}, Payload: &types.Payload{}, Proposer: 3}
	next := &types.Block{View: 8, Height: 8, Parent: b.ID(), QC: &types.QC{View: 7, BlockID: b.ID()}, Payload: &types.Payload{}, Proposer: 4}
	c.height, c.lastDelivered = 7, b
	c.queue = []*types.Block{next} // answered at the checkpoint, with next's QC as b's certificate
	for _, p := range []types.NodeID{2, 3, 4} {
		c.onStateRequest(p, &types.StateRequest{Height: 1})
		c.answerRequests(b, next)
		env.Clock = env.Clock.Add(time.Second)
	}
	var sent []types.Message
	for _, m := range env.Sends() {
		sent = append(sent, m.Msg)
	}
	snaps := enginetest.Of[*types.Snapshot](sent)
	require.GreaterOrEqual(t, len(snaps), 3, "each peer is answered")
	for _, s := range snaps[1:] {
		require.Same(t, snaps[0], s, "later requests reuse the snapshot")
	}
	c.checkpoint(next) // delivered another block: the copy is freed
	require.Nil(t, c.st.built)
}
