package replica

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/glog"
	"github.com/sirupsen/logrus"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/internal/fifo"
	"github.com/stratusbft/stratus/internal/hugemem"
	"github.com/stratusbft/stratus/mempool"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/transport"
	"github.com/stratusbft/stratus/types"
)

// ErrStopped is returned to submissions once the replica stops.
var ErrStopped = errors.New("replica stopped")

// ErrCrashed is returned to submissions while the replica is down (crashed, before its restart).
var ErrCrashed = errors.New("replica crashed; it restarts later")

// Options configures a Replica.
type Options struct {
	ID       types.NodeID
	N        int
	Spec     core.Spec
	Signer   crypto.Signer
	Verifier crypto.Verifier // shared with the other replicas of the process when it is a crypto.Cache
	Workers  int             // signature verification workers (default: the process's Ps, GOMAXPROCS, at least 2)
	Seed     int64
	Log      *logrus.Entry
	Stats    *stats.Collector
	// Adversary makes the replica Byzantine (nil: honest).
	Adversary core.Adversary
	// DataDir, when set, keeps the replica's state (see Store) in a Pebble store there, in
	// store.<id>: every step's changes are synced before its messages leave and before a client
	// hears that its transactions committed, so a restarted process continues where it was.
	// Without it the state is kept in memory: it survives a Crash inside the process.
	DataDir string
	// Store, when set, is used instead of the one DataDir names (tests: a store that fails).
	Store core.Store
}

// StorePath is where a replica keeps its store under a data directory.
func StorePath(dataDir string, id types.NodeID) string {
	return filepath.Join(dataDir, fmt.Sprintf("store.%d", id))
}

// Replica runs a Core in one event loop. Inbound messages pass a bounded pool of verification
// workers first (structure and signatures, in parallel, per-sender order kept); client submissions
// and timers come through channels; nothing else touches the Core.
type Replica struct {
	opts     Options
	ep       transport.Endpoint
	core     *core.Core
	env      *liveEnv
	leaders  consensus.LeaderElection
	verified [types.NumLanes]chan transport.Envelope
	workers  []*worker
	proven   *provenSet // microblocks this incarnation broadcast a proof for (see surplusAck)
	submits  chan *submission
	reads    chan *kvRead
	stop     chan struct{}
	loopDone chan struct{}
	wg       sync.WaitGroup
	status   atomic.Pointer[consensus.Status]
	stopOnce sync.Once
	crashes  chan time.Duration

	// Owned by the event loop.
	obs     core.Observer
	store   core.Store
	durable bool // the store is on disk: outgoing messages wait for each flush
	crashed bool
	// With a SealingStore the disk works beside the loop: sealed batches go to the committer in
	// order, and come back (synced) to the loop, which lets their messages leave.
	sealed      chan *sealedBatch
	synced      chan *sealedBatch
	inflight    int
	incarnation uint64 // bumped by a crash: batches of an earlier incarnation never speak
	committed   chan struct{}
	lost        chan struct{} // closed at the next crash: what this incarnation accepted is lost
	restart     *time.Timer   // fires when a crashed replica comes back
}

// sealedBatch is a batch of steps on its way to the disk, with what waits for it.
type sealedBatch struct {
	commit      func(sync bool) error
	done        func()
	outbox      []outMsg
	incarnation uint64
	err         error
}

// maxInflight bounds the batches on their way to the disk; the loop waits beyond it.
const maxInflight = 16

type submission struct {
	txs      []types.Tx
	wait     bool
	dups     int // set by the loop before accepted is sent
	accepted chan error
	done     chan core.CommitInfo
	lost     chan struct{} // closed when the replica that accepted it crashes
}

type worker struct {
	in [types.NumLanes]chan transport.Envelope
	// fails is each sender's budget of messages that fail their checks (a sender's messages all
	// go to one worker, so no lock).
	fails *consensus.ServeLimiter
}

