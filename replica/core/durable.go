package core

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/mempool"
	"github.com/stratusbft/stratus/types"
)

// checkSaved verifies the certificates a store holds against this cluster's keys: they were
// verified before they were kept, but a store can be copied from another cluster or another key
// set, and a lock or head that does not verify would be trusted blindly.
func checkSaved(ver crypto.Verifier, saved *Saved) error {
	if v := saved.Voting; v != nil && v.Lock != nil {
		if err := consensus.VerifyQC(ver, v.Lock); err != nil {
			return fmt.Errorf("replica: the saved lock does not verify with this cluster's keys: %w", err)
		}
	}
	if saved.HeadCert != nil {
		if err := consensus.VerifyQC(ver, saved.HeadCert); err != nil {
			return fmt.Errorf("replica: the certificate of the saved head (height %d) does not verify: %w", saved.Height, err)
		}
	}
	for _, id := range slices.SortedFunc(maps.Keys(saved.Blocks), types.CompareHash) {
		if err := consensus.VerifyQC(ver, saved.Blocks[id].Cert); err != nil {
			return fmt.Errorf("replica: the certificate of saved block %v does not verify: %w", id, err)
		}
	}
	return nil
}

// recover takes back the delivered state a store holds and returns the engine's part of it.
func (c *Core) recover(saved *Saved) *consensus.Recovered {
	if saved.Dedup != nil {
		saved.Dedup.size = c.delivered.size
		c.delivered = saved.Dedup
	}
	if saved.KV != nil {
		c.kv = saved.KV
	}
	c.height, c.digest, c.txCount = saved.Height, saved.Digest, saved.TxCount
	if saved.Head != nil {
		c.lastDelivered = saved.Head
	}
	var floor types.View
	if saved.Head != nil && saved.Head.View > mempool.StaleViews {
		floor = saved.Head.View - mempool.StaleViews
	}
	window := pruneWindow(slices.Clone(saved.Window), floor)
	slices.SortStableFunc(window, func(a, b types.MBView) int { return cmp.Compare(a.View, b.View) })
	c.mp.Synced(window, c.delivered.Has)
	mbs := slices.SortedFunc(maps.Values(saved.MBs), func(a, b *types.MicroBlock) int { return types.CompareHash(a.ID, b.ID) })
	c.mp.Restore(mbs)

	rec := &consensus.Recovered{Head: saved.Head, HeadCert: saved.HeadCert}
	for _, id := range slices.SortedFunc(maps.Keys(saved.Blocks), types.CompareHash) {
		cb := saved.Blocks[id]
		if cb.Block.Height <= c.height {
			c.store.Stage(OpDropBlock{ID: id}) // delivered before the crash
			continue
		}
		rec.Certified = append(rec.Certified, cb)
	}
	c.restored = &Restored{
		Height: c.height, Digest: c.digest, TxCount: c.txCount, Certified: len(rec.Certified),
		Microblocks: len(mbs), KVKeys: len(c.kv.m),
	}
	if saved.Voting != nil {
		c.restored.VotedView = saved.Voting.LastVoted
	}
	return rec
}

// Restored reports what this Core recovered from its store; nil for a fresh start.
func (c *Core) Restored() *Restored { return c.restored }

// HoldMB implements mempool.Keeper.
func (c *Core) HoldMB(mb *types.MicroBlock) { c.store.Stage(OpMB{MB: mb}) }

// DropMB implements mempool.Keeper.
func (c *Core) DropMB(id types.Hash) { c.store.Stage(OpDropMB{ID: id}) }

// Flush makes what the last steps changed durable and then tells the clients waiting for the
// transactions those steps delivered. A driver calls it after every step, or after a few steps in
// a row, and holds the steps' outgoing messages until it returns: when it fails, the replica must
// stop (it crashed, as far as the others know) and those messages must not leave.
func (c *Core) Flush() error {
	if c.store == nil {
		return nil
	}
	if c.storeErr != nil {
		return c.storeErr
	}
	if err := c.store.Sync(); err != nil {
		c.storeErr = err
		c.acks = nil
		return err
	}
	tell(c.acks)
	c.acks = c.acks[:0]
	return nil
}

// tell lets the waiters of a durable batch know, and forgets them.
func tell(acks []ack) {
	for i, a := range acks {
		a.w.done(a.info)
		acks[i] = ack{}
	}
}

// FlushLater is Flush for a driver that overlaps the disk with the next steps: with a
// SealingStore it returns the function that makes the steps' changes durable (run it off the
// event loop, in order with the earlier ones) and done, which tells the waiting clients (call it
// on the event loop once commit returned nil). With another store it flushes at once and both
// are nil.
func (c *Core) FlushLater() (commit func(sync bool) error, done func(), err error) {
	ss, ok := c.store.(SealingStore)
	if !ok {
		return nil, nil, c.Flush()
	}
	if c.storeErr != nil {
		return nil, nil, c.storeErr
	}
	acks := c.acks
	c.acks = nil
	return ss.Seal(), func() { tell(acks) }, nil
}

// Unflushed reports whether the steps since the last flush left changes or waiters behind.
func (c *Core) Unflushed() bool {
	if len(c.acks) > 0 {
		return true
	}
	p, ok := c.store.(interface{ Pending() bool })
	return ok && p.Pending()
}

// notify tells a waiter that its transactions were delivered: at once without a store, else at
// the next Flush.
func (c *Core) notify(w *Waiter, info CommitInfo) {
	if c.store == nil {
		w.done(info)
		return
	}
	c.acks = append(c.acks, ack{w: w, info: info})
}

// certFor is a certificate of b, a block being delivered: the engine's, or the QC of the next
// committed block when it extends b.
func (c *Core) certFor(b *types.Block) *types.QC {
	if qc := c.engine.CertOf(b.ID()); qc != nil {
		return qc
	}
	if len(c.queue) > 1 && c.queue[1].Parent == b.ID() {
		return c.queue[1].QC
	}
	return nil
}

// stageDelivery records block b's delivery in the store.
func (c *Core) stageDelivery(b *types.Block, segs []DedupSegment, kv []KVWrite) {
	op := OpDeliver{Head: b, Cert: c.certFor(b), Height: c.height, Digest: c.digest, TxCount: c.txCount, Segments: segs, KV: kv}
	for _, r := range b.Payload.Refs {
		op.Window = append(op.Window, types.MBView{ID: r.ID, View: b.View})
	}
	if b.View > mempool.StaleViews {
		op.WindowFloor = b.View - mempool.StaleViews
	}
	c.store.Stage(OpDropBlock{ID: b.ID()})
	c.store.Stage(op)
}

// DiskStore is a Store on disk (the driver's PebbleStore), which the gauges name and size.
type DiskStore interface {
	Store
	Kind() string     // what /query calls the store: "pebble"
	DiskBytes() int64 // the store's size on disk
}

func storeKind(s Store) string {
	switch s := s.(type) {
	case nil:
		return ""
	case DiskStore:
		return s.Kind()
	}
	return "memory"
}

func storeBytes(s Store) int64 {
	if d, ok := s.(DiskStore); ok {
		return d.DiskBytes()
	}
	return 0
}
