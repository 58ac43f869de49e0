package simnet

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/fnv"
	"math/rand"
	"time"

	"github.com/stratusbft/stratus/byzantine"
	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/internal/minheap"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/types"
)

// Options configures a simulation.
type Options struct {
	N       int
	Spec    core.Spec
	Seed    int64
	Latency time.Duration // one-way message latency
	Jitter  time.Duration // uniform extra latency in [0, Jitter]
	// Absent replicas crashed before the start: they send nothing and receive nothing.
	Absent []types.NodeID
	// Byzantine replicas run a strategy of package byzantine around their honest core.
	Byzantine map[types.NodeID]string
	// Slow is what the slow strategy adds to every message.
	Slow time.Duration
	// Withhold replicas run the missing strategy, Censor replicas the censor strategy.
	Withhold []types.NodeID
	Censor   []types.NodeID
	// Crash stops replicas at a time and restarts them after a while (never when Down is 0).
	// A restarted replica starts from its store (see core.Store) and catches up.
	Crash map[types.NodeID]CrashPlan
	// SlowSender adds latency to every message a replica sends, making it the busy one: what
	// "slow" means everywhere (the slow strategy, the /slow fault, the nemesis's slow fault).
	SlowSender map[types.NodeID]time.Duration
	// Partitions cut replicas off from the others for a while.
	Partitions []Partition
	// Loss is the probability that a message is lost, until GST.
	Loss float64
	// GST ends loss (the partitions have their own ends). Zero: loss never ends.
	GST time.Duration
	// Drop, when set, loses the messages it returns true for (a full queue, a lossy link).
	Drop func(from, to types.NodeID, m types.Message) bool
	// Engines replaces the engine of some replicas (the checker's tests use broken variants).
	// These replicas count as honest: the checker holds them to every rule.
	Engines map[types.NodeID]func(consensus.Params) consensus.Engine
	// Links models bandwidth (uplink and downlink queues), per-link latency and asynchrony
	// windows; the zero value is latency only, with no queues.
	Links Links
	// CPU models signature and hashing costs per replica (nil: computing is free).
	CPU *CPU
	// SimulatedSignatures replaces secp256k1 with the keyed-hash signatures of crypto.SimMACKeys:
	// verified and unforgeable inside the simulator, and 30× cheaper (large runs; see CPU for
	// charging the real costs).
	SimulatedSignatures bool
	// Scheme is the signature scheme (crypto.Schemes; default secp256k1): under bls12-381
	// certificates are one aggregate signature, and simulated signatures take its sizes.
	Scheme string
	// Light keeps the checker's memory and time per transaction small for large runs: it checks
	// that every honest replica delivers the same transactions at each height and that the chain
	// never repeats one, instead of keeping each replica's set, and nodes keep no delivery lists.
	Light bool
	// Observe, when set, is told about every block a replica delivers, with the transactions it
	// contributed (the measurement of package virtual).
	Observe func(n *Node, b *types.Block, txs []types.Tx)
	// Disks gives replicas a Pebble store on a simulated disk instead of the memory store: every
	// step is flushed before its messages leave, a crash keeps exactly what was synced, and a
	// store failure crashes the replica, which restarts DiskRestart later from what survived.
	Disks       map[types.NodeID]*Disk
	DiskRestart time.Duration
}

// CrashPlan crashes a replica At a virtual time; it restarts Down later (0: never).
type CrashPlan struct {
	At, Down time.Duration
}

// Partition separates Side from the other replicas during [From, To).
type Partition struct {
	From, To time.Duration
	Side     []types.NodeID
}

// Sim is one simulation run.
type Sim struct {
	opts    Options
	start   time.Time
	now     time.Time
	seq     uint64
	queue   minheap.Heap[event]
	rng     *rand.Rand
	nodes   []*Node // index = ID-1
	check   *Checker
	signers []crypto.Signer
	ver     crypto.Verifier
	steps   uint64
	trace   hash.Hash // FNV-128a over the trace records: fast, and determinism needs no more
	modeled bool      // messages go through the link and CPU model
	cpu     *CPU
	busy    []time.Duration // CPU time each replica spent, under the CPU model
	meter   meter
	// tap, when a test sets it, sees every message a Core is handed
	tap func(from, to *Node, m types.Message)
	// the size of the last message sent under the model
	lastMsg  types.Message
	lastSize int
}

