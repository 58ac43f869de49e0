package mempool

import (
	"errors"
	"fmt"
	"time"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// Mempool is the full interface the replica drives. The engine sees only consensus.Mempool.
type Mempool interface {
	consensus.Payloads
	// AddTxs takes client transactions. It accepts all of them or none: a full mempool returns an
	// error wrapping ErrFull and keeps nothing. The caller gives only new transactions, each once:
	// the Core checks every one against the transactions pending here and those delivered within
	// its dedup window, so the shared mempools do not look them up again (a set of their own cost
	// 8 % of server -sim's CPU at N=4); the native mempool, which tracks each transaction anyway,
	// skips one it holds. A transaction delivered elsewhere longer ago than the window, and given
	// again while this mempool still holds it, is carried again (the extra copy is a duplicate
	// at delivery); cut with the same transactions in the same view, it makes the microblock held
	// already, which a shared mempool keeps (addOwn).
	AddTxs(txs []types.Tx) error
	// OnMessage handles a mempool message from a peer.
	OnMessage(from types.NodeID, m types.Message)
	// OnTimer handles a timer the mempool set.
	OnTimer(t consensus.Timer)
	// Resolve returns the transactions a committed block orders, as runs in order (a microblock's
	// transactions each, not copied; a native payload is one run), or false while data is missing
	// (the mempool fetches it and the replica asks again after the next mempool event).
	Resolve(b *types.Block) ([][]types.Tx, bool)
	// Decided tells the mempool a block was committed (ordered), before its delivery, which may
	// wait for data, and before the blocks it orphaned are requeued.
	Decided(b *types.Block)
	// Committed tells the mempool a block was delivered: its payload is garbage now.
	Committed(b *types.Block)
	// Requeue returns the payload of an orphaned block to the mempool so it is proposed again.
	Requeue(b *types.Block)
	// SetView tells the mempool the replica's current view.
	SetView(v types.View)
	// DeliveredWindow lists what the mempool remembers of delivered payloads to refuse them again
	// (shared mempools: microblock IDs with their blocks' views, oldest first); state transfer
	// carries it.
	DeliveredWindow() []types.MBView
	// Synced tells the mempool that state transfer skipped delivery ahead: mbs is the snapshot's
	// delivered window and txDelivered reports the transactions delivered by then. What the
	// mempool holds of them is garbage now. It returns the own transactions it held that mbs
	// shows delivered (those of own microblocks in mbs): txDelivered's window may be too short
	// to name them, and they are never delivered here again.
	Synced(mbs []types.MBView, txDelivered func(types.Hash) bool) (delivered []types.Tx)
	// Restore gives a restarted replica's mempool the microblocks it kept (shared mempools).
	Restore(mbs []*types.MicroBlock)
	// Gauges reports sizes for statistics.
	Gauges() Gauges
}

// Gauges are a mempool's current sizes.
type Gauges struct {
	PendingTxs   int // own transactions waiting to be proposed (native) or batched (shared)
	PendingBytes int // bytes of own transactions held, counted against memsize
	InFlightTxs  int // own transactions on their way to commit
	// Shared mempools.
	Microblocks int           // microblocks known (held or referenced)
	PeerBytes   int           // bytes of other replicas' microblocks held
	Retained    int           // bytes of committed microblocks kept for replicas still fetching them
	Fetching    int           // microblocks being fetched
	Busy        bool          // load balancing: this replica forwards its microblocks
	Load        time.Duration // load balancing: the stable-time estimate
	Banned      int           // load balancing: proxies banned
}

// Memory is charged per item held, on top of its bytes, for what holding it costs beyond its
// bytes (IDs, map entries, queues): memsize and the peers' quotas count charged bytes, so that
// tiny transactions or microblocks cannot make a replica hold many times more memory than its
// configuration says.
const (
	TxOverhead = 128 // per transaction
	MBOverhead = 512 // per peer microblock, on top of its transactions
)

// txCost is what a transaction counts against memsize.
func txCost(t types.Tx) int { return t.Size() + TxOverhead }

// mbCost is what a peer's microblock counts against its creator's quota.
func mbCost(mb *types.MicroBlock) int { return mb.Bytes() + TxOverhead*len(mb.Txs) + MBOverhead }

// ErrFull is wrapped by AddTxs when accepting the transactions would exceed memsize.
var ErrFull = errors.New("mempool full")

// FullError says how full the mempool is.
type FullError struct {
	HeldBytes, AddBytes, Limit int
	// Backlog > 0: refused for backpressure, the uplink needs this long to drain (more than
	// MaxBacklog) and a full microblock already waits for it.
	Backlog, MaxBacklog time.Duration
}

func (e *FullError) Error() string {
	if e.Backlog > 0 {
		return fmt.Sprintf("mempool full: the uplink needs %v to send what waits on it (max_backlog %v) and a full microblock waits behind it", e.Backlog.Round(time.Millisecond), e.MaxBacklog)
	}
	return fmt.Sprintf("mempool full: holds %d bytes, batch adds %d, memsize is %d", e.HeldBytes, e.AddBytes, e.Limit)
}

// Unwrap makes errors.Is(err, ErrFull) true.
func (e *FullError) Unwrap() error { return ErrFull }
