package mempool

import (
	"fmt"
	"time"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/internal/fifo"
	"github.com/stratusbft/stratus/types"
)

// StaleViews bounds how old a microblock may be: replicas ack only microblocks whose epoch (the
// creator's view when it cut them) is within StaleViews of their own view, and refuse proposals
// referring to older ones. Committed microblock IDs are remembered for as long, so a Byzantine
// leader can replay neither a committed microblock (refused as committed) nor one whose data was
// garbage-collected everywhere (refused as stale). A creator re-issues an own microblock that
// grows half that old without being proposed.
const StaleViews = 1 << 16

// SharedConfig configures a shared mempool.
type SharedConfig struct {
	PAB bool // stratus: proposals need availability proofs; false: smp
	// ProofsByRef (PAB): a proposal names its microblocks and carries no proof; a replica votes
	// once it holds a verified proof of each (from the creator's broadcast, or asked of the
	// leader, then of the others). False: every reference carries its proof (the paper's design).
	ProofsByRef  bool
	BSize        int           // microblock references per proposal
	MemSize      int           // bytes of own client transactions held; peers' microblocks get 4× that
	MSize        int           // microblock payload bytes
	BatchTimeout time.Duration // a batch is cut at MSize bytes or this long after its first transaction
	Q            int           // acks per proof (own included)
	FetchTimeout time.Duration // wait before asking the next peer for missing data
	PushTimeout  time.Duration // a push not stable this long is re-sent to the replicas that did not ack
	// MaxBacklog is the backpressure bound: while the uplink needs longer than this to send what
	// waits on it (Env.Backlog), no microblock is cut, no push is re-sent (its copies may still be
	// queued), and submissions that would wait behind a full batch are refused at once. 0: off.
	MaxBacklog time.Duration
	Master     types.NodeID // static leader, or 0 when leaders rotate (smp re-pushes to it)

	Gossip       bool
	Fanout       int           // peers per gossip hop
	R            int           // gossip hop limit
	FillInterval time.Duration // token bucket refill for microblock sends (0: unlimited)
	Capacity     int           // token bucket size

	LoadBalance    bool
	D              int           // peers sampled per forwarded microblock
	EstimateWindow int           // stable times kept for the load estimate
	Percentile     float64       // percentile of the window used as load
	BusyThreshold  time.Duration // load above which this replica is busy
	LBTimeout      time.Duration // wait for LBInfo answers
	ForwardTimeout time.Duration // wait for a proxy's proof before forwarding again
	ProbeEvery     int           // while busy, every ProbeEvery-th own microblock is pushed by this replica (default 10)

	// Events receives what the mempool does, for statistics. May be nil.
	Events func(consensus.Event)
	// Keep, when set, hears of every microblock whose data this replica starts or stops holding,
	// so that a driver can keep them across a crash (Restore gives them back).
	Keep Keeper
}

// Keeper keeps the microblocks a shared mempool holds: acked to their creators, referenced by
// blocks, or delivered and retained for replicas still fetching them.
type Keeper interface {
	HoldMB(mb *types.MicroBlock)
	DropMB(id types.Hash)
}