// Node is a simulated replica.
type Node struct {
	ID        types.NodeID
	Core      *core.Core
	Absent    bool   // down for good
	Byzantine string // strategy, "" when honest
	Down      bool   // crashed, waiting to restart
	Restarts  int
	sim       *Sim
	rng       *rand.Rand
	gen       uint64     // incarnation: timers of an older one are ignored
	store     core.Store // what survives a crash (replicas with a crash plan or a disk)
	disk      *Disk
	outbox    []func() // a disk replica's messages of the steps not yet flushed
	releasing bool     // flush is sending the held messages
	// StoreFailures counts the crashes its store caused.
	StoreFailures int
	wrap          func(consensus.Env) consensus.Env // a test's view of what the replica sends
	// Blocks and Txs list, in order, what the current incarnation delivered.
	Blocks []types.Hash
	Txs    []types.Hash
	Events []consensus.Event
	// the link and CPU model's state
	up, down link
	cpuBusy  bool
	cpuQueue [types.NumLanes][]cpuJob
	verified map[crypto.CertKey]bool // certificates the CPU model charged this replica for
	// Leading is whether the replica leads the view it is in (the last ViewChange it reported).
	Leading bool
	View    types.View
}

// New builds a simulation; replicas start at virtual time zero when Run is first called.
func New(opts Options) (*Sim, error) {
	if opts.Latency <= 0 {
		opts.Latency = time.Millisecond
	}
	if err := opts.Links.Validate(opts.N); err != nil {
		return nil, err
	}
	var signers []crypto.Signer
	var ver crypto.Verifier
	scheme := opts.Scheme
	if scheme == "" {
		scheme = crypto.SchemeSecp256k1
	}
	if opts.SimulatedSignatures {
		var err error
		if signers, ver, err = crypto.SimMACKeysFor(scheme, opts.Seed, opts.N); err != nil {
			return nil, err
		}
	} else {
		keys, v, err := crypto.SimKeysFor(scheme, opts.Seed, opts.N)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			signers = append(signers, k)
		}
		ver = crypto.NewCache(v)
	}
	l := opts.Links
	s := &Sim{
		opts:    opts,
		start:   time.Unix(1_000_000, 0).UTC(),
		rng:     rand.New(rand.NewSource(opts.Seed)),
		signers: signers,
		ver:     ver,
		trace:   fnv.New128a(),
		modeled: l.Uplink > 0 || l.Downlink > 0 || l.Matrix != nil || len(l.Async) > 0 || opts.CPU != nil,
		cpu:     opts.CPU,
		busy:    make([]time.Duration, opts.N),
	}
	s.meter.init(opts.N)
	s.now = s.start
	s.check = newChecker(s)
	byz := make(map[types.NodeID]string)
	for id, st := range opts.Byzantine {
		byz[id] = st
	}
	for _, id := range opts.Withhold {
		byz[id] = byzantine.Missing
	}
	for _, id := range opts.Censor {
		byz[id] = byzantine.Censor
	}
	for i := 0; i < opts.N; i++ {
		id := types.NodeID(i + 1)
		n := &Node{ID: id, Byzantine: byz[id], sim: s, rng: rand.New(rand.NewSource(opts.Seed*7919 + int64(i)))}
		for _, x := range opts.Absent {
			n.Absent = n.Absent || x == id
		}
		if _, ok := opts.Crash[id]; ok {
			n.store = core.NewMemStore()
		}
		if d := opts.Disks[id]; d != nil {
			n.disk = d
			st, err := d.open(id)
			if err != nil {
				return nil, err
			}
			n.store = st
		}
		if err := n.build(); err != nil {
			return nil, err
		}
		s.nodes = append(s.nodes, n)
	}
	for _, n := range s.nodes {
		if !n.Absent {
			node := n
			s.At(0, func() { node.Core.Start(); node.flush() })
		}
		if plan, ok := opts.Crash[n.ID]; ok {
			node := n
			s.At(plan.At, func() { node.crash() })
			if plan.Down > 0 {
				s.At(plan.At+plan.Down, func() { node.restart() })
			}
		}
	}
	return s, nil
}

// build makes the node's Core with its strategy, from its store.
func (n *Node) build() error {
	s := n.sim
	opts := core.CoreOptions{Engine: s.opts.Engines[n.ID]}
	if n.store != nil {
		opts.Store = n.store
	}
	if n.Byzantine != "" {
		adv, err := byzantine.New(n.Byzantine, byzantine.Params{
			Self: n.ID, N: s.opts.N, Leaders: consensus.NewLeaderElection(int(s.opts.Spec.Master), s.opts.N),
			MemType: s.opts.Spec.MemType, Q: s.opts.Spec.Shared.Q, Slow: s.opts.Slow, Seed: s.opts.Seed,
		})
		if err != nil {
			return err
		}
		if adv != nil {
			opts.Adversary = adv
		}
	}
	var env consensus.Env = &nodeEnv{n: n, gen: n.gen}
	if n.wrap != nil {
		env = n.wrap(env)
	}
	core, err := core.NewCoreWith(env, s.opts.Spec, n, opts)
	if err != nil {
		return err
	}
	n.Core = core
	return nil
}

