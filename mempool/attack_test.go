package mempool

// Regression tests of attacks found by reviewing the message handlers as an attacker would. Each
// comment says what the attacker does and what it achieved before the fix; each test asserts that
// it no longer works.

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// A Byzantine proxy (replica 4) answers every LBQuery with "idle, load 0", drops every LBForward,
// and lifts its own ban by echoing back a proof the creator itself broadcast: balancer.delivered
// unbans `from` for ANY forwarded microblock it was ever a proxy of, even one another proxy
// delivered. The busy creator then forwards the same microblock to the Byzantine proxy after every
// forward_timeout, forever: it is never pushed.
func TestAttackDLBDroppingProxyStaysAvoidedDespiteEchoedProof(t *testing.T) {
	const byz = types.NodeID(4)
	cfg := lbCfg() // D = 3: with N = 4 every peer is sampled
	r := busyRig(t, 4, cfg)

	answer := func(nonce uint64, peers []types.NodeID) {
		for _, p := range peers {
			if p == byz {
				r.m.OnMessage(p, &types.LBInfo{Nonce: nonce, LoadUS: 0})
			} else {
				r.m.OnMessage(p, &types.LBInfo{Nonce: nonce, LoadUS: 5000}) // honest, loaded, not busy
			}
		}
	}

	// Token: microblock 1 goes to the Byzantine proxy, times out, is re-forwarded to an honest
	// proxy that broadcasts the proof (recovery phase), so the Byzantine proxy has it too.
	peers, nonce := lbQueries(t, r.pushOwn(10))
	answer(nonce, peers)
	fw := pick[*types.LBForward](r.take())
	require.Len(t, fw, 1)
	require.Equal(t, byz, fw[0].to)
	m1 := fw[0].m.MB
	r.advance(cfg.ForwardTimeout)
	peers, nonce = lbQueries(t, r.take())
	require.NotContains(t, peers, byz, "banned after not delivering")
	answer(nonce, peers)
	fw = pick[*types.LBForward](r.take())
	require.Len(t, fw, 1)
	honest := fw[0].to
	proof1 := r.proofBy(m1, honest, 1)
	r.m.OnMessage(honest, proof1)
	require.Empty(t, pick[*types.Proof](r.take()), "the proxy broadcast the proof of microblock 1, not the creator")
	require.Equal(t, 1, r.m.Gauges().Banned, "the Byzantine proxy is banned")
	r.m.OnMessage(byz, proof1) // the Byzantine proxy echoes the honest proxy's broadcast
	require.Zero(t, r.m.Gauges().Banned, "... and is unbanned without having delivered anything")

	// Microblock 2: every attempt goes to the Byzantine proxy, which drops it and echoes proof1.
	peers, nonce = lbQueries(t, r.pushOwn(11))
	toByz, toHonest, pushed := 0, 0, 0
	const attempts = 50
	for i := 0; i < attempts; i++ {
		answer(nonce, peers)
		out := r.take()
		pushed += len(pick[*types.MicroBlock](out))
		for _, f := range pick[*types.LBForward](out) {
			if f.to == byz {
				toByz++
			} else {
				toHonest++
			}
		}
		r.m.OnMessage(byz, proof1) // echo: unbanned again
		r.advance(cfg.ForwardTimeout)
		out = r.take()
		pushed += len(pick[*types.MicroBlock](out))
		qs := pick[*types.LBQuery](out)
		if len(qs) == 0 {
			break
		}
		peers, nonce = lbQueries(t, out)
	}
	t.Logf("microblock 2 over %d forward timeouts: %d forwards to the Byzantine proxy, %d to honest proxies, %d pushes",
		attempts, toByz, toHonest, pushed)
	require.LessOrEqual(t, toByz, 1, "a proxy that never delivered microblock 2 must not be chosen again and again")
	require.Positive(t, toHonest+pushed, "microblock 2 went to an honest proxy or was pushed by its creator")
}

