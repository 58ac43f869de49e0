package core

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/types"
)

// TestLocalTxsFilterNeverHidesAnEntry: whatever the filter's counts, every entry put and not
// removed is found and nothing else is, also when 300 entries share one key (the count
// saturates at 255 and then stays), across the filter's growth and after they are all removed.
func TestLocalTxsFilterNeverHidesAnEntry(t *testing.T) {
	l := newLocalTxs()
	require.Len(t, l.counts, localFilterMin)
	var same []types.Hash // 300 IDs with one filter key
	for i := 0; len(same) < 300; i++ {
		id := types.Keccak(fmt.Appendf(nil, "same-%d", i))
		id[16], id[17] = 0x34, 0x12
		same = append(same, id)
	}
	others := make([]types.Hash, 1000)
	for i := range others {
		others[i] = types.Keccak(fmt.Appendf(nil, "other-%d", i))
	}
	entries := map[types.Hash]*localTx{}
	for _, id := range append(same, others...) {
		e := &localTx{}
		l.put(id, e)
		entries[id] = e
	}
	require.Len(t, l.counts, 16384, "grown to eight keys an entry or more: 1,300 entries")
	require.Equal(t, uint8(255), l.counts[l.key(&same[0])], "saturated")
	check := func() {
		for _, id := range append(same, others...) {
			require.Equal(t, entries[id], l.get(id))
		}
		require.Equal(t, len(entries), l.len())
	}
	check()
	for i, id := range append(same, others...) {
		if i%3 != 0 {
			l.remove(id)
			entries[id] = nil
			delete(entries, id)
		}
	}
	check()
	for _, id := range others {
		if entries[id] != nil {
			l.remove(id)
			delete(entries, id)
		}
	}
	check()
	empty := 0
	for _, c := range l.counts {
		if c == 0 {
			empty++
		}
	}
	require.Equal(t, len(l.counts)-1, empty, "every count but the saturated one is back to zero")
	require.Nil(t, l.get(types.Keccak([]byte("never put"))))
}

// TestLocalTxsFilterGrowsToItsLimit: the filter keeps eight keys an entry up to 32 KiB and no
// further; every entry is still found.
func TestLocalTxsFilterGrowsToItsLimit(t *testing.T) {
	l := newLocalTxs()
	ids := make([]types.Hash, 6000)
	for i := range ids {
		ids[i] = types.Keccak(fmt.Appendf(nil, "many-%d", i))
		l.put(ids[i], &localTx{})
		require.GreaterOrEqual(t, len(l.counts), min(localFilterMax, localFilterPer*(i+1)), "after %d entries", i+1)
	}
	require.Len(t, l.counts, localFilterMax)
	for _, id := range ids {
		require.NotNil(t, l.get(id))
	}
}

// TestSubmittedTogetherShareAnEntry: the transactions of one submission share one pending entry;
// a duplicate submission that adds a waiter to one of them gives that one an entry of its own,
// so the delivery of the others never counts for the second waiter.
func TestSubmittedTogetherShareAnEntry(t *testing.T) {
	c, err := NewCore(coreEnv(), Spec{Engine: "hotstuff", MemType: "native", BSize: 10, MemSize: 1 << 20, DedupWindow: 1 << 10, Timeout: time.Second, ProposeTimeout: time.Millisecond}, nil)
	require.NoError(t, err)
	batch := enginetest.TxBatch("w", 0, 3)
	var done1, done2 []CommitInfo
	w1 := NewWaiter(func(i CommitInfo) { done1 = append(done1, i) })
	w2 := NewWaiter(func(i CommitInfo) { done2 = append(done2, i) })
	dups, err := c.SubmitTxs(batch, w1)
	require.NoError(t, err)
	require.Zero(t, dups)
	require.Same(t, c.local.get(batch[0].ID()), c.local.get(batch[2].ID()), "one entry for the three")
	dups, err = c.SubmitTxs(batch[:1], w2)
	require.NoError(t, err)
	require.Equal(t, 1, dups)
	require.NotSame(t, c.local.get(batch[0].ID()), c.local.get(batch[1].ID()), "the duplicate's own entry")

	height := uint64(0)
	block := func(txs []types.Tx) {
		height++
		c.queue = append(c.queue, &types.Block{Height: height, View: types.View(height), Payload: &types.Payload{Txs: txs}})
		c.drain()
	}
	block(batch[1:])
	require.Empty(t, done1, "w1 waits for the first transaction too")
	require.Empty(t, done2, "w2 waits for the first only: the others' delivery does not count for it")
	block(batch[:1])
	require.Len(t, done1, 1)
	require.Len(t, done2, 1)
	require.Equal(t, uint64(2), done1[0].Height)
	require.Equal(t, uint64(2), done2[0].Height)
	require.Zero(t, c.local.len())
}
