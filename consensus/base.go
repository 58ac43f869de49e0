package consensus

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stratusbft/stratus/types"
)

// Limits shared by the engines.
const (
	MaxViewsAhead  = 1000 // messages for views further ahead are dropped
	KeepViews      = 8    // vote and timeout state kept below the current view
	MaxUncommitted = 4096 // uncommitted blocks held at most
	RetainBlocks   = 256  // committed blocks kept to answer peers that sync
	maxPendingCert = 64
	maxParked      = 1024
)

// Rules is what an engine adds to Base: how it reacts to certificates and blocks.
type Rules interface {
	// ApplyCert handles a verified certificate for a block in the tree, once per block.
	ApplyCert(qc *types.QC, n *Node)
	// BlockAdded is called when a block enters the tree (the engine decides whether to vote).
	BlockAdded(n *Node)
	// ViewEntered is called after Base entered a new view.
	ViewEntered(v types.View)
	// TryPropose proposes if this replica leads the current view and may propose now.
	TryPropose()
	// HighCert is the certificate a timeout carries.
	HighCert() *types.QC
	// TimeoutVote handles a verified vote carried by a timeout.
	TimeoutVote(from types.NodeID, v *types.Vote)
	// LockCert is the certificate of the locked block, saved with the voting state (nil when the
	// engine has no lock).
	LockCert() *types.QC
	// Synced takes into account the certificate of a block that state transfer made the head.
	Synced(qc *types.QC)
}

// Base is the state and the mechanics the engines share: view, tree, block sync, commits,
// timeouts and TCs. Engines embed it and provide Rules.
type Base struct {
	Env     Env
	Mempool Payloads
	Out     Output
	Leaders LeaderElection
	Self    types.NodeID
	F       int // tolerated faults

	Tree   *Tree
	PM     *Pacemaker
	Syncer *Syncer
	Votes  *VoteCollector

	View        types.View
	LastVoted   types.View
	LastTC      *types.TC
	LastVote    *types.Vote // the latest vote this replica cast; timeouts carry it
	PendingVote *Node       // a block whose payload the mempool is still fetching

	Gate        ProposeGate
	Serve       *ServeLimiter // bytes of blocks sent per peer in answer to block requests
	persist     func(VotingState) error
	certified   func(*types.Block, *types.QC)
	recovered   []CertifiedBlock // certified blocks a restarted replica takes back at Start
	rules       Rules
	pendingCert map[types.Hash]*types.QC    // certificates whose block is being fetched
	badTC       map[types.NodeID]types.View // peers whose TC failed its check, and the view this replica was in then
	grace       types.View                  // the view whose timer expired once, waiting for the previous view's fate
}

// NewBase returns the shared state for an engine with the given rules.
func NewBase(p Params, rules Rules) Base {
	n := p.Env.N()
	base := Base{
		Env:         p.Env,
		Mempool:     p.Mempool,
		Out:         p.Out,
		Leaders:     p.Leaders,
		Self:        p.Env.Self(),
		F:           n - QuorumSize(n),
		Tree:        NewTree(RetainBlocks, MaxUncommitted),
		PM:          NewPacemaker(p.Env, p.Timeout, p.MaxBackoff),
		Syncer:      NewSyncer(p.Env, p.Timeout/2+time.Millisecond, maxParked),
		Votes:       NewVoteCollector(QuorumSize(n), n),
		Gate:        NewProposeGate(p.ProposeTimeout),
		Serve:       NewServeLimiter(DefaultServeRate, DefaultServeBurst),
		persist:     p.Persist,
		certified:   p.Certified,
		rules:       rules,
		pendingCert: make(map[types.Hash]*types.QC),
	}
	base.Votes.Verifier = p.Env.Verifier()
	base.Votes.Deferral = NewDeferral(p.Env.Verifier())
	base.PM.Deferral = base.Votes.Deferral
	if p.Restore != nil {
		base.LastVoted = p.Restore.LastVoted
	}
	if r := p.Recovered; r != nil {
		if r.Head != nil && r.HeadCert != nil && r.Head.Height > 0 {
			base.Tree.Reset(r.Head, r.HeadCert)
		}
		base.recovered = r.Certified
	}
	return base
}

