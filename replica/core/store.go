package core

import (
	"maps"
	"slices"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// A replica keeps in its Store what it must not lose in a crash:
//
//   - its voting state (the last view it voted in, HotStuff's lock), so it never votes twice in a
//     view nor against its lock;
//   - every block above its delivered head it holds a certificate for, with the certificate:
//     Streamlet's notarized chain (a replica that forgot a notarized chain it knew when it voted
//     could vote for a shorter conflicting one), HotStuff's locked block and the blocks committed
//     but not yet delivered;
//   - its delivered state: the last delivered block with a certificate, the height, the chain
//     digest, the number of transactions delivered, the dedup window (with the commit that
//     delivered each transaction) and the key-value store;
//   - the shared mempool's microblocks: those it holds (it acked them: it promised their
//     availability) and the delivered ones it retains, and the delivered window that refuses
//     re-proposals.
//
// A Core stages its changes in the store as it makes them and the driver flushes after each step
// (a message, a timer, a submission), or with a store on disk after a batch of up to 64 steps
// whose commit a goroutine beside the event loop runs (SealingStore, Core.FlushLater): the store
// syncs what was staged, then the Core tells waiting clients their transactions committed. A
// driver with a durable store holds back the steps' outgoing messages until the flush: no vote,
// ack or answer leaves that a crash could make the replica forget.
type Store interface {
	// Load returns what was saved; nil when nothing was (a fresh replica).
	Load() (*Saved, error)
	// Stage records a change; nothing is durable before Sync.
	Stage(op StoreOp)
	// Sync makes every staged change durable, all of them or none.
	Sync() error
	// Journal reports whether the store needs the dedup and key-value changes spelt out in each
	// delivery (a memory store keeps the replica's own structures instead).
	Journal() bool
	// Adopt gives a memory store the live dedup window and key-value store of a Core, which it
	// hands to the next incarnation; journaling stores ignore it.
	Adopt(dedup *DedupWindow, kv *KVStore)
	// Close releases the store.
	Close() error
}

// SealingStore is a Store that can commit in the background: Seal takes the staged changes out
// of the store's way (the next steps stage into a fresh batch) and returns the function that
// writes them. commit(true) makes the batch durable, and with it every batch written before it;
// commit(false) writes it without waiting for the disk (a crash may lose it, and then every
// batch written after it too). A driver runs the returned functions in order, on one goroutine of
// its own, while its event loop goes on, and lets a batch's messages leave once a commit(true)
// at or after it returned: batches that wait together share one sync (group commit).
type SealingStore interface {
	Store
	Seal() (commit func(sync bool) error)
}

// Saved is a replica's saved state.
type Saved struct {
	Voting   *consensus.VotingState
	Head     *types.Block // the last delivered block; nil: none yet
	HeadCert *types.QC
	Height   uint64
	Digest   types.Hash
	TxCount  uint64
	Dedup    *DedupWindow
	KV       *KVStore
	Window   []types.MBView // delivered microblocks with their blocks' views, oldest first
	Blocks   map[types.Hash]consensus.CertifiedBlock
	MBs      map[types.Hash]*types.MicroBlock
}

// StoreOp is one staged change.
type StoreOp interface{ storeOp() }

// Store operations.
type (
	// OpVoting saves the voting state.
	OpVoting struct{ State consensus.VotingState }
	// OpBlock keeps a certified block; OpDropBlock forgets one (delivered, or orphaned).
	OpBlock     struct{ consensus.CertifiedBlock }
	OpDropBlock struct{ ID types.Hash }
	// OpMB keeps a microblock; OpDropMB forgets one.
	OpMB     struct{ MB *types.MicroBlock }
	OpDropMB struct{ ID types.Hash }
	// OpDeliver records a delivered block: the new head, and (journaling stores) the dedup
	// segments and key-value writes it made. Window lists its newly delivered microblocks;
	// entries of views below WindowFloor are forgotten.
	OpDeliver struct {
		Head        *types.Block
		Cert        *types.QC
		Height      uint64
		Digest      types.Hash
		TxCount     uint64
		Segments    []DedupSegment
		KV          []KVWrite
		Window      []types.MBView
		WindowFloor types.View
	}
	// OpReset replaces the delivered state (state transfer): head, dedup window, key-value store
	// and delivered window are the snapshot's.
	OpReset struct{ State *Saved }
)

// DedupSegment is a run of transaction IDs that one block delivered into one dedup generation.
type DedupSegment struct {
	Gen  uint64
	Info CommitInfo
	IDs  []types.Hash
}

// KVWrite is one key-value write of a delivered block.
type KVWrite struct {
	Key   string
	Entry KVEntry
}

func (OpVoting) storeOp()    {}
func (OpBlock) storeOp()     {}
func (OpDropBlock) storeOp() {}
func (OpMB) storeOp()        {}
func (OpDropMB) storeOp()    {}
func (OpDeliver) storeOp()   {}
func (OpReset) storeOp()     {}

// MemStore keeps a replica's state in memory: it survives a crash of the replica inside its
// process (the in-process cluster, the simulator), not of the process. A step's changes apply
// at once; Sync has nothing to do.
type MemStore struct {
	s       Saved
	written bool
}

// NewMemStore returns an empty memory store.
func NewMemStore() *MemStore {
	return &MemStore{s: Saved{Blocks: make(map[types.Hash]consensus.CertifiedBlock), MBs: make(map[types.Hash]*types.MicroBlock)}}
}

// Load implements Store.
func (m *MemStore) Load() (*Saved, error) {
	if !m.written {
		return nil, nil
	}
	s := m.s
	s.Blocks = maps.Clone(m.s.Blocks)
	s.MBs = maps.Clone(m.s.MBs)
	s.Window = slices.Clone(m.s.Window)
	return &s, nil
}

// Journal implements Store.
func (m *MemStore) Journal() bool { return false }

// Adopt implements Store.
func (m *MemStore) Adopt(dedup *DedupWindow, kv *KVStore) {
	m.s.Dedup, m.s.KV = dedup, kv
	m.written = true
}

// Stage implements Store.
func (m *MemStore) Stage(op StoreOp) {
	m.written = true
	switch o := op.(type) {
	case OpVoting:
		v := o.State
		m.s.Voting = &v
	case OpBlock:
		m.s.Blocks[o.Block.ID()] = o.CertifiedBlock
	case OpDropBlock:
		delete(m.s.Blocks, o.ID)
	case OpMB:
		m.s.MBs[o.MB.ID] = o.MB
	case OpDropMB:
		delete(m.s.MBs, o.ID)
	case OpDeliver:
		m.s.Head, m.s.HeadCert, m.s.Height, m.s.Digest, m.s.TxCount = o.Head, o.Cert, o.Height, o.Digest, o.TxCount
		m.s.Window = pruneWindow(append(m.s.Window, o.Window...), o.WindowFloor)
	case OpReset:
		r := o.State
		m.s.Head, m.s.HeadCert, m.s.Height, m.s.Digest, m.s.TxCount = r.Head, r.HeadCert, r.Height, r.Digest, r.TxCount
		m.s.Window = slices.Clone(r.Window)
	}
}

// pruneWindow drops the entries of views below floor from a list sorted by view.
func pruneWindow(w []types.MBView, floor types.View) []types.MBView {
	i := 0
	for i < len(w) && w[i].View < floor {
		i++
	}
	return w[i:] // the next append that grows it copies only what is left
}

// Sync implements Store.
func (m *MemStore) Sync() error { return nil }

// Close implements Store.
func (m *MemStore) Close() error { return nil }
