package core

import (
	"testing"
	"time"

	"github.com/stratusbft/stratus/types"
	"github.com/stretchr/testify/require"
)

// kvTx is the write of value to key with an identity made of both, so that equal arguments make
// the same transaction.
func kvTx(key, value string) types.Tx {
	var id PutID
	h := types.Keccak([]byte(key), []byte{0}, []byte(value))
	copy(id[:], h[:])
	return NewPut(id, key, []byte(value))
}

// barrier is a read-barrier transaction (the driver makes them with random nonces).
func barrier(nonce string) types.Tx { return types.NewTx([]byte(BarrierPrefix + nonce)) }

func TestKVStoreAppliesInDeliveryOrder(t *testing.T) {
	c, err := NewCore(coreEnv(), Spec{Engine: "hotstuff", MemType: "native", BSize: 1, MemSize: 1 << 20, Timeout: time.Second, ProposeTimeout: time.Millisecond}, nil)
	require.NoError(t, err)
	c.deliver(&types.Block{Height: 1, View: 1}, [][]types.Tx{{kvTx("k", "v1"), types.NewTx([]byte("plain")), kvTx("a", "")}})
	c.deliver(&types.Block{Height: 2, View: 2}, [][]types.Tx{{kvTx("k", "v2"), barrier("00112233445566778899aabbccddeeff")}})
	c.deliver(&types.Block{Height: 3, View: 3}, [][]types.Tx{{kvTx("k", "v1")}}) // a duplicate: not delivered again

	e, ok, err := c.KV("k")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "v2", string(e.Value), "the later committed write wins")
	require.Equal(t, uint64(2), e.Height)
	e, ok, _ = c.KV("a")
	require.True(t, ok)
	require.Empty(t, e.Value)
	require.Equal(t, uint64(1), e.Height)
	_, ok, _ = c.KV("plain")
	require.False(t, ok, "a transaction without a zero byte is no write")
	require.Equal(t, 2, c.KVKeys())

	// A write is a command: the same value written again under a new identity applies again
	// (v1, v2, v1 leaves v1), and bytes that merely hold a zero byte (the load generator's
	// transactions, the old key\0value form) write nothing.
	c.deliver(&types.Block{Height: 4, View: 4}, [][]types.Tx{{NewPut(PutID{9}, "k", []byte("v1")),
		types.NewTx([]byte("k\x00v3")), types.NewTx(make([]byte, 128)), types.NewTx([]byte(PutPrefix + "short\x00"))}})
	e, _, _ = c.KV("k")
	require.Equal(t, "v1", string(e.Value), "the earlier value written again by a new command")
	require.Equal(t, uint64(4), e.Height)
	require.Equal(t, 2, c.KVKeys(), "no key from transactions that are not writes")
	for _, data := range []string{"k\x00v", PutPrefix, PutPrefix + "0123456789abcdef", PutPrefix + "0123456789abcdef\x00empty key", PutPrefix + "0123456789abcdefno zero byte"} {
		_, _, isKV := SplitKV([]byte(data))
		require.False(t, isKV, "%q", data)
	}
	key, value, isKV := SplitKV([]byte(PutPrefix + "0123456789abcdefk\x00v\x00w"))
	require.True(t, isKV)
	require.Equal(t, "k", string(key))
	require.Equal(t, "v\x00w", string(value), "the value may hold zero bytes")

	require.False(t, IsBarrier(kvTx("k", "v").Data()))
	b := barrier("00112233445566778899aabbccddeeff")
	require.True(t, IsBarrier(b.Data()))
	_, _, isKV = SplitKV(b.Data())
	require.False(t, isKV)

	// A snapshot carries the store; restoring it replaces the contents.
	exp := c.kv.export()
	require.Len(t, exp, 2)
	require.Equal(t, "k", string(exp[1].Key), "sorted by key")
	other := NewKVStore()
	other.restore(exp)
	require.Equal(t, c.kv.m, other.m)
}