// Recover takes back the certified blocks a restarted replica kept, lowest first, as if they had
// just arrived with their certificates: the engine's rules see every certificate again (locks,
// commits, the view). Blocks that no longer extend the head are dropped. Engines call it first
// thing in Start.
func (b *Base) Recover() {
	rec := b.recovered
	b.recovered = nil
	slices.SortFunc(rec, func(x, y CertifiedBlock) int {
		if x.Block.Height != y.Block.Height {
			return cmp.Compare(x.Block.Height, y.Block.Height)
		}
		if x.Block.View != y.Block.View {
			return cmp.Compare(x.Block.View, y.Block.View)
		}
		return types.CompareHash(x.Block.ID(), y.Block.ID())
	})
	for _, c := range rec {
		if c.Block.Height <= b.Tree.Head().Height() {
			continue
		}
		if _, err := b.Tree.Add(c.Block); err != nil {
			continue // its parent is gone: it can no longer commit here
		}
	}
	keep := b.certified
	b.certified = nil // the driver holds these already
	for _, c := range rec {
		if n := b.Tree.Get(c.Block.ID()); n != nil && n.Cert == nil {
			b.applyCert(c.Cert, n)
		}
	}
	b.certified = keep
}

// applyCert hands a certificate of n to the engine's rules and tells the driver to keep n.
func (b *Base) applyCert(qc *types.QC, n *Node) {
	b.rules.ApplyCert(qc, n)
	if b.certified != nil && n.Cert != nil && !n.Committed {
		b.certified(n.Block, n.Cert)
	}
}

// FirstView is the view an engine starts in: 1, or after a restart the view after the last one
// it voted in.
func (b *Base) FirstView() types.View { return b.LastVoted + 1 }

// Status implements Engine.Status.
func (b *Base) Status() Status {
	head := b.Tree.Head()
	return Status{
		View:            b.View,
		Leader:          b.Leaders.Leader(b.View),
		CommittedHeight: head.Height(),
		CommittedView:   head.View(),
		HighQCView:      b.rules.HighCert().View,
	}
}

// Reject reports a dropped message.
func (b *Base) Reject(kind types.Kind, from types.NodeID, rule string, err error) {
	b.Out.Event(Rejected{Kind: kind, From: from, Rule: rule, Detail: err.Error()})
}

// TooFarAhead rejects messages for views beyond the window and reports whether it did.
func (b *Base) TooFarAhead(kind types.Kind, from types.NodeID, v types.View) bool {
	if v <= b.View+MaxViewsAhead {
		return false
	}
	b.Reject(kind, from, RuleFuture, fmt.Errorf("view %d, current %d", v, b.View))
	return true
}

// CheckBlock runs the stateless block checks and rejects on failure.
func (b *Base) CheckBlock(kind types.Kind, from types.NodeID, blk *types.Block) bool {
	if rule, err := CheckBlock(blk, b.Env.Verifier(), b.Leaders); err != nil {
		b.Reject(kind, from, rule, err)
		return false
	}
	return true
}

// Insert adds a checked block to the tree, or parks it until its parent arrives. Blocks that were
// waiting for it are inserted in turn. It returns the node once the block is in the tree.
func (b *Base) Insert(blk *types.Block, from types.NodeID) *Node {
	if n := b.Tree.Get(blk.ID()); n != nil {
		return n
	}
	if other := b.Tree.Slot(blk.View, blk.Proposer); other != nil && !b.wanted(blk.ID()) {
		b.Reject(types.KindBlock, from, RuleEquivocation,
			fmt.Errorf("proposer %d already proposed %v in view %d; %v is certified by nobody yet", blk.Proposer, other.ID(), blk.View, blk.ID()))
		return nil
	}
	n, err := b.Tree.Add(blk)
	switch {
	case errors.Is(err, ErrUnknownParent):
		if other, taken := b.Syncer.ParkedSlot(blk.View, blk.Proposer); taken && other != blk.ID() && !b.wanted(blk.ID()) {
			b.Reject(types.KindBlock, from, RuleEquivocation,
				fmt.Errorf("proposer %d already has block %v of view %d waiting for its parent; %v is certified by nobody yet", blk.Proposer, other, blk.View, blk.ID()))
			return nil
		}
		if blk.View > b.Tree.Head().View() {
			b.Syncer.Park(blk, from)
		}
		b.Syncer.Arrived(blk.ID()) // here, if parked: no need to ask for it any more
		return nil
	case err != nil:
		rule := RuleStructure
		if errors.Is(err, ErrConflicts) {
			rule = RuleStale
		} else if errors.Is(err, ErrTreeFull) {
			rule = RuleCapacity
		}
		b.Reject(types.KindBlock, from, rule, err)
		return nil
	}
	children := b.Syncer.Resolved(n.ID())
	if qc := b.pendingCert[n.ID()]; qc != nil {
		delete(b.pendingCert, n.ID())
		b.applyCert(qc, n)
	}
	for _, c := range children {
		b.ProcessCert(c.QC, from)
		if cn := b.Insert(c, from); cn != nil {
			b.rules.BlockAdded(cn)
		}
	}
	return n
}

