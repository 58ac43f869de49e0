package core

import (
	"testing"
	"time"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/mempool"
	"github.com/stratusbft/stratus/types"
	"github.com/stretchr/testify/require"
)

// stillEngine never moves: the Core is driven by hand, and the mempool's view stays where it is.
type stillEngine struct{}

func (stillEngine) Start()                                {}
func (stillEngine) OnMessage(types.NodeID, types.Message) {}
func (stillEngine) OnTimer(consensus.Timer)               {}
func (stillEngine) OnMempool()                            {}
func (stillEngine) Status() consensus.Status              { return consensus.Status{} }
func (stillEngine) SyncTo(*types.Block, *types.QC)        {}
func (stillEngine) CertOf(types.Hash) *types.QC           { return nil }

// TestOwnMicroblockCutAgainKeepsItsCount: transaction T is cut into this replica's microblock M,
// delivered through a peer's microblock, forgotten by the dedup window (2 × window deliveries
// later), submitted again and cut again, alone, in the same view: the new microblock is M itself.
// The mempool keeps M, sends nothing new, and once M commits nothing of T counts against memsize
// or as in flight. (The shared mempool takes the Core's word that what it is given is new, and
// the Core's word holds only within its window; replacing M's entry left T counted for good.)
func TestOwnMicroblockCutAgainKeepsItsCount(t *testing.T) {
	const window = 1024
	signers, _ := crypto.SimKeys(1, 4)
	env := coreEnv()
	spec := Spec{Engine: "hotstuff", MemType: "stratus", BSize: 10, MemSize: 1 << 22, DedupWindow: window,
		Timeout: time.Second, ProposeTimeout: time.Millisecond,
		Shared: mempool.SharedConfig{MSize: 1 << 20, BatchTimeout: time.Second, Q: 1, FetchTimeout: time.Second, PushTimeout: time.Hour}}
	c, err := NewCoreWith(env, spec, nil, CoreOptions{Engine: func(consensus.Params) consensus.Engine { return stillEngine{} }})
	require.NoError(t, err)
	T := enginetest.TxBatch("T", 0, 1)
	ownMBs := func() []*types.MicroBlock {
		var out []*types.MicroBlock
		for _, m := range env.Messages() {
			if mb, ok := m.(*types.MicroBlock); ok && mb.Creator == 1 {
				out = append(out, mb)
			}
		}
		env.ClearOutbox()
		return out
	}
	_, err = c.SubmitTxs(T, nil)
	require.NoError(t, err)
	env.Advance(time.Second, c.Timer)
	first := ownMBs()
	require.Len(t, first, 1)

	height := uint64(0)
	commit := func(id types.Hash) {
		height++
		c.queue = append(c.queue, &types.Block{Height: height, View: types.View(height), Payload: &types.Payload{Refs: []types.MBRef{{ID: id}}}})
		c.drain()
	}
	deliverPeer := func(txs []types.Tx) {
		mb := types.NewMicroBlock(2, 0, txs).Signed(signers[1].Sign)
		c.mp.OnMessage(2, mb)
		commit(mb.ID)
	}
	deliverPeer(T)
	deliverPeer(enginetest.TxBatch("filler", 0, 2*window+1))
	require.False(t, c.delivered.Has(T[0].ID()))

	_, err = c.SubmitTxs(T, nil)
	require.NoError(t, err)
	env.Advance(time.Second, c.Timer)
	require.Empty(t, ownMBs(), "the microblock cut again is the one held: nothing new is sent")
	g := c.mp.Gauges()
	require.Equal(t, 1, g.InFlightTxs, "T counted once")

	commit(first[0].ID)
	g = c.mp.Gauges()
	require.Zero(t, g.PendingBytes, "nothing of T counts against memsize")
	require.Zero(t, g.InFlightTxs, "nothing of T counts as in flight")
}
