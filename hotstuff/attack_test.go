package hotstuff_test

// Regression tests of attacks found by reviewing the message handlers as an attacker would. Each
// comment says what the attacker does and what it achieved before the fix; each test asserts that
// it no longer works.

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/types"
)

// A Byzantine replica (node 2) sends Timeouts for the current view whose Vote field carries its own
// votes for views far beyond MaxViewsAhead. A plain Vote that far ahead is dropped (TooFarAhead),
// but the timeout path (Base.OnTimeout -> Engine.TimeoutVote -> addVote) has no upper bound: each
// message leaves a VoteCollector entry that Prune (which drops only views below the window) never
// removes. Memory grows by ~1 KB per message, forever, and every view change scans it all.
func TestAttackTimeoutVoteFarFutureIsDroppedLikeAPlainVote(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 1})
	const byz = types.NodeID(2)
	far := types.View(1) + consensus.MaxViewsAhead + 1_000_000

	timeoutWithVote := func(view types.View, block types.Hash) *types.Timeout {
		to := h.Timeout(byz, h.Status().View, nil) // a valid timeout for the current view
		to.Vote = h.Vote(byz, view, block)         // the timeout signature does not cover Vote
		return to
	}

	// The same vote sent as a plain Vote is dropped as too far ahead: the intended bound.
	h.Deliver(byz, h.Vote(byz, far-far%4+4, types.Hash{3})) // a view whose next leader is node 1
	require.Equal(t, []string{consensus.RuleFuture}, h.Out.RejectedRules())

	// Inside a timeout it is recorded: a second vote of node 2 for that view is a "duplicate",
	// even after 50 view changes (Prune never forgets views above the current one).
	h.Deliver(byz, timeoutWithVote(far, types.Hash{1}))
	for v := types.View(1); v <= 50; v++ {
		h.Deliver(3, h.TC(v, 1, 3, 4))
	}
	require.Equal(t, types.View(51), h.Status().View)
	h.Deliver(byz, timeoutWithVote(far, types.Hash{2}))
	require.NotContains(t, h.Out.RejectedRules(), consensus.RuleDuplicate,
		"a vote for view %d (current view 51) was stored by the VoteCollector", far)
}

func TestAttackTimeoutVoteFarFutureMemory(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 1})
	const byz = types.NodeID(2)
	far := types.View(1) + consensus.MaxViewsAhead + 1_000_000
	const msgs = 5000
	var block types.Hash
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := 0; i < msgs; i++ {
		block[0], block[1], block[2] = byte(i), byte(i>>8), byte(i>>16)
		to := h.Timeout(byz, 1, nil)
		to.Vote = h.Vote(byz, far+types.View(i), block)
		h.Deliver(byz, to)
	}
	h.Out.Events = nil // the harness's own records are not the engine's memory
	h.Env.ClearOutbox()
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	runtime.KeepAlive(h.Engine)
	grown := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	t.Logf("%d timeouts from one Byzantine sender left %d bytes on the heap (%d bytes each)", msgs, grown, grown/msgs)
	require.Less(t, grown, int64(msgs*50), "far-future votes inside timeouts are retained")
}

// syncRun simulates the network around one lagging replica (node 1): honest peers answer block
// requests after 1ms, the Byzantine node 4 answers just before the sync timeout (Timeout/2+1ms)
// so that it is never skipped. It returns the virtual time the replica needed to vote for the
// newest proposal (-1 if it never did within limit), the block requests it sent per peer, and how
// many of them asked for a block it had already received.
func syncRun(t *testing.T, byzFirst bool, missing int, limit time.Duration) (time.Duration, map[types.NodeID]int, int) {
	h := newHarness(t, enginetest.Config{Self: 1, Leaders: consensus.Static{ID: 2}})
	const byz = types.NodeID(4)
	views := make([]types.View, missing+1)
	for i := range views {
		views[i] = types.View(i + 1)
	}
	links := h.Chain(false, views...) // honest leader 2; node 1 missed all of it
	byID := map[types.Hash]*types.Block{}
	for _, l := range links {
		byID[l.Block.ID()] = l.Block
	}
	tip := links[len(links)-1].Block // the current proposal, view missing+1
	tipParent := links[len(links)-2] // the newest certified block

	if byzFirst {
		// The attacker refers node 1 to the missing chain first: a timeout carrying the newest QC.
		h.Deliver(byz, h.Timeout(byz, 1, tipParent.QC))
	}
	h.Propose(tip) // the honest leader's proposal, referring to the same missing parent

	type delivery struct {
		at   time.Time
		from types.NodeID
		m    types.Message
	}
	var queue []delivery
	reqs := map[types.NodeID]int{}
	received := map[types.Hash]bool{} // blocks already delivered to node 1
	redundant := 0                    // requests for blocks node 1 had already received
	seen := 0
	start := h.Env.Clock
	for h.Env.Clock.Sub(start) < limit {
		for _, s := range h.Env.Outbox[seen:] {
			r, ok := s.Msg.(*types.BlockRequest)
			if !ok || s.To == 0 {
				continue
			}
			reqs[s.To]++
			if received[r.ID] {
				redundant++
			}
			b := byID[r.ID]
			if b == nil {
				continue
			}
			delay := time.Millisecond
			if s.To == byz {
				delay = timeout/2 - time.Millisecond
			}
			queue = append(queue, delivery{h.Env.Clock.Add(delay), s.To, &types.BlockResponse{Block: b}})
		}
		seen = len(h.Env.Outbox)
		for _, v := range h.OwnVotes() {
			if v.BlockID == tip.ID() {
				return h.Env.Clock.Sub(start), reqs, redundant
			}
		}
		next := start.Add(limit)
		for _, d := range queue {
			if d.at.Before(next) {
				next = d.at
			}
		}
		for _, tc := range h.Env.Pending() {
			if tc.Due.Before(next) {
				next = tc.Due
			}
		}
		if next.After(h.Env.Clock) {
			h.Advance(next.Sub(h.Env.Clock))
		}
		rest := queue[:0]
		var due []delivery
		for _, d := range queue {
			if d.at.After(h.Env.Clock) {
				rest = append(rest, d)
			} else {
				due = append(due, d)
			}
		}
		queue = rest
		for _, d := range due {
			received[d.m.(*types.BlockResponse).Block.ID()] = true
			h.Deliver(d.from, d.m)
		}
	}
	t.Logf("not caught up: status %+v", h.Status())
	return -1, reqs, redundant
}

