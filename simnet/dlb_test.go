package simnet

// Multi-replica scenarios of gossip dissemination and distributed load balancing
// (docs/spec.md §3.4 and §3.5), with every message a replica sends observed through a wrapping
// Env.

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/mempool"
	"github.com/stratusbft/stratus/types"
)

// seedOr is the -seed flag if given, else def.
func seedOr(def int64) int64 {
	if *seedFlag != 0 {
		return *seedFlag
	}
	return def
}

// tapEnv shows every message a replica sends (to = 0: broadcast) to tap, then sends it.
type tapEnv struct {
	consensus.Env
	id  types.NodeID
	tap func(from, to types.NodeID, m types.Message)
}

func (e *tapEnv) Send(to types.NodeID, m types.Message) { e.tap(e.id, to, m); e.Env.Send(to, m) }
func (e *tapEnv) Broadcast(m types.Message)             { e.tap(e.id, 0, m); e.Env.Broadcast(m) }

// tapAll rebuilds every replica's core (with its strategy, if any) around a tapping Env. Call it
// before the first Run.
func tapAll(t *testing.T, s *Sim, tap func(from, to types.NodeID, m types.Message)) {
	t.Helper()
	for _, n := range s.Nodes() {
		id := n.ID
		n.wrap = func(env consensus.Env) consensus.Env { return &tapEnv{Env: env, id: id, tap: tap} }
		require.NoError(t, n.build())
	}
}

// docs/spec.md §3.5: "Instead of broadcasting, the creator sends a microblock to fanout random peers; each
// receiver forwards a microblock it sees for the first time to fanout random peers, up to r hops.
// Redundant receptions are counted." N = 7, fanout 2, r 3: every replica gets every microblock,
// no microblock travels more than r hops, nobody broadcasts one.
func TestGossipReachesEveryReplicaWithinHops(t *testing.T) {
	const n = 7
	p := presets[3] // s-hs-g
	sp := sharedSpec(p, n)
	require.True(t, sp.Shared.Gossip)
	require.Equal(t, 2, sp.Shared.Fanout)
	require.Equal(t, 3, sp.Shared.R)
	s, err := New(Options{N: n, Spec: sp, Seed: seedOr(3), Latency: time.Millisecond, Jitter: 2 * time.Millisecond})
	require.NoError(t, err)
	var tooFar, broadcasts, relays, atLimit int
	tapAll(t, s, func(from, to types.NodeID, m types.Message) {
		mb, ok := m.(*types.MicroBlock)
		if !ok {
			return
		}
		if to == 0 {
			broadcasts++
		}
		if int(mb.Hops) > sp.Shared.R {
			tooFar++
		}
		if from != mb.Creator && from != mb.Sender {
			relays++
			if int(mb.Hops) == sp.Shared.R {
				atLimit++
			}
		}
	})
	txs := makeTxs("gossip", 700)
	load(s, txs, 20, 2*time.Millisecond)
	require.True(t, s.RunUntil(60*time.Second, func() bool { return s.AllDelivered(txs) }), "seed %d", s.Seed())
	requireSafeAndComplete(t, s, txs)
	s.Run(s.Now() + time.Second) // let late copies arrive

	require.Zero(t, tooFar, "a microblock travelled more than r hops")
	require.Zero(t, broadcasts, "gossip replaces broadcasting")
	require.Positive(t, relays, "receivers relay")
	require.Positive(t, atLimit, "relays reach the r-th hop")

	created := make(map[types.NodeID]int)
	total := 0
	for _, nd := range s.Nodes() {
		for _, e := range nd.Events {
			if _, ok := e.(consensus.MBCreated); ok {
				created[nd.ID]++
				total++
			}
		}
	}
	require.GreaterOrEqual(t, total, 70)
	redundant, viaGossip := 0, 0
	for _, nd := range s.Nodes() {
		got, fetched := 0, 0
		for _, e := range nd.Events {
			switch e := e.(type) {
			case consensus.MBReceived:
				if e.Redundant {
					redundant++
				} else {
					got++
				}
			case consensus.MBFetched:
				fetched++
			}
		}
		require.Equal(t, total-created[nd.ID], got+fetched, "replica %d got every other replica's microblock exactly once", nd.ID)
		// Gossip is probabilistic: a replica it misses fetches the data once the proof arrives.
		require.LessOrEqual(t, 4*fetched, total-created[nd.ID], "replica %d: gossip, not fetching, delivers most microblocks", nd.ID)
		viaGossip += got
	}
	require.GreaterOrEqual(t, 10*viaGossip, 9*(n-1)*total, "at least 90%% of the receptions by gossip")
	require.Positive(t, redundant, "redundant receptions are counted")
}

