package streamlet

import (
	"fmt"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// Engine is one replica's Streamlet instance.
type Engine struct {
	consensus.Base
	// proposals holds the first valid proposal of each epoch's leader; only it can get our vote.
	proposals map[types.View]*consensus.Node
	// echoed remembers what was echoed: the first proposal of each epoch and the first vote of
	// each voter per epoch. Anything else of the same key is not echoed, so a Byzantine leader or
	// voter cannot make honest replicas broadcast its equivocations.
	echoed   map[echoKey]bool
	highCert *types.QC
	proposed types.View
}

type echoKey struct {
	kind  types.Kind
	view  types.View
	voter types.NodeID // votes only
}

// New returns an engine; call Start to enter epoch 1.
func New(p consensus.Params) *Engine {
	e := &Engine{
		proposals: make(map[types.View]*consensus.Node),
		echoed:    make(map[echoKey]bool),
		highCert:  types.GenesisQC(),
	}
	e.Base = consensus.NewBase(p, e)
	return e
}

// Start enters epoch 1, or after a restart the epoch after the last one this replica voted in.
func (e *Engine) Start() {
	e.Recover()
	e.EnterView(e.FirstView(), "start")
}

// Synced implements consensus.Rules: the new head is notarized.
func (e *Engine) Synced(qc *types.QC) {
	if qc.View > e.highCert.View {
		e.highCert = qc
	}
}

// LockCert implements consensus.Rules: Streamlet has no lock.
func (e *Engine) LockCert() *types.QC { return nil }

// HighCert implements consensus.Rules: timeouts carry the newest notarization, which spreads it.
func (e *Engine) HighCert() *types.QC { return e.highCert }

// TimeoutVote implements consensus.Rules. Streamlet votes are broadcast and echoed already, so a
// vote inside a timeout is just another copy of one.
func (e *Engine) TimeoutVote(from types.NodeID, v *types.Vote) { e.onVote(from, v) }

// OnMessage implements consensus.Engine.
func (e *Engine) OnMessage(from types.NodeID, m types.Message) {
	switch m := m.(type) {
	case *types.Block:
		e.onProposal(from, m)
	case *types.Vote:
		e.onVote(from, m)
	default:
		e.OnCommonMessage(from, m)
	}
}

// echo re-broadcasts a message the first time this replica sees it.
func (e *Engine) echo(k echoKey, from types.NodeID, m types.Message) {
	if e.echoed[k] {
		return
	}
	e.echoed[k] = true
	if from != e.Self {
		e.Env.Broadcast(m)
	}
}

// onProposal checks a proposal, takes its certificate into account and echoes it once it is in
// the tree or parked waiting for its parent: a block that can never enter the tree (too old,
// conflicting, malformed) is not broadcast again, whoever replays it.
func (e *Engine) onProposal(from types.NodeID, b *types.Block) {
	if b.TC != nil {
		e.Reject(types.KindBlock, from, consensus.RuleStructure, fmt.Errorf("streamlet blocks carry no TC"))
		return
	}
	if b.View <= e.Tree.Head().View() || b.View+consensus.KeepViews < e.View {
		return // below the committed head or long past: it can never extend what is finalized
	}
	if !e.CheckBlock(types.KindBlock, from, b) {
		return
	}
	if e.TooFarAhead(types.KindBlock, from, b.View) {
		e.ProcessCert(b.QC, from)
		return
	}
	e.ProcessCert(b.QC, from)
	n := e.Insert(b, from)
	// Echoed only near this replica's epoch, as votes are: a Byzantine proposer's blocks for
	// epochs far ahead (up to 64 MiB each) would otherwise be sent on to N-1 replicas by every
	// replica; the replicas they concern see them from their proposer.
	if (n != nil || e.Syncer.IsParked(b.ID())) && b.View <= e.View+consensus.KeepViews {
		e.echo(echoKey{kind: types.KindBlock, view: b.View}, from, b)
	}
	if n != nil {
		e.BlockAdded(n)
	}
}

// BlockAdded implements consensus.Rules: record the epoch's first proposal and apply the vote rule.
func (e *Engine) BlockAdded(n *consensus.Node) {
	b := n.Block
	first := e.proposals[b.View]
	if first == nil {
		if b.View+consensus.KeepViews >= e.View {
			e.proposals[b.View] = n
		}
		first = n
	}
	if first != n || b.View != e.View || b.View <= e.LastVoted {
		return
	}
	parent := n.Parent
	if !consensus.ChainCertified(parent) || parent.Height() < e.longestNotarized().Height() {
		e.Reject(types.KindBlock, b.Proposer, consensus.RuleUnsafe,
			fmt.Errorf("block %v of epoch %d does not extend a longest notarized chain", b.ID(), b.View))
		return
	}
	if !e.PayloadAccepted(n) {
		return
	}
	vote := e.SignVote(b)
	if vote == nil {
		return
	}
	e.Env.Broadcast(vote)
	e.onVote(e.Self, vote)
}

// onVote counts a vote and echoes the first vote of its voter in its epoch. A second vote of a
// voter in an epoch is refused before it is echoed, and votes for epochs more than KeepViews
// ahead are counted but not echoed: the replicas they concern see them from their voter.
func (e *Engine) onVote(from types.NodeID, v *types.Vote) {
	if v.View+consensus.KeepViews < e.View || e.TooFarAhead(types.KindVote, from, v.View) {
		return
	}
	if e.Votes.Counted(v) {
		return // an echo of a vote counted (and echoed) already
	}
	if !e.Env.Verifier().Verify(v.Voter, types.VoteDigest(v.View, v.BlockID), v.Sig) {
		e.Reject(types.KindVote, from, consensus.RuleSignature, fmt.Errorf("vote of %d for epoch %d", v.Voter, v.View))
		return
	}
	qc, _, err := e.Votes.Add(v, true) // checked above: an echo must never carry a bad vote
	if err != nil {
		e.Reject(types.KindVote, from, consensus.RuleDuplicate, fmt.Errorf("voter %d, epoch %d: %w", v.Voter, v.View, err))
		return
	}
	if v.View <= e.View+consensus.KeepViews {
		e.echo(echoKey{kind: types.KindVote, view: v.View, voter: v.Voter}, from, v)
	}
	if qc != nil {
		e.ProcessCert(qc, from)
	}
}

// ApplyCert implements consensus.Rules: n is notarized. Finalize what can be finalized and move to
// the next epoch.
func (e *Engine) ApplyCert(qc *types.QC, n *consensus.Node) {
	n.Cert = qc
	if qc.View > e.highCert.View {
		e.highCert = qc
	}
	e.PM.Progress()
	e.finalize()
	if qc.View >= e.View {
		e.EnterView(qc.View+1, "notarized")
	} else {
		e.TryPropose()
	}
}

// finalize commits up to the middle block of the highest run of three notarized blocks with
// consecutive epochs on a notarized chain.
func (e *Engine) finalize() {
	var target *consensus.Node
	for _, n := range e.Tree.Uncommitted() {
		p := n.Parent
		if p == nil || p.Committed || p.Parent == nil || !consensus.ChainCertified(n) {
			continue
		}
		if gp := p.Parent; n.View() == p.View()+1 && p.View() == gp.View()+1 {
			if target == nil || p.Height() > target.Height() {
				target = p
			}
		}
	}
	if target != nil && e.Tree.Extends(target, e.Tree.Head()) {
		e.Commit(target)
	}
}

// longestNotarized returns the tip of a longest fully notarized chain: highest height, then lowest
// view, then lowest ID, so that every replica with the same knowledge picks the same tip.
func (e *Engine) longestNotarized() *consensus.Node {
	best := e.Tree.Head()
	for _, n := range e.Tree.Uncommitted() {
		if n.Cert != nil && n.Height() > best.Height() && consensus.ChainCertified(n) {
			best = n
		}
	}
	return best
}

// ViewEntered implements consensus.Rules: propose if leading, and vote on a proposal that arrived
// before this replica reached the epoch.
func (e *Engine) ViewEntered(v types.View) {
	for ev := range e.proposals {
		if ev+consensus.KeepViews < v {
			delete(e.proposals, ev)
		}
	}
	for k := range e.echoed {
		if k.view+consensus.KeepViews < v {
			delete(e.echoed, k)
		}
	}
	e.TryPropose()
	if n := e.proposals[v]; n != nil {
		e.BlockAdded(n)
	}
}

// TryPropose implements consensus.Rules.
func (e *Engine) TryPropose() {
	v := e.View
	if e.Leaders.Leader(v) != e.Self || e.proposed >= v {
		return
	}
	parent := e.longestNotarized()
	if !e.Gate.Open(e.Env, v, e.Mempool.Ready(), parent) {
		return
	}
	e.proposed = v
	e.Propose(v, parent, parent.Cert, nil, func(*consensus.Node) {
		e.echoed[echoKey{kind: types.KindBlock, view: v}] = true
	})
}
