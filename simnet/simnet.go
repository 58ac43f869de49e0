// Package simnet is a deterministic discrete-event simulator: it runs the Cores of N replicas on a
// virtual clock over a modelled network, injects client load and faults, and checks the safety
// invariants of SPEC §4 as it goes. The same seed gives the same run, event for event.
package simnet

import (
	"container/heap"
	"fmt"
	"math/rand"
	"time"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/replica"
	"github.com/stratusbft/stratus/types"
)

// Options configures a simulation.
type Options struct {
	N       int
	Spec    replica.Spec
	Seed    int64
	Latency time.Duration // one-way message latency
	Jitter  time.Duration // uniform extra latency in [0, Jitter]
	// Silent replicas crashed before the start: they send nothing and receive nothing.
	Silent []types.NodeID
	// Withhold replicas disseminate their microblocks to as few replicas as they can get away
	// with (the "missing" strategy): under PAB to q-1 others, just enough for a proof; under smp
	// to the current leader only.
	Withhold []types.NodeID
	// Censor replicas are Byzantine load-balancing proxies: they answer every load query with an
	// idle load and drop the microblocks forwarded to them.
	Censor []types.NodeID
	// SlowUplink adds latency to every message a replica sends, making it the busy one.
	SlowUplink map[types.NodeID]time.Duration
	// Drop, when set, loses the messages it returns true for (a full queue, a lossy link).
	Drop func(from, to types.NodeID, m types.Message) bool
}

// Sim is one simulation run.
type Sim struct {
	opts    Options
	start   time.Time
	now     time.Time
	seq     uint64
	queue   eventQueue
	rng     *rand.Rand
	nodes   []*Node // index = ID-1
	check   *Checker
	signers []*crypto.KeySigner
	ver     crypto.Verifier
	steps   uint64
}

// Node is a simulated replica.
type Node struct {
	ID       types.NodeID
	Core     *replica.Core
	Silent   bool
	Withhold bool
	Censor   bool
	sim      *Sim
	rng      *rand.Rand
	// Delivered lists, in order, the blocks and transactions this replica delivered.
	Blocks []types.Hash
	Txs    []types.Hash
	voted  map[types.View]bool
	Events []consensus.Event
}

// New builds a simulation; replicas start at virtual time zero when Run is first called.
func New(opts Options) (*Sim, error) {
	if opts.Latency <= 0 {
		opts.Latency = time.Millisecond
	}
	signers, ver := crypto.SimKeys(opts.Seed, opts.N)
	s := &Sim{
		opts:    opts,
		start:   time.Unix(1_000_000, 0).UTC(),
		rng:     rand.New(rand.NewSource(opts.Seed)),
		signers: signers,
		ver:     crypto.NewCache(ver),
	}
	s.now = s.start
	s.check = newChecker(s)
	silent := make(map[types.NodeID]bool)
	for _, id := range opts.Silent {
		silent[id] = true
	}
	withhold := make(map[types.NodeID]bool)
	for _, id := range opts.Withhold {
		withhold[id] = true
	}
	censor := make(map[types.NodeID]bool)
	for _, id := range opts.Censor {
		censor[id] = true
	}
	for i := 0; i < opts.N; i++ {
		n := &Node{
			ID:       types.NodeID(i + 1),
			Silent:   silent[types.NodeID(i+1)],
			Withhold: withhold[types.NodeID(i+1)],
			Censor:   censor[types.NodeID(i+1)],
			sim:      s,
			rng:      rand.New(rand.NewSource(opts.Seed*7919 + int64(i))),
			voted:    make(map[types.View]bool),
		}
		core, err := replica.NewCore(&nodeEnv{n: n}, opts.Spec, n)
		if err != nil {
			return nil, err
		}
		n.Core = core
		s.nodes = append(s.nodes, n)
	}
	for _, n := range s.nodes {
		if !n.Silent {
			node := n
			s.at(0, func() { node.Core.Start() })
		}
	}
	return s, nil
}

// Node returns replica id.
func (s *Sim) Node(id types.NodeID) *Node { return s.nodes[id-1] }

// Nodes returns all replicas in ID order.
func (s *Sim) Nodes() []*Node { return s.nodes }