// A Byzantine creator is charged only the transaction bytes of its microblocks (Bytes()), not
// what storing a microblock costs. With one 2-byte transaction per microblock it fills its room
// (4×memsize/(N-1), or memsize alone) with thousands of microblocks whose heap cost is hundreds of
// times the room.
func TestAttackTinyMicroblocksOverrunQuota(t *testing.T) {
	cfg := pabCfg()
	cfg.MemSize = 16 << 10
	r := newRig(t, 2, 4, cfg)
	r.m.cfg.Events = nil
	const byz = types.NodeID(4)
	quota := r.m.peerRoom(byz) // alone, a creator may fill its share or memsize: 21845 bytes

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < quota/2+10; i++ {
		mb := mbOf(byz, 0, []types.Tx{types.NewTx([]byte{byte(i), byte(i >> 8)})})
		r.m.OnMessage(byz, mb)
		r.env.ClearOutbox() // drop the recorded acks
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	g := r.m.Gauges()
	t.Logf("quota %d B; stored %d microblocks charged %d B; heap grew %d B (%.0f B per microblock, %.0f× the quota)",
		quota, g.Microblocks, g.PeerBytes, heap, float64(heap)/float64(g.Microblocks), float64(heap)/float64(quota))
	runtime.KeepAlive(r)
	require.Less(t, heap, int64(4*quota), "a creator's stored microblocks should cost about its quota, not %d bytes", heap)
}

// A Byzantine creator (4) hands microblocks to an honest replica (3) in unsolicited LBForwards,
// after filling its storage quota at the other honest replicas, so that the pushes replica 3 runs
// on its behalf can never complete: nobody acks them. Before, replica 3 pushed every one of them
// and re-pushed it to every replica after every push_timeout, as long as the microblocks were fresh
// (StaleViews views), and behind a token bucket the re-push queue grew without bound while replica
// 3's own microblocks waited. Now forwards are taken only with load balancing on, at most
// maxProxied pushes run at once for one creator, a push for another creator is given up after
// maxProxyRepushes, a microblock waiting in the token bucket is not queued again, and a forward
// is taken only after a load query this replica answered: these, unsolicited, are not pushed.
func TestAttackUnsolicitedLBForwardIsNotPushed(t *testing.T) {
	for _, lb := range []bool{false, true} {
		const byz = types.NodeID(4)
		cfg := pabCfg()
		cfg.MemSize = 160 // small quotas
		cfg.MSize = 16    // one 16-byte transaction per microblock
		cfg.PushTimeout = 60 * time.Millisecond
		cfg.FillInterval, cfg.Capacity = 10*time.Millisecond, 1
		cfg.LoadBalance = lb
		cfg.D, cfg.EstimateWindow, cfg.Percentile, cfg.BusyThreshold = 1, 10, 95, time.Hour
		cfg.LBTimeout, cfg.ForwardTimeout = 50*time.Millisecond, 300*time.Millisecond

		h := newRig(t, 2, 4, cfg)  // stands for every other honest replica
		p := newRig(t, 3, 4, cfg)  // the unwilling proxy
		quota := h.m.peerRoom(byz) // what one creator alone may hold

		// 1. Fill the creator's quota at h with microblocks that never get a proof.
		for i := 0; i < 1000; i++ {
			h.m.OnMessage(byz, mbOf(byz, 0, txs('q', i, 1)))
		}
		require.LessOrEqual(t, h.m.Gauges().PeerBytes, quota)
		h.take()

		// 2. Many unsolicited LBForwards to p.
		const forwarded = 50
		for i := 0; i < forwarded; i++ {
			p.m.OnMessage(byz, &types.LBForward{MB: mbOf(byz, 0, txs('x', i, 1))})
		}

		// 3. Run 10 s; everything p sends to h is delivered; h never acks.
		sends, acks := 0, 0
		relay := func() {
			for _, s := range p.take() {
				if mb, ok := s.Msg.(*types.MicroBlock); ok && mb.Creator == byz {
					sends++
					if s.To == 0 || s.To == 2 {
						h.m.OnMessage(3, mb)
					}
				}
			}
			acks += len(pick[*types.Ack](h.take()))
		}
		for i := 0; i < 10_000/60; i++ {
			relay()
			p.advance(60 * time.Millisecond)
		}
		relay()
		queued := p.m.bucket.queue.Len()

		// 4. p's own client transaction does not wait behind them.
		require.NoError(t, p.m.AddTxs(txs('o', 0, 1)))
		p.advance(2 * time.Second)
		own := 0
		for _, s := range p.take() {
			if mb, ok := s.Msg.(*types.MicroBlock); ok && mb.Creator == 3 {
				own++
			}
		}
		t.Logf("load balancing %v: %d unsolicited LBForwards -> %d microblock sends by the proxy in 10 s; h acked %d; %d sends still queued; own microblock sent within 2 s: %d",
			lb, forwarded, sends, acks, queued, own)
		require.Zero(t, acks)
		require.Zero(t, sends, "forwards nobody asked for are not pushed (load balancing %v)", lb)
		require.LessOrEqual(t, sends, maxProxied*(1+maxProxyRepushes)*3, "a push that cannot complete is not re-sent forever")
		require.LessOrEqual(t, queued, maxProxied)
		require.Positive(t, own, "the proxy's own microblock does not starve behind re-pushes of another creator's")
	}
}

// smp: a Byzantine leader re-proposes an honest creator's microblock that was committed more than
// StaleViews views ago. Once the committed/delivered sets have forgotten it, smp's CheckPayload has
// no epoch check (only PAB's checkRef has one): the replica fetches the data from the leader, votes,
// and Resolve hands the same transactions out a second time. The same replay under PAB is refused as
// stale.
func TestAttackSMPReplaysOldCommittedMicroblock(t *testing.T) {
	cfg := pabCfg()
	cfg.PAB = false
	r := newRig(t, 2, 4, cfg)
	r.m.SetView(10)
	c := mbOf(3, 10, txs('r', 0, 4)) // honest creator 3
	r.m.OnMessage(3, c)
	blk1 := blockOf(11, 1, types.MBRef{ID: c.ID})
	v, err := r.m.CheckPayload(blk1)
	require.NoError(t, err)
	require.Equal(t, consensus.Accept, v)
	r.m.Decided(blk1)
	first, ok := resolveTxs(r.m, blk1)
	require.True(t, ok)
	r.m.Committed(blk1)

	// Much later (more than StaleViews views), the sets are pruned on the next commit.
	now := types.View(11 + StaleViews + 2)
	r.m.SetView(now)
	r.m.Decided(blockOf(now, 1))
	r.m.Committed(blockOf(now, 1))
	r.take()

	// Byzantine leader 4 proposes the old microblock again and serves its data.
	replay := blockOf(now+1, 4, types.MBRef{ID: c.ID})
	v, _ = r.m.CheckPayload(replay)
	if v == consensus.Wait {
		reqs := pick[*types.FetchRequest](r.take())
		require.Len(t, reqs, 1)
		require.Equal(t, types.NodeID(4), reqs[0].to)
		r.m.OnMessage(4, &types.FetchResponse{MBs: []*types.MicroBlock{c}})
		v, _ = r.m.CheckPayload(replay)
	}
	again, ok := resolveTxs(r.m, replay)
	t.Logf("replay of a microblock of epoch 10 in view %d: verdict %v, resolved %v with %d transactions (first delivery: %d)",
		now+1, v, ok, len(again), len(first))
	require.Equal(t, consensus.Reject, v, "a microblock of epoch 10 is stale in view %d (PAB refuses it)", now+1)
}

// Native, static leader 1: a Byzantine replica (4) keeps the leader's memsize full with TxForwards.
// The leader has no per-origin share: honest replicas' forwards are dropped and the leader's own
// clients are refused for as long as the attacker refills what each block frees. Accounting counts
// transaction bytes only, so tiny transactions also cost the leader far more memory than memsize.
func TestAttackNativeTxForwardFillsStaticLeader(t *testing.T) {
	lenv := nativeEnv(1, 4)
	const memsize, bsize = 1 << 10, 10
	leader := NewNative(lenv, NativeConfig{BSize: bsize, MemSize: memsize, Master: 1})
	honest := txs('h', 0, 50) // what replica 2's clients sent; replica 2 forwards (and re-forwards) them
	honestIn := map[types.Hash]bool{}
	for _, t := range honest {
		honestIn[t.ID()] = true
	}
	seq := 0
	junk := func(n int) []types.Tx { seq += n; return txs('j', seq-n, n) }
	leader.OnMessage(4, &types.TxForward{Txs: junk(memsize / 16)})

	committed := map[types.Hash]bool{}
	clientRefused := 0
	for round := 0; round < 100; round++ {
		var pending []types.Tx // replica 2 forwards again what has not committed, after Retry
		for _, t := range honest {
			if !committed[t.ID()] {
				pending = append(pending, t)
			}
		}
		if len(pending) > 0 {
			leader.OnMessage(2, &types.TxForward{Txs: pending})
		}
		if err := leader.AddTxs(txs('c', round, 1)); err != nil {
			clientRefused++
		}
		p := leader.MakePayload(types.View(round+1), nil)
		for _, t := range p.Txs {
			if honestIn[t.ID()] {
				committed[t.ID()] = true
			}
		}
		leader.Committed(&types.Block{Payload: p})
		leader.OnMessage(4, &types.TxForward{Txs: junk(len(p.Txs))}) // refill at once
	}
	t.Logf("100 blocks of %d: %d of replica 2's %d transactions committed; leader's own client refused %d/100 times",
		bsize, len(committed), len(honest), clientRefused)

	// Memory: 3-byte transactions, memsize 1 MiB.
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	big := NewNative(nativeEnv(1, 4), NativeConfig{BSize: bsize, MemSize: 1 << 20, Master: 1})
	const k = (1 << 20) / 3
	tiny := make([]types.Tx, k)
	for i := range tiny {
		tiny[i] = types.NewTx([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
	}
	big.OnMessage(4, &types.TxForward{Txs: tiny})
	tiny = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("memsize 1 MiB of 3-byte forwarded transactions: %d held, heap grew %d B (%.0f×)",
		big.Gauges().PendingTxs, heap, float64(heap)/float64(1<<20))
	runtime.KeepAlive(big)

	require.Equal(t, len(honest), len(committed), "an honest replica's forwarded transactions get a share of the leader")
	require.Zero(t, clientRefused, "the leader's own clients are not crowded out")
}

// A Byzantine creator (4) gives microblock M to exactly one honest replica (2), enough for a proof
// {2, 4} with q = f+1, and makes sure M is followed in the same committed block by more than
// memsize bytes of other microblocks (its own, sent to everybody, or just a full block: the
// default bsize × msize = 1000 × 128 KiB is twice the default memsize of 64 MiB). When replica 2
// delivers the block it moves M into its retainer and evicts it at once; replica 3, which votes
// on the proof without the data and fetches only from the proof's signers, then asks 4 (silent)
// and 2 (evicted) forever and never delivers the block, nor anything after it.
func TestAttackRetainerEvictsOnlyCopyInSameBlock(t *testing.T) {
	const byz = types.NodeID(4)
	cfg := pabCfg()
	cfg.MemSize = 16000 // retainer: about eight of these microblocks (charged 1952 bytes each)
	cfg.BSize = 20
	h := newRig(t, 2, 4, cfg)
	x := newRig(t, 3, 4, cfg)
	h.m.SetView(5)
	x.m.SetView(5)

	m := mbOf(byz, 5, txs('M', 0, 10))
	h.m.OnMessage(byz, m) // only replica 2 gets M
	refs := []types.MBRef{refOf(h.proofBy(m, 2, byz))}
	for i := 0; i < 9; i++ { // more than memsize of microblocks everybody has
		big := mbOf(byz, 5, txs(byte(i), 100, 10))
		h.m.OnMessage(byz, big)
		x.m.OnMessage(byz, big)
		refs = append(refs, refOf(h.proofBy(big, 2, 3, byz)))
	}
	h.take()
	x.take()
	blk := blockOf(6, byz, refs...) // or an honest leader's full block

	for _, r := range []*rig{h, x} {
		v, err := r.m.CheckPayload(blk)
		require.NoError(t, err)
		require.Equal(t, consensus.Accept, v, "replica %d votes: every proof verifies", r.env.ID)
		r.m.Decided(blk)
	}
	_, ok := resolveTxs(h.m, blk)
	require.True(t, ok)
	h.m.Committed(blk) // replica 2 delivers

	delivered := false
	answered := 0
	for i := 0; i < 100 && !delivered; i++ {
		if _, ok := resolveTxs(x.m, blk); ok {
			delivered = true
			break
		}
		for _, req := range pick[*types.FetchRequest](x.take()) {
			if req.to == 2 {
				h.m.OnMessage(3, req.m)
				for _, resp := range pick[*types.FetchResponse](h.take()) {
					answered++
					x.m.OnMessage(2, resp.m)
				}
			}
		}
		x.advance(cfg.FetchTimeout)
	}
	t.Logf("replica 3 after 100 fetch timeouts: delivered %v; replica 2 answered %d fetch requests; retained %d bytes",
		delivered, answered, h.m.Gauges().Retained)
	require.True(t, delivered, "a committed microblock with a valid proof must stay fetchable from its honest signer")
}

// A Byzantine creator broadcasts each microblock and also hands it to every peer in a load-
// balancing forward, so that every honest replica broadcasts it again: N-1 times the copies an
// honest creator's microblock costs. A replica takes a forward only after answering the creator's
// load query, one forward per query, and never pushes a microblock it already holds; the refused
// forwards are counted as unsolicited. An honest forward (query, answer, forward of a microblock
// the proxy does not hold) is still pushed.
func TestAttackForwardAmplification(t *testing.T) {
	const byz = types.NodeID(4)
	cfg := pabCfg()
	cfg.LoadBalance = true
	cfg.D, cfg.EstimateWindow, cfg.Percentile, cfg.BusyThreshold = 1, 10, 95, time.Hour
	cfg.LBTimeout, cfg.ForwardTimeout = 50*time.Millisecond, 300*time.Millisecond
	p := newRig(t, 3, 4, cfg)
	pushed := func() int {
		n := 0
		for _, s := range p.take() {
			if mb, ok := s.Msg.(*types.MicroBlock); ok && mb.Creator == byz {
				n++
			}
		}
		return n
	}
	unsolicited := func() int {
		n := 0
		for _, e := range p.events {
			if r, ok := e.(consensus.Rejected); ok && r.Rule == consensus.RuleUnsolicited && r.From == byz {
				n++
			}
		}
		return n
	}

	// 1. Broadcast, then forwarded without a query: not pushed again.
	held := mbOf(byz, 0, txs('h', 0, 1))
	p.m.OnMessage(byz, held)
	p.take()
	p.m.OnMessage(byz, &types.LBForward{MB: held})
	require.Zero(t, pushed(), "an unsolicited forward is not pushed")
	// 2. With a query answered first, a forward of a microblock held already: not pushed either.
	p.m.OnMessage(byz, &types.LBQuery{Nonce: 1})
	p.m.OnMessage(byz, &types.LBForward{MB: held})
	require.Zero(t, pushed(), "a microblock held already is not pushed again")
	// 3. One forward per query: the second is refused.
	p.m.OnMessage(byz, &types.LBQuery{Nonce: 2})
	p.m.OnMessage(byz, &types.LBForward{MB: mbOf(byz, 0, txs('f', 0, 1))})
	require.Positive(t, pushed(), "the solicited forward of a new microblock is pushed")
	p.m.OnMessage(byz, &types.LBForward{MB: mbOf(byz, 0, txs('f', 1, 1))})
	require.Zero(t, pushed(), "a second forward on one query is not pushed")
	// 4. A query answered long ago does not admit a forward.
	p.m.OnMessage(byz, &types.LBQuery{Nonce: 3})
	p.advance(time.Second)
	p.take()
	p.m.OnMessage(byz, &types.LBForward{MB: mbOf(byz, 0, txs('f', 2, 1))})
	require.Zero(t, pushed(), "a forward after the query's window is not pushed")
	require.Equal(t, 4, unsolicited(), "each refused forward is counted as unsolicited")
}