// Shared is a shared mempool: replicas batch their clients' transactions into microblocks and
// disseminate them themselves; proposals reference microblocks by ID.
//
// With PAB off (smp, the straw man of the paper) a microblock is proposable once its data is here,
// proposals carry IDs only, and a replica votes only after fetching every referenced microblock
// from the leader. With PAB on (stratus) receivers ack microblocks to their sender, q acks form a
// proof, the proof is broadcast, proposals carry IDs only (proofs by reference, the default: a
// replica votes once it holds a verified proof of each, asking the leader and then the others for
// a missing one) or (ID, proof) pairs (inline), a replica votes once every proof verifies, and
// fetches missing data from the proof's signers in the background; delivery waits for the data.
type Shared struct {
	env  consensus.Env
	cfg  SharedConfig
	self types.NodeID
	view types.View
	// deferral says which acks may be counted unchecked, checked together once a proof can form.
	deferral *consensus.Deferral
	// resolving is the committed block Resolve waits on; its first resolvedUpTo references are here.
	resolving    *types.Block
	resolvedUpTo int

	// Own transactions not yet in a committed microblock.
	batch      []types.Tx
	batchBytes int
	batchSeq   uint64
	batchArmed bool
	drainArmed bool      // a drainTimer is pending
	nextCut    time.Time // backpressure: no microblock before this (pacing to uplinkShare of the uplink)
	ownTxs     int       // transactions in the batch or in own uncommitted microblocks
	ownBytes   int
	ownOrder   fifo.Queue[types.Hash] // own microblocks, oldest first, for re-issuing stale ones

	mbs       map[types.Hash]*mbEntry
	avail     availSet // IDs that may be proposed, oldest first; dead entries are dropped as leaders walk it
	peerBytes int
	byCreator map[types.NodeID]int // bytes of each peer's microblocks held (not yet committed)
	gcView    types.View           // view of the last sweep of stale peer microblocks
	delivered *viewSet             // microblocks whose transactions were delivered; their data is freed
	decided   *viewSet             // microblocks in committed blocks, delivered or not: never proposable again
	retained  retainer             // data of committed microblocks, for replicas still fetching it

	pushes     map[types.Hash]*push
	fetches    map[types.Hash]*fetch
	proofWaits map[types.Hash]*proofWait  // by block ID: votes waiting for proofs (ProofsByRef)
	proxying   map[types.NodeID]int       // pushes running here for each creator (load balancing)
	lbGrants   map[types.NodeID]time.Time // creators whose load query this replica answered: a forward is taken until then

	bucket tokenBucket
	lb     balancer
	serve  *consensus.ServeLimiter // bytes of microblocks sent per peer in answer to fetches
}

type mbEntry struct {
	id       types.Hash
	epoch    types.View
	mb       *types.MicroBlock // nil while missing
	proof    *types.Proof
	proofAt  time.Time // when the proof came (or was formed) here
	own      bool      // created here: its transactions count against memsize
	proposed bool      // referenced by a block that has not yet committed or been orphaned
	proxied  bool      // pushed by this replica for its creator (load balancing)
	acked    []types.NodeID
	ackSig   []byte // this replica's ack signature, made once
}

// Timers.
type (
	batchTimer  struct{ seq uint64 }
	fetchTimer  struct{ id types.Hash }
	refillTimer struct{}
)

// NewShared returns a shared mempool.
func NewShared(env consensus.Env, cfg SharedConfig) *Shared {
	if cfg.Q < 1 {
		cfg.Q = 1
	}
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = 10
	}
	s := &Shared{
		env:        env,
		deferral:   consensus.NewDeferral(env.Verifier()),
		cfg:        cfg,
		self:       env.Self(),
		byCreator:  make(map[types.NodeID]int),
		mbs:        make(map[types.Hash]*mbEntry),
		delivered:  newViewSet(StaleViews),
		decided:    newViewSet(StaleViews),
		retained:   retainer{limit: cfg.MemSize, mbs: make(map[types.Hash]retained)},
		pushes:     make(map[types.Hash]*push),
		fetches:    make(map[types.Hash]*fetch),
		proofWaits: make(map[types.Hash]*proofWait),
		proxying:   make(map[types.NodeID]int),
		lbGrants:   make(map[types.NodeID]time.Time),
	}
	s.bucket = tokenBucket{tokens: cfg.Capacity}
	s.serve = consensus.NewServeLimiter(consensus.DefaultServeRate, consensus.DefaultServeBurst)
	s.lb = newBalancer(cfg)
	s.retained.drop = s.drop
	return s
}

func (s *Shared) emit(e consensus.Event) {
	if s.cfg.Events != nil {
		s.cfg.Events(e)
	}
}

// acks reports whether receivers ack microblocks: always under PAB, and under smp when load
// balancing needs stable times.
func (s *Shared) acks() bool { return s.cfg.PAB || s.cfg.LoadBalance }

// SetView implements Mempool; it also re-issues own microblocks that grew stale unproposed and,
// every gcEvery views, frees peers' microblocks that grew stale unproposed.
func (s *Shared) SetView(v types.View) {
	if v <= s.view {
		return
	}
	s.view = v
	for id, w := range s.proofWaits {
		if w.view < v {
			delete(s.proofWaits, id) // that vote can no longer happen
		}
	}
	if v >= s.gcView+gcEvery {
		s.gcView = v
		s.sweepStale()
	}
	for {
		id, ok := s.ownOrder.Peek()
		if !ok {
			return
		}
		e := s.mbs[id]
		if e == nil || !e.own {
			s.ownOrder.Pop()
			continue
		}
		if e.epoch+StaleViews/2 >= v || e.proposed || e.mb == nil {
			return
		}
		s.ownOrder.Pop()
		s.reissue(e)
	}
}

