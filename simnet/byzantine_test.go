package simnet

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/byzantine"
	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/types"
)

// matrixSpec is the protocol of one cell of the strategy matrix.
func matrixSpec(engine, memType string, n int, lb bool) core.Spec {
	if memType == "native" {
		return spec(engine)
	}
	return sharedSpec(preset{name: engine + "/" + memType, engine: engine, memType: memType, lb: lb}, n)
}

// byzantineRun is one run with f replicas following a strategy (crash: crashing and restarting).
type byzantineRun struct {
	strategy, engine, memType string
	n                         int
	seed                      int64
	scheme                    string // the signature scheme (default secp256k1)
}

func (r byzantineRun) name() string {
	if r.scheme != "" {
		return fmt.Sprintf("%s/%s/%s/n=%d/%s", r.strategy, r.engine, r.memType, r.n, r.scheme)
	}
	return fmt.Sprintf("%s/%s/%s/n=%d", r.strategy, r.engine, r.memType, r.n)
}

// options builds the simulation: replicas 1..f are Byzantine (adjacent leaders, the worst case).
func (r byzantineRun) options() Options {
	f := config.Faults(r.n)
	sp := matrixSpec(r.engine, r.memType, r.n, r.strategy == byzantine.Censor && r.memType != "native")
	opts := Options{N: r.n, Spec: sp, Seed: r.seed, Latency: time.Millisecond, Jitter: 3 * time.Millisecond, Slow: 50 * time.Millisecond, Scheme: r.scheme}
	if r.strategy == byzantine.Crash {
		opts.Crash = map[types.NodeID]CrashPlan{}
		for i := 1; i <= f; i++ {
			opts.Crash[types.NodeID(i)] = CrashPlan{At: 400 * time.Millisecond, Down: 800 * time.Millisecond}
		}
		return opts
	}
	opts.Byzantine = map[types.NodeID]string{}
	for i := 1; i <= f; i++ {
		opts.Byzantine[types.NodeID(i)] = r.strategy
	}
	return opts
}

// runAgainst runs the load against the honest replicas and checks safety and that every
// transaction is delivered exactly once by every honest replica (a crashed one included, once it
// restarted and caught up).
func runAgainst(t *testing.T, r byzantineRun, txCount int, limit time.Duration) *Sim {
	t.Helper()
	s, err := New(r.options())
	require.NoError(t, err)
	var targets []types.NodeID
	for _, nd := range s.Nodes() {
		if nd.Byzantine == "" && s.opts.Crash[nd.ID] == (CrashPlan{}) {
			targets = append(targets, nd.ID)
		}
	}
	txs := makeTxs(r.name(), txCount)
	for i, k := 0, 0; i < len(txs); i, k = i+20, k+1 { // 20 transactions every 20 ms
		s.Submit(time.Duration(k)*20*time.Millisecond, targets[k%len(targets)], txs[i:min(i+20, len(txs))])
	}
	ok := s.RunUntil(limit, func() bool { return s.AllDelivered(txs) })
	require.Empty(t, s.Violations(), "%s: invariant violations (replay with -seed=%d)", r.name(), r.seed)
	require.True(t, ok, "%s: not every transaction delivered by every honest replica within %v (seed %d)", r.name(), limit, r.seed)
	return s
}

// Every strategy × both engines × every mempool, at N = 4 and N = 7 with f Byzantine replicas:
// safety always, every transaction sent to an honest replica delivered exactly once by every
// honest replica, and then no honest replica keeps a pending or in-flight transaction or a
// waiting client.
func TestEveryStrategyEveryProtocol(t *testing.T) {
	for _, strategy := range byzantine.Strategies() {
		for _, engine := range []string{"hotstuff", "streamlet"} {
			for _, mem := range []string{"native", "smp", "stratus"} {
				for _, n := range []int{4, 7} {
					r := byzantineRun{strategy: strategy, engine: engine, memType: mem, n: n, seed: seedOr(int64(n))}
					t.Run(r.name(), func(t *testing.T) {
						t.Parallel()
						s := runAgainst(t, r, 1600, 60*time.Second) // 1.6 s of load
						requireNothingLeftAt(t, s, s.Honest())
					})
				}
			}
		}
	}
}

// Under BLS12-381 a replica counts the votes, acks and timeouts their signers send unchecked and
// checks a quorum's as one aggregate: every strategy against both engines with the PAB mempool
// at N=4 (badsig at N=7 too), safety and delivery as above. badsig sends every vote, ack and timeout with a well-formed
// signature that does not verify, so the aggregate checks that count one fail: the honest
// replicas must fall back, drop it, and name the sender (a rejection for a bad signature).
func TestEveryStrategyUnderBLS(t *testing.T) {
	for _, strategy := range byzantine.Strategies() {
		for _, engine := range []string{"hotstuff", "streamlet"} {
			for _, n := range []int{4, 7} {
				if n == 7 && strategy != byzantine.BadSig {
					continue // the matrix above covers N=7; BLS changes how signatures are counted, which badsig attacks
				}
				r := byzantineRun{strategy: strategy, engine: engine, memType: "stratus", n: n, seed: seedOr(int64(n)), scheme: crypto.SchemeBLS}
				t.Run(r.name(), func(t *testing.T) {
					t.Parallel()
					s := runAgainst(t, r, 1600, 60*time.Second)
					if strategy != byzantine.BadSig {
						return
					}
					named := map[types.Kind]bool{}
					for _, nd := range s.Nodes() {
						if nd.Byzantine != "" {
							continue
						}
						for _, e := range nd.Events {
							if rj, ok := e.(consensus.Rejected); ok && rj.Rule == consensus.RuleSignature && s.Node(rj.From).Byzantine != "" {
								named[rj.Kind] = true
							}
						}
					}
					require.True(t, named[types.KindAck], "an ack with a bad signature was found and its sender named")
					require.True(t, named[types.KindTimeout] || named[types.KindVote], "a vote or timeout with a bad signature was found and its sender named")
				})
			}
		}
	}
}