// A sender may cost this replica failRate messages a second that fail their signature or
// certificate checks, failBurst at once; beyond that its messages are dropped unchecked until
// its budget refills. An honest replica's messages never fail (it relays only what it checked),
// so the budget costs honest peers nothing, while a Byzantine one cannot make a worker verify
// junk at line rate (under BLS about 1,000 junk messages a second take a core).
const (
	failRate  = 20.0
	failBurst = 50.0
)

// New builds a replica on an endpoint. Call Start to run it.
func New(opts Options, ep transport.Endpoint) (*Replica, error) {
	if opts.Workers <= 0 {
		opts.Workers = max(2, runtime.GOMAXPROCS(0))
	}
	if opts.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.WarnLevel)
		opts.Log = logrus.NewEntry(l)
	}
	env := &liveEnv{
		self:     opts.ID,
		n:        opts.N,
		ep:       ep,
		signer:   opts.Signer,
		verifier: opts.Verifier,
		rng:      rand.New(rand.NewSource(opts.Seed + int64(opts.ID))),
		proven:   newProvenSet(),
	}
	var obs core.Observer = core.NopObserver{}
	if opts.Stats != nil {
		obs = opts.Stats
	}
	r := &Replica{
		opts:     opts,
		ep:       ep,
		env:      env,
		proven:   env.proven,
		obs:      logRejections{obs, opts.Log},
		leaders:  consensus.NewLeaderElection(int(opts.Spec.Master), opts.N),
		submits:  make(chan *submission, 64),
		reads:    make(chan *kvRead, 64),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		crashes:  make(chan time.Duration, 1),
		lost:     make(chan struct{}),
	}
	switch {
	case opts.Store != nil:
		r.store = opts.Store
		_, r.durable = opts.Store.(*PebbleStore)
		env.hold = r.durable
	case opts.DataDir != "":
		store, err := OpenPebbleStore(StorePath(opts.DataDir, opts.ID))
		if err != nil {
			return nil, err
		}
		r.store, r.durable = store, true
		env.hold = true
		r.sealed = make(chan *sealedBatch, maxInflight)
		r.synced = make(chan *sealedBatch, maxInflight)
		r.committed = make(chan struct{})
	default:
		r.store = core.NewMemStore()
	}
	core, err := r.newCore()
	if err != nil {
		_ = r.store.Close()
		return nil, err
	}
	r.core = core
	for l := range r.verified {
		r.verified[l] = make(chan transport.Envelope, 1024)
	}
	r.workers = make([]*worker, opts.Workers)
	for i := range r.workers {
		w := &worker{fails: consensus.NewServeLimiter(failRate, failBurst)}
		for l := range w.in {
			w.in[l] = make(chan transport.Envelope, 256)
		}
		r.workers[i] = w
	}
	return r, nil
}

// newCore builds a Core from the spec and what the store holds (its certificates are checked
// against this cluster's keys: see checkSaved).
func (r *Replica) newCore() (*core.Core, error) {
	// The dedup window's tables live outside Go's heap, sized for the window from the start, in
	// memory the kernel backs with huge pages (internal/hugemem): grown in the heap, 4 KiB page
	// faults and the doublings' moves cost a 16-replica process a fifth of its first 10 s.
	c, err := core.NewCoreWith(r.env, r.opts.Spec, r.obs, core.CoreOptions{Adversary: r.opts.Adversary, Store: r.store, DedupMemory: hugemem.New()})
	if err != nil {
		return nil, err
	}
	if rs := c.Restored(); rs != nil {
		if r.opts.Stats != nil {
			r.opts.Stats.Recovered(rs.Height, rs.Digest)
		}
		r.opts.Log.WithFields(logrus.Fields{"height": rs.Height, "voted_view": rs.VotedView, "certified": rs.Certified,
			"microblocks": rs.Microblocks, "keys": rs.KVKeys}).Info("replica state recovered from its store")
	}
	return c, nil
}