// wanted reports whether a certificate or a child's QC showed that a quorum voted for block id:
// such a block is taken even when its proposer equivocated and the tree holds another of its
// view.
func (b *Base) wanted(id types.Hash) bool {
	return b.pendingCert[id] != nil || b.Syncer.Pending(id)
}

// ProcessCert takes a verified certificate into account, fetching its block first if needed.
func (b *Base) ProcessCert(qc *types.QC, from types.NodeID) {
	if qc.View <= b.Tree.Head().View() {
		return
	}
	n := b.Tree.Get(qc.BlockID)
	if n == nil {
		if len(b.pendingCert) < maxPendingCert || b.pendingCert[qc.BlockID] != nil {
			b.pendingCert[qc.BlockID] = qc
			b.Syncer.Need(qc.BlockID, from)
		}
		return
	}
	if n.Cert == nil {
		b.applyCert(qc, n)
		b.endGrace()
	}
}

// OnBlockMessage handles a proposal or a fetched block: checks, certificate, insertion.
func (b *Base) OnBlockMessage(kind types.Kind, from types.NodeID, blk *types.Block) {
	if kind == types.KindBlockResponse && b.Tree.Get(blk.ID()) != nil {
		return
	}
	if !b.CheckBlock(kind, from, blk) {
		return
	}
	if b.TooFarAhead(kind, from, blk.View) {
		// Not kept, but its certificates are valid and show where the others are: a replica far
		// behind (restarted, partitioned) catches up through them.
		b.ProcessCert(blk.QC, from)
		if blk.TC != nil {
			b.ProcessTC(blk.TC)
		}
		return
	}
	b.ProcessCert(blk.QC, from)
	if blk.TC != nil {
		b.ProcessTC(blk.TC)
	}
	if b.AheadOfItsCerts(kind, from, blk) {
		return
	}
	if n := b.Insert(blk, from); n != nil {
		b.rules.BlockAdded(n)
	}
}

// AheadOfItsCerts refuses a block more than KeepViews ahead of the view this replica is in once
// the block's own certificates were taken into account, unless block sync asked for it or the
// block has the form of an honest proposal: a QC or a TC of the view just before its own (a
// lagging replica parks the current proposal while it fetches the certified chain below it).
// Without it a Byzantine leader could park a block of up to 64 MiB for every view it leads within
// MaxViewsAhead, each kept until its view passes; with it, only for views that really ended.
func (b *Base) AheadOfItsCerts(kind types.Kind, from types.NodeID, blk *types.Block) bool {
	if blk.View <= b.View+KeepViews || b.wanted(blk.ID()) ||
		blk.QC.View+1 == blk.View || (blk.TC != nil && blk.TC.View+1 == blk.View) {
		return false
	}
	b.Reject(kind, from, RuleFuture, fmt.Errorf("block of view %d, %d views ahead of view %d where its certificates lead", blk.View, blk.View-b.View, b.View))
	return true
}

// ServeBlock answers a peer's block request from the tree, within the peer's serving budget.
func (b *Base) ServeBlock(from types.NodeID, req *types.BlockRequest) {
	n := b.Tree.Get(req.ID)
	if n == nil || n.Block == types.Genesis() {
		return
	}
	if !b.Serve.Ready(from, b.Env.Now()) {
		b.Reject(types.KindBlockRequest, from, RuleRate, fmt.Errorf("block %v: serving budget spent", req.ID))
		return
	}
	resp := &types.BlockResponse{Block: n.Block}
	b.Serve.Charge(from, types.WireSize(resp), b.Env.Now())
	b.Env.Send(from, resp)
}

