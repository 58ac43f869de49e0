package replica

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"slices"

	"github.com/stratusbft/stratus/types"
)

// The key-value store is the state machine on the committed log: a transaction of the form key,
// a zero byte, value (what PUT /{key} submits) sets key to value; every other transaction is
// ignored by it. Every replica applies the transactions it delivers, in delivery order, so
// replicas that delivered the same blocks hold the same store. The store keeps every key ever
// written (the latest value of each, at most one transaction's size). It is part of a replica's
// saved state (Store) and of the snapshots of state transfer, so a replica that restarted or
// skipped blocks by snapshot reads what the others read at the same height.

// KVEntry is a key's committed value and the height of the block that delivered it.
type KVEntry struct {
	Value  []byte
	Height uint64
}

type kvStore struct {
	m map[string]KVEntry
}

// export lists the store sorted by key, as a snapshot carries it.
func (s *kvStore) export() []types.KVPair {
	keys := slices.Sorted(maps.Keys(s.m))
	out := make([]types.KVPair, len(keys))
	for i, k := range keys {
		e := s.m[k]
		out[i] = types.KVPair{Key: []byte(k), Value: e.Value, Height: e.Height}
	}
	return out
}

// restore replaces the store's contents by a snapshot's, in place.
func (s *kvStore) restore(kv []types.KVPair) {
	s.m = make(map[string]KVEntry, len(kv))
	for _, x := range kv {
		s.m[string(x.Key)] = KVEntry{Value: bytes.Clone(x.Value), Height: x.Height}
	}
}

func newKVStore() *kvStore { return &kvStore{m: make(map[string]KVEntry)} }

// apply applies one delivered transaction at height and returns the write it made, if any.
func (s *kvStore) apply(t types.Tx, height uint64) (key string, e KVEntry, wrote bool) {
	k, value, ok := SplitKV(t.Data())
	if !ok {
		return "", KVEntry{}, false
	}
	// A copy: the transaction's bytes may share the backing array of a whole request body.
	key, e = string(k), KVEntry{Value: bytes.Clone(value), Height: height}
	s.m[key] = e
	return key, e, true
}

// SplitKV splits a key-value write at its first zero byte; ok is false for transactions without
// one (they are not writes). Read barriers contain no zero byte.
func SplitKV(data []byte) (key, value []byte, ok bool) {
	i := bytes.IndexByte(data, 0)
	if i < 0 {
		return nil, nil, false
	}
	return data[:i], data[i+1:], true
}

// BarrierPrefix starts every read-barrier transaction. It contains no zero byte, and neither does
// the rest of a barrier, so the store ignores barriers.
const BarrierPrefix = "\xffstratus/read-barrier/"

// NewBarrier returns a fresh read-barrier transaction: the prefix and 16 random bytes in hex.
func NewBarrier() types.Tx {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	return types.NewTx([]byte(BarrierPrefix + hex.EncodeToString(nonce[:])))
}

// IsBarrier tells read barriers apart from client transactions.
func IsBarrier(data []byte) bool { return bytes.HasPrefix(data, []byte(BarrierPrefix)) }

// KV returns key's entry in the core's store; it must be called from the core's goroutine.
func (c *Core) KV(key string) (KVEntry, bool, error) {
	e, ok := c.kv.m[key]
	return e, ok, nil
}

// KVKeys is the number of keys in the store.
func (c *Core) KVKeys() int { return len(c.kv.m) }

type kvRead struct {
	key   string
	after uint64 // the read must see at least this delivered height
	entry KVEntry
	found bool
	err   error
	done  chan struct{}
}

// Get reads key from the committed state this replica delivered so far, through the event loop.
// after is the delivered height the read must see (a read barrier's; 0 for a local read): a
// replica that crashed and restarted since, and has not caught up to it, answers ErrCrashed
// rather than an older state. found is false for a key never written; err is ErrIncomplete
// after a state transfer, ErrCrashed while the replica is down, ErrStopped once it stopped, or
// ctx's error.
func (r *Replica) Get(ctx context.Context, key string, after uint64) (value []byte, height uint64, found bool, err error) {
	q := &kvRead{key: key, after: after, done: make(chan struct{})}
	select {
	case r.reads <- q:
	case <-ctx.Done():
		return nil, 0, false, ctx.Err()
	case <-r.stop:
		return nil, 0, false, ErrStopped
	}
	select {
	case <-q.done:
		return q.entry.Value, q.entry.Height, q.found, q.err
	case <-r.stop:
		return nil, 0, false, ErrStopped
	}
}

// Barrier submits a fresh read barrier and waits until it is delivered here, so that a read after
// it sees every write committed before the barrier was submitted. It is not counted as a client
// submission (it is counted among delivered transactions).
func (r *Replica) Barrier(ctx context.Context) (CommitInfo, error) {
	res, err := r.submit(ctx, []types.Tx{NewBarrier()}, true, false)
	return res.CommitInfo, err
}

func (r *Replica) serveRead(q *kvRead) {
	if h, _, _ := r.core.Delivered(); r.crashed || h < q.after {
		q.err = ErrCrashed
	} else {
		q.entry, q.found, q.err = r.core.KV(q.key)
	}
	close(q.done)
}