// One Byzantine replica paces the block sync of a lagging honest replica: it refers the replica
// to the missing chain first (a Timeout with the newest QC), so it is the hinted peer; the honest
// leader's later reference is ignored (the request exists); every fetched ancestor's parent is
// asked first from the peer that sent it (the attacker again), and an answer just under the sync
// timeout is never skipped. Meanwhile the requests of blocks that did arrive but had to be parked
// stay open, re-ask every peer, give up after 2N attempts and drop the blocks parked behind them,
// including the current proposal. With 20 missing blocks the replica never votes again.
func TestAttackSlowSyncPeer(t *testing.T) {
	for _, m := range []int{3, 5, 6, 7, 10} {
		d, _, red := syncRun(t, true, m, time.Minute)
		t.Logf("Byzantine referrer, %d missing blocks: voted after %v (-1: never); %d requests for blocks already received", m, d, red)
	}
	const missing = 20
	d, reqs, red := syncRun(t, false, missing, time.Minute)
	t.Logf("honest referrer: voted on the current proposal after %v; block requests per peer %v, %d redundant", d, reqs, red)
	require.GreaterOrEqual(t, d, time.Duration(0))

	d, reqs, red = syncRun(t, true, missing, time.Minute)
	t.Logf("Byzantine referrer: voted on the current proposal after %v (-1: never within 1m); block requests per peer %v, %d for blocks already received", d, reqs, red)
	require.GreaterOrEqual(t, d, time.Duration(0), "the lagging replica never caught up with %d missing blocks", missing)
	require.Less(t, d, 5*time.Second)
}

// A replica that fell more than MaxViewsAhead views behind (e.g. partitioned while the other 3f
// replicas, f of them Byzantine, advance views with TCs and withhold every third vote so that
// nothing commits) can never rejoin: every message from the others is for a view beyond its
// window and TooFarAhead drops it before looking at the certificates it carries, including valid
// TCs and QCs, which cannot be forged and would move it forward.
func TestAttackReplicaFarBehindRejoinsThroughValidCertificates(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 1})
	const now = types.View(1500) // where the other replicas are
	quorum := []types.NodeID{2, 3, 4}
	tc := h.TC(now-1, quorum...)
	h.Deliver(2, tc)                     // the TC of the previous view
	h.Deliver(2, h.Timeout(2, now, nil)) // timeouts of the current view
	h.Deliver(3, h.Timeout(3, now, nil))
	h.Deliver(4, h.Timeout(4, now, nil))
	b := h.Block(enginetest.BlockSpec{View: now, TC: tc}) // the proposal of the current view
	h.Propose(b)
	h.Deliver(2, &types.BlockResponse{Block: b})
	t.Logf("rejections: %v", h.Out.RejectedRules())
	for i := 0; i < 10; i++ { // its own timer keeps firing: nothing changes
		expireView(h)
	}
	require.GreaterOrEqual(t, h.Status().View, now,
		"a valid TC for view %d (2f+1 signatures) does not move a replica at view %d", now-1, h.Status().View)
}