// docs/spec.md §3.4: "A busy replica, on a new microblock: sample d random peers ... forward LBForward{mb}
// to the least-loaded peer (the proxy) and ban it until it delivers", "No proof within
// forward_timeout ms → forward again to another proxy ... A Byzantine proxy can delay but never
// censor." and docs/spec.md §4.1 censor: "as load-balancing proxy, reports an idle load and drops the
// microblocks forwarded to it".
// N = 4, replica 4 has a slow uplink (+30 ms) and is the only busy one; replica 2 censors.
func TestDLBSlowReplicaForwardsPastCensor(t *testing.T) {
	const n = 4
	const slow, censor = types.NodeID(4), types.NodeID(2)
	p := presets[5] // s-hs+dlb
	sp := sharedSpec(p, n)
	// Stable times: about 2-6 ms for the fast replicas (1 ms + up to 2 ms jitter each way), 32 ms
	// and more for the slow one; 15 ms separates them.
	sp.Shared.BusyThreshold = 15 * time.Millisecond
	// Load queries of the slow replica take 30 ms more to arrive: wait long enough for answers.
	sp.Shared.LBTimeout = 80 * time.Millisecond
	// The schedule of seed 3 was recorded with inline proofs (whether the censor's microblock goes
	// to another proxy or back to its creator depends on the seed's timing); forwarding does not
	// depend on how proposals carry proofs.
	sp.Shared.ProofsByRef = false
	s, err := New(Options{
		N: n, Spec: sp, Seed: seedOr(3), Latency: time.Millisecond, Jitter: 2 * time.Millisecond,
		Censor: []types.NodeID{censor}, SlowSender: map[types.NodeID]time.Duration{slow: 30 * time.Millisecond},
	})
	require.NoError(t, err)
	type fwd struct {
		to types.NodeID
		id types.Hash
	}
	var forwards []fwd // LBForwards of the slow replica, in order
	received := map[types.NodeID]int{}
	selfPushed := map[types.Hash]bool{} // microblocks the slow replica pushed itself
	tapAll(t, s, func(from, to types.NodeID, m types.Message) {
		if mb, ok := m.(*types.MicroBlock); ok && from == slow && mb.Creator == slow && to == 0 {
			selfPushed[mb.ID] = true
		}
		if f, ok := m.(*types.LBForward); ok {
			if from == slow {
				forwards = append(forwards, fwd{to, f.MB.ID})
			}
			received[to]++
		}
	})
	// One microblock per submission; the slow replica cuts one every 48 ms, so that a proxy (banned
	// while its forward is in flight, about 40 ms through the slow uplink) is usually free again.
	txs := makeTxs("dlb-censor", 1200)
	load(s, txs, 10, 12*time.Millisecond)
	require.True(t, s.RunUntil(60*time.Second, func() bool { return s.AllDelivered(txs) }), "seed %d", s.Seed())
	requireSafeAndComplete(t, s, txs)

	// Only the slow replica became busy.
	for _, nd := range s.Nodes() {
		busy := false
		for _, e := range nd.Events {
			if lc, ok := e.(consensus.LoadChanged); ok && lc.Busy {
				busy = true
			}
		}
		require.Equal(t, nd.ID == slow, busy, "replica %d busy", nd.ID)
	}
	forwarded := countMBForwarded(s.Node(slow))
	require.Positive(t, forwarded, "the busy replica forwards microblocks")
	require.Len(t, forwards, forwarded, "one LBForward per MBForwarded event")
	for _, nd := range s.Nodes() {
		if nd.ID != slow {
			require.Zero(t, countMBForwarded(nd), "replica %d is not busy and forwards nothing", nd.ID)
		}
	}

	// Every microblock given to the censor was handed on after forward_timeout: forwarded again to
	// an honest proxy (the censor is banned) or, with every other peer banned, pushed by the slow
	// replica itself. At least one went to another proxy.
	require.Positive(t, received[censor], "the censor (reporting an idle load) was chosen as proxy")
	reforwarded := 0
	for i, f := range forwards {
		if f.to != censor {
			continue
		}
		again := false
		for _, g := range forwards[i+1:] {
			if g.id == f.id {
				require.NotEqual(t, censor, g.to, "the censor is banned: not chosen again for the same microblock")
				again = true
				reforwarded++
				break
			}
		}
		require.True(t, again || selfPushed[f.id], "microblock %v given to the censor was neither forwarded again nor pushed", f.id)
	}
	require.Positive(t, reforwarded, "a microblock dropped by the censor was forwarded to another proxy")
	t.Logf("seed %d: %d forwards, %d to the censor, %d forwarded again", s.Seed(), len(forwards), received[censor], reforwarded)

	// Forwards to honest proxies succeed: each ends with a proof pushed by that proxy.
	for _, nd := range s.Nodes() {
		if nd.ID == slow || nd.ID == censor {
			continue
		}
		proxied := 0
		for _, e := range nd.Events {
			if st, ok := e.(consensus.MBStable); ok && st.Proxy {
				proxied++
			}
		}
		require.Equal(t, received[nd.ID], proxied, "proxy %d: every forwarded microblock got its proof", nd.ID)
	}
	require.Positive(t, received[1]+received[3], "honest proxies were used")
}

