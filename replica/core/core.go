package core

import (
	"fmt"
	"time"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/hotstuff"
	"github.com/stratusbft/stratus/mempool"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/streamlet"
	"github.com/stratusbft/stratus/types"
)

// Observer receives what a Core does, for statistics. digest is the chain digest after b: a
// running hash over the IDs of the delivered blocks, in order.
type Observer interface {
	Event(e consensus.Event)
	Delivered(b *types.Block, txs, dups int, latencies []time.Duration, digest types.Hash)
}

// Adversary is a Byzantine strategy around an honest Core: through the Env it wraps it sees, and
// may change, delay or drop, everything the engine, the mempool and the Core send; Receive sees
// every message before the Core (false: the Core never sees it); timers the adversary sets on the
// inner Env come back to OnTimer. Honest code knows nothing of it.
type Adversary interface {
	Env(inner consensus.Env) consensus.Env
	Receive(from types.NodeID, m types.Message) bool
	OnTimer(t consensus.Timer)
	Start()
}

// CoreOptions are what a Core may get beyond its Spec.
type CoreOptions struct {
	// Adversary makes this replica Byzantine (nil: honest).
	Adversary Adversary
	// Restore is the voting state saved before a crash; Persist is called before every vote with
	// the state to save (nil: nothing is saved).
	Restore *consensus.VotingState
	Persist func(consensus.VotingState) error
	// Engine replaces the engine the Spec names; tests use it for deliberately broken variants.
	Engine func(consensus.Params) consensus.Engine
	// Store keeps what the replica must not lose in a crash (see Store); a restarted Core starts
	// from what it holds. Restore and Persist are not needed with it. nil: nothing is kept.
	Store Store
	// DedupMemory gives the dedup window its memory, sized for the whole window from the start
	// (see DedupMemory). nil: Go's heap, grown as the window fills, as the simulator's thousands of
	// replicas need.
	DedupMemory DedupMemory
}

// TxObserver is an Observer that also wants the transactions each delivered block contributed
// (duplicates excluded), in delivery order. Checkers use it; statistics do not pay for it.
type TxObserver interface {
	Observer
	DeliveredTxs(b *types.Block, txs []types.Tx)
}

// CommitInfo tells a waiting client where its last transaction was delivered.
type CommitInfo struct {
	View   types.View
	Height uint64
	Block  types.Hash
}

// Waiter is notified once every transaction of a submission is delivered at this replica.
type Waiter struct {
	remaining int
	info      CommitInfo
	done      func(CommitInfo)
}

// NewWaiter returns a waiter that calls done (from the event loop; it must not block).
func NewWaiter(done func(CommitInfo)) *Waiter { return &Waiter{done: done} }

// Core is one replica's protocol state: engine, mempool, and delivery. It is not safe for
// concurrent use; a driver calls it from one goroutine.
type Core struct {
	env       consensus.Env // what the Core sends through: the adversary's Env on a Byzantine replica
	spec      Spec
	engine    consensus.Engine
	mp        mempool.Mempool
	adv       Adversary
	obs       Observer
	txObs     TxObserver     // obs, when it wants transactions
	queue     []*types.Block // committed, waiting for data to be delivered in order
	delivered *DedupWindow
	local     localTxs
	inBatch   map[types.Hash]struct{} // reused by SubmitTxs (batchIDs)
	dirty     bool                    // the mempool changed since the engine last heard of it

	height        uint64       // height of the last delivered block
	lastDelivered *types.Block // that block
	digest        types.Hash   // chain digest after it
	txCount       uint64       // transactions delivered
	kv            *KVStore     // the key-value store on the delivered transactions
	st            stateTransfer

	store    Store     // nil: nothing survives a crash
	journal  bool      // the store wants dedup and key-value changes spelt out
	acks     []ack     // waiters whose transactions were delivered, told at the next Flush
	storeErr error     // the store failed: nothing more is acknowledged
	restored *Restored // what this Core started from, for the driver and the checker
}

// ack is a waiter to tell once the delivery is durable.
type ack struct {
	w    *Waiter
	info CommitInfo
}

// Restored describes the state a restarted Core recovered from its store.
type Restored struct {
	Height      uint64
	Digest      types.Hash
	TxCount     uint64
	VotedView   types.View
	Certified   int // certified blocks above the head taken back
	Microblocks int
	KVKeys      int
}

// Owners of timers, so that a fired timer reaches the component that set it.
const (
	ownerEngine uint8 = iota
	ownerMempool
	ownerCore
)

// ownedTimer is what a Core's components' timers look like to the driver.
type ownedTimer struct {
	owner uint8
	t     consensus.Timer
}

type ownedEnv struct {
	consensus.Env
	owner uint8
}