// Commit commits target and its uncommitted ancestors, reports them and the orphans, and prunes.
func (b *Base) Commit(target *Node) {
	if target.Committed {
		return
	}
	committed, orphans := b.Tree.Commit(target)
	for _, c := range committed {
		b.Out.Commit(c.Block)
	}
	for _, o := range orphans {
		b.Out.Orphan(o)
	}
	if len(committed) > 0 {
		b.PM.Progress()
	}
	head := b.Tree.Head()
	for id, qc := range b.pendingCert {
		if qc.View <= head.View() {
			delete(b.pendingCert, id)
		}
	}
	b.Syncer.Forget(func(blk *types.Block) bool { return blk.View > head.View() })
}

// SyncTo implements Engine.SyncTo.
func (b *Base) SyncTo(blk *types.Block, qc *types.QC) {
	if blk.Height <= b.Tree.Head().Height() {
		return
	}
	for _, o := range b.Tree.Reset(blk, qc) {
		b.Out.Orphan(o)
	}
	if b.PendingVote != nil && b.Tree.Get(b.PendingVote.ID()) == nil {
		b.PendingVote = nil
	}
	head := b.Tree.Head()
	for id, c := range b.pendingCert {
		if c.View <= head.View() {
			delete(b.pendingCert, id)
		}
	}
	b.Syncer.Forget(func(p *types.Block) bool { return p.View > head.View() })
	b.PM.Progress()
	b.rules.Synced(qc)
	for _, c := range b.Syncer.Resolved(head.ID()) { // blocks that waited for the new head
		b.ProcessCert(c.QC, b.Self)
		if cn := b.Insert(c, b.Self); cn != nil {
			b.rules.BlockAdded(cn)
		}
	}
	if blk.View >= b.View {
		b.EnterView(blk.View+1, "sync")
	} else {
		b.rules.TryPropose()
	}
}

// CertOf implements Engine.CertOf.
func (b *Base) CertOf(id types.Hash) *types.QC {
	if n := b.Tree.Get(id); n != nil {
		return n.Cert
	}
	return nil
}

// EnterView moves to view v (never backwards), restarts the view timer and prunes old state.
func (b *Base) EnterView(v types.View, cause string) {
	if v <= b.View {
		return
	}
	b.View = v
	if b.PendingVote != nil && b.PendingVote.View() < v {
		b.PendingVote = nil
	}
	b.PM.Enter(v)
	if v > KeepViews {
		b.Votes.Prune(v - KeepViews)
		b.PM.Prune(v - KeepViews)
		for _, o := range b.Tree.Evict(v - KeepViews) {
			b.Out.Orphan(o)
		}
	}
	b.Out.Event(ViewChange{View: v, Leader: b.Leaders.Leader(v), Cause: cause})
	b.rules.ViewEntered(v)
}

// OnViewTimer handles the view timer: on expiry the replica times out the current view.
//
// A replica that entered view v by voting in v-1, which got neither a QC nor a TC, first gives up
// on v-1 instead (carrying its vote), for one more period. Two failures look alike to it: the
// leader of v is silent (it was to form QC(v-1)), or the leader of v-1 split the replicas (it
// showed some of them an invalid proposal, and they time out v-1 while the voters already wait in
// v). In the first case the votes in the timeouts make QC(v-1) and the replica gives up on v at
// once (endGrace); in the second, TC(v-1) forms, the leader of v proposes with it, and the
// replica's timer restarts (ProcessTC). Giving up on v at the first expiry would make TC(v) too,
// and a leader failing every N views, next to another faulty one, could keep three consecutive
// views from ever forming.
func (b *Base) OnViewTimer(t ViewTimer) {
	if !b.PM.Expired(t) {
		return
	}
	b.Out.Event(TimedOut{View: b.View, Backoff: b.PM.Backoff()})
	prev := b.View - 1
	if b.grace != b.View && b.LastVote != nil && b.LastVote.View == prev && b.certifiedView() < prev && !b.PM.Sent(prev) {
		b.grace = b.View
		b.SendTimeout(prev)
		b.endGrace()
		return
	}
	b.SendTimeout(b.View)
}

// endGrace gives up on the current view at once when it was waiting for the previous view's
// fate (OnViewTimer) and the previous view is certified by a QC: its leader had what it needed.
func (b *Base) endGrace() {
	if b.grace == b.View && !b.PM.Sent(b.View) && b.rules.HighCert().View+1 >= b.View {
		b.SendTimeout(b.View)
	}
}

