package mempool

// Regression tests of defects a Byzantine leader, creator or peer could exploit in the shared
// mempools. Each test fails on the code before its fix.

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// Defect 1: a committed block's missing microblock was fetched only from the signers its proof
// named, whatever the proof was. A Byzantine leader that shows one replica a copy of its block
// whose proof names only itself (and which that replica never verified) had it ask the leader
// forever: the replica never delivered again. An unverified signer list is never the only place
// to fetch from: every replica is a candidate, the verified signers first.
func TestResolveFetchesBeyondAnUnverifiedSignerList(t *testing.T) {
	cfg := pabCfg() // N = 4, q = 2
	r := newRig(t, 4, 4, cfg)
	r.m.SetView(3)
	mb := mbOf(1, 3, txs('w', 0, 5)) // withheld from replica 4 by its Byzantine creator
	tampered := r.proofBy(mb, 1)     // names only the creator: not a valid proof (q = 2)
	blk := blockOf(4, 1, refOf(tampered))

	_, ok := resolveTxs(r.m, blk)
	require.False(t, ok)
	asked := map[types.NodeID]bool{}
	for i := 0; i < 4; i++ {
		for _, q := range pick[*types.FetchRequest](r.take()) {
			asked[q.to] = true
		}
		r.advance(cfg.FetchTimeout)
	}
	require.True(t, asked[2] || asked[3], "the honest replicas 2 and 3 are asked too, not only the forger: asked %v", asked)
	r.m.OnMessage(2, &types.FetchResponse{MBs: []*types.MicroBlock{mb}})
	got, ok := resolveTxs(r.m, blk)
	require.True(t, ok)
	require.Equal(t, txIDs(mb.Txs), txIDs(got))
}

// A verified proof's signers are asked first: they stored the data.
func TestResolveAsksVerifiedSignersFirst(t *testing.T) {
	cfg := pabCfg()
	r := newRig(t, 4, 4, cfg)
	r.m.SetView(3)
	mb := mbOf(1, 3, txs('v', 0, 5))
	blk := blockOf(4, 3, refOf(r.proofBy(mb, 1, 2)))
	_, ok := resolveTxs(r.m, blk)
	require.False(t, ok)
	var order []types.NodeID
	for i := 0; i < 3; i++ {
		reqs := pick[*types.FetchRequest](r.take())
		require.Len(t, reqs, 1)
		order = append(order, reqs[0].to)
		r.advance(cfg.FetchTimeout)
	}
	require.ElementsMatch(t, []types.NodeID{1, 2}, order[:2], "the signers first")
	require.Equal(t, types.NodeID(3), order[2], "then the others")
}

// Defect 3: under smp with a static master, a microblock the master dropped (its creator's quota
// was full) was never pushed again: smp has no acks, so nobody noticed, and the transactions
// waited for the stale re-issue ~32,000 views later. A creator now pushes an own microblock again
// to the master until it is decided, backing off.
func TestSMPRepushesUndecidedMicroblocksToTheMaster(t *testing.T) {
	cfg := pabCfg()
	cfg.PAB = false
	cfg.Master = 1
	cfg.PushTimeout = 50 * time.Millisecond
	r := newRig(t, 2, 4, cfg)
	r.m.SetView(1)
	require.NoError(t, r.m.AddTxs(txs('s', 0, 10)))
	first := pick[*types.MicroBlock](r.take())
	require.Len(t, first, 1)
	mb := first[0].m

	var at []time.Duration
	start := r.env.Clock
	for i := 0; i < 40; i++ {
		r.advance(10 * time.Millisecond)
		for _, s := range pick[*types.MicroBlock](r.take()) {
			require.Equal(t, types.NodeID(1), s.to, "re-pushed to the master only")
			require.Equal(t, mb.ID, s.m.ID)
			at = append(at, r.env.Clock.Sub(start))
		}
	}
	require.GreaterOrEqual(t, len(at), 2, "re-pushed while undecided")
	require.Less(t, len(at), 8, "with backoff, not every push timeout: %v", at)

	r.m.Decided(blockOf(30, 1, types.MBRef{ID: mb.ID}))
	r.advance(5 * time.Second)
	require.Empty(t, pick[*types.MicroBlock](r.take()), "a decided microblock is not pushed again")
}

