package core

import (
	"maps"
	"slices"
	"time"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// State transfer lets a replica that is further behind than the others retain (committed blocks
// are kept for consensus.RetainBlocks heights, committed microblock data up to memsize bytes)
// skip ahead: it asks every peer for a snapshot of its delivered state (the certified block it
// delivered last, the chain digest and transaction count, the dedup window, the mempool's
// delivered window and the key-value store) and applies one as soon as f+1 peers sent identical
// ones, so at least one of them is honest. Honest replicas that delivered the same block are in
// the same state. A peer answers at once when no committed block waits for delivery there, with
// the state of the last block it delivered (replicas that stand still are all at that block), and
// right after its next checkpoint heights (multiples of SnapshotEvery), so that the answers of
// replicas that move on coincide.
//
// A replica asks when block sync gave up on a block that may lie above its committed head (no
// peer could send it), or when its delivery made no progress for stallChecks view timeouts with
// committed blocks waiting for data. It asks again every retryEvery view timeouts until it
// applies a snapshot, delivers again, or has asked maxRounds times.

// SnapshotEvery is the distance between checkpoint heights.
const SnapshotEvery = 64

// State transfer timing, in view timeouts.
const (
	stallChecks      = 10 // delivery stalled this long (with blocks waiting) → ask for a snapshot
	retryEvery       = 4  // ask again this often while no f+1 identical snapshots arrived
	maxRounds        = 10 // give up after this many rounds without progress (a later stall asks again)
	requestLifetime  = 40 // a peer's request is answered at its next two checkpoints within this
	snapshotsPerPeer = 2  // checkpoints a request is answered at
)

type stateTransfer struct {
	// Requester side.
	active     bool
	round      int
	lastHeight uint64
	offers     map[types.NodeID]offer
	// Responder side.
	pending  map[types.NodeID]*stateRequest
	accepted map[types.NodeID]time.Time // when each peer's last request was taken
	serve    *consensus.ServeLimiter
	// built is the last snapshot built, reused while the state is that of its block: a
	// request costs a copy of the whole delivered state only once per delivered block.
	built *types.Snapshot
	// Stall detection.
	stallHeight uint64
	syncs       uint64 // snapshots applied
}

type offer struct {
	snap *types.Snapshot
	key  types.Hash
}

type stateRequest struct {
	height uint64
	left   int
	until  time.Time
}

type (
	stallTimer struct{}
	retryTimer struct{ round int }
)

func newStateTransfer() stateTransfer {
	return stateTransfer{
		offers:   make(map[types.NodeID]offer),
		pending:  make(map[types.NodeID]*stateRequest),
		accepted: make(map[types.NodeID]time.Time),
		serve:    consensus.NewServeLimiter(consensus.DefaultServeRate, consensus.DefaultServeBurst),
	}
}

func (c *Core) coreTimer(after time.Duration, t consensus.Timer) {
	c.env.SetTimer(after, ownedTimer{owner: ownerCore, t: t})
}

func (c *Core) armStallCheck() { c.coreTimer(stallChecks*c.spec.Timeout, stallTimer{}) }

func (c *Core) onCoreTimer(t consensus.Timer) {
	switch t := t.(type) {
	case stallTimer:
		if len(c.queue) > 0 && c.height == c.st.stallHeight {
			c.startStateTransfer()
		}
		c.st.stallHeight = c.height
		c.armStallCheck()
	case retryTimer:
		c.retryStateTransfer(t.round)
	}
}

// startStateTransfer asks every peer for a snapshot, unless a request is under way.
func (c *Core) startStateTransfer() {
	if c.st.active {
		return
	}
	c.st.active, c.st.round, c.st.lastHeight = true, 0, c.height
	clear(c.st.offers)
	c.env.Broadcast(&types.StateRequest{Height: c.height})
	c.coreTimer(retryEvery*c.spec.Timeout, retryTimer{round: 0})
}

func (c *Core) retryStateTransfer(round int) {
	st := &c.st
	if !st.active || round != st.round {
		return
	}
	if c.height > st.lastHeight || st.round+1 >= maxRounds {
		st.active = false // delivering again (or no answer for long): stop asking
		clear(st.offers)
		return
	}
	st.round++
	c.env.Broadcast(&types.StateRequest{Height: c.height})
	c.coreTimer(retryEvery*c.spec.Timeout, retryTimer{round: st.round})
}

func (c *Core) onStateTransfer(from types.NodeID, m types.Message) {
	switch m := m.(type) {
	case *types.StateRequest:
		c.onStateRequest(from, m)
	case *types.Snapshot:
		c.onSnapshot(from, m)
	}
}

// onStateRequest remembers a peer that is behind; it gets a snapshot at this replica's next
// checkpoints, or now if this replica is at one.
//
// A peer's request is taken at most once per retry period of an honest requester, so a peer that
// asks again and again gets no more snapshots than one that is really behind.
func (c *Core) onStateRequest(from types.NodeID, r *types.StateRequest) {
	if from == c.env.Self() || r.Height >= c.height {
		return // this replica cannot help
	}
	now := c.env.Now()
	if last, ok := c.st.accepted[from]; ok && now.Sub(last) < (retryEvery-1)*c.spec.Timeout {
		return
	}
	c.st.accepted[from] = now
	c.st.pending[from] = &stateRequest{height: r.Height, left: snapshotsPerPeer + 1, until: now.Add(requestLifetime * c.spec.Timeout)}
	if len(c.queue) == 0 {
		// Nothing waits for delivery: the current state is a committed block's, answered now.
		// Replicas that stand still (they need the requester for a quorum) are at the same block
		// and their answers agree; replicas that move on answer again at the next checkpoints.
		c.answerRequests(c.lastDelivered, nil)
	}
}

// checkpoint answers pending requests right after b, a checkpoint height, was delivered.
func (c *Core) checkpoint(b *types.Block) {
	c.lastDelivered = b
	if c.st.built != nil && c.st.built.Block != b {
		c.st.built = nil // the state moved on: free the copy
	}
	if b.Height%SnapshotEvery != 0 || len(c.st.pending) == 0 {
		return
	}
	var next *types.Block
	if len(c.queue) > 0 {
		next = c.queue[0]
	}
	c.answerRequests(b, next)
}

func (c *Core) answerRequests(b, next *types.Block) {
	if b == nil {
		return
	}
	var snap *types.Snapshot
	size := 0
	now := c.env.Now()
	for _, p := range slices.Sorted(maps.Keys(c.st.pending)) {
		r := c.st.pending[p]
		if now.After(r.until) {
			delete(c.st.pending, p)
			continue
		}
		if r.height >= b.Height || !c.st.serve.Ready(p, now) {
			continue
		}
		if snap == nil {
			if c.st.built != nil && c.st.built.Block == b {
				snap = c.st.built // nothing was delivered since: the same state
			} else if snap = c.snapshot(b, next); snap == nil {
				return
			}
			c.st.built = snap
			size = types.WireSize(snap)
		}
		c.st.serve.Charge(p, size, now)
		c.env.Send(p, snap)
		if r.left--; r.left <= 0 {
			delete(c.st.pending, p)
		}
	}
}

// snapshot is this replica's state right after delivering b; nil when no certificate of b is at
// hand (the next block's QC certifies b too).
func (c *Core) snapshot(b, next *types.Block) *types.Snapshot {
	cert := c.engine.CertOf(b.ID())
	if cert == nil && next != nil && next.Parent == b.ID() {
		cert = next.QC
	}
	if cert == nil || cert.BlockID != b.ID() {
		return nil
	}
	prev, cur := c.delivered.export()
	return &types.Snapshot{
		Block:     b,
		Cert:      cert,
		Digest:    c.digest,
		Delivered: c.txCount,
		TxPrev:    prev,
		TxCur:     cur,
		MBs:       c.mp.DeliveredWindow(),
		KV:        c.kv.export(),
	}
}

// onSnapshot keeps the latest plausible snapshot of each peer and applies one once f+1 peers sent
// identical ones.
func (c *Core) onSnapshot(from types.NodeID, s *types.Snapshot) {
	if !c.st.active || from == c.env.Self() {
		return // unsolicited
	}
	b := s.Block
	if b.Height <= c.height || s.Cert.BlockID != b.ID() {
		return
	}
	if err := consensus.VerifyQC(c.env.Verifier(), s.Cert); err != nil {
		c.obs.Event(consensus.Rejected{Kind: types.KindSnapshot, From: from, Rule: consensus.RuleCert, Detail: err.Error()})
		return
	}
	key := s.ContentKey()
	c.st.offers[from] = offer{snap: s, key: key}
	agree := 0
	for _, o := range c.st.offers {
		if o.key == key {
			agree++
		}
	}
	if agree > config.Faults(c.env.N()) {
		c.applySnapshot(s)
	}
}

// applySnapshot skips delivery to the snapshot's block: the dedup state, the chain digest and the
// mempool's window are the snapshot's; committed blocks up to it are dropped; client waiters of
// transactions it covers (its dedup window, and own microblocks of its microblock window) are
// told; the engine makes the block its head if it was behind.
func (c *Core) applySnapshot(s *types.Snapshot) {
	b := s.Block
	from, fromTxs := c.height, c.txCount
	for len(c.queue) > 0 && c.queue[0].Height <= b.Height {
		c.queue[0] = nil
		c.queue = c.queue[1:]
	}
	c.height, c.digest, c.txCount = b.Height, s.Digest, s.Delivered
	c.lastDelivered = b
	c.kv.restore(s.KV)
	info := CommitInfo{View: b.View, Height: b.Height, Block: b.ID()}
	c.delivered.restore(s.TxPrev, s.TxCur, &info)
	// A local transaction is answered when the snapshot's dedup window names it, or when it was
	// in an own microblock of the snapshot's microblock window: delivered, but perhaps longer ago
	// than the dedup window reaches, and never delivered here again.
	var inMBs map[types.Hash]bool
	if txs := c.mp.Synced(s.MBs, c.delivered.Has); len(txs) > 0 {
		inMBs = make(map[types.Hash]bool, len(txs))
		for _, t := range txs {
			inMBs[t.ID()] = true
		}
	}
	for _, id := range slices.SortedFunc(maps.Keys(c.local.m), types.CompareHash) {
		if !c.delivered.Has(id) && !inMBs[id] {
			continue
		}
		for _, w := range c.local.get(id).waiters {
			w.info = info
			if w.remaining--; w.remaining == 0 {
				c.notify(w, info)
			}
		}
		c.local.remove(id)
	}
	if c.store != nil {
		c.store.Stage(OpReset{State: &Saved{Head: b, HeadCert: s.Cert, Height: c.height, Digest: c.digest, TxCount: c.txCount,
			Dedup: c.delivered, KV: c.kv, Window: s.MBs}})
	}
	c.st.active, c.st.syncs = false, c.st.syncs+1
	clear(c.st.offers)
	// Reported before the engine moves: moving may commit and deliver the blocks that waited for
	// the new head at once, and those come after the snapshot.
	c.obs.Event(consensus.StateSynced{From: from, To: b.Height, Block: b.ID(), Digest: s.Digest, SkippedTxs: s.Delivered - min(fromTxs, s.Delivered)})
	c.engine.SyncTo(b, s.Cert)
	c.dirty = true
}