// flush makes the steps since the last flush durable, then lets their messages leave. When the
// store fails the replica stops as a crash would (the messages never leave, no client hears of a
// commit that is not on disk) and stays down: restarting the process recovers from what was synced.
func (r *Replica) flush() {
	if r.crashed {
		r.env.outbox = r.env.outbox[:0]
		return
	}
	if r.sealed != nil {
		r.seal()
		return
	}
	if err := r.core.Flush(); err != nil {
		r.storeFailed(err)
		return
	}
	r.env.release()
}

// Crash stops the replica as a crash would: it loses its state but for what its store kept (see
// Store), ignores every message and timer, and refuses submissions; after down it restarts from
// its store and catches up (down 0: it stays down until the process stops).
func (r *Replica) Crash(down time.Duration) {
	select {
	case r.crashes <- down:
	case <-r.stop:
	}
}

// Start runs the event loop and the verification pool.
func (r *Replica) Start() {
	for l := types.Lane(0); l < types.NumLanes; l++ {
		r.wg.Add(1)
		go r.dispatch(l)
	}
	for _, w := range r.workers {
		r.wg.Add(1)
		go r.verify(w)
	}
	if r.sealed != nil {
		go r.committer()
	}
	go r.loop()
}

// Stop ends the loop and the workers and closes the endpoint. Pending submissions get ErrStopped.
func (r *Replica) Stop() {
	r.stopOnce.Do(func() {
		close(r.stop)
		<-r.loopDone
		r.wg.Wait()
		_ = r.ep.Close()
	})
}

// ID is the replica's node ID.
func (r *Replica) ID() types.NodeID { return r.opts.ID }

// Status returns the engine's position as of the last statistics refresh.
func (r *Replica) Status() consensus.Status {
	if s := r.status.Load(); s != nil {
		return *s
	}
	return consensus.Status{}
}

// SubmitResult is the answer to an accepted submission: how many transactions were new here and
// how many duplicates (already pending or delivered here, or repeated in the submission), and,
// when the submission waited, the commit that delivered the last of them.
type SubmitResult struct {
	core.CommitInfo
	Accepted   int
	Duplicates int
}

// Submit hands client transactions to the replica. It returns once they are accepted or refused;
// with wait it returns once all of them, duplicates included, are delivered here, or when ctx
// ends. A duplicate is never added twice: the copy already accepted is delivered once.
func (r *Replica) Submit(ctx context.Context, txs []types.Tx, wait bool) (SubmitResult, error) {
	return r.submit(ctx, txs, wait, true)
}

// submit is Submit; count says whether the submission is a client's, for statistics.
func (r *Replica) submit(ctx context.Context, txs []types.Tx, wait, count bool) (SubmitResult, error) {
	s := &submission{txs: txs, wait: wait, accepted: make(chan error, 1), done: make(chan core.CommitInfo, 1)}
	select {
	case r.submits <- s:
	case <-ctx.Done():
		return SubmitResult{}, ctx.Err()
	case <-r.stop:
		return SubmitResult{}, ErrStopped
	}
	var res SubmitResult
	select {
	case err := <-s.accepted:
		res.Accepted, res.Duplicates = len(txs)-s.dups, s.dups
		if r.opts.Stats != nil && count {
			r.opts.Stats.Submitted(res.Accepted, res.Duplicates, err != nil)
			if dups, total, due := r.opts.Stats.DuplicateReport(); due {
				r.opts.Log.WithFields(logrus.Fields{"duplicates": dups, "submitted": total}).Warnf(
					"%d of the %d transactions submitted in the last 10 s were duplicates (already pending or delivered here): "+
						"a client is re-sending identical transactions; a PUT is a duplicate only as a retry with the same Idempotency-Key", dups, total)
			}
		}
		if err != nil {
			return SubmitResult{}, err
		}
	case <-r.stop:
		return SubmitResult{}, ErrStopped
	}
	if !wait {
		return res, nil
	}
	select {
	case res.CommitInfo = <-s.done:
		return res, nil
	case <-s.lost:
		return res, ErrCrashed
	case <-ctx.Done():
		return res, ctx.Err()
	case <-r.stop:
		return res, ErrStopped
	}
}