// gcEvery is how often (in views) stale peer microblocks are swept.
const gcEvery = 1024

// sweepStale frees peers' microblocks that can no longer be proposed: too old, never proposed,
// never decided. Nobody can need them any more, and a faulty creator's unprovable microblocks
// stop taking room.
func (s *Shared) sweepStale() {
	var stale []*mbEntry
	for _, e := range s.mbs {
		if !e.own && !e.proposed && !s.decided.has(e.id) && e.epoch+StaleViews < s.view {
			stale = append(stale, e)
		}
	}
	for _, e := range stale {
		s.release(e)
	}
}

// peerRoom is how many bytes of one peer's uncommitted microblocks this replica may hold for
// creator: its share of 4 × memsize split equally among the peers (at least four microblocks),
// or more while all peers' microblocks together hold less than memsize. Charged by signed creator
// (with the overheads of mbCost). The equal share is every creator's whatever the others send;
// the memsize beyond is first come, first served: peers' microblocks hold at most 5 × memsize
// (what the second rule admits stops at memsize, and the shares add at most 4 × memsize), and a
// creator is never refused what the equal split alone gave it. The equal split alone kept the
// replicas with the most clients from their proxies and peers under a skewed load: at N=400 a
// creator's share was 54 microblocks of 12 KB, under a second of the busiest replica's output
// under Zipf1, and proxies declined 470 of 5,661 forwarded microblocks, each decline banning an
// honest proxy for 100 × forward_timeout. (A split of 2 × memsize as a reserve with 2 × memsize
// shared, 4 × memsize in all, halved every share when the load was high everywhere, and SMP-HS
// at N=128 in the WAN stopped committing in one of three runs.)
func (s *Shared) peerRoom(creator types.NodeID) int {
	return max(s.equalShare(), s.cfg.MemSize-s.peerBytes+s.byCreator[creator])
}

// equalShare is the room each peer creator has whatever the others hold (peerRoom).
func (s *Shared) equalShare() int {
	return max(4*s.cfg.MemSize/max(1, s.env.N()-1), 4*(s.cfg.MSize+MBOverhead))
}

// fresh reports whether a microblock of epoch may still be acked or proposed at view v.
func fresh(epoch, v types.View) bool {
	return epoch+StaleViews >= v && epoch <= v+StaleViews
}

// AddTxs implements Mempool: transactions join the batch; the batch is cut into microblocks of
// msize bytes, or after batch_timeout.
func (s *Shared) AddTxs(txs []types.Tx) error {
	add := 0
	for _, t := range txs {
		add += txCost(t)
	}
	if s.ownBytes+add > s.cfg.MemSize {
		return &FullError{HeldBytes: s.ownBytes, AddBytes: add, Limit: s.cfg.MemSize}
	}
	if add > 0 && s.batchBytes >= s.cfg.MSize {
		if b := s.backlogged(); b > 0 {
			// A full microblock already waits for the uplink: a new transaction would wait
			// longer still. Refused now, the client can go elsewhere or come back; with load
			// balancing the next microblocks go to proxies.
			s.lb.press(s.env.Now(), b)
			return &FullError{HeldBytes: s.ownBytes, AddBytes: add, Limit: s.cfg.MemSize, Backlog: b, MaxBacklog: s.cfg.MaxBacklog}
		}
	}
	s.ownTxs += len(txs)
	s.ownBytes += add
	s.batch = append(s.batch, txs...)
	s.batchBytes += add - TxOverhead*len(txs) // their sizes
	s.cutFull()
	s.armBatch()
	return nil
}

// armBatch starts the batch timeout of a batch that has none running: a new batch, or what is
// left of one after a cut (a cut starts a new batch, and the timer of the old one finds nothing
// to cut).
func (s *Shared) armBatch() {
	if len(s.batch) > 0 && !s.batchArmed {
		s.batchArmed = true
		s.env.SetTimer(s.cfg.BatchTimeout, batchTimer{seq: s.batchSeq})
	}
}

// uplinkShare is the share of its uplink a replica fills with its own microblocks under
// backpressure: every replica's downlink takes what the others send, and a link kept 100 % busy
// has a queue that only grows; the rest is headroom for consensus, acks and proofs.
const uplinkShare = 0.85

