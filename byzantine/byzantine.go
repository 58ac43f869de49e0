package byzantine

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"time"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// Strategy names (docs/spec.md §4.1).
const (
	Silence         = config.StrategySilence         // sends nothing, ignores everything
	Crash           = config.StrategyCrash           // honest until it crashes; the driver stops and restarts it
	Slow            = config.StrategySlow            // honest, but every message leaves Slow late
	Fork            = config.StrategyFork            // as leader, builds on an older block to orphan the latest certified one
	Equivocate      = config.StrategyEquivocate      // as leader, one proposal to half the replicas, a conflicting one to the rest
	EquivocateFlood = config.StrategyEquivocateFlood // as leader, dozens of conflicting proposals to every replica
	DoubleVote      = config.StrategyDoubleVote      // votes for two blocks of every view it votes in
	Missing         = config.StrategyMissing         // withholds its microblocks: smp to the leader only, PAB to just enough replicas for a proof
	BadProof        = config.StrategyBadProof        // as leader, invalid, missing, swapped or tampered proofs; relays tampered copies of others' blocks
	Censor          = config.StrategyCensor          // as load-balancing proxy, reports an idle load and drops forwarded microblocks
	Flood           = config.StrategyFlood           // honest, plus junk: far-future views, made-up IDs, oversized requests, replays
	BadSig          = config.StrategyBadSig          // its votes, acks and timeouts carry well-formed signatures over another digest
)

var all = config.Strategies // in the order the configuration documents them

// Strategies lists every strategy name.
func Strategies() []string { return slices.Clone(all) }

// Known reports whether name is a strategy.
func Known(name string) bool { return slices.Contains(all, name) }

// Params configure a strategy for one replica.
type Params struct {
	Self    types.NodeID
	N       int
	Leaders consensus.LeaderElection
	MemType string        // native, smp or stratus: what to withhold, what proofs to tamper with
	Q       int           // acks per proof (stratus)
	Slow    time.Duration // slow: added to every message
	Seed    int64
	// FloodEvery is how often flood sends a burst of junk (default 20 ms).
	FloodEvery time.Duration
}

