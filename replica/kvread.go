package replica

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/types"
)

// NewBarrier returns a fresh read-barrier transaction: the prefix and 16 random bytes in hex.
func NewBarrier() types.Tx {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	return types.NewTx([]byte(core.BarrierPrefix + hex.EncodeToString(nonce[:])))
}

type kvRead struct {
	key   string
	after uint64 // the read must see at least this delivered height
	entry core.KVEntry
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
func (r *Replica) Barrier(ctx context.Context) (core.CommitInfo, error) {
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