// SendTimeout gives up on view v: no more votes in v, and a signed Timeout to everyone. It is
// re-sent on every expiry of the (backed-off) timer but counted once.
func (b *Base) SendTimeout(v types.View) {
	if v > b.LastVoted {
		b.LastVoted = v
	}
	if b.PendingVote != nil && b.PendingVote.View() <= v {
		b.PendingVote = nil
	}
	t := &types.Timeout{View: v, HighQC: b.rules.HighCert(), Sender: b.Self, Vote: b.LastVote}
	t.Sig = b.Env.Signer().Sign(types.TimeoutDigest(v))
	b.Env.Broadcast(t)
	if !b.PM.Sent(v) {
		b.PM.MarkSent(v)
		b.OnTimeout(b.Self, t)
	}
}

// OnTimeout verifies and counts a timeout; a quorum forms a TC that moves the view on.
func (b *Base) OnTimeout(from types.NodeID, t *types.Timeout) {
	if t.View+KeepViews < b.View {
		return
	}
	if b.TooFarAhead(types.KindTimeout, from, t.View) {
		if VerifyQC(b.Env.Verifier(), t.HighQC) == nil {
			b.ProcessCert(t.HighQC, from) // not counted, but the certificate helps a replica far behind
		}
		return
	}
	checked := !b.PM.Deferral.Defers(from, t.Sender)
	if checked && !b.Env.Verifier().Verify(t.Sender, types.TimeoutDigest(t.View), t.Sig) {
		b.Reject(types.KindTimeout, from, RuleSignature, fmt.Errorf("timeout of %d for view %d", t.Sender, t.View))
		return
	}
	if err := VerifyQC(b.Env.Verifier(), t.HighQC); err != nil {
		b.Reject(types.KindTimeout, from, RuleCert, err)
		return
	}
	b.ProcessCert(t.HighQC, from)
	if v := t.Vote; v != nil && v.View+KeepViews >= b.View && v.View <= b.View+MaxViewsAhead {
		if !b.Env.Verifier().Verify(v.Voter, types.VoteDigest(v.View, v.BlockID), v.Sig) {
			b.Reject(types.KindTimeout, from, RuleSignature, fmt.Errorf("vote of %d inside the timeout of %d", v.Voter, t.Sender))
			return
		}
		b.rules.TimeoutVote(from, v)
	}
	count, tc, bad := b.PM.AddTimeout(t, checked)
	for _, id := range bad {
		b.Reject(types.KindTimeout, id, RuleSignature, fmt.Errorf("timeout of %d for view %d does not verify (checked when its TC formed)", id, t.View))
	}
	if tc != nil {
		b.Env.Broadcast(tc)
		b.ProcessTC(tc)
		return
	}
	// The leader of the next view, which entered it by voting in this one, gives up on this one
	// as soon as any replica did and no certificate came: it may need the TC to propose. When a
	// Byzantine leader showed a valid proposal to some replicas and an invalid one to others,
	// the ones that voted moved on, the others time out, and too few of those alone make the TC:
	// the next leader's timeout brings them to f+1, the voters join (below), and the TC forms
	// before the next view times out too. Otherwise a leader failing every N views, next to
	// another faulty one, could keep three consecutive views from ever forming.
	if next := t.View + 1; next == b.View && b.Leaders.Leader(next) == b.Self && b.LastVote != nil &&
		b.LastVote.View == t.View && b.certifiedView() < t.View && !b.PM.Sent(t.View) {
		b.SendTimeout(t.View)
		return
	}
	// f+1 timeouts for a view mean an honest replica gave up on it. Join, so that a TC forms even
	// when this replica's timer runs late, or when this replica left the view by voting while the
	// others never saw the proposal: without its signature the TC could be one short for good.
	//
	// A view below this replica's that it holds no certificate for is joined on any timeout:
	// this replica left it without a QC or TC (by voting, or by restarting after it), so the
	// others may need its signature to get out of it. Replicas that restarted together come
	// back in the views after their last votes, spread over a few views, each timing out its
	// own: waiting for f+1 timeouts of one view would leave them there for good. Signing a
	// timeout never conflicts with a vote, and each view is joined once.
	if !b.PM.Sent(t.View) {
		switch {
		case t.View >= b.View && count > b.F:
			if t.View > b.View {
				b.EnterView(t.View, "timeouts")
			}
			b.SendTimeout(t.View)
		case t.View < b.View && t.View > b.certifiedView():
			b.SendTimeout(t.View)
		}
	}
}