// uplinkBehind returns the uplink's backlog when it exceeds MaxBacklog, else 0.
func (s *Shared) uplinkBehind() time.Duration {
	if s.cfg.MaxBacklog <= 0 {
		return 0
	}
	if b := s.env.Backlog(); b > s.cfg.MaxBacklog {
		return b
	}
	return 0
}

// backlogged returns how long to wait before the next microblock: the uplink's backlog when it
// exceeds MaxBacklog, or MaxBacklog plus the time left until the pace allows the next one; else 0.
//
// A busy replica, whose microblocks go to proxies at one copy each, may run up to max_backlog
// ahead of its pace, as its uplink may queue that much: transactions that arrive together (a
// client's batch, or the simulator's load ticks) are cut and forwarded together. Held to its pace
// of one forward at a time, the busiest replica under Zipf1 at N=400 refused most of each 200-ms
// tick's transactions 1.2 ms (one copy's share of the uplink) after cutting the first microblock.
// A replica that pushes its own microblocks to every peer keeps to its pace.
func (s *Shared) backlogged() time.Duration {
	if b := s.uplinkBehind(); b > 0 || s.cfg.MaxBacklog <= 0 {
		return b
	}
	now := s.env.Now()
	wait := s.nextCut.Sub(now)
	if s.lb.isBusy(now) { // never without load balancing
		wait -= s.cfg.MaxBacklog
	}
	if wait > 0 {
		return s.cfg.MaxBacklog + wait
	}
	return 0
}

// pace sets when the next microblock may be cut: after mb's copies have had a share of the
// uplink's time. A microblock forwarded to a proxy costs this uplink one copy; pacing it as if
// this replica sent it to everyone kept a busy replica's cuts, and so its clients, at its own
// uplink's rate, and load balancing never took any of its load.
func (s *Shared) pace(mb *types.MicroBlock, forwarded bool) {
	rate := s.env.UplinkRate()
	if s.cfg.MaxBacklog <= 0 || rate <= 0 {
		return
	}
	copies := s.pushCopies()
	if forwarded {
		copies = 1
	}
	sending := time.Duration(float64(mb.Bytes()+MBOverhead) * float64(copies) / rate / uplinkShare * float64(time.Second))
	if now := s.env.Now(); s.nextCut.Before(now) {
		s.nextCut = now
	}
	s.nextCut = s.nextCut.Add(sending) // the pace owed: cuts run ahead of it only while busy
}

// cutFull cuts the batch's full microblocks while the uplink keeps up; when it is behind, the
// rest waits for a drain timer: microblocks are made no faster than the uplink sends them.
func (s *Shared) cutFull() {
	for s.batchBytes >= s.cfg.MSize {
		if b := s.backlogged(); b > 0 {
			s.armDrain(b)
			return
		}
		s.cut()
	}
}

// drainTimer fires when the uplink should have caught up enough to cut the next microblock.
type drainTimer struct{}

func (s *Shared) armDrain(backlog time.Duration) {
	if s.drainArmed {
		return
	}
	s.drainArmed = true
	s.env.SetTimer(max(backlog-s.cfg.MaxBacklog, time.Millisecond), drainTimer{})
}

// cut turns up to msize bytes of the batch into a microblock and disseminates it.
func (s *Shared) cut() {
	n, bytes := 0, 0
	for n < len(s.batch) && (n == 0 || bytes+s.batch[n].Size() <= s.cfg.MSize) {
		bytes += s.batch[n].Size()
		n++
	}
	// The microblock takes the batch's array as it is; the next batch starts with room for as
	// many transactions (appending 600 at a time into a nil slice copied each one three times
	// over: 4 % of server -sim's CPU at N=4).
	txs := s.batch[:n:n]
	rest := s.batch[n:]
	s.batch = make([]types.Tx, len(rest), max(len(rest), n))
	copy(s.batch, rest)
	clear(rest) // the microblock's array keeps no transaction of the next one alive
	s.batchBytes -= bytes
	s.batchSeq++
	s.batchArmed = false
	mb := types.NewMicroBlock(s.self, s.view, txs).Signed(s.env.Signer().Sign)
	if !s.addOwn(mb) {
		return
	}
	s.emit(consensus.MBCreated{Txs: len(txs), Bytes: bytes})
	forward := s.forwardNext()
	s.pace(mb, forward)
	s.disseminate(mb, forward)
}

