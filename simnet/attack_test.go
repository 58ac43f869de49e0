package simnet

// Regression tests of attacks found by reviewing the message handlers as an attacker would. Each
// comment says what the attacker does and what it achieved before the fix; each test asserts that
// it no longer works.

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/types"
)

// filterEnv lets a test drop (or replace) any message a replica sends.
type filterEnv struct {
	consensus.Env
	id   types.NodeID
	n    int
	pass func(from, to types.NodeID, m types.Message) bool
}

func (e *filterEnv) Send(to types.NodeID, m types.Message) {
	if e.pass(e.id, to, m) {
		e.Env.Send(to, m)
	}
}

func (e *filterEnv) Broadcast(m types.Message) {
	for i := 1; i <= e.n; i++ {
		if to := types.NodeID(i); to != e.id && e.pass(e.id, to, m) {
			e.Env.Send(to, m)
		}
	}
}

// dlbAttackSim builds the setting of the load-balancing attacks below: N=4 s-hs+dlb, replica 4
// with a slow uplink (so it is busy and forwards its microblocks), every message passing pass.
func dlbAttackSim(t *testing.T, master types.NodeID, pass func(from, to types.NodeID, m types.Message) bool) *Sim {
	const n = 4
	sp := sharedSpec(presets[5], n) // s-hs+dlb
	sp.Master = master
	sp.Timeout = time.Second
	sp.Shared.BusyThreshold = 45 * time.Millisecond
	sp.Shared.LBTimeout = 150 * time.Millisecond
	sp.Shared.ForwardTimeout = 300 * time.Millisecond
	sp.Shared.PushTimeout = 200 * time.Millisecond
	sp.Shared.FetchTimeout = 100 * time.Millisecond
	s, err := New(Options{
		N: n, Spec: sp, Seed: seedOr(1), Latency: 10 * time.Millisecond, Jitter: 2 * time.Millisecond,
		SlowSender: map[types.NodeID]time.Duration{4: 30 * time.Millisecond},
	})
	require.NoError(t, err)
	for _, nd := range s.Nodes() {
		core, err := core.NewCore(&filterEnv{Env: &nodeEnv{n: nd}, id: nd.ID, n: n, pass: pass}, sp, nd)
		require.NoError(t, err)
		nd.Core = core
	}
	return s
}

// Replica 4 (slow uplink) is busy and forwards its microblocks; replica 2 is a Byzantine proxy:
// it reports an idle load, drops forwarded microblocks, and, to lift the ban a drop earns, echoes
// right away a proof of an earlier forwarded microblock it once handled honestly (it proxies one
// in four honestly to keep such a proof at hand). balancer.delivered unbans a proxy on a proof of
// ANY still-uncommitted forward it was part of, so the ban (100 × forward_timeout) never holds.
func TestAttackDLBCensorEchoesProofs(t *testing.T) {
	const slow, byz = types.NodeID(4), types.NodeID(2)
	run := func(echo bool) (given, dropped, maxSame int, took time.Duration) {
		var s *Sim
		var token *types.Proof
		per := map[types.Hash]int{}
		mine := map[types.Hash]bool{} // microblocks the busy replica forwarded to the Byzantine proxy
		pass := func(from, to types.NodeID, m types.Message) bool {
			switch m := m.(type) {
			case *types.LBInfo:
				if from == byz { // "idle: come to me"
					s.send(s.Node(byz), to, &types.LBInfo{Nonce: m.Nonce})
					return false
				}
			case *types.LBForward:
				if from != slow || to != byz {
					return true
				}
				given++
				mine[m.MB.ID] = true
				if token == nil || given%4 == 0 {
					return true // handled honestly: its proof becomes the next token
				}
				dropped++
				per[m.MB.ID]++
				if echo {
					tok := token
					s.At(time.Millisecond, func() { s.send(s.Node(byz), slow, tok) })
				}
				return false
			case *types.Proof:
				if from == byz && to == slow && mine[m.MBID] {
					token = m
				}
			}
			return true
		}
		s = dlbAttackSim(t, 0, pass)
		txs := makeTxs("dlb-echo", 16000)
		load(s, txs, 10, 3*time.Millisecond)
		require.True(t, s.RunUntil(120*time.Second, func() bool { return s.AllDelivered(txs) }), "echo=%v", echo)
		requireSafeAndComplete(t, s, txs)
		for _, k := range per {
			maxSame = max(maxSame, k)
		}
		return given, dropped, maxSame, s.Now()
	}
	g0, d0, m0, t0 := run(false)
	g1, d1, m1, t1 := run(true)
	t.Logf("without echo: %d forwards to the Byzantine proxy, %d dropped, max %d drops of one microblock, all delivered at %v", g0, d0, m0, t0)
	t.Logf("with echo:    %d forwards to the Byzantine proxy, %d dropped, max %d drops of one microblock, all delivered at %v", g1, d1, m1, t1)
	require.LessOrEqual(t, d1, d0, "banned for 100 × forward_timeout (30 s, longer than the run) after its first drop, the proxy must not get more")
}

// A proxy broadcasts the proof of a microblock it pushed for a busy creator (docs/spec.md §3.4).
// A Byzantine proxy that returns the proof to the creator alone keeps the microblock from being
// proposed; the creator broadcasts the proof itself when the microblock is not delivered within
// recoverAfter × forward_timeout, so every transaction is still delivered. With a static leader
// the creator never proposes its own microblocks, so nothing else would bring the proof out.
func TestAttackDLBProxyKeepsProofFromOthers(t *testing.T) {
	const slow, byz = types.NodeID(4), types.NodeID(2)
	forwarded := map[types.Hash]bool{} // the busy replica's microblocks the Byzantine proxy pushed
	kept, recovered := map[types.Hash]bool{}, map[types.Hash]bool{}
	pass := func(from, to types.NodeID, m types.Message) bool {
		switch m := m.(type) {
		case *types.LBForward:
			if from == slow && to == byz {
				forwarded[m.MB.ID] = true
			}
		case *types.Proof:
			if from == byz && forwarded[m.MBID] && to != slow {
				kept[m.MBID] = true
				return false
			}
			if from == slow && kept[m.MBID] {
				recovered[m.MBID] = true
			}
		}
		return true
	}
	s := dlbAttackSim(t, 1, pass)
	txs := makeTxs("dlb-keep", 16000)
	load(s, txs, 10, 3*time.Millisecond)
	require.True(t, s.RunUntil(120*time.Second, func() bool { return s.AllDelivered(txs) }))
	requireSafeAndComplete(t, s, txs)
	t.Logf("%d proofs kept from the others by the proxy, %d broadcast by their creator, all delivered at %v", len(kept), len(recovered), s.Now())
	require.NotEmpty(t, kept, "the busy replica forwarded to the Byzantine proxy")
	require.Equal(t, len(kept), len(recovered), "the creator broadcast every proof kept from the others")
}