// certifiedView is the newest view this replica holds a QC or TC for.
func (b *Base) certifiedView() types.View {
	v := b.rules.HighCert().View
	if b.LastTC != nil && b.LastTC.View > v {
		v = b.LastTC.View
	}
	return v
}

// OnTC verifies a TC from a peer and processes it. A TC of any later view counts: it is a
// certificate, it costs nothing to keep, and it brings a replica far behind to the others' view.
//
// Only a TC of a view this replica has not left is checked: every replica that forms a TC
// broadcasts it, and one is enough. A TC too far ahead is refused unchecked, and a peer that sent
// a TC that failed its check has its TCs ignored until this replica has moved KeepViews past that
// view, so that a Byzantine peer's made-up TCs cost at most one check per view change.
func (b *Base) OnTC(from types.NodeID, tc *types.TC) {
	if tc.View < b.View || b.TooFarAhead(types.KindTC, from, tc.View) {
		return
	}
	if v, bad := b.badTC[from]; bad {
		if v+KeepViews >= b.View {
			return
		}
		delete(b.badTC, from)
	}
	if err := VerifyTC(b.Env.Verifier(), tc); err != nil {
		if b.badTC == nil {
			b.badTC = make(map[types.NodeID]types.View)
		}
		b.badTC[from] = b.View
		b.Reject(types.KindTC, from, RuleCert, err)
		return
	}
	b.ProcessTC(tc)
}

// ProcessTC moves past a timed-out view.
//
// A replica that left view v by voting entered v+1 at once, and its timer for v+1 runs from then.
// When the others could not vote in v (a Byzantine leader showed them an invalid proposal), the
// leader of v+1 can only propose once TC(v) forms, a full timeout later — just when that timer
// expires, so the replicas that voted in v would time v+1 out too, and a leader failing every
// N views could keep three consecutive views from ever forming. The first TC(v) restarts the timer
// of v+1: its leader gets a full timeout to be heard.
func (b *Base) ProcessTC(tc *types.TC) {
	newer := b.LastTC == nil || tc.View > b.LastTC.View
	if newer {
		b.LastTC = tc
	}
	if tc.View >= b.View {
		b.EnterView(tc.View+1, "tc")
		return
	}
	if newer && tc.View+1 == b.View {
		b.PM.Enter(b.View)
	}
	b.rules.TryPropose()
}

// OnCommonMessage handles the messages every engine treats alike; it reports whether m was one.
func (b *Base) OnCommonMessage(from types.NodeID, m types.Message) bool {
	switch m := m.(type) {
	case *types.Timeout:
		b.OnTimeout(from, m)
	case *types.TC:
		b.OnTC(from, m)
	case *types.BlockRequest:
		b.ServeBlock(from, m)
	case *types.BlockResponse:
		b.OnBlockMessage(types.KindBlockResponse, from, m.Block)
	default:
		return false
	}
	return true
}

// OnTimer implements Engine.OnTimer for every engine.
func (b *Base) OnTimer(t Timer) {
	switch t := t.(type) {
	case ViewTimer:
		b.OnViewTimer(t)
	case SyncTimer:
		if gaveUp, dropped := b.Syncer.OnTimer(t); gaveUp && b.beyondReach(dropped) {
			b.Out.Event(SyncFailed{ID: t.ID})
		}
	case ProposeTimer:
		if b.Gate.Fired(t, b.View) {
			b.rules.TryPropose()
		}
	}
}

// beyondReach reports whether a block that no peer could send may lie above the committed head,
// judged by the blocks that waited for it: a block whose child sits at or below the head can
// only be committed already or conflict with the committed chain (a Byzantine proposer sent a
// block on a long-pruned parent), and is no reason to ask for a snapshot. With no child to judge
// by (a certificate named it), it may be above.
func (b *Base) beyondReach(dropped []*types.Block) bool {
	if len(dropped) == 0 {
		return true
	}
	head := b.Tree.Head()
	for _, d := range dropped {
		// Its height is the proposer's word; its QC is not. A parent certified in a view no
		// later than the head's cannot be above the head (views grow along the chain): a
		// Byzantine proposer that claims a great height on a long-pruned parent is no reason
		// to ask every replica for a snapshot.
		if d.Height > head.Height()+1 && d.QC != nil && d.QC.View > head.View() {
			return true
		}
	}
	return false
}

// OnMempool implements Engine.OnMempool: data a pending vote waited for may have arrived, and a
// leader may have payload now.
func (b *Base) OnMempool() {
	if b.PendingVote != nil {
		b.rules.BlockAdded(b.PendingVote)
	}
	b.rules.TryPropose()
}

