package mempool

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/types"
)

// nativeEnv is a recording Env for a native mempool: it needs no keys, and its clock starts at the
// zero time unless a test sets it.
func nativeEnv(self types.NodeID, n int) *enginetest.Env {
	e := enginetest.NewEnv(self, n, nil, nil, 1)
	e.Clock = time.Time{}
	return e
}

func txs(tag byte, from, n int) []types.Tx {
	out := make([]types.Tx, n)
	for i := range out {
		b := make([]byte, 16)
		b[0] = tag
		binary.BigEndian.PutUint64(b[8:], uint64(from+i))
		out[i] = types.NewTx(b)
	}
	return out
}

func ids(ts []types.Tx) []types.Hash {
	out := make([]types.Hash, len(ts))
	for i, t := range ts {
		out[i] = t.ID()
	}
	return out
}

func TestNativeProposesInOrderUpToBSize(t *testing.T) {
	env := nativeEnv(1, 4)
	m := NewNative(env, NativeConfig{BSize: 3, MemSize: 1 << 20})
	require.False(t, m.Ready())
	in := txs('a', 0, 5)
	require.NoError(t, m.AddTxs(in))
	require.NoError(t, m.AddTxs(in[:2]), "re-adding held transactions is a no-op")
	require.True(t, m.Ready())
	p1 := m.MakePayload(1, nil)
	require.Equal(t, ids(in[:3]), ids(p1.Txs))
	p2 := m.MakePayload(1, nil)
	require.Equal(t, ids(in[3:]), ids(p2.Txs))
	require.False(t, m.Ready())
	require.Empty(t, m.MakePayload(1, nil).Txs)
	require.Equal(t, Gauges{PendingTxs: 0, PendingBytes: 5 * (16 + TxOverhead), InFlightTxs: 5}, m.Gauges(), "charged: bytes and bookkeeping")
}

func TestNativeFullRefusesWholeBatch(t *testing.T) {
	const cost = 16 + TxOverhead
	m := NewNative(nativeEnv(1, 4), NativeConfig{BSize: 10, MemSize: cost * 4})
	require.NoError(t, m.AddTxs(txs('a', 0, 3)))
	err := m.AddTxs(txs('b', 0, 2))
	require.ErrorIs(t, err, ErrFull)
	require.ErrorContains(t, err, fmt.Sprintf("holds %d bytes, batch adds %d, memsize is %d", 3*cost, 2*cost, 4*cost))
	require.Equal(t, 3, m.Gauges().PendingTxs, "nothing of a refused batch is kept")
	// Committing frees room.
	p := m.MakePayload(1, nil)
	m.Committed(&types.Block{Payload: p})
	require.NoError(t, m.AddTxs(txs('b', 0, 2)))
	require.Equal(t, Gauges{PendingTxs: 2, PendingBytes: 2 * cost}, m.Gauges())
}

func TestNativeRequeuesOwnOrphanedPayload(t *testing.T) {
	m := NewNative(nativeEnv(1, 4), NativeConfig{BSize: 2, MemSize: 1 << 20})
	in := txs('a', 0, 4)
	require.NoError(t, m.AddTxs(in))
	p1 := m.MakePayload(1, nil)
	m.Requeue(&types.Block{Payload: p1})
	// The orphaned payload goes back to the front, ahead of what was never proposed.
	require.Equal(t, ids(in[:2]), ids(m.MakePayload(1, nil).Txs))
	require.Equal(t, ids(in[2:]), ids(m.MakePayload(1, nil).Txs))
	// A payload proposed by someone else is not ours to requeue.
	other := &types.Payload{Txs: txs('z', 0, 2)}
	m.Requeue(&types.Block{Payload: other})
	require.False(t, m.Ready())
	// Committed transactions are forgotten, also when they sat in the queue.
	require.NoError(t, m.AddTxs(txs('c', 0, 1)))
	m.Committed(&types.Block{Payload: &types.Payload{Txs: txs('c', 0, 1)}})
	require.False(t, m.Ready())
	require.Empty(t, m.MakePayload(1, nil).Txs)
}