// dispatch routes a lane's inbound messages to workers by sender, so each sender's messages are
// verified and handed to the loop in the order they arrived.
func (r *Replica) dispatch(l types.Lane) {
	defer r.wg.Done()
	in := r.ep.Inbox(l)
	for {
		select {
		case env := <-in:
			w := r.workers[int(env.From)%len(r.workers)]
			select {
			case w.in[l] <- env:
			case <-r.stop:
				return
			}
		case <-r.stop:
			return
		}
	}
}

func (r *Replica) verify(w *worker) {
	defer r.wg.Done()
	for {
		var env transport.Envelope
		select {
		case env = <-w.in[types.LaneConsensus]:
		default:
			select {
			case env = <-w.in[types.LaneConsensus]:
			case env = <-w.in[types.LaneData]:
			case <-r.stop:
				return
			}
		}
		if now := time.Now(); !w.fails.Ready(env.From, now) {
			if r.opts.Stats != nil {
				r.opts.Stats.Rejected(env.Msg.Kind(), consensus.RuleRate)
			}
			continue
		} else if r.surplusAck(env.Msg) {
			continue
		} else if !r.precheck(env) {
			if w.fails.Charge(env.From, 1, now); !w.fails.Ready(env.From, now) {
				r.opts.Log.WithField("from", env.From).Warnf("peer %d sent more than %v messages a second that fail their checks: its messages are dropped unchecked until its budget refills", env.From, failRate)
			}
			continue
		}
		select {
		case r.verified[env.Msg.Kind().Lane()] <- env:
		case <-r.stop:
			return
		}
	}
}

// surplusAck reports an ack for a microblock this replica has broadcast a proof for: the Core
// ignores an ack for a push that is done (its proof formed), so the ack is dropped before its
// signature is checked, the only work it would cause. With q = f+1 most acks come after the
// proof: at N=16, 9 of a microblock's 15. (The other proof a replica broadcasts is a proxy's, for
// its own forwarded microblock not delivered in time; a push of its own for that microblock, begun
// when the forward timed out, then forms no proof of its own: the microblock has one.)
func (r *Replica) surplusAck(m types.Message) bool {
	a, ok := m.(*types.Ack)
	return ok && r.proven.has(a.MBID)
}

// provenSet holds the IDs of the last provenCap microblocks the loop broadcast a proof for; the
// verification workers read it. A crash empties it with the Core's pushes.
type provenSet struct {
	mu    sync.Mutex
	ids   map[types.Hash]struct{}
	order fifo.Queue[types.Hash] // ids, oldest first
}

const provenCap = 4096

func newProvenSet() *provenSet { return &provenSet{ids: make(map[types.Hash]struct{}, provenCap)} }

func (p *provenSet) add(id types.Hash) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.ids[id]; ok {
		return
	}
	p.ids[id] = struct{}{}
	p.order.Push(id)
	if p.order.Len() > provenCap {
		old, _ := p.order.Pop()
		delete(p.ids, old)
	}
}

func (p *provenSet) has(id types.Hash) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.ids[id]
	return ok
}

func (p *provenSet) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.ids)
	p.order = fifo.Queue[types.Hash]{}
}

// precheck validates structure and signatures before the loop sees a message.
func (r *Replica) precheck(env transport.Envelope) bool {
	m := env.Msg
	rule := ""
	err := types.Validate(m)
	if err != nil {
		rule = consensus.RuleStructure
	} else if tc, ok := m.(*types.TC); ok && tc.View < r.Status().View {
		return true // a view this replica has left: the engine drops it unchecked
	} else if m.Kind().IsConsensus() {
		rule, err = consensus.PreVerify(env.From, m, r.opts.Verifier, r.leaders, r.opts.Spec.Engine == config.EngineHotStuff)
	} else {
		rule, err = mempool.PreVerify(env.From, m, r.opts.Verifier)
	}
	if err == nil {
		return true
	}
	if r.opts.Stats != nil {
		r.opts.Stats.Rejected(m.Kind(), rule)
	}
	r.opts.Log.WithFields(logrus.Fields{"from": env.From, "kind": m.Kind(), "rule": rule}).Debug(err)
	return false
}