// A Byzantine replica sends made-up TCs: for views far ahead, and for the next views with
// signatures that do not verify. Each used to cost a certificate check on the event loop (under
// BLS about 1.5 ms, so ~700 a second stall consensus). A TC too far ahead is refused unchecked; a
// peer whose TC failed its check has its TCs ignored until the replica has moved KeepViews past.
func TestAttackBogusTCsCostOneCheckPerPeer(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 1})
	const byz = types.NodeID(2)
	h.Deliver(byz, h.TC(1+consensus.MaxViewsAhead+5, 2, 3, 4))
	require.Equal(t, []string{consensus.RuleFuture}, h.Out.RejectedRules(), "too far ahead: refused unchecked")

	bad := func(v types.View) *types.TC {
		tc := h.TC(v, 2, 3, 4)
		tc.Sigs[1] = h.Sign(3, types.TimeoutDigest(v+1)) // a valid signature, of another view
		return tc
	}
	h.Deliver(byz, bad(3))
	require.Equal(t, []string{consensus.RuleFuture, consensus.RuleCert}, h.Out.RejectedRules())
	for v := types.View(4); v < 40; v++ {
		h.Deliver(byz, bad(v)) // ignored: node 2 sent a bad TC in this view
	}
	require.Len(t, h.Out.RejectedRules(), 2, "after one bad TC a peer's TCs are not checked again in this view")
	require.Equal(t, types.View(1), h.Status().View)

	for v := types.View(1); v <= consensus.KeepViews+1; v++ {
		h.Deliver(3, h.TC(v, 1, 3, 4)) // honest view changes
	}
	h.Deliver(byz, bad(h.Status().View))
	require.Len(t, h.Out.RejectedRules(), 3, "KeepViews views later node 2's TCs are checked again")
}

// A Byzantine leader proposes a block on a parent this replica never had, certified in a view no
// later than its committed head's (a fork of an old view, or a block pruned long ago), claiming a
// height far above the head. Block sync cannot find the parent; it used to judge by the claimed
// height that the chain had moved beyond reach and start a state transfer, asking every replica
// for a snapshot (tens of MB each). The parent's QC view shows it cannot be above the head.
func TestAttackMadeUpHeightStartsNoStateTransfer(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 1})
	var chain []*types.Block
	parent := types.Genesis()
	for v := types.View(1); v <= 6; v++ {
		spec := enginetest.BlockSpec{View: v}
		if v > 1 {
			spec.Parent, spec.QC = parent, h.QCFor(parent)
		}
		b := h.Block(spec)
		h.Deliver(h.Leaders.Leader(v), b)
		chain = append(chain, b)
		parent = b
	}
	head := h.Status().CommittedHeight
	require.Positive(t, head, "the chain committed")
	// A fork of view 2 nobody showed this replica, certified (the fixture holds every key).
	fork := h.Block(enginetest.BlockSpec{View: 2, Parent: chain[0], QC: h.QCFor(chain[0]), Payload: enginetest.Payload("fork")})
	v := h.Status().View
	lie := h.Block(enginetest.BlockSpec{View: v, Parent: fork, QC: h.QCFor(fork), Height: head + 50})
	h.Deliver(h.Leaders.Leader(v), lie)
	h.Advance(time.Minute) // block sync asks everyone, then gives up
	require.Empty(t, enginetest.EventsOf[consensus.SyncFailed](h.Out), "a made-up height started a state transfer")
}

// A Byzantine leader sends, for every view it leads up to MaxViewsAhead, a block on a real but
// old QC (up to 64 MiB each): each was parked or kept until its view passed. A block more than
// KeepViews ahead of where its certificates lead is refused, unless it has the form of an honest
// proposal (a certificate of the view just before its own) or block sync asked for it.
func TestAttackFarFutureBlocksAreNotKept(t *testing.T) {
	h := newHarness(t, enginetest.Config{Self: 1})
	const byz = types.NodeID(4)
	b1 := h.Block(enginetest.BlockSpec{View: 1})
	h.Deliver(h.Leaders.Leader(1), b1)
	qc1 := h.QCFor(b1)
	rejected := 0
	for v := types.View(40); v < 400; v += 4 { // views node 4 leads
		blk := h.Block(enginetest.BlockSpec{View: v, Parent: b1, QC: qc1, Payload: enginetest.Payload("far")})
		require.Equal(t, byz, blk.Proposer)
		h.Deliver(byz, blk)
		rejected++
	}
	rules := h.Out.RejectedRules()
	require.Len(t, rules, rejected)
	for _, r := range rules {
		require.Equal(t, consensus.RuleFuture, r)
	}
	// The honest form is still kept when far ahead: a proposal carrying a QC of the view before.
	b2 := h.Block(enginetest.BlockSpec{View: 2, Parent: b1, QC: qc1, Payload: enginetest.Payload("b2")})
	ahead := h.Block(enginetest.BlockSpec{View: 3 + consensus.KeepViews, Parent: b2, QC: h.QC(2+consensus.KeepViews, b2.ID(), 1, 2, 3)})
	h.Deliver(h.Leaders.Leader(ahead.View), ahead)
	require.Len(t, h.Out.RejectedRules(), rejected, "a proposal of the honest form is not refused")
}