// reissue replaces a stale own microblock by a fresh one with the same transactions.
func (s *Shared) reissue(e *mbEntry) {
	delete(s.mbs, e.id)
	delete(s.pushes, e.id)
	s.lb.forget(e.id)
	s.drop(e.id)
	mb := types.NewMicroBlock(s.self, s.view, e.mb.Txs).Signed(s.env.Signer().Sign)
	if s.addOwn(mb) {
		s.disseminate(mb, s.forwardNext())
	}
}

// addOwn records mb, an own microblock just made, and has the store hold it; the caller sends it.
// It reports false when mb is a microblock held already — the same transactions in the same
// view — and keeps the one held instead:
//   - an own microblock: transactions this replica still holds, given again after the Core's
//     dedup window forgot their delivery elsewhere (AddTxs takes the Core's word that what it
//     gives is new). mb's transactions stop counting against memsize; replacing the entry would
//     have left them counted for good.
//   - one restored from the store after a restart, held as a peer's data: a client's retry of
//     what the replica had cut before it stopped. It becomes the replica's own again, counted as
//     such instead of among the peers' (replacing it left its bytes there for good), and is pushed
//     for its proof unless it has one.
//
// A microblock known only by its proof is replaced by mb.
func (s *Shared) addOwn(mb *types.MicroBlock) bool {
	e := s.mbs[mb.ID]
	switch {
	case e == nil || e.mb == nil:
		s.mbs[mb.ID] = &mbEntry{id: mb.ID, epoch: mb.View, mb: mb, own: true}
		s.hold(mb)
		s.ownOrder.Push(mb.ID)
		return true
	case e.own:
		s.ownTxs -= len(mb.Txs)
		s.ownBytes -= mbCost(mb) - MBOverhead
		return false
	}
	cost := mbCost(e.mb)
	s.peerBytes -= cost
	if s.byCreator[e.mb.Creator] -= cost; s.byCreator[e.mb.Creator] <= 0 {
		delete(s.byCreator, e.mb.Creator)
	}
	e.own = true
	s.ownOrder.Push(e.id)
	if e.proof == nil {
		s.disseminate(e.mb, s.forwardNext())
	}
	return false
}

// OnTimer implements Mempool.
func (s *Shared) OnTimer(t consensus.Timer) {
	switch t := t.(type) {
	case drainTimer:
		s.drainArmed = false
		s.cutFull()
		s.armBatch()
	case batchTimer:
		if t.seq == s.batchSeq && len(s.batch) > 0 {
			if b := s.backlogged(); b > 0 {
				s.armDrain(b)
				s.env.SetTimer(s.cfg.BatchTimeout, batchTimer{seq: s.batchSeq})
				return
			}
			s.cut()
			s.armBatch()
		}
	case fetchTimer:
		s.fetchNext(t.id)
	case refillTimer:
		s.refill()
	case lbTimer:
		s.lbDecide(t.nonce)
	case forwardTimer:
		s.forwardExpired(t)
	case pushTimer:
		s.repush(t.id)
	case masterTimer:
		s.repushToMaster(t)
	case proofTimer:
		s.askProofs(t.block)
	case recoverTimer:
		s.recoverProof(t)
	}
}

// OnMessage implements Mempool.
func (s *Shared) OnMessage(from types.NodeID, m types.Message) {
	switch m := m.(type) {
	case *types.MicroBlock:
		s.onMicroBlock(from, m, false)
	case *types.Ack:
		s.onAck(from, m)
	case *types.Proof:
		s.onProof(from, m)
	case *types.FetchRequest:
		s.serveFetch(from, m)
	case *types.ProofRequest:
		s.serveProofs(from, m)
	case *types.FetchResponse:
		for _, mb := range m.MBs {
			s.onMicroBlock(from, mb, true)
		}
	case *types.LBQuery:
		s.onLBQuery(from, m)
	case *types.LBInfo:
		s.onLBInfo(from, m)
	case *types.LBForward:
		s.onLBForward(from, m.MB)
	}
}

// entry returns the entry of id, creating it for a microblock known by reference only.
func (s *Shared) entry(id types.Hash, epoch types.View) *mbEntry {
	e := s.mbs[id]
	if e == nil {
		e = &mbEntry{id: id, epoch: epoch}
		s.mbs[id] = e
	}
	return e
}