func (r *Replica) loop() {
	defer close(r.loopDone)
	r.core.Start()
	r.publish()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	r.restart = time.NewTimer(time.Hour)
	r.restart.Stop()
	defer r.restart.Stop()
	for {
		r.fireTimers()
		r.flush()
		timer.Reset(r.env.timers.wait(time.Now()))
		select {
		case env := <-r.verified[types.LaneConsensus]:
			r.handle(env)
			r.handleMore()
			r.flush()
			continue
		default:
		}
		select {
		case env := <-r.verified[types.LaneConsensus]:
			r.handle(env)
			r.handleMore()
		case env := <-r.verified[types.LaneData]:
			r.handle(env)
			r.handleMore()
		case s := <-r.submits:
			if r.crashed {
				s.accepted <- ErrCrashed
				continue
			}
			var w *core.Waiter
			s.lost = r.lost // set before accepted is sent, read after it is received
			if s.wait {
				w = core.NewWaiter(func(info core.CommitInfo) { s.done <- info })
			}
			var err error
			s.dups, err = r.core.SubmitTxs(s.txs, w)
			s.txs = nil // the waiter keeps s until delivery; the mempool keeps what it took
			s.accepted <- err
		case q := <-r.reads:
			r.serveRead(q)
		case d := <-r.crashes:
			r.crash(d)
		case <-r.restart.C:
			r.recover()
		case <-timer.C:
		case <-tick.C:
			r.publish()
		case b := <-r.synced:
			r.landed(b)
		case <-r.stop:
			r.flush()
			if r.sealed != nil {
				close(r.sealed)
				for r.inflight > 0 {
					r.landed(<-r.synced)
				}
				<-r.committed
			}
			_ = r.store.Close()
			return
		}
		r.flush()
	}
}

// seal hands the steps since the last seal to the committer, with their messages and waiters.
// Nothing is sealed when they changed nothing and sent nothing.
func (r *Replica) seal() {
	if len(r.env.outbox) == 0 && !r.core.Unflushed() {
		return
	}
	commit, done, err := r.core.FlushLater()
	if err != nil {
		r.storeFailed(err)
		return
	}
	b := &sealedBatch{commit: commit, done: done, outbox: r.env.outbox, incarnation: r.incarnation}
	r.env.outbox = nil
	for r.inflight >= maxInflight {
		r.landed(<-r.synced) // the disk sets the pace
	}
	r.inflight++
	r.sealed <- b
}

// landed takes a batch back from the committer: its messages leave and its waiters hear, unless
// the replica crashed since or the disk failed.
func (r *Replica) landed(b *sealedBatch) {
	r.inflight--
	if b.incarnation != r.incarnation || r.crashed {
		return
	}
	if b.err != nil {
		r.storeFailed(b.err)
		return
	}
	r.env.sendAll(b.outbox)
	if b.done != nil {
		b.done()
	}
}

func (r *Replica) storeFailed(err error) {
	r.opts.Log.WithError(err).Error("the store failed: this replica stops; restart the process to recover from what was saved")
	r.env.outbox = r.env.outbox[:0]
	r.crash(0)
}

// committer makes the sealed batches durable, in order, beside the loop. The batches that wait
// while it syncs are written together and synced once (group commit). With a store on disk a
// sync took 2.3 ms on average and a quarter of the batches found others waiting behind them
// (run.sh, s-hs at N=4 under load): that N=4 run stayed where it was, while at N=16, sixteen
// stores on one disk, throughput rose by 14 % (docs/performance.md).
func (r *Replica) committer() {
	defer close(r.committed)
	var group []*sealedBatch
	for b := range r.sealed {
		group = append(group[:0], b)
	more:
		for len(group) < maxInflight {
			select {
			case b, ok := <-r.sealed:
				if !ok {
					break more
				}
				group = append(group, b)
			default:
				break more
			}
		}
		commitGroup(group)
		for _, b := range group {
			r.synced <- b
		}
	}
}

