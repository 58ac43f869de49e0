package simnet

// More ways accepted work could be left for good once the load stops, under faults: a static
// master that meets Byzantine replicas, crashes, loses messages or meets backpressure, and
// load-balancing proxies that crash, censor or lose proofs (every Byzantine strategy with
// rotating leaders: TestEveryStrategyEveryProtocol). Once every transaction the honest
// replicas accepted is delivered, no honest replica keeps a pending or in-flight transaction or
// a waiting client. TestSMPStaticMasterRestarts failed before restored microblocks became
// proposable under smp; the others held on the code they were written against.

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/byzantine"
	"github.com/stratusbft/stratus/types"
)

// smp with a static master that crashes and restarts while the others submit load. A restarted
// replica gets the microblocks it held back from its store (Restore) as peers' data; under smp a
// microblock is proposable once it is in avail, and Restore did not put them there. The
// creators' re-pushes (repushToMaster) reach a master that holds the data already, so
// onMicroBlock returns early ("redundant") before avail.add. Only the master proposes: a
// microblock the master held, not yet committed, when it crashed was never proposed again, and
// its creator re-pushed it forever. Restore now makes them proposable under smp.
func TestSMPStaticMasterRestarts(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		t.Run(engine, func(t *testing.T) {
			sp := sharedSpec(preset{engine: engine, memType: "smp"}, 4)
			sp.Master = 1
			// Observe only: which microblocks reached the master before its crash, and how often
			// they are pushed to it again late in the run.
			var s *Sim
			before := map[types.Hash]bool{} // microblocks the master received before its crash
			late := map[types.Hash]int{}    // re-pushes to the master after 10 s
			txMB := map[types.Hash]types.Hash{}
			drop := func(from, to types.NodeID, m types.Message) bool {
				mb, ok := m.(*types.MicroBlock)
				if !ok || to != 1 || s == nil {
					return false
				}
				for _, tx := range mb.Txs {
					txMB[tx.ID()] = mb.ID
				}
				if s.Now() < 99*time.Millisecond {
					before[mb.ID] = true
				}
				if s.Now() > 10*time.Second {
					late[mb.ID]++
				}
				return false
			}
			s, err := New(Options{N: 4, Spec: sp, Seed: seedOr(4), Latency: time.Millisecond, Jitter: time.Millisecond, Drop: drop,
				Crash: map[types.NodeID]CrashPlan{1: {At: 100 * time.Millisecond, Down: 200 * time.Millisecond}}})
			require.NoError(t, err)
			txs := staticMasterLoad(s, "smp-restart-"+engine, 100) // 200 ms of load, across the crash
			ok := s.RunUntil(30*time.Second, func() bool { return s.AllDelivered(txs) })
			if !ok {
				stuck := map[types.Hash]bool{}
				for _, tx := range txs {
					if !s.Checker().DeliveredBy(2, tx.ID()) {
						stuck[txMB[tx.ID()]] = true
					}
				}
				for id := range stuck {
					t.Logf("undelivered microblock %x: reached the master before its crash %v, pushed to it again %d times after 10 s",
						id[:4], before[id], late[id])
				}
				for _, n := range s.Nodes() {
					g := n.Core.Gauges()
					t.Logf("node %d: pending %d, in flight %d, waiting %d, microblocks %d", n.ID, g.MempoolTxs, g.InFlightTxs, g.LocalWaiting, g.Microblocks)
				}
			}
			require.True(t, ok, "accepted transactions not delivered: %s", s.describeMissing(txs))
			require.Empty(t, s.Violations())
			requireNothingLeft(t, s)
		})
	}
}

// Native mempool, static master that crashes and restarts under load: the forwarders' re-forwards
// (Retry) bring back what the master lost.
func TestNativeStaticMasterRestarts(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		t.Run(engine, func(t *testing.T) {
			sp := spec(engine)
			sp.Master = 1
			s, err := New(Options{N: 4, Spec: sp, Seed: seedOr(4), Latency: time.Millisecond, Jitter: time.Millisecond,
				Crash: map[types.NodeID]CrashPlan{1: {At: 100 * time.Millisecond, Down: 200 * time.Millisecond}}})
			require.NoError(t, err)
			txs := staticMasterLoad(s, "native-restart-"+engine, 100)
			require.True(t, s.RunUntil(30*time.Second, func() bool { return s.AllDelivered(txs) }),
				"accepted transactions not delivered: %s", s.describeMissing(txs))
			require.Empty(t, s.Violations())
			requireNothingLeft(t, s)
		})
	}
}