func countMBForwarded(nd *Node) int {
	k := 0
	for _, e := range nd.Events {
		if _, ok := e.(consensus.MBForwarded); ok {
			k++
		}
	}
	return k
}

// docs/spec.md §4.3: "Liveness after GST: with at most f faulty replicas, throughput recovers to > 0 and
// every accepted transaction is eventually delivered." Replica 1 pushes 4×memsize of microblocks
// it never gets proofs for, then crashes (one fault, f = 1). Storage is charged to each
// microblock's signed creator, so the junk fills only replica 1's share and the room beyond the
// shares (memsize, first come, first served: docs/spec.md §3.7), and honest microblocks still get
// their proofs within their own shares.
func TestFaultyCreatorCannotStallOthers(t *testing.T) {
	sp := sharedSpec(presets[1], 4)              // s-hs
	sp.MemSize = (32 + mempool.TxOverhead) * 200 // a creator's share of peers' microblocks is 4/3 of that
	s, err := New(Options{N: 4, Spec: sp, Seed: seedOr(1), Latency: time.Millisecond, Jitter: 2 * time.Millisecond})
	require.NoError(t, err)
	s.At(0, func() {
		for i := 0; i < 80; i++ {
			mb := types.NewMicroBlock(1, 0, makeTxs(fmt.Sprintf("junk-%d", i), 10)).Signed(s.signers[0].Sign)
			for to := types.NodeID(2); to <= 4; to++ {
				s.send(s.Node(1), to, mb)
			}
		}
		s.Node(1).Absent = true // and then it crashes
	})
	s.Run(time.Millisecond)
	txs := makeTxs("victim", 300)
	load(s, txs, 10, 5*time.Millisecond)
	require.True(t, s.RunUntil(30*time.Second, func() bool { return s.AllDelivered(txs) }), "seed %d", s.Seed())
	requireSafeAndComplete(t, s, txs)
}