// commitGroup writes the batches in order, syncing with the last: none is durable before that
// sync returns, so a failed write (after which nothing more is written) or a failed sync fails
// every batch of the group.
func commitGroup(group []*sealedBatch) {
	last := -1
	for i, b := range group {
		if b.commit != nil {
			last = i
		}
	}
	var err error
	for i, b := range group[:last+1] {
		if b.commit != nil && err == nil {
			err = b.commit(i == last)
		}
	}
	for _, b := range group[:last+1] {
		b.err = err
	}
}

// maxBatchedSteps bounds the messages handled between two flushes: with a store on disk one
// sync covers them all.
const maxBatchedSteps = 64

// handleMore handles the messages already waiting, up to maxBatchedSteps, consensus first, so
// that one flush covers them.
func (r *Replica) handleMore() {
	if !r.durable {
		return
	}
	for range maxBatchedSteps - 1 {
		select {
		case env := <-r.verified[types.LaneConsensus]:
			r.handle(env)
			continue
		default:
		}
		select {
		case env := <-r.verified[types.LaneConsensus]:
			r.handle(env)
		case env := <-r.verified[types.LaneData]:
			r.handle(env)
		default:
			return
		}
	}
}

// crash drops the Core and its timers; after down a new Core starts from the store.
// A crash while down replaces the previous one's end: the replica restarts down from now (0:
// it stays down).
func (r *Replica) crash(down time.Duration) {
	if r.crashed {
		r.restart.Stop()
		if down > 0 {
			r.restart.Reset(down)
		}
		r.opts.Log.WithField("down", down).Warn("replica crashed again while down")
		return
	}
	r.crashed = true
	r.incarnation++
	r.proven.reset()     // the pushes this set stands for are gone with the Core
	for r.inflight > 0 { // what was on its way to the disk lands before a new incarnation reads it
		r.landed(<-r.synced)
	}
	r.env.timers = timerHeap{}
	close(r.lost) // waiting submissions are lost with the mempool
	r.lost = make(chan struct{})
	r.opts.Log.WithField("down", down).Warn("replica crashed")
	if down > 0 {
		r.restart.Reset(down)
	}
}

func (r *Replica) recover() {
	if !r.crashed {
		return
	}
	core, err := r.newCore()
	if err != nil {
		r.opts.Log.WithError(err).Error("replica cannot restart")
		return
	}
	r.core, r.crashed = core, false
	if r.opts.Stats != nil {
		r.opts.Stats.Restarted()
	}
	r.opts.Log.Warn("replica restarted; catching up")
	r.core.Start()
	r.publish()
}

func (r *Replica) handle(env transport.Envelope) {
	if r.crashed {
		return // a crashed replica hears nothing
	}
	if glog.V(3) {
		glog.Infof("node %d <- %d: %v", r.opts.ID, env.From, env.Msg.Kind())
	}
	r.core.Handle(env.From, env.Msg)
}

func (r *Replica) fireTimers() {
	if r.crashed {
		return
	}
	now := time.Now()
	for {
		t, ok := r.env.timers.popDue(now)
		if !ok {
			return
		}
		r.core.Timer(t)
	}
}

func (r *Replica) publish() {
	st := r.core.Status()
	r.status.Store(&st)
	if r.opts.Stats != nil {
		c := r.ep.Counters()
		var traffic [types.NumKinds]stats.Traffic
		for k, t := range c.ByKind {
			traffic[k] = stats.Traffic(t)
		}
		r.opts.Stats.SetGauges(r.core.Gauges(), st.HighQCView, c.Dropped, traffic)
		if cr, ok := r.ep.(transport.ConnRefuser); ok {
			r.opts.Stats.SetConnRefused(cr.Refusals())
		}
	}
}

// logRejections logs every message the core rejected (at debug level) before counting it.
type logRejections struct {
	core.Observer
	log *logrus.Entry
}