// PayloadAccepted asks the mempool about n's payload: it reports true to vote now; on Wait the
// block waits in PendingVote for the next mempool event; a Reject is counted.
func (b *Base) PayloadAccepted(n *Node) bool {
	verdict, err := b.Mempool.CheckPayload(n.Block)
	switch verdict {
	case Wait:
		b.PendingVote = n
		return false
	case Reject:
		b.PendingVote = nil
		b.Reject(types.KindBlock, n.Block.Proposer, RulePayload, err)
		return false
	}
	b.PendingVote = nil
	return true
}

// Propose is the tail of a leader's proposal, the same in both engines: it builds the block of
// view v on parent with qc (and tc, when the view was entered by one), its payload from the
// mempool, signs it, adds it to the tree, runs added (if not nil) and broadcasts it, then hands
// the node to the engine's BlockAdded. A full tree refuses the block: its payload goes back to
// the mempool and the refusal is counted.
func (b *Base) Propose(v types.View, parent *Node, qc *types.QC, tc *types.TC, added func(*Node)) {
	blk := &types.Block{
		View:     v,
		Height:   parent.Height() + 1,
		Parent:   parent.ID(),
		QC:       qc,
		TC:       tc,
		Payload:  b.Mempool.MakePayload(v, PendingChain(parent)),
		Proposer: b.Self,
	}
	blk.Sig = b.Env.Signer().Sign(blk.ID())
	n, err := b.Tree.Add(blk)
	if err != nil {
		b.Out.Orphan(blk) // only a full tree refuses our own block; the payload goes back
		b.Reject(types.KindBlock, b.Self, RuleCapacity, err)
		return
	}
	if added != nil {
		added(n)
	}
	b.Env.Broadcast(blk)
	b.Out.Event(Proposed{View: v, Items: blk.Payload.Len()})
	b.rules.BlockAdded(n)
}

// SignVote records and signs this replica's vote for blk. The voting state is persisted before
// the vote is returned, so no vote leaves that a restart could forget; when it cannot be saved,
// SignVote returns nil and the replica does not vote.
func (b *Base) SignVote(blk *types.Block) *types.Vote {
	b.LastVoted = blk.View
	if b.persist != nil {
		if err := b.persist(VotingState{LastVoted: b.LastVoted, Lock: b.rules.LockCert()}); err != nil {
			b.Reject(types.KindBlock, b.Self, RuleStorage, err)
			return nil
		}
	}
	vote := &types.Vote{View: blk.View, BlockID: blk.ID(), Voter: b.Self}
	vote.Sig = b.Env.Signer().Sign(types.VoteDigest(vote.View, vote.BlockID))
	b.LastVote = vote
	b.Out.Event(Voted{View: blk.View, Block: blk.ID()})
	return vote
}

// ProposeTimer fires when an idle leader has waited ProposeTimeout for payload.
type ProposeTimer struct{ View types.View }

// ProposeGate decides when a leader proposes: as soon as there is payload, uncommitted payload to
// push to commit, or payload within the last commitDepth blocks whose commit the others learn from
// this proposal's certificate; else after ProposeTimeout, so an idle system sends at most one empty
// block per ProposeTimeout.
type ProposeGate struct {
	timeout  time.Duration
	armedFor types.View
	firedFor types.View
}

// commitDepth is how far up from a proposal's parent payload may sit and still need the proposal
// to become committed at every replica (HotStuff's three-chain).
const commitDepth = 3

// NewProposeGate returns a gate with the given idle timeout.
func NewProposeGate(timeout time.Duration) ProposeGate { return ProposeGate{timeout: timeout} }

// Open reports whether the leader of v may propose now; when not, it arms the propose timer once.
func (g *ProposeGate) Open(env Env, v types.View, ready bool, parent *Node) bool {
	if ready || HasPendingPayload(parent) || RecentPayload(parent, commitDepth) || g.firedFor == v {
		return true
	}
	if g.armedFor != v {
		g.armedFor = v
		env.SetTimer(g.timeout, ProposeTimer{View: v})
	}
	return false
}

// Fired records an expired propose timer; it reports whether it belongs to view current.
func (g *ProposeGate) Fired(t ProposeTimer, current types.View) bool {
	if t.View != current {
		return false
	}
	g.firedFor = t.View
	return true
}