// crash stops the node: it loses every message and timer until it restarts, and what its disk
// had not synced.
func (n *Node) crash() {
	if n.Down || n.Absent {
		return
	}
	n.Down = true
	n.gen++
	n.dropJobs()
	n.up.reset()
	n.down.reset()
	n.outbox = nil
	if n.disk != nil {
		n.disk.crash(n.store)
	}
	n.sim.record("crash", uint64(n.ID))
}

// flush ends a step of a disk replica: the store syncs, then the step's messages leave. A store
// that fails crashes the replica (its messages never leave) and restarts it later.
func (n *Node) flush() {
	if n.disk == nil || n.Down {
		return
	}
	if err := n.Core.Flush(); err != nil {
		n.StoreFailures++
		n.crash()
		if d := n.sim.opts.DiskRestart; d > 0 {
			n.sim.At(d, func() { n.restart() })
		}
		return
	}
	out := n.outbox
	n.outbox = nil
	n.releasing = true
	for _, send := range out {
		send()
	}
	n.releasing = false
}

// restart starts a new incarnation from what its predecessor saved (its store: the voting state,
// the certified blocks, the delivered state and the microblocks).
func (n *Node) restart() {
	if !n.Down || n.Absent {
		return
	}
	n.Down = false
	n.Restarts++
	n.gen++
	n.Blocks, n.Txs = nil, nil
	if n.disk != nil {
		st, err := n.disk.open(n.ID)
		if err != nil {
			n.sim.check.fail("replica %d cannot open its store again: %v", n.ID, err)
			return
		}
		n.store = st
	}
	if err := n.build(); err != nil {
		n.sim.check.fail("replica %d cannot restart: %v", n.ID, err)
		return
	}
	n.sim.check.restarted(n, n.disk != nil)
	n.sim.record("restart", uint64(n.ID))
	n.Core.Start()
	n.flush()
}

// Faulty reports whether the node is Byzantine or down for good: the checker holds it to nothing.
func (n *Node) Faulty() bool {
	return n.Absent || n.Byzantine != "" || (n.Down && n.sim.opts.Crash[n.ID].Down == 0)
}

func (n *Node) alive() bool { return !n.Absent && !n.Down }

// Node returns replica id.
func (s *Sim) Node(id types.NodeID) *Node { return s.nodes[id-1] }

// Nodes returns all replicas in ID order.
func (s *Sim) Nodes() []*Node { return s.nodes }

// Honest returns the replicas that are neither silent, Byzantine nor crashed for good, in ID
// order. A crashed replica that restarts counts: it must catch up.
func (s *Sim) Honest() []*Node {
	var out []*Node
	for _, n := range s.nodes {
		if !n.Faulty() {
			out = append(out, n)
		}
	}
	return out
}

// Now is the virtual time since the start.
func (s *Sim) Now() time.Duration { return s.now.Sub(s.start) }

// Steps is the number of events processed.
func (s *Sim) Steps() uint64 { return s.steps }

// Seed is the run's seed, for replaying a failure.
func (s *Sim) Seed() int64 { return s.opts.Seed }

// Violations lists invariant violations found so far.
func (s *Sim) Violations() []string { return s.check.violations }

// TraceHash fingerprints the run so far: every message sent (time, sender, receiver, kind,
// latency, block ID), every delivery, crash and restart. Replaying a seed gives the same hash.
func (s *Sim) TraceHash() string { return hex.EncodeToString(s.trace.Sum(nil)) }

// record adds an event to the trace.
func (s *Sim) record(what string, fields ...uint64) {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(s.now.Sub(s.start)))
	s.trace.Write(buf[:])
	s.trace.Write([]byte(what))
	for _, f := range fields {
		binary.BigEndian.PutUint64(buf[:], f)
		s.trace.Write(buf[:])
	}
}

// At schedules f after d of virtual time.
func (s *Sim) At(d time.Duration, f func()) {
	s.seq++
	at := s.now.Add(d)
	s.queue.Push(event{at: at, ns: at.UnixNano(), seq: s.seq, run: f})
}