// proposable reports whether a leader may put e into a proposal now: its data (smp) or proof
// (PAB) is here, it is fresh, and no committed block holds it. That a block this replica saw
// references it does not count: a Byzantine leader that puts a microblock in every proposal it
// makes, all doomed, would otherwise keep the honest leaders from ever proposing it. A leader
// skips only what the chain it extends holds (MakePayload).
func (s *Shared) proposable(e *mbEntry, v types.View) bool {
	if e.epoch+StaleViews/2 < v || s.decided.has(e.id) {
		return false
	}
	if s.cfg.PAB {
		return e.proof != nil
	}
	return e.mb != nil
}

// freshProof is how long after a proof came a leader proposing by reference still carries it:
// the creator's broadcast reaches everyone at about the same time, so a proof the leader has
// held this long the others most likely hold too, and a younger one would cost them a round trip
// to the leader before they vote (on one machine, where proposals follow proofs within
// milliseconds, that cost a fifth of S-HS's throughput).
const freshProof = 20 * time.Millisecond

// Ready implements consensus.Mempool.
func (s *Shared) Ready() bool {
	ready := false
	s.avail.walk(func(id types.Hash) (alive, stop bool) {
		e := s.mbs[id]
		ready = e != nil && s.proposable(e, s.view)
		return ready, ready
	})
	return ready
}

// MakePayload implements consensus.Mempool: up to bsize proposable microblocks, oldest first,
// that the chain it extends does not hold yet.
func (s *Shared) MakePayload(v types.View, chain []*types.Block) *types.Payload {
	s.SetView(v)
	inChain := make(map[types.Hash]bool)
	for _, b := range chain {
		for _, r := range b.Payload.Refs {
			inChain[r.ID] = true
		}
	}
	var refs []types.MBRef
	s.avail.walk(func(id types.Hash) (alive, stop bool) {
		e := s.mbs[id]
		if e == nil || !s.proposable(e, v) {
			return false, false
		}
		if !inChain[id] {
			e.proposed = true
			ref := types.MBRef{ID: id}
			if s.cfg.PAB && (!s.cfg.ProofsByRef || s.env.Now().Sub(e.proofAt) < freshProof) {
				// Inline, or by reference but so fresh that the others may not hold it yet:
				// carried, it saves them a round trip to ask for it.
				ref.Proof = e.proof
			}
			refs = append(refs, ref)
		}
		return true, len(refs) >= s.cfg.BSize
	})
	return &types.Payload{Refs: refs}
}

// CheckPayload implements consensus.Mempool.
func (s *Shared) CheckPayload(b *types.Block) (consensus.Verdict, error) {
	p := b.Payload
	if len(p.Txs) > 0 {
		return consensus.Reject, fmt.Errorf("payload carries %d transactions; a shared mempool proposes microblock references", len(p.Txs))
	}
	if len(p.Refs) > s.cfg.BSize {
		return consensus.Reject, fmt.Errorf("payload references %d microblocks, bsize is %d", len(p.Refs), s.cfg.BSize)
	}
	seen := make(map[types.Hash]struct{}, len(p.Refs))
	var noProof []types.Hash
	for i, r := range p.Refs {
		if _, dup := seen[r.ID]; dup {
			return consensus.Reject, fmt.Errorf("microblock %v referenced twice", r.ID)
		}
		seen[r.ID] = struct{}{}
		if s.decided.has(r.ID) {
			return consensus.Reject, fmt.Errorf("microblock %v was committed already", r.ID)
		}
		if !s.cfg.PAB {
			continue
		}
		if r.Proof != nil || !s.cfg.ProofsByRef {
			if err := s.checkRef(r, b.View); err != nil {
				return consensus.Reject, fmt.Errorf("reference %d: %w", i, err)
			}
			continue
		}
		// By reference: the proof must be here, verified (setProof keeps only verified ones).
		e := s.mbs[r.ID]
		if e == nil || e.proof == nil {
			noProof = append(noProof, r.ID)
			continue
		}
		if !fresh(e.proof.View, b.View) {
			return consensus.Reject, fmt.Errorf("reference %d: microblock of epoch %d is stale in view %d", i, e.proof.View, b.View)
		}
	}
	if len(noProof) > 0 {
		s.awaitProofs(b, noProof)
		return consensus.Wait, nil
	}
	delete(s.proofWaits, b.ID())
	if !s.cfg.PAB {
		// smp: vote only with every microblock here; fetch the rest from the leader.
		missing := false
		for i, r := range p.Refs {
			e := s.mbs[r.ID]
			if e == nil || e.mb == nil {
				missing = true
				s.fetch(r.ID, s.fetchOrder(nil, b.Proposer), true, b.View)
				continue
			}
			if !fresh(e.mb.View, b.View) {
				// As under PAB: a microblock that old may have been delivered and forgotten.
				return consensus.Reject, fmt.Errorf("reference %d: microblock of epoch %d is stale in view %d", i, e.mb.View, b.View)
			}
		}
		if missing {
			return consensus.Wait, nil
		}
	}
	for _, r := range p.Refs {
		e := s.entry(r.ID, 0)
		e.proposed = true
		if r.Proof != nil && e.proof == nil {
			e.proof, e.epoch = r.Proof, r.Proof.View
		}
		if e.mb == nil {
			// PAB: vote now, fetch in the background once the push had its chance.
			s.fetch(r.ID, s.fetchOrder(e.proof, b.Proposer), false, 0)
		}
	}
	return consensus.Accept, nil
}

