package replica

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"

	"github.com/stratusbft/stratus/types"
)

// The key-value store is the state machine on the committed log: a transaction of the form key,
// a zero byte, value (what PUT /{key} submits) sets key to value; every other transaction is
// ignored by it. Every replica applies the transactions it delivers, in delivery order, so
// replicas that delivered the same blocks hold the same store. The store keeps every key ever
// written (the latest value of each, at most one transaction's size), in memory; it is not
// persisted and is rebuilt by delivery after a restart.
//
// A snapshot (state transfer) does not carry the store: a replica that skipped blocks by snapshot
// marks its store incomplete, and reads answer ErrIncomplete from then on (until the process
// restarts and delivers the log from the start again).

// ErrIncomplete is returned by reads once state transfer skipped blocks whose writes this
// replica's store never saw.
var ErrIncomplete = errors.New("the key-value store is incomplete: this replica skipped committed blocks by state transfer, so writes in them are missing here; read from another replica")

// KVEntry is a key's committed value and the height of the block that delivered it.
type KVEntry struct {
	Value  []byte
	Height uint64
}

type kvStore struct {
	m          map[string]KVEntry
	incomplete bool
}

func newKVStore() *kvStore { return &kvStore{m: make(map[string]KVEntry)} }

// apply applies one delivered transaction at height.
func (s *kvStore) apply(t types.Tx, height uint64) {
	key, value, ok := SplitKV(t.Data())
	if !ok {
		return
	}
	// A copy: the transaction's bytes may share the backing array of a whole request body.
	s.m[string(key)] = KVEntry{Value: bytes.Clone(value), Height: height}
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
	if c.kv.incomplete {
		return KVEntry{}, false, ErrIncomplete
	}
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