func (o ownedEnv) SetTimer(d time.Duration, t consensus.Timer) {
	o.Env.SetTimer(d, ownedTimer{owner: o.owner, t: t})
}

// Spec says which protocol a Core runs.
type Spec struct {
	Engine         string // hotstuff | streamlet
	MemType        string // native | smp | stratus (config.Mem*, aliases resolved)
	Master         types.NodeID
	Timeout        time.Duration
	ProposeTimeout time.Duration
	BSize          int
	MemSize        int
	DedupWindow    int // delivered transaction IDs remembered to drop duplicates (per generation)
	// Shared configures the smp and stratus mempools (BSize and MemSize come from above).
	Shared mempool.SharedConfig
}

// NewCore builds an honest core. obs may be nil.
func NewCore(env consensus.Env, spec Spec, obs Observer) (*Core, error) {
	return NewCoreWith(env, spec, obs, CoreOptions{})
}

// NewCoreWith builds a core with options: an adversary, a restored voting state.
func NewCoreWith(env consensus.Env, spec Spec, obs Observer, opts CoreOptions) (*Core, error) {
	c := &Core{
		spec:      spec,
		adv:       opts.Adversary,
		obs:       obs,
		delivered: newDedupWindow(max(spec.DedupWindow, 1024), opts.DedupMemory),
		local:     newLocalTxs(),
		kv:        NewKVStore(),
		store:     opts.Store,
	}
	var saved *Saved
	restore, persist := opts.Restore, opts.Persist
	if c.store != nil {
		var err error
		if saved, err = c.store.Load(); err != nil {
			return nil, err
		}
		if saved != nil {
			if err := checkSaved(env.Verifier(), saved); err != nil {
				return nil, err
			}
		}
		c.journal = c.store.Journal()
		if saved != nil && saved.Voting != nil {
			restore = saved.Voting
		}
		persist = func(v consensus.VotingState) error {
			c.store.Stage(OpVoting{State: v})
			if opts.Persist != nil {
				return opts.Persist(v)
			}
			return nil
		}
	}
	if c.adv != nil {
		env = c.adv.Env(env)
	}
	c.env = env
	c.st = newStateTransfer()
	if c.obs == nil {
		c.obs = NopObserver{}
	}
	c.txObs, _ = c.obs.(TxObserver)
	menv := ownedEnv{Env: env, owner: ownerMempool}
	switch spec.MemType {
	case config.MemNative:
		c.mp = mempool.NewNative(menv, mempool.NativeConfig{
			BSize: spec.BSize, MemSize: spec.MemSize, Master: spec.Master, Retry: 2 * spec.Timeout,
		})
	case config.MemSMP, config.MemStratus:
		sc := spec.Shared
		sc.PAB = spec.MemType == "stratus"
		sc.BSize, sc.MemSize, sc.Master = spec.BSize, spec.MemSize, spec.Master
		sc.Events = c.obs.Event
		if c.store != nil {
			sc.Keep = c
		}
		c.mp = mempool.NewShared(menv, sc)
	default:
		return nil, fmt.Errorf("replica: mempool %q is not available", spec.MemType)
	}
	p := consensus.Params{
		Env:            ownedEnv{Env: env, owner: ownerEngine},
		Mempool:        c.mp,
		Out:            c,
		Leaders:        consensus.NewLeaderElection(int(spec.Master), env.N()),
		Timeout:        spec.Timeout,
		ProposeTimeout: spec.ProposeTimeout,
		Restore:        restore,
		Persist:        persist,
	}
	if c.store != nil {
		p.Certified = func(b *types.Block, qc *types.QC) {
			c.store.Stage(OpBlock{consensus.CertifiedBlock{Block: b, Cert: qc}})
		}
		if saved != nil {
			p.Recovered = c.recover(saved)
		}
		c.store.Adopt(c.delivered, c.kv)
	}
	switch {
	case opts.Engine != nil:
		c.engine = opts.Engine(p)
	case spec.Engine == "hotstuff":
		c.engine = hotstuff.New(p)
	case spec.Engine == "streamlet":
		c.engine = streamlet.New(p)
	default:
		return nil, fmt.Errorf("replica: engine %q is not one of hotstuff, streamlet", spec.Engine)
	}
	return c, nil
}

// Start starts the engine (and the adversary of a Byzantine replica).
func (c *Core) Start() {
	if c.adv != nil {
		c.adv.Start()
	}
	c.engine.Start()
	c.armStallCheck()
	c.settle()
}

// Delivered reports the height of the last delivered block, the chain digest after it and the
// number of transactions delivered.
func (c *Core) Delivered() (height uint64, digest types.Hash, txs uint64) {
	return c.height, c.digest, c.txCount
}

// Status is the engine's position.
func (c *Core) Status() consensus.Status { return c.engine.Status() }