// Defect 4: smp's CheckPayload started a fetch for every unknown ID a leader named and nothing
// ever ended it: a leader naming made-up IDs made the replica ask for them forever. A fetch for a
// vote is bounded (one round over the candidates) and ends when the replica leaves the view.
func TestSMPVoteFetchesOfMadeUpIDsEnd(t *testing.T) {
	cfg := pabCfg()
	cfg.PAB = false
	r := newRig(t, 2, 4, cfg)
	r.m.SetView(5)
	var refs []types.MBRef
	for i := 0; i < 3; i++ {
		refs = append(refs, types.MBRef{ID: types.Keccak([]byte{'x', byte(i)})})
	}
	v, err := r.m.CheckPayload(blockOf(5, 1, refs...))
	require.NoError(t, err)
	require.Equal(t, consensus.Wait, v)
	require.Equal(t, 3, r.m.Gauges().Fetching)
	r.advance(20 * cfg.FetchTimeout)
	reqs := len(pick[*types.FetchRequest](r.take()))
	require.LessOrEqual(t, reqs, 3*3, "at most one round over the 3 peers per made-up ID")
	r.m.SetView(6)
	r.advance(100 * cfg.FetchTimeout)
	require.Empty(t, pick[*types.FetchRequest](r.take()), "the block is gone: no more requests")
	require.Zero(t, r.m.Gauges().Fetching)

	// Leaving the view ends the fetches even within their first round.
	r2 := newRig(t, 2, 4, cfg)
	r2.m.SetView(5)
	_, _ = r2.m.CheckPayload(blockOf(5, 1, refs...))
	r2.take()
	r2.m.SetView(6)
	r2.advance(100 * cfg.FetchTimeout)
	require.Empty(t, pick[*types.FetchRequest](r2.take()))
	require.Zero(t, r2.m.Gauges().Fetching)
}

// Defect 6: which microblocks count as delivered was pruned by the replica's own view, so two
// replicas at different views resolved the same committed block differently. Pruning follows the
// committed blocks' views now: the same committed sequence gives the same transactions.
func TestResolveDependsOnlyOnTheCommittedSequence(t *testing.T) {
	cfg := pabCfg()
	mb := mbOf(3, 10, txs('d', 0, 5))
	resolveAfter := func(localView types.View) ([]types.Tx, bool) {
		r := newRig(t, 2, 4, cfg)
		r.m.SetView(10)
		r.m.OnMessage(3, mb)
		p := r.proofBy(mb, 3, 4)
		first := blockOf(10, 1, refOf(p))
		_, ok := resolveTxs(r.m, first)
		require.True(t, ok)
		r.m.Decided(first)
		r.m.Committed(first)
		r.m.SetView(localView) // a replica whose view ran ahead (many timeouts)
		other := mbOf(4, localView, txs('e', 0, 5))
		r.m.OnMessage(4, other)
		next := blockOf(11, 2, refOf(r.proofBy(other, 4, 1)))
		_, ok = resolveTxs(r.m, next)
		require.True(t, ok)
		r.m.Decided(next)
		r.m.Committed(next)
		second := blockOf(12, 3, refOf(p))
		r.m.Decided(second)
		txs, ok := resolveTxs(r.m, second)
		return txs, ok
	}
	a, okA := resolveAfter(11)
	b, okB := resolveAfter(10 + 2*StaleViews)
	require.Equal(t, okA, okB)
	require.Equal(t, txIDs(a), txIDs(b), "a committed microblock contributes once, whatever the local view")
	require.Empty(t, a)
}