func (l logRejections) Event(e consensus.Event) {
	if r, ok := e.(consensus.Rejected); ok && l.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		l.log.WithFields(logrus.Fields{"from": r.From, "kind": r.Kind, "rule": r.Rule}).Debug(r.Detail)
	}
	l.Observer.Event(e)
}

// liveEnv is the Env of a real-time replica. Only the event loop calls it.
type liveEnv struct {
	self     types.NodeID
	n        int
	ep       transport.Endpoint
	signer   crypto.Signer
	verifier crypto.Verifier
	rng      *rand.Rand
	timers   timerHeap
	// hold keeps outgoing messages in outbox until the store synced the steps that sent them.
	hold   bool
	outbox []outMsg
	proven *provenSet
}

type outMsg struct {
	to types.NodeID // 0: broadcast
	m  types.Message
}

func (e *liveEnv) Self() types.NodeID { return e.self }
func (e *liveEnv) N() int             { return e.n }
func (e *liveEnv) Now() time.Time     { return time.Now() }
func (e *liveEnv) Send(to types.NodeID, m types.Message) {
	if e.hold {
		e.outbox = append(e.outbox, outMsg{to: to, m: m})
		return
	}
	e.ep.Send(to, m)
}
func (e *liveEnv) Broadcast(m types.Message) {
	if p, ok := m.(*types.Proof); ok && e.proven != nil {
		e.proven.add(p.MBID)
	}
	if e.hold {
		e.outbox = append(e.outbox, outMsg{m: m})
		return
	}
	e.ep.Broadcast(m)
}

// release sends the held messages, in the order they were sent.
func (e *liveEnv) release() {
	e.sendAll(e.outbox)
	clear(e.outbox)
	e.outbox = e.outbox[:0]
}

func (e *liveEnv) sendAll(out []outMsg) {
	for _, o := range out {
		if o.to == 0 {
			e.ep.Broadcast(o.m)
		} else {
			e.ep.Send(o.to, o.m)
		}
	}
}
func (e *liveEnv) Signer() crypto.Signer     { return e.signer }
func (e *liveEnv) Verifier() crypto.Verifier { return e.verifier }
func (e *liveEnv) Rand() *rand.Rand          { return e.rng }

// UplinkRate implements consensus.Env: the shaped uplink's bandwidth (0: unshaped, unknown).
func (e *liveEnv) UplinkRate() float64 {
	if b, ok := e.ep.(transport.Backlogger); ok {
		return b.UplinkRate()
	}
	return 0
}

// Backlog implements consensus.Env: what the transport says waits on the uplink (a shaped one
// knows its rate; an unshaped one cannot tell and says 0).
func (e *liveEnv) Backlog() time.Duration {
	if b, ok := e.ep.(transport.Backlogger); ok {
		return b.Backlog()
	}
	return 0
}
func (e *liveEnv) SetTimer(d time.Duration, t consensus.Timer) {
	e.timers.add(time.Now().Add(d), t)
}

// timerHeap orders pending timers by deadline, then by the order they were set.
type timerHeap struct {
	items []timerItem
	seq   uint64
}

type timerItem struct {
	at  time.Time
	seq uint64
	t   consensus.Timer
}

func (h *timerHeap) Len() int { return len(h.items) }
func (h *timerHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.seq < b.seq
}
func (h *timerHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *timerHeap) Push(x any)    { h.items = append(h.items, x.(timerItem)) }
func (h *timerHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

func (h *timerHeap) add(at time.Time, t consensus.Timer) {
	h.seq++
	heap.Push(h, timerItem{at: at, seq: h.seq, t: t})
}

func (h *timerHeap) popDue(now time.Time) (consensus.Timer, bool) {
	if len(h.items) == 0 || h.items[0].at.After(now) {
		return nil, false
	}
	return heap.Pop(h).(timerItem).t, true
}

func (h *timerHeap) wait(now time.Time) time.Duration {
	if len(h.items) == 0 {
		return time.Hour
	}
	return max(h.items[0].at.Sub(now), 0)
}