// Gauges reports sizes for statistics.
func (c *Core) Gauges() stats.Gauges {
	g := c.mp.Gauges()
	return stats.Gauges{
		MempoolTxs:      g.PendingTxs,
		MempoolBytes:    g.PendingBytes,
		InFlightTxs:     g.InFlightTxs,
		DeliveryBacklog: len(c.queue),
		LocalWaiting:    c.local.len(),
		Microblocks:     g.Microblocks,
		PeerBytes:       g.PeerBytes,
		RetainedBytes:   g.Retained,
		Fetching:        g.Fetching,
		Banned:          g.Banned,
		Busy:            g.Busy,
		Load:            g.Load,
		StoreKind:       storeKind(c.store),
		StoreBytes:      storeBytes(c.store),
	}
}

// Handle processes a message that passed structural and signature pre-checks.
func (c *Core) Handle(from types.NodeID, m types.Message) {
	if c.adv != nil && !c.adv.Receive(from, m) {
		return
	}
	switch k := m.Kind(); {
	case k.IsConsensus():
		c.engine.OnMessage(from, m)
	case k.IsStateTransfer():
		c.onStateTransfer(from, m)
	default:
		c.mp.OnMessage(from, m)
		c.dirty = true
	}
	c.settle()
}

// Timer processes a fired timer.
func (c *Core) Timer(t consensus.Timer) {
	ot, ok := t.(ownedTimer)
	if !ok {
		if c.adv != nil {
			c.adv.OnTimer(t)
			c.settle()
		}
		return
	}
	switch ot.owner {
	case ownerEngine:
		c.engine.OnTimer(ot.t)
	case ownerMempool:
		c.mp.OnTimer(ot.t)
		c.dirty = true
	case ownerCore:
		c.onCoreTimer(ot.t)
	}
	c.settle()
}

// Submit takes client transactions; see SubmitTxs.
func (c *Core) Submit(txs []types.Tx, w *Waiter) error {
	_, err := c.SubmitTxs(txs, w)
	return err
}

// SubmitTxs takes client transactions and reports how many of them were duplicates: already
// delivered here (within the dedup window), pending here (accepted and not yet delivered), or
// earlier in txs. Duplicates are not added again; the copy already accepted is the one delivered.
// On error nothing is kept. w, if not nil, is notified when all of txs, duplicates included, are
// delivered here (at once if they already were), with the commit of the last of them.
func (c *Core) SubmitTxs(txs []types.Tx, w *Waiter) (dups int, err error) {
	fresh := make([]types.Tx, 0, len(txs))
	var inBatch map[types.Hash]struct{} // IDs of fresh, when txs could repeat one
	if len(txs) > 1 {
		inBatch = c.batchIDs()
		defer c.doneBatchIDs(inBatch)
	}
	var pending []int // with a waiter: the indices in txs of transactions pending here already
	for i, t := range txs {
		if i%warmAhead == 0 {
			c.delivered.warm(txs[i:min(i+warmAhead, len(txs))])
		}
		id := t.ID()
		if info, ok := c.delivered.Get(id); ok {
			dups++
			if w != nil && info.Height > w.info.Height {
				w.info = info
			}
			continue
		}
		if c.local.get(id) != nil {
			dups++
			if w != nil {
				pending = append(pending, i)
			}
			continue
		}
		if inBatch != nil {
			if _, ok := inBatch[id]; ok {
				dups++
				continue
			}
			inBatch[id] = struct{}{}
		}
		fresh = append(fresh, t)
	}
	if len(fresh) > 0 {
		if err := c.mp.AddTxs(fresh); err != nil {
			return 0, err
		}
		// The transactions new here share one entry: they were received together and wait for
		// the same waiter, and an entry each (with its own list of one waiter) was three
		// quarters of the objects server -sim allocated at N=4. An entry is therefore never
		// changed in place: a duplicate that adds a waiter replaces its transaction's entry
		// with a copy.
		shared := &localTx{recv: c.env.Now()}
		if w != nil {
			shared.waiters = []*Waiter{w}
			w.remaining += len(fresh)
		}
		for _, t := range fresh {
			c.local.put(t.ID(), shared)
		}
	}
	// Every pending transaction of txs, fresh or duplicate, holds the waiter once.
	for _, i := range pending {
		id := txs[i].ID()
		l := c.local.get(id)
		n := len(l.waiters)
		if n > 0 && l.waiters[n-1] == w {
			continue // repeated in txs
		}
		c.local.replace(id, &localTx{recv: l.recv, waiters: append(l.waiters[:n:n], w)})
		w.remaining++
	}
	if w != nil && w.remaining == 0 {
		w.done(w.info)
	}
	c.dirty = len(fresh) > 0 || c.dirty
	c.settle()
	return dups, nil
}