// Resolve implements Mempool: the transactions of a committed block, a run per microblock in
// reference order, once all its microblocks are here. A microblock committed before contributes
// nothing again. The driver asks again after every step while the block waits, so the references
// found present before are not looked up again; the runs are the microblocks' own slices, never
// copied (a copy of every transaction was 4 % of server -sim's CPU at N=4).
func (s *Shared) Resolve(b *types.Block) ([][]types.Tx, bool) {
	refs := b.Payload.Refs
	from := 0
	if s.resolving == b {
		from = s.resolvedUpTo
	}
	present := from // refs[:present] are all here
	missing := false
	for i := from; i < len(refs); i++ {
		r := refs[i]
		if s.delivered.has(r.ID) {
			if !missing {
				present = i + 1
			}
			continue
		}
		e := s.mbs[r.ID]
		if e != nil && e.mb != nil {
			if !missing {
				present = i + 1
			}
			continue
		}
		missing = true
		if f := s.fetches[r.ID]; f != nil && f.asked && f.voteView == 0 {
			continue // fetched for good already
		}
		// Ask the signers of the block's proof first only when this replica verified it: the
		// block may have come from a relay that tampered with it.
		var proof *types.Proof
		if r.Proof != nil && s.verifyProof(r.Proof) == nil {
			proof = r.Proof
		} else if e != nil && e.proof != nil {
			proof = e.proof // verified when it was kept
		}
		s.fetch(r.ID, s.fetchOrder(proof, b.Proposer), true, 0)
	}
	s.resolving, s.resolvedUpTo = b, present
	if missing {
		return nil, false
	}
	runs := make([][]types.Tx, 0, len(refs))
	for _, r := range refs {
		if s.delivered.has(r.ID) {
			continue
		}
		e := s.mbs[r.ID]
		if e == nil || e.mb == nil {
			s.resolving = nil // dropped meanwhile: look at every reference again
			return s.Resolve(b)
		}
		runs = append(runs, e.mb.Txs)
	}
	s.resolving = nil
	return runs, true
}

// Decided implements Mempool: the block's microblocks are ordered and never proposable again,
// even when another block that referred to them is orphaned before this one is delivered.
func (s *Shared) Decided(b *types.Block) {
	for _, r := range b.Payload.Refs {
		if !s.decided.has(r.ID) {
			s.decided.add(r.ID, b.View)
		}
		if e := s.mbs[r.ID]; e != nil {
			e.proposed = true
		}
	}
	s.decided.prune(b.View) // by the committed block's view: every replica prunes alike
}

// Committed implements Mempool: the block's microblocks and everything about them are freed.
func (s *Shared) Committed(b *types.Block) {
	for _, r := range b.Payload.Refs {
		if s.delivered.has(r.ID) {
			continue
		}
		s.delivered.add(r.ID, b.View)
		if !s.decided.has(r.ID) {
			s.decided.add(r.ID, b.View)
		}
		if e := s.mbs[r.ID]; e != nil {
			if e.mb != nil {
				s.retained.add(e.mb, b.Height)
			}
			s.release(e)
		}
	}
	s.delivered.prune(b.View)
	s.decided.prune(b.View)
	if s.avail.len() > 2*len(s.mbs)+1024 {
		// Replicas that never lead (a static master's followers) never walk the set: sweep it.
		s.avail.walk(func(id types.Hash) (bool, bool) {
			e := s.mbs[id]
			return e != nil && s.proposable(e, s.view), false
		})
	}
}