// TestNativeForwardsRepeatedlyOrphanedTxs: with rotating leaders, a transaction whose own
// proposals were orphaned twice is forwarded to the f+1 replicas that lead next, which hold it
// within the forwarder's share and propose it; it is forwarded once, and a commit frees it.
func TestNativeForwardsRepeatedlyOrphanedTxs(t *testing.T) {
	env := nativeEnv(3, 7) // f = 2: forwarded to 4, 5 and 6
	m := NewNative(env, NativeConfig{BSize: 10, MemSize: 1 << 20})
	in := txs('o', 0, 3)
	require.NoError(t, m.AddTxs(in))
	orphan := func() {
		m.Requeue(&types.Block{Proposer: 3, Payload: m.MakePayload(1, nil)})
	}
	orphan()
	require.Empty(t, env.Outbox, "one orphan is what a view change does")
	orphan()
	require.Len(t, env.Outbox, 3)
	for i, s := range env.Outbox {
		require.Equal(t, types.NodeID(4+i), s.To)
		require.Equal(t, ids(in), ids(s.Msg.(*types.TxForward).Txs))
	}
	orphan()
	require.Len(t, env.Outbox, 3, "forwarded once")
	require.Equal(t, ids(in), ids(m.MakePayload(1, nil).Txs), "and still proposed here")

	// Wrapping around: replica 6 of 7 forwards to 7, 1 and 2.
	env6 := nativeEnv(6, 7)
	m6 := NewNative(env6, NativeConfig{BSize: 10, MemSize: 1 << 20})
	require.NoError(t, m6.AddTxs(in))
	for range OrphansBeforeForward {
		m6.Requeue(&types.Block{Proposer: 6, Payload: m6.MakePayload(1, nil)})
	}
	require.Equal(t, []types.NodeID{7, 1, 2}, []types.NodeID{env6.Outbox[0].To, env6.Outbox[1].To, env6.Outbox[2].To})

	// A receiver holds the forwarded transactions, proposes them, and forgets them at commit.
	r := NewNative(nativeEnv(4, 7), NativeConfig{BSize: 10, MemSize: 1 << 20})
	r.OnMessage(3, &types.TxForward{Txs: in})
	require.True(t, r.Ready())
	p := r.MakePayload(2, nil)
	require.Equal(t, ids(in), ids(p.Txs))
	r.Committed(&types.Block{Payload: p})
	require.Zero(t, r.Gauges().InFlightTxs)
	// ... within the forwarder's share: memsize / (N-1) bytes.
	small := NewNative(nativeEnv(4, 7), NativeConfig{BSize: 10, MemSize: 6 * txCost(in[0])})
	small.OnMessage(3, &types.TxForward{Txs: txs('q', 0, 5)})
	require.Len(t, small.MakePayload(2, nil).Txs, 1, "a share of one transaction")
	// A forward from itself, or with a static leader to a replica that is not it, is ignored.
	r.OnMessage(4, &types.TxForward{Txs: txs('s', 0, 1)})
	require.False(t, r.Ready())
	st := NewNative(nativeEnv(4, 7), NativeConfig{BSize: 10, MemSize: 1 << 20, Master: 1})
	st.OnMessage(3, &types.TxForward{Txs: txs('s', 0, 1)})
	require.False(t, st.Ready())
}

func TestNativeCheckPayload(t *testing.T) {
	m := NewNative(nativeEnv(1, 4), NativeConfig{BSize: 3, MemSize: 1 << 20})
	v, err := m.CheckPayload(&types.Block{Proposer: 2, Payload: &types.Payload{Txs: txs('a', 0, 3)}})
	require.NoError(t, err)
	require.Equal(t, consensus.Accept, v)
	v, err = m.CheckPayload(&types.Block{Proposer: 2, Payload: &types.Payload{Txs: txs('a', 0, 4)}})
	require.Equal(t, consensus.Reject, v)
	require.ErrorContains(t, err, "bsize is 3")
	dup := txs('a', 0, 2)
	v, err = m.CheckPayload(&types.Block{Proposer: 2, Payload: &types.Payload{Txs: append(dup, dup[0])}})
	require.Equal(t, consensus.Reject, v)
	require.ErrorContains(t, err, "appears twice")
}

// With a static leader, other replicas forward to it and forward again what did not commit in
// time; the leader proposes what it received.
func TestNativeForwardsToStaticLeader(t *testing.T) {
	env := nativeEnv(2, 4)
	env.Clock = time.Unix(100, 0)
	m := NewNative(env, NativeConfig{BSize: 10, MemSize: 1 << 20, Master: 1, Retry: time.Second})
	in := txs('a', 0, 3)
	require.NoError(t, m.AddTxs(in))
	require.False(t, m.Ready(), "a non-leader does not propose")
	require.Len(t, env.Outbox, 1)
	require.Equal(t, types.NodeID(1), env.Outbox[0].To)
	fw := env.Outbox[0].Msg.(*types.TxForward)
	require.Equal(t, ids(in), ids(fw.Txs))
	require.Len(t, env.Timers, 1)

	// One of them commits; after Retry the other two are forwarded again.
	m.Committed(&types.Block{Payload: &types.Payload{Txs: in[:1]}})
	env.Clock = env.Clock.Add(time.Second)
	m.OnTimer(env.Timers[0].Timer)
	require.Len(t, env.Outbox, 2)
	require.Equal(t, ids(in[1:]), ids(env.Outbox[1].Msg.(*types.TxForward).Txs))

	// The leader side.
	lenv := nativeEnv(1, 4)
	leader := NewNative(lenv, NativeConfig{BSize: 10, MemSize: 3 * 2 * (16 + TxOverhead), Master: 1})
	leader.OnMessage(2, fw)
	require.True(t, leader.Ready())
	require.Equal(t, ids(in[:2]), ids(leader.MakePayload(1, nil).Txs), "beyond replica 2's share (memsize/3) the leader drops; the origin forwards again")
}