// A peer asking for the same microblocks again and again gets a bounded rate of answers: a
// FetchRequest was answered with up to 8 MiB each, with no limit.
func TestFetchRequestsAreRateLimited(t *testing.T) {
	cfg := pabCfg()
	cfg.MSize = 1 << 20
	r := newRig(t, 2, 4, cfg)
	r.m.SetView(1)
	var big []types.Tx
	for i := 0; i < 1024; i++ {
		b := make([]byte, 1024)
		b[0], b[1] = byte(i), byte(i>>8)
		big = append(big, types.NewTx(b))
	}
	mb := mbOf(3, 1, big) // 1 MiB
	r.m.OnMessage(3, mb)
	r.take()
	for i := 0; i < 500; i++ {
		r.m.OnMessage(4, &types.FetchRequest{IDs: []types.Hash{mb.ID}})
	}
	served := len(pick[*types.FetchResponse](r.take()))
	require.Positive(t, served)
	require.LessOrEqual(t, served, types.MaxFrame>>20+1)
	require.Positive(t, countEv[consensus.Rejected](r.events), "refusals are counted")
}

// Suspected: a proof expiring between one replica's vote and another's. Ruled out: whether a
// proof is fresh depends on the block's view, not on the local view or the time, so every replica
// judges a proposal alike, however far apart their views are.
func TestProofFreshnessIsTheSameForEveryReplica(t *testing.T) {
	cfg := pabCfg()
	mb := mbOf(3, 10, txs('p', 0, 5))
	for _, view := range []types.View{10 + StaleViews, 11 + StaleViews} {
		var verdicts []consensus.Verdict
		for _, local := range []types.View{1, view, view + 3*StaleViews} {
			r := newRig(t, 2, 4, cfg)
			r.m.SetView(local)
			v, _ := r.m.CheckPayload(blockOf(view, 1, refOf(r.proofBy(mb, 3, 4))))
			verdicts = append(verdicts, v)
		}
		require.Equal(t, verdicts[0], verdicts[1], "block of view %d", view)
		require.Equal(t, verdicts[0], verdicts[2], "block of view %d", view)
	}
}

// Found by the soak (seed 1148): acks lost in a partition were never sent again. The creator
// re-pushes to the replicas that did not ack, but they had acked once already and stayed silent,
// so the push never reached q acks and the microblock was never proposed. A replica acks again
// whenever the sender itself sends the microblock; gossip relays still get one ack.
func TestAckRepeatedForARepush(t *testing.T) {
	r := newRig(t, 2, 4, pabCfg())
	r.m.SetView(3)
	mb := mbOf(3, 3, txs('a', 0, 5))
	r.m.OnMessage(3, mb)
	first := pick[*types.Ack](r.take())
	require.Len(t, first, 1)
	r.m.OnMessage(4, mb) // a gossip relay (sender 3, from 4)
	require.Empty(t, pick[*types.Ack](r.take()), "a relayed copy is acked once")
	r.m.OnMessage(3, mb) // the sender pushes again: its ack was lost
	again := pick[*types.Ack](r.take())
	require.Len(t, again, 1, "acked again")
	require.Equal(t, types.NodeID(3), again[0].to)
	require.Equal(t, first[0].m.Sig, again[0].m.Sig, "the same signature, made once")
}

// Found by the soak (seed 1310): a microblock a replica saw in any proposal was not proposable
// until that block committed or was orphaned. An equivocating leader that put the same microblock
// into each of its doomed proposals kept the honest leaders from ever proposing it: it was always
// "proposed" again before their turn came. A leader now skips only what the chain it extends
// holds.
func TestAMicroblockInADoomedProposalStaysProposable(t *testing.T) {
	r := newRig(t, 2, 4, pabCfg())
	r.m.SetView(5)
	mb := mbOf(3, 5, txs('c', 0, 5))
	r.m.OnMessage(3, mb)
	p := r.proofBy(mb, 3, 4)
	r.m.OnMessage(3, p)
	doomed := blockOf(5, 1, refOf(p)) // the Byzantine leader of view 5 proposes it
	v, err := r.m.CheckPayload(doomed)
	require.NoError(t, err)
	require.Equal(t, consensus.Accept, v)

	other := blockOf(4, 4) // the chain replica 2 extends as leader of view 6 does not hold it
	pl := r.m.MakePayload(6, []*types.Block{other})
	require.Equal(t, []types.Hash{mb.ID}, refIDs(pl.Refs), "proposed by the honest leader anyway")
	require.Empty(t, r.m.MakePayload(7, []*types.Block{doomed}).Refs, "but not on top of a block that holds it")
}