// DeliveredWindow implements Mempool.
func (s *Shared) DeliveredWindow() []types.MBView { return s.delivered.list() }

// Synced implements Mempool: the snapshot's delivered microblocks are delivered and decided here
// too, and what this replica held of them is freed.
func (s *Shared) Synced(mbs []types.MBView, _ func(types.Hash) bool) (delivered []types.Tx) {
	s.delivered.merge(mbs)
	s.decided.merge(mbs)
	for _, x := range mbs {
		if e := s.mbs[x.ID]; e != nil {
			if e.own && e.mb != nil {
				delivered = append(delivered, e.mb.Txs...)
			}
			s.release(e)
		}
		delete(s.fetches, x.ID)
	}
	return delivered
}

// release forgets a microblock: data, proof, acks, fetch and forwarding state.
func (s *Shared) release(e *mbEntry) {
	if e.mb != nil {
		if e.own {
			s.ownTxs -= len(e.mb.Txs)
			s.ownBytes -= mbCost(e.mb) - MBOverhead
		} else {
			cost := mbCost(e.mb)
			s.peerBytes -= cost
			if s.byCreator[e.mb.Creator] -= cost; s.byCreator[e.mb.Creator] <= 0 {
				delete(s.byCreator, e.mb.Creator)
			}
		}
	}
	delete(s.mbs, e.id)
	s.endPush(e.id)
	delete(s.fetches, e.id)
	s.lb.forget(e.id)
	if e.mb != nil && s.retained.get(e.id) == nil {
		s.drop(e.id)
	}
}

// hold and drop tell the Keeper.
func (s *Shared) hold(mb *types.MicroBlock) {
	if s.cfg.Keep != nil {
		s.cfg.Keep.HoldMB(mb)
	}
}

func (s *Shared) drop(id types.Hash) {
	if s.cfg.Keep != nil {
		s.cfg.Keep.DropMB(id)
	}
}

// Restore implements Mempool: microblocks a restarted replica kept. Those delivered already are
// retained for replicas still fetching them; the others are held as peers' data, so that the
// blocks referring to them can be delivered and the replicas fetching them served, and under smp
// (where data held is proposable) they may be proposed again.
func (s *Shared) Restore(mbs []*types.MicroBlock) {
	keep := s.cfg.Keep
	s.cfg.Keep = nil // they are kept already
	defer func() { s.cfg.Keep = keep }()
	for _, mb := range mbs {
		if s.delivered.has(mb.ID) {
			s.retained.add(mb, 0)
			continue
		}
		if e := s.mbs[mb.ID]; e != nil && e.mb != nil {
			continue
		}
		s.store(s.entry(mb.ID, mb.View), mb)
		if !s.cfg.PAB && !s.decided.has(mb.ID) {
			// smp: data here means proposable. A restarted static master is the only replica
			// that may propose what it held, and its creators' re-pushes find it held already.
			s.avail.add(mb.ID)
		}
	}
}

// Requeue implements Mempool: microblocks of an orphaned block may be proposed again, first.
func (s *Shared) Requeue(b *types.Block) {
	var back []types.Hash
	for _, r := range b.Payload.Refs {
		if e := s.mbs[r.ID]; e != nil && !s.decided.has(e.id) {
			e.proposed = false
			back = append(back, e.id)
		}
	}
	s.avail.addFront(back)
}

// Gauges implements Mempool.
func (s *Shared) Gauges() Gauges {
	g := Gauges{
		Retained:     s.retained.bytes,
		PendingTxs:   len(s.batch),
		PendingBytes: s.ownBytes,
		InFlightTxs:  s.ownTxs - len(s.batch),
		Microblocks:  len(s.mbs),
		PeerBytes:    s.peerBytes,
		Fetching:     len(s.fetches),
		Busy:         s.lb.isBusy(s.env.Now()),
		Load:         s.lb.load,
		Banned:       len(s.lb.banned),
	}
	return g
}