// Submit schedules a client submission of txs to replica id after d. It reports refusals through
// the returned pointer once the submission ran.
func (s *Sim) Submit(d time.Duration, id types.NodeID, txs []types.Tx) *error {
	res := new(error)
	n := s.Node(id)
	s.At(d, func() {
		if !n.alive() {
			*res = fmt.Errorf("replica %d is down", id)
			return
		}
		if s.cpu == nil {
			*res = n.Core.Submit(txs, nil)
			n.flush()
			return
		}
		bytes := 0
		for _, t := range txs {
			bytes += t.Size()
		}
		s.process(n, types.LaneData, s.cpu.hashCost(bytes), func() { *res = n.Core.Submit(txs, nil) })
	})
	return res
}

// step runs one event and the checks that follow it.
func (s *Sim) step() {
	ev := s.queue.Pop()
	s.now = ev.at
	s.steps++
	ev.run()
	s.check.afterStep()
}

// Run processes events until virtual time reaches until or nothing is left to do.
func (s *Sim) Run(until time.Duration) {
	end := s.start.Add(until)
	for s.queue.Len() > 0 {
		if s.queue.Min().at.After(end) {
			break
		}
		s.step()
	}
	if s.now.Before(end) {
		s.now = end
	}
}

// RunUntil processes events until cond holds (checked after every event), until virtual time
// limit, or until nothing is left. It reports whether cond held.
func (s *Sim) RunUntil(limit time.Duration, cond func() bool) bool {
	end := s.start.Add(limit)
	for s.queue.Len() > 0 && !cond() {
		if s.queue.Min().at.After(end) {
			return cond()
		}
		s.step()
	}
	return cond()
}

// send is a message one replica sends another: the checker sees it, the network carries it.
func (s *Sim) send(from *Node, to types.NodeID, m types.Message) {
	if to < 1 || int(to) > len(s.nodes) || to == from.ID {
		return
	}
	s.check.sent(from, m)
	s.transmit(from, to, m)
}

// broadcast sends m to every other replica: the checker sees it once, the network carries a copy
// per peer, starting with the next replica after the sender so that no replica is always first.
func (s *Sim) broadcast(from *Node, m types.Message) {
	s.check.sent(from, m) // once per message, not per recipient
	if !s.modeled {
		for _, o := range s.nodes {
			if o.ID != from.ID {
				s.transmit(from, o.ID, m)
			}
		}
		return
	}
	for i := 1; i < len(s.nodes); i++ {
		s.transmit(from, s.nodes[(int(from.ID)-1+i)%len(s.nodes)].ID, m)
	}
}

// transmit models the network: latency plus jitter, nothing to or from replicas that are down,
// loss, partitions.
func (s *Sim) transmit(from *Node, to types.NodeID, m types.Message) {
	dst := s.Node(to)
	if !from.alive() || !dst.alive() || s.cut(from.ID, to) {
		return
	}
	if s.opts.Drop != nil && s.opts.Drop(from.ID, to, m) {
		return
	}
	if s.modeled {
		if s.lastMsg != m { // a broadcast sizes its message once
			s.lastMsg, s.lastSize = m, types.WireSize(m)
		}
		s.enqueueUp(from, dst, m, s.lastSize)
		return
	}
	if s.opts.Loss > 0 && (s.opts.GST == 0 || s.Now() < s.opts.GST) && s.rng.Float64() < s.opts.Loss {
		return
	}
	d := s.opts.Latency + s.opts.SlowSender[from.ID]
	if s.opts.Jitter > 0 {
		d += time.Duration(s.rng.Int63n(int64(s.opts.Jitter) + 1))
	}
	var id types.Hash
	if b, ok := m.(*types.Block); ok {
		id = b.ID()
	}
	s.record("send", uint64(from.ID), uint64(to), uint64(m.Kind()), uint64(d), binary.BigEndian.Uint64(id[:8]))
	gen := dst.gen
	s.At(d, func() { s.handle(from, dst, gen, m) })
}

// cut reports whether a partition separates a and b now.
func (s *Sim) cut(a, b types.NodeID) bool {
	now := s.Now()
	for _, p := range s.opts.Partitions {
		if now < p.From || now >= p.To {
			continue
		}
		inA, inB := false, false
		for _, id := range p.Side {
			inA = inA || id == a
			inB = inB || id == b
		}
		if inA != inB {
			return true
		}
	}
	return false
}

// Observer side of a node: the checker sees every delivery and event.