// New returns the adversary of a strategy, or of several joined by "+" (e.g.
// "missing+badproof": what one strategy sends passes the next). Crash needs no decorator (the
// driver stops the replica): alone it returns nil, as for an honest replica.
func New(name string, p Params) (*Adversary, error) {
	var parts []strategy
	for _, part := range strings.Split(name, "+") {
		if part == Crash && name != Crash {
			return nil, fmt.Errorf("byzantine: %q: crash cannot be combined", name)
		}
		s, err := newStrategy(part)
		if err != nil {
			return nil, err
		}
		if s != nil {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	var s strategy = parts[0]
	if len(parts) > 1 {
		s = chain(parts)
	}
	if p.FloodEvery <= 0 {
		p.FloodEvery = 20 * time.Millisecond
	}
	return &Adversary{
		name:    name,
		p:       p,
		s:       s,
		rng:     rand.New(rand.NewSource(p.Seed*131 + int64(p.Self))),
		blocks:  make(map[types.Hash]*types.Block),
		delayed: make(map[uint64]out),
		own:     make(map[types.Hash]bool),
	}, nil
}

// Valid reports whether name is a strategy or a "+" combination of strategies.
func Valid(name string) error {
	_, err := New(name, Params{Self: 1, N: 4})
	return err
}

func newStrategy(name string) (strategy, error) {
	var s strategy
	switch name {
	case Silence:
		s = silence{}
	case Crash:
		return nil, nil
	case Slow:
		s = slow{}
	case Fork:
		s = fork{}
	case Equivocate:
		s = equivocate{copies: 1}
	case EquivocateFlood:
		s = equivocate{copies: 48}
	case DoubleVote:
		s = doubleVote{}
	case Missing:
		s = missing{}
	case BadProof:
		s = badProof{}
	case Censor:
		s = censor{}
	case Flood:
		s = &flood{}
	case BadSig:
		s = badSig{}
	default:
		return nil, fmt.Errorf("byzantine: unknown strategy %q (known: %s)", name, strings.Join(all, ", "))
	}
	return s, nil
}

// chain applies strategies in turn: what the first sends passes the second, and so on; a message
// reaches the replica only if every strategy lets it.
type chain []strategy

func (c chain) outbound(a *Adversary, to types.NodeID, m types.Message) []out {
	outs := []out{{to: to, m: m}}
	for _, s := range c {
		var next []out
		for _, o := range outs {
			for _, x := range s.outbound(a, o.to, o.m) {
				x.delay += o.delay
				next = append(next, x)
			}
		}
		outs = next
	}
	return outs
}

func (c chain) inbound(a *Adversary, from types.NodeID, m types.Message) bool {
	for _, s := range c {
		if !s.inbound(a, from, m) {
			return false
		}
	}
	return true
}

func (c chain) start(a *Adversary) {
	for _, s := range c {
		s.start(a)
	}
}

func (c chain) onTimer(a *Adversary, t consensus.Timer) {
	for _, s := range c {
		s.onTimer(a, t)
	}
}

// strategy is what a strategy changes in an honest replica's behaviour.
type strategy interface {
	// outbound returns what goes out instead of m, which the replica addressed to to (0: every
	// other replica).
	outbound(a *Adversary, to types.NodeID, m types.Message) []out
	// inbound reports whether the replica gets m.
	inbound(a *Adversary, from types.NodeID, m types.Message) bool
	start(a *Adversary)
	onTimer(a *Adversary, t consensus.Timer)
}

// honest is the default behaviour strategies embed.
type honest struct{}

func (honest) outbound(_ *Adversary, to types.NodeID, m types.Message) []out {
	return []out{{to: to, m: m}}
}
func (honest) inbound(*Adversary, types.NodeID, types.Message) bool { return true }
func (honest) start(*Adversary)                                     {}
func (honest) onTimer(*Adversary, consensus.Timer)                  {}

// out is one message leaving: to one replica, or to every other one when to is 0, after delay.
type out struct {
	to    types.NodeID
	m     types.Message
	delay time.Duration
}

// Adversary is one Byzantine replica's strategy. It implements core.Adversary (package replica/core).
type Adversary struct {
	name    string
	p       Params
	s       strategy
	inner   consensus.Env
	rng     *rand.Rand
	view    types.View                  // the highest view seen in any message
	blocks  map[types.Hash]*types.Block // blocks seen, in and out, of recent views
	seq     uint64
	delayed map[uint64]out
	own     map[types.Hash]bool // own microblocks (badproof keeps their proofs to itself)
}

// Name is the strategy's name.
func (a *Adversary) Name() string { return a.name }

type advEnv struct {
	consensus.Env
	a *Adversary
}

func (e advEnv) Send(to types.NodeID, m types.Message) { e.a.send(to, m) }
func (e advEnv) Broadcast(m types.Message)             { e.a.send(0, m) }

// Env wraps the replica's Env: everything it sends passes the strategy.
func (a *Adversary) Env(inner consensus.Env) consensus.Env {
	a.inner = inner
	return advEnv{Env: inner, a: a}
}

// Receive shows the strategy a message before the replica sees it.
func (a *Adversary) Receive(from types.NodeID, m types.Message) bool {
	a.observe(m)
	return a.s.inbound(a, from, m)
}

// Start starts the strategy's own activity.
func (a *Adversary) Start() { a.s.start(a) }

// timers of the adversary itself.
type (
	delayTimer struct{ seq uint64 }
	tickTimer  struct{}
)

// OnTimer handles a timer the adversary set.
func (a *Adversary) OnTimer(t consensus.Timer) {
	if d, ok := t.(delayTimer); ok {
		if o, ok := a.delayed[d.seq]; ok {
			delete(a.delayed, d.seq)
			a.emit(o)
		}
		return
	}
	a.s.onTimer(a, t)
}

func (a *Adversary) send(to types.NodeID, m types.Message) {
	a.observe(m)
	for _, o := range a.s.outbound(a, to, m) {
		if o.delay > 0 {
			a.seq++
			a.delayed[a.seq] = out{to: o.to, m: o.m}
			a.inner.SetTimer(o.delay, delayTimer{seq: a.seq})
			continue
		}
		a.emit(o)
	}
}

func (a *Adversary) emit(o out) {
	if o.to == 0 {
		a.inner.Broadcast(o.m)
	} else if o.to != a.p.Self {
		a.inner.Send(o.to, o.m)
	}
}

// observe remembers blocks and the latest view, for the strategies that build on what they saw.
func (a *Adversary) observe(m types.Message) {
	switch m := m.(type) {
	case *types.Block:
		a.remember(m)
	case *types.BlockResponse:
		a.remember(m.Block)
	case *types.Vote:
		a.see(m.View)
	case *types.Timeout:
		a.see(m.View)
	case *types.TC:
		a.see(m.View)
	}
}

func (a *Adversary) see(v types.View) {
	if v > a.view && v < a.view+consensus.MaxViewsAhead {
		a.view = v
	}
}

// keepViews is how far back the adversary remembers blocks.
const keepViews = 64

func (a *Adversary) remember(b *types.Block) {
	if b == nil {
		return
	}
	a.see(b.View)
	a.blocks[b.ID()] = b
	if len(a.blocks) > 4*keepViews {
		for id, old := range a.blocks {
			if old.View+keepViews < a.view {
				delete(a.blocks, id)
			}
		}
	}
}

// others lists every replica but this one, in ID order.
func (a *Adversary) others() []types.NodeID {
	ids := make([]types.NodeID, 0, a.p.N-1)
	for i := 1; i <= a.p.N; i++ {
		if id := types.NodeID(i); id != a.p.Self {
			ids = append(ids, id)
		}
	}
	return ids
}

// sign signs a digest with this replica's key.
func (a *Adversary) sign(d types.Hash) []byte { return a.inner.Signer().Sign(d) }

// resign returns a copy of b with the given changes, signed by this replica.
func (a *Adversary) resign(b *types.Block, change func(c *types.Block)) *types.Block {
	c := &types.Block{View: b.View, Height: b.Height, Parent: b.Parent, QC: b.QC, TC: b.TC, Payload: b.Payload, Proposer: b.Proposer}
	change(c)
	c.Sig = a.sign(c.ID())
	return c
}

// ownProposal reports whether m is a proposal this replica makes (not a relay or a response).
func (a *Adversary) ownProposal(m types.Message) (*types.Block, bool) {
	b, ok := m.(*types.Block)
	return b, ok && b.Proposer == a.p.Self
}

// junkHash is a made-up ID.
func (a *Adversary) junkHash() types.Hash {
	var h types.Hash
	a.rng.Read(h[:])
	return h
}

// blocksOfView lists the remembered blocks of view v, by ID.
func (a *Adversary) blocksOfView(v types.View) []*types.Block {
	var out []*types.Block
	for _, b := range a.blocks {
		if b.View == v {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(x, y *types.Block) int { return types.CompareHash(x.ID(), y.ID()) })
	return out
}