// dlbFaultSim: N=4, replica 4 with a slow uplink is busy and forwards its microblocks to proxies
// (the TestDLBSlowReplicaForwardsPastCensor setting), with the given extra options.
func dlbFaultSim(t *testing.T, preset preset, master types.NodeID, opts func(*Options)) *Sim {
	sp := sharedSpec(preset, 4)
	sp.Master = master
	sp.Shared.BusyThreshold = 15 * time.Millisecond
	sp.Shared.LBTimeout = 80 * time.Millisecond
	o := Options{N: 4, Spec: sp, Seed: seedOr(3), Latency: time.Millisecond, Jitter: 2 * time.Millisecond,
		SlowSender: map[types.NodeID]time.Duration{4: 30 * time.Millisecond}}
	if opts != nil {
		opts(&o)
	}
	s, err := New(o)
	require.NoError(t, err)
	return s
}

// Load balancing with proxies that crash (and restart), censor, or whose proofs are lost, with
// rotating leaders and with a static master: every transaction the honest replicas accepted is
// delivered, and nothing is left.
func TestDLBProxyFaultsLeaveNothing(t *testing.T) {
	proofLostToCreator := func(o *Options) {
		o.Drop = func(from, to types.NodeID, m types.Message) bool {
			_, ok := m.(*types.Proof)
			return ok && from != 4 && to == 4 // the busy creator never hears a proxy's proof
		}
	}
	cases := map[string]func(*Options){
		"proxy-restarts": func(o *Options) {
			o.Crash = map[types.NodeID]CrashPlan{2: {At: 300 * time.Millisecond, Down: 300 * time.Millisecond}}
		},
		"censor": func(o *Options) { o.Censor = []types.NodeID{2} },
		"silence": func(o *Options) {
			o.Byzantine = map[types.NodeID]string{2: "silence"}
		},
		"proof-lost-to-creator": proofLostToCreator,
	}
	for _, p := range []preset{presets[5], presets[6]} {
		for _, master := range []types.NodeID{0, 1} {
			for name, opt := range cases {
				t.Run(fmt.Sprintf("%s/master=%d/%s", p.name, master, name), func(t *testing.T) {
					s := dlbFaultSim(t, p, master, opt)
					var targets []*Node
					for _, n := range s.Nodes() {
						if n.Byzantine == "" && s.opts.Crash[n.ID] == (CrashPlan{}) {
							targets = append(targets, n)
						}
					}
					txs := makeTxs(t.Name(), 1200)
					for i, k := 0, 0; i < len(txs); i, k = i+10, k+1 {
						s.Submit(time.Duration(k)*12*time.Millisecond, targets[k%len(targets)].ID, txs[i:i+10])
					}
					require.True(t, s.RunUntil(60*time.Second, func() bool { return s.AllDelivered(txs) }),
						"accepted transactions not delivered: %s", s.describeMissing(txs))
					require.Empty(t, s.Violations())
					requireNothingLeftAt(t, s, s.Honest())
					t.Logf("the busy replica forwarded %d microblocks", countMBForwarded(s.Node(4)))
				})
			}
		}
	}
}

// A static master (smp and PAB) that crashes right after proposing: the votes for its last proposals
// never reach it (lost for the 5 ms before the crash), so the replicas that vote may certify
// (Streamlet: notarize) a block the master never learns was certified, and mark its microblocks
// proposed, which stops their creators' proof re-sends (repushToMaster waits while e.proposed).
func TestStaticMasterCrashesAfterProposing(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		for _, mem := range []string{"smp", "stratus"} {
			t.Run(engine+"/"+mem, func(t *testing.T) {
				sp := sharedSpec(preset{engine: engine, memType: mem}, 4)
				sp.Master = 1
				var s *Sim
				drop := func(from, to types.NodeID, m types.Message) bool {
					return s != nil && to == 1 && m.Kind().IsConsensus() && s.Now() >= 95*time.Millisecond && s.Now() < 100*time.Millisecond
				}
				s, err := New(Options{N: 4, Spec: sp, Seed: seedOr(4), Latency: time.Millisecond, Jitter: time.Millisecond, Drop: drop,
					Crash: map[types.NodeID]CrashPlan{1: {At: 100 * time.Millisecond, Down: 200 * time.Millisecond}}})
				require.NoError(t, err)
				txs := staticMasterLoad(s, "crash-after-proposing-"+engine+mem, 100)
				require.True(t, s.RunUntil(30*time.Second, func() bool { return s.AllDelivered(txs) }),
					"accepted transactions not delivered: %s", s.describeMissing(txs))
				require.Empty(t, s.Violations())
				requireNothingLeft(t, s)
			})
		}
	}
}