// Event implements replica.Observer.
func (n *Node) Event(e consensus.Event) {
	n.sim.check.event(n, e)
	if vc, ok := e.(consensus.ViewChange); ok {
		n.View, n.Leading = vc.View, vc.Leader == n.ID
	}
	n.sim.meter.event(n, e)
	if n.sim.opts.Light {
		return
	}
	if len(n.Events) < 100_000 {
		n.Events = append(n.Events, e)
	}
}

// Delivered implements replica.Observer.
func (n *Node) Delivered(*types.Block, int, int, []time.Duration, types.Hash) {}

// DeliveredTxs implements replica.TxObserver.
func (n *Node) DeliveredTxs(b *types.Block, txs []types.Tx) {
	if obs := n.sim.opts.Observe; obs != nil {
		obs(n, b, txs)
	}
	if !n.sim.opts.Light {
		n.Blocks = append(n.Blocks, b.ID())
		for _, t := range txs {
			n.Txs = append(n.Txs, t.ID())
		}
	}
	n.sim.record("deliver", uint64(n.ID), b.Height, uint64(len(txs)))
	n.sim.check.delivered(n, b, txs)
}

// nodeEnv is a replica's Env inside the simulator; it belongs to one incarnation.
type nodeEnv struct {
	n   *Node
	gen uint64
}

func (e *nodeEnv) Self() types.NodeID { return e.n.ID }
func (e *nodeEnv) N() int             { return e.n.sim.opts.N }
func (e *nodeEnv) Now() time.Time     { return e.n.sim.now }
func (e *nodeEnv) Send(to types.NodeID, m types.Message) {
	if e.gen != e.n.gen {
		return
	}
	if e.n.disk != nil && !e.n.releasing {
		e.n.outbox = append(e.n.outbox, func() { e.Send(to, m) })
		return
	}
	n, s := e.n, e.n.sim
	if s.cpu == nil {
		s.send(n, to, m)
		return
	}
	leading := n.Leading
	s.process(n, m.Kind().Lane(), s.cpu.signCost(n.ID, m), func() { n.asRole(leading, func() { s.send(n, to, m) }) })
}
func (e *nodeEnv) Broadcast(m types.Message) {
	if e.gen != e.n.gen {
		return
	}
	if e.n.disk != nil && !e.n.releasing {
		e.n.outbox = append(e.n.outbox, func() { e.Broadcast(m) })
		return
	}
	n, s := e.n, e.n.sim
	if s.cpu == nil {
		s.broadcast(n, m)
		return
	}
	leading := n.Leading
	s.process(n, m.Kind().Lane(), s.cpu.signCost(n.ID, m), func() { n.asRole(leading, func() { s.broadcast(n, m) }) })
}

// asRole runs f with the node's role as it was when it decided to send (the CPU model may send
// later, in another view), so that the traffic counts for the role that caused it.
func (n *Node) asRole(leading bool, f func()) {
	now := n.Leading
	n.Leading = leading
	f()
	n.Leading = now
}
func (e *nodeEnv) SetTimer(d time.Duration, t consensus.Timer) {
	n, gen := e.n, e.gen
	n.sim.At(d, func() {
		if n.alive() && n.gen == gen {
			n.Core.Timer(t)
			n.flush()
		}
	})
}
func (e *nodeEnv) Signer() crypto.Signer     { return e.n.sim.signers[e.n.ID-1] }
func (e *nodeEnv) Verifier() crypto.Verifier { return e.n.sim.ver }
func (e *nodeEnv) Rand() *rand.Rand          { return e.n.rng }

// UplinkRate implements consensus.Env: the modelled uplink, bytes per second.
func (e *nodeEnv) UplinkRate() float64 { return e.n.sim.opts.Links.Uplink / 8 }

// Backlog implements consensus.Env: the bytes on the replica's modelled uplink at its rate.
func (e *nodeEnv) Backlog() time.Duration {
	if e.n.sim.opts.Links.Uplink <= 0 {
		return 0
	}
	return Serialization(e.n.up.bytes, e.n.sim.opts.Links.Uplink)
}

type event struct {
	at  time.Time
	ns  int64 // at in nanoseconds, which orders events without time.Time's comparisons
	seq uint64
	run func()
}

// Before orders events by time, then by the order they were scheduled. (at, seq) is unique, so the
// order events run in is the same for any correct heap.
func (e event) Before(o event) bool { return e.ns < o.ns || e.ns == o.ns && e.seq < o.seq }

// QueuedUp is how many bytes wait on the replica's uplink.
func (n *Node) QueuedUp() int { return n.up.bytes }