// batchIDs returns an empty set for the IDs of a submitted batch: one map reused from batch to
// batch (a map made per batch was 1 % of server -sim's CPU at N=4).
func (c *Core) batchIDs() map[types.Hash]struct{} {
	if c.inBatch == nil {
		c.inBatch = make(map[types.Hash]struct{})
	}
	return c.inBatch
}

// doneBatchIDs empties the set batchIDs returned, or lets it go when a large batch grew it: a
// cleared map keeps its size, and clearing costs that much.
func (c *Core) doneBatchIDs(m map[types.Hash]struct{}) {
	if len(m) > maxReusedBatchIDs {
		c.inBatch = nil
		return
	}
	clear(m)
}

const maxReusedBatchIDs = 4096

// settle lets the engine react to mempool changes and delivers what can be delivered.
func (c *Core) settle() {
	for c.dirty {
		c.dirty = false
		c.engine.OnMempool()
		c.drain()
	}
}

// Commit implements consensus.Output.
func (c *Core) Commit(b *types.Block) {
	if b.Height <= c.height {
		return // state transfer delivered it already
	}
	c.mp.Decided(b)
	c.queue = append(c.queue, b)
	c.obs.Event(consensus.Committed{Block: b})
	c.drain()
}

// Orphan implements consensus.Output: the payload goes back to the mempool.
func (c *Core) Orphan(b *types.Block) {
	if c.store != nil {
		c.store.Stage(OpDropBlock{ID: b.ID()})
	}
	c.mp.Requeue(b)
	c.dirty = true
}

// Event implements consensus.Output.
func (c *Core) Event(e consensus.Event) {
	switch e := e.(type) {
	case consensus.ViewChange:
		c.mp.SetView(e.View)
	case consensus.SyncFailed:
		c.startStateTransfer()
	}
	c.obs.Event(e)
}

// drain delivers committed blocks in order while their data is present.
func (c *Core) drain() {
	for len(c.queue) > 0 {
		b := c.queue[0]
		runs, ok := c.mp.Resolve(b)
		if !ok {
			return
		}
		c.deliver(b, runs)
		c.mp.Committed(b)
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.dirty = true
		c.checkpoint(b)
	}
}

// deliver delivers block b, whose transactions are runs, in order.
func (c *Core) deliver(b *types.Block, runs [][]types.Tx) {
	now := c.env.Now()
	info := CommitInfo{View: b.View, Height: b.Height, Block: b.ID()}
	shared := &info // what the dedup window remembers of b's transactions
	var lat []time.Duration
	var freshTxs []types.Tx
	var segs []DedupSegment
	var writes []KVWrite
	fresh, dups := 0, 0
	left := 0 // the block's transactions not yet looked at: what the slices below are sized for
	for _, txs := range runs {
		left += len(txs)
	}
	if c.txObs != nil {
		freshTxs = make([]types.Tx, 0, left) // grown by append, it was a tenth of a large simulation
	}
	for _, txs := range runs {
		for i, t := range txs {
			if i%warmAhead == 0 {
				c.delivered.warm(txs[i:min(i+warmAhead, len(txs))])
			}
			left--
			id := t.ID()
			if !c.delivered.add(id, shared) {
				dups++
				continue
			}
			key, e, wrote := c.kv.apply(t, b.Height)
			if c.journal {
				if n := len(segs); n == 0 || segs[n-1].Gen != c.delivered.gen {
					segs = append(segs, DedupSegment{Gen: c.delivered.gen, Info: info, IDs: make([]types.Hash, 0, left+1)})
				}
				segs[len(segs)-1].IDs = append(segs[len(segs)-1].IDs, id)
				if wrote {
					writes = append(writes, KVWrite{Key: key, Entry: e})
				}
			}
			fresh++
			if c.txObs != nil {
				freshTxs = append(freshTxs, t)
			}
			l := c.local.get(id)
			if l == nil {
				continue
			}
			c.local.remove(id)
			lat = append(lat, now.Sub(l.recv))
			for _, w := range l.waiters {
				w.info = info
				if w.remaining--; w.remaining == 0 {
					c.notify(w, info)
				}
			}
		}
	}
	c.height = b.Height
	c.digest = types.ChainDigest(c.digest, b.ID())
	c.txCount += uint64(fresh)
	if c.store != nil {
		c.stageDelivery(b, segs, writes)
	}
	c.obs.Delivered(b, fresh, dups, lat, c.digest)
	if c.txObs != nil {
		c.txObs.DeliveredTxs(b, freshTxs)
	}
}

// NopObserver observes nothing: the Observer of a Core given none.
type NopObserver struct{}

func (NopObserver) Event(consensus.Event)                                         {}
func (NopObserver) Delivered(*types.Block, int, int, []time.Duration, types.Hash) {}