// Honest returns the replicas that are not silent, in ID order.
func (s *Sim) Honest() []*Node {
	var out []*Node
	for _, n := range s.nodes {
		if !n.Silent {
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

// at schedules f after d of virtual time.
func (s *Sim) at(d time.Duration, f func()) {
	s.seq++
	heap.Push(&s.queue, event{at: s.now.Add(d), seq: s.seq, run: f})
}

// Submit schedules a client submission of txs to replica id after d. It reports refusals through
// the returned pointer once the submission ran.
func (s *Sim) Submit(d time.Duration, id types.NodeID, txs []types.Tx) *error {
	res := new(error)
	n := s.Node(id)
	s.at(d, func() {
		if n.Silent {
			*res = fmt.Errorf("replica %d is silent", id)
			return
		}
		*res = n.Core.Submit(txs, nil)
	})
	return res
}

// Run processes events until virtual time reaches until or nothing is left to do.
func (s *Sim) Run(until time.Duration) {
	end := s.start.Add(until)
	for s.queue.Len() > 0 {
		if s.queue[0].at.After(end) {
			break
		}
		ev := heap.Pop(&s.queue).(event)
		s.now = ev.at
		s.steps++
		ev.run()
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
		if s.queue[0].at.After(end) {
			return cond()
		}
		ev := heap.Pop(&s.queue).(event)
		s.now = ev.at
		s.steps++
		ev.run()
	}
	return cond()
}

// send models the network: latency plus jitter, nothing to or from silent replicas.
func (s *Sim) send(from *Node, to types.NodeID, m types.Message) {
	if to < 1 || int(to) > len(s.nodes) || to == from.ID {
		return
	}
	dst := s.Node(to)
	if from.Silent || dst.Silent || (from.Withhold && !s.withholdAllows(from, to, m)) {
		return
	}
	if s.opts.Drop != nil && s.opts.Drop(from.ID, to, m) {
		return
	}
	if from.Censor {
		if info, ok := m.(*types.LBInfo); ok {
			m = &types.LBInfo{Nonce: info.Nonce} // "idle": come to me
		}
	}
	if _, ok := m.(*types.LBForward); ok && dst.Censor {
		return // forwarded microblocks vanish at a censoring proxy
	}
	d := s.opts.Latency + s.opts.SlowUplink[from.ID]
	if s.opts.Jitter > 0 {
		d += time.Duration(s.rng.Int63n(int64(s.opts.Jitter) + 1))
	}
	s.at(d, func() {
		if err := types.Validate(m); err != nil {
			s.check.fail("replica %d sent an invalid %v: %v", from.ID, m.Kind(), err)
			return
		}
		dst.Core.Handle(from.ID, m)
	})
}

// withholdAllows is the "missing" strategy: microblocks go to the fewest replicas that still let
// them into proposals. Everything else is sent as usual.
func (s *Sim) withholdAllows(from *Node, to types.NodeID, m types.Message) bool {
	mb, ok := m.(*types.MicroBlock)
	if !ok || mb.Creator != from.ID {
		return true
	}
	if s.opts.Spec.MemType == "smp" {
		return to == from.Core.Status().Leader
	}
	// PAB: the q-1 lowest other IDs; with the creator's own ack that makes q.
	q := s.opts.Spec.Shared.Q
	rank := int(to)
	if to > from.ID {
		rank--
	}
	return rank <= q-1
}

// Observer side of a node: the checker sees every delivery and event.

// Event implements replica.Observer.
func (n *Node) Event(e consensus.Event) {
	if v, ok := e.(consensus.Voted); ok {
		if n.voted[v.View] {
			n.sim.check.fail("replica %d voted twice in view %d", n.ID, v.View)
		}
		n.voted[v.View] = true
	}
	if len(n.Events) < 100_000 {
		n.Events = append(n.Events, e)
	}
}

// Delivered implements replica.Observer.
func (n *Node) Delivered(*types.Block, int, int, []time.Duration) {}

// DeliveredTxs implements replica.TxObserver.
func (n *Node) DeliveredTxs(b *types.Block, txs []types.Tx) {
	n.Blocks = append(n.Blocks, b.ID())
	for _, t := range txs {
		n.Txs = append(n.Txs, t.ID())
	}
	n.sim.check.delivered(n, b, txs)
}

// nodeEnv is a replica's Env inside the simulator.
type nodeEnv struct{ n *Node }

func (e *nodeEnv) Self() types.NodeID                    { return e.n.ID }
func (e *nodeEnv) N() int                                { return e.n.sim.opts.N }
func (e *nodeEnv) Now() time.Time                        { return e.n.sim.now }
func (e *nodeEnv) Send(to types.NodeID, m types.Message) { e.n.sim.send(e.n, to, m) }
func (e *nodeEnv) Broadcast(m types.Message) {
	for _, o := range e.n.sim.nodes {
		if o.ID != e.n.ID {
			e.n.sim.send(e.n, o.ID, m)
		}
	}
}
func (e *nodeEnv) SetTimer(d time.Duration, t consensus.Timer) {
	n := e.n
	n.sim.at(d, func() {
		if !n.Silent {
			n.Core.Timer(t)
		}
	})
}
func (e *nodeEnv) Signer() crypto.Signer     { return e.n.sim.signers[e.n.ID-1] }
func (e *nodeEnv) Verifier() crypto.Verifier { return e.n.sim.ver }
func (e *nodeEnv) Rand() *rand.Rand          { return e.n.rng }

type event struct {
	at  time.Time
	seq uint64
	run func()
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
