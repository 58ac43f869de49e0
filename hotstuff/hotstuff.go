package hotstuff

import (
	"fmt"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// Engine is one replica's HotStuff instance.
type Engine struct {
	consensus.Base
	highQC *types.QC
	// lock is the certificate of the locked block: a replica keeps it across a restart, when the
	// block itself may be gone.
	lock *types.QC
	// proposed is the last view this replica proposed in.
	proposed types.View
	// split records the views whose votes were found hopeless (no block can reach a quorum).
	split map[types.View]bool
}

// New returns an engine; call Start to enter its first view.
func New(p consensus.Params) *Engine {
	e := &Engine{highQC: types.GenesisQC(), lock: types.GenesisQC(), split: make(map[types.View]bool)}
	e.Base = consensus.NewBase(p, e)
	if r := p.Restore; r != nil && r.Lock != nil {
		e.lock = r.Lock
		e.highQC = r.Lock
	}
	return e
}

// Start enters view 1, or after a restart the view after the last one this replica voted in, and
// fetches the locked block when it is not known.
func (e *Engine) Start() {
	e.Recover()
	e.ProcessCert(e.lock, e.Self)
	e.EnterView(e.FirstView(), "start")
}

// Status implements consensus.Engine.
func (e *Engine) Status() consensus.Status {
	s := e.Base.Status()
	s.LockedView = e.lock.View
	return s
}

// HighCert implements consensus.Rules: timeouts carry the highest QC.
func (e *Engine) HighCert() *types.QC { return e.highQC }

// Synced implements consensus.Rules: the certificate of the new head may be the highest.
func (e *Engine) Synced(qc *types.QC) {
	if qc.View > e.highQC.View {
		e.highQC = qc
	}
}

// LockCert implements consensus.Rules.
func (e *Engine) LockCert() *types.QC { return e.lock }

// extendsLock reports whether n extends the locked block. A locked block no longer in the tree
// is either at or below the committed head (pruned: every block extending the head extends it)
// or not fetched yet after a restart (then only the newer-QC rule lets the replica vote).
func (e *Engine) extendsLock(n *consensus.Node) bool {
	lock := e.Tree.Get(e.lock.BlockID)
	if lock == nil {
		if e.lock.View > e.Tree.Head().View() {
			return false
		}
		lock = e.Tree.Head()
	}
	return e.Tree.Extends(n, lock)
}

// OnMessage implements consensus.Engine.
func (e *Engine) OnMessage(from types.NodeID, m types.Message) {
	switch m := m.(type) {
	case *types.Block:
		e.OnBlockMessage(types.KindBlock, from, m)
	case *types.Vote:
		e.onVote(from, m)
	default:
		e.OnCommonMessage(from, m)
	}
}

// ApplyCert implements consensus.Rules: a QC for n updates highQC, locks n's parent and commits n's
// grandparent when n, parent and grandparent have consecutive views.
func (e *Engine) ApplyCert(qc *types.QC, n *consensus.Node) {
	n.Cert = qc
	if qc.View > e.highQC.View {
		// Not progress for the pacemaker: a QC without a commit can come from a view that only the
		// grown backoff let finish, and falling back to the base timeout here would time out the
		// next view again, so that three consecutive views never certify. The backoff resets
		// when a block commits (Base.Commit).
		e.highQC = qc
	}
	if p := n.Parent; p != nil {
		if p.View() > e.lock.View {
			e.lock = n.Block.QC // n's QC certifies p
		}
		if gp := p.Parent; gp != nil && n.View() == p.View()+1 && p.View() == gp.View()+1 {
			e.Commit(gp)
		}
	}
	if qc.View >= e.View {
		e.EnterView(qc.View+1, "qc")
	} else {
		e.TryPropose()
	}
}

// ViewEntered implements consensus.Rules.
func (e *Engine) ViewEntered(v types.View) {
	for sv := range e.split {
		if sv+consensus.KeepViews < v {
			delete(e.split, sv)
		}
	}
	e.TryPropose()
}

// TryPropose implements consensus.Rules.
func (e *Engine) TryPropose() {
	v := e.View
	if e.Leaders.Leader(v) != e.Self || e.proposed >= v {
		return
	}
	viaTC := e.LastTC != nil && e.LastTC.View+1 == v
	if e.highQC.View+1 != v && !viaTC {
		return // wait for the QC of v-1 or a TC
	}
	parent := e.Tree.Get(e.highQC.BlockID)
	if parent == nil || !e.Gate.Open(e.Env, v, e.Mempool.Ready(), parent) {
		return
	}
	var tc *types.TC
	if e.highQC.View+1 != v {
		tc = e.LastTC
	}
	e.proposed = v
	e.Propose(v, parent, e.highQC, tc, nil)
}

// BlockAdded implements consensus.Rules: the voting rule.
func (e *Engine) BlockAdded(n *consensus.Node) {
	b := n.Block
	if b.View != e.View || b.View <= e.LastVoted {
		return
	}
	if b.QC.View <= e.lock.View && !e.extendsLock(n) {
		e.Reject(types.KindBlock, b.Proposer, consensus.RuleUnsafe,
			fmt.Errorf("block %v of view %d neither extends the locked block of view %d nor has a newer QC", b.ID(), b.View, e.lock.View))
		return
	}
	if b.QC.View+1 != b.View && (b.TC == nil || b.TC.View+1 != b.View) {
		e.Reject(types.KindBlock, b.Proposer, consensus.RuleStructure,
			fmt.Errorf("view %d is justified by neither its QC (view %d) nor a TC", b.View, b.QC.View))
		return
	}
	if !e.PayloadAccepted(n) {
		return
	}
	vote := e.SignVote(b)
	if vote == nil {
		return
	}
	if next := e.Leaders.Leader(b.View + 1); next != e.Self {
		e.Env.Send(next, vote)
	}
	e.addVote(e.Self, vote, true) // at the next leader for the QC; anywhere to see a split
	e.EnterView(b.View+1, "vote")
}

// onVote counts a vote: at the leader of the next view, which forms the QC, and at any replica
// for the current and the previous view, where the next leader relays the votes of a view whose
// votes it found split.
func (e *Engine) onVote(from types.NodeID, v *types.Vote) {
	if v.View+consensus.KeepViews < e.View {
		return // old votes no longer matter
	}
	if e.Leaders.Leader(v.View+1) != e.Self && v.View+1 < e.View {
		return
	}
	if e.TooFarAhead(types.KindVote, from, v.View) {
		return
	}
	checked := !e.Votes.Defers(from, v.Voter)
	if checked && !e.Env.Verifier().Verify(v.Voter, types.VoteDigest(v.View, v.BlockID), v.Sig) {
		e.Reject(types.KindVote, from, consensus.RuleSignature, fmt.Errorf("vote of %d for view %d", v.Voter, v.View))
		return
	}
	e.addVote(from, v, checked)
}

// TimeoutVote implements consensus.Rules: votes carried by timeouts count at every replica, so
// the QC a failed leader should have formed is assembled by everyone from the timeouts.
func (e *Engine) TimeoutVote(from types.NodeID, v *types.Vote) {
	if v.View+consensus.KeepViews < e.View || v.View <= e.highQC.View {
		return
	}
	e.addVote(from, v, true)
}

// addVote counts a vote; unchecked, its signature is verified with the others for its block when
// they reach a quorum (one pairing under BLS).
func (e *Engine) addVote(from types.NodeID, v *types.Vote, checked bool) {
	qc, bad, err := e.Votes.Add(v, checked)
	e.rejectBadVotes(v.View, bad)
	if err != nil {
		e.Reject(types.KindVote, from, consensus.RuleDuplicate, fmt.Errorf("voter %d, view %d: %w", v.Voter, v.View, err))
		return
	}
	if qc != nil {
		e.ProcessCert(qc, e.Leaders.Leader(v.View))
	}
	e.checkSplit(v.View)
}

// rejectBadVotes counts the votes of view v whose unchecked signatures failed, against their voters.
func (e *Engine) rejectBadVotes(v types.View, bad []types.NodeID) {
	for _, id := range bad {
		e.Reject(types.KindVote, id, consensus.RuleSignature, fmt.Errorf("vote of %d for view %d does not verify (checked with its block's quorum)", id, v))
	}
}

// checkSplit gives up on a view whose votes can no longer form a QC. An equivocating leader that
// shows one block to some replicas and another to the rest leaves every replica voted and waiting
// in the next view, whose leader has neither a QC nor a TC to propose with; with round-robin
// leaders that pattern can keep three consecutive honest views from ever forming. The next
// leader, which gets the votes, relays them once it sees they are split; every replica that sees
// the split signs a timeout for the view (safe: timeouts never conflict with votes), the TC forms
// at once and the next leader proposes with it.
func (e *Engine) checkSplit(v types.View) {
	if e.split[v] || !e.Votes.Hopeless(v) {
		return
	}
	e.split[v] = true
	if e.Leaders.Leader(v+1) == e.Self {
		votes, bad := e.Votes.VotesOf(v)
		e.rejectBadVotes(v, bad)
		for _, vote := range votes {
			e.Env.Broadcast(vote)
		}
	}
	if v+1 >= e.View && v > e.highQC.View && !e.PM.Sent(v) && (e.LastTC == nil || e.LastTC.View < v) {
		e.SendTimeout(v)
	}
}