// Every strategy at replica 1 against a static master (replica 4, honest) under every mempool:
// every transaction the honest replicas accepted is delivered, and nothing is left.
func TestEveryStrategyAgainstAStaticMaster(t *testing.T) {
	for _, strategy := range byzantine.Strategies() {
		if strategy == byzantine.Crash {
			continue
		}
		for _, engine := range []string{"hotstuff", "streamlet"} {
			for _, mem := range []string{"native", "smp", "stratus"} {
				r := byzantineRun{strategy: strategy, engine: engine, memType: mem, n: 4, seed: seedOr(4)}
				t.Run(r.name(), func(t *testing.T) {
					o := r.options()
					o.Spec.Master = 4
					s, err := New(o)
					require.NoError(t, err)
					txs := makeTxs("master-"+r.name(), 800)
					for i, k := 0, 0; i < len(txs); i, k = i+20, k+1 {
						s.Submit(time.Duration(k)*20*time.Millisecond, types.NodeID(2+k%3), txs[i:i+20])
					}
					require.True(t, s.RunUntil(60*time.Second, func() bool { return s.AllDelivered(txs) }),
						"accepted transactions not delivered: %s", s.describeMissing(txs))
					require.Empty(t, s.Violations())
					requireNothingLeftAt(t, s, s.Honest())
				})
			}
		}
	}
}

// TestBackpressureLeavesNothingBehind with a static master (replica 1; the load goes to 2, 3, 4).
func TestBackpressureStaticMasterLeavesNothing(t *testing.T) {
	for _, p := range presets {
		t.Run(p.name, func(t *testing.T) {
			spec := sharedSpec(p, 4)
			spec.Master = 1
			spec.Shared.MaxBacklog = 20 * time.Millisecond
			s, err := New(Options{N: 4, Spec: spec, Seed: seedOr(1), Latency: 2 * time.Millisecond, Jitter: time.Millisecond,
				Links: Links{Uplink: 1e6}})
			require.NoError(t, err)
			const batch = 45
			txs := makeTxs(t.Name(), 2000*batch)
			results := make([]*error, 0, 2000)
			for k := 0; k*batch < len(txs); k++ {
				results = append(results, s.Submit(time.Duration(k)*time.Millisecond, types.NodeID(2+k%3), txs[k*batch:(k+1)*batch]))
			}
			s.Run(2100 * time.Millisecond)
			var accepted []types.Tx
			for k, res := range results {
				if *res == nil {
					accepted = append(accepted, txs[k*batch:(k+1)*batch]...)
				}
			}
			require.NotEmpty(t, accepted)
			t.Logf("%d of %d transactions accepted", len(accepted), len(txs))
			require.True(t, s.RunUntil(120*time.Second, func() bool { return s.AllDelivered(accepted) }),
				"accepted transactions not delivered: %s", s.describeMissing(accepted))
			require.Empty(t, s.Violations())
			requireNothingLeft(t, s)
		})
	}
}

// Every mempool with a static master under 20 % message loss until GST (2 s), the load during
// the loss: everything accepted is delivered after GST, and nothing is left.
func TestStaticMasterUnderLossLeavesNothing(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		for _, mem := range []string{"native", "smp", "stratus"} {
			t.Run(engine+"/"+mem, func(t *testing.T) {
				sp := matrixSpec(engine, mem, 4, false)
				sp.Master = 1
				s, err := New(Options{N: 4, Spec: sp, Seed: seedOr(5), Latency: time.Millisecond, Jitter: time.Millisecond,
					Loss: 0.2, GST: 2 * time.Second})
				require.NoError(t, err)
				txs := staticMasterLoad(s, "loss-"+engine+mem, 400) // 800 ms of load
				require.True(t, s.RunUntil(60*time.Second, func() bool { return s.AllDelivered(txs) }),
					"accepted transactions not delivered: %s", s.describeMissing(txs))
				require.Empty(t, s.Violations())
				requireNothingLeft(t, s)
			})
		}
	}
}
