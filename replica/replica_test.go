package replica

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/mempool"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/transport"
	"github.com/stratusbft/stratus/types"
)

type cluster struct {
	hub   *transport.Hub
	reps  []*Replica
	stats []*stats.Collector
}

// startCluster runs replicas 1..n on a hub, except the absent ones: their endpoints exist (a test
// may send from one) but no replica reads or sends through them, as if they had crashed for good.
// c.reps and c.stats hold the replicas started, in ID order.
func startCluster(t *testing.T, n int, spec core.Spec, absent map[types.NodeID]bool) *cluster {
	t.Helper()
	signers, keys := crypto.SimKeys(7, n)
	ver := crypto.NewCache(keys)
	c := &cluster{hub: transport.NewHub(n, transport.HubOptions{Buffer: 4096})}
	for i := 0; i < n; i++ {
		id := types.NodeID(i + 1)
		ep := c.hub.Endpoint(id)
		if absent[id] {
			continue
		}
		col := stats.New(stats.Info{Node: id, N: n}, time.Now)
		r, err := New(Options{ID: id, N: n, Spec: spec, Signer: signers[i], Verifier: ver, Workers: 2, Seed: 3, Stats: col}, ep)
		require.NoError(t, err)
		c.reps = append(c.reps, r)
		c.stats = append(c.stats, col)
	}
	for _, r := range c.reps {
		r.Start()
	}
	t.Cleanup(c.stop)
	return c
}

func (c *cluster) stop() {
	for _, r := range c.reps {
		r.Stop()
	}
	c.hub.Close()
}

func testSpec(engine string) core.Spec {
	return core.Spec{
		Engine:         engine,
		MemType:        "native",
		Timeout:        time.Second,
		ProposeTimeout: 10 * time.Millisecond,
		BSize:          100,
		MemSize:        1 << 22,
		DedupWindow:    1 << 14,
	}
}

// TestClusterDeliversWaitedBatches runs 4 real-time replicas over the channel transport, submits
// batches with wait to every replica concurrently, and expects every replica to deliver every
// transaction exactly once.
func TestClusterDeliversWaitedBatches(t *testing.T) {
	for _, engine := range []string{"hotstuff", "streamlet"} {
		t.Run(engine, func(t *testing.T) {
			c := startCluster(t, 4, testSpec(engine), nil)
			const batches, size = 24, 50
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, batches)
			for k := 0; k < batches; k++ {
				wg.Add(1)
				go func(k int) {
					defer wg.Done()
					info, err := c.reps[k%4].Submit(ctx, enginetest.TxBatch(engine, k, size), true)
					if err == nil && info.Height == 0 {
						err = fmt.Errorf("batch %d: no commit info", k)
					}
					errs <- err
				}(k)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			require.Eventually(t, func() bool {
				for _, col := range c.stats {
					if col.Snapshot().CommittedTx != batches*size {
						return false
					}
				}
				return true
			}, 10*time.Second, 10*time.Millisecond)
			for _, col := range c.stats {
				s := col.Snapshot()
				require.Zero(t, s.DuplicateTx)
				require.Empty(t, s.Rejected)
			}
		})
	}
}

// TestResubmittingDeliveredTxsAnswersAtOnce: a batch already delivered is acknowledged without
// being proposed again.
func TestResubmittingDeliveredTxsAnswersAtOnce(t *testing.T) {
	c := startCluster(t, 4, testSpec("hotstuff"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	txs := enginetest.TxBatch("again", 0, 10)
	_, err := c.reps[0].Submit(ctx, txs, true)
	require.NoError(t, err)
	_, err = c.reps[0].Submit(ctx, txs, true)
	require.NoError(t, err)
	require.Equal(t, uint64(10), c.stats[0].Snapshot().CommittedTx)
}

// TestFullMempoolRefuses: a replica whose mempool is full refuses the whole batch with ErrFull.
func TestFullMempoolRefuses(t *testing.T) {
	spec := testSpec("hotstuff")
	spec.MemSize = (48 + mempool.TxOverhead) * 20 // room for exactly 20 of these transactions
	// No quorum: three of four replicas are silent, so nothing commits and the mempool stays full.
	c := startCluster(t, 4, spec, map[types.NodeID]bool{2: true, 3: true, 4: true})
	ctx := context.Background()
	_, err := c.reps[0].Submit(ctx, enginetest.TxBatch("full", 0, 20), false)
	require.NoError(t, err)
	_, err = c.reps[0].Submit(ctx, enginetest.TxBatch("full", 1, 1), false)
	require.ErrorIs(t, err, mempool.ErrFull)
	require.ErrorContains(t, err, "memsize")
	require.Equal(t, uint64(1), c.stats[0].Snapshot().RefusedSubmissions)
}

// TestStopReleasesWaiters: a client waiting for a commit that cannot happen gets ErrStopped when
// the replica stops, and Stop leaves no goroutine behind.
func TestStopReleasesWaiters(t *testing.T) {
	before := runtime.NumGoroutine()
	c := startCluster(t, 4, testSpec("hotstuff"), map[types.NodeID]bool{2: true, 3: true})
	done := make(chan error, 1)
	go func() {
		_, err := c.reps[0].Submit(context.Background(), enginetest.TxBatch("stop", 0, 5), true)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the submission reach the loop; the result does not depend on it
	c.stop()
	select {
	case err := <-done:
		require.True(t, errors.Is(err, ErrStopped), "got %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not released by Stop")
	}
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+1 }, 5*time.Second, 10*time.Millisecond,
		"goroutines before %d, after %d", before, runtime.NumGoroutine())
}

// TestForgedMessagesRejectedBeforeTheLoop: a vote with a signature that does not verify and a
// structurally invalid block are dropped by the verification pool and counted.
func TestForgedMessagesRejectedBeforeTheLoop(t *testing.T) {
	c := startCluster(t, 4, testSpec("hotstuff"), nil)
	attacker := c.hub.Endpoint(4)
	forged := &types.Vote{View: 1, BlockID: types.Keccak([]byte("x")), Voter: 3, Sig: make([]byte, types.SigSize)}
	attacker.Send(1, forged)
	attacker.Send(1, &types.Block{View: 1, Height: 1, Proposer: 0, Payload: &types.Payload{}})
	require.Eventually(t, func() bool {
		r := c.stats[0].Snapshot().Rejected
		return r["Vote/bad-signature"] == 1 && r["Block/bad-structure"] == 1
	}, 5*time.Second, 10*time.Millisecond, "rejections: %v", c.stats[0].Snapshot().Rejected)
}

// A Byzantine replica (4) sends node 1 junk votes as fast as it can: each costs a signature check
// and costs the sender nothing. Its messages that fail their checks are limited to failRate a
// second (failBurst at once); beyond that they are dropped unchecked (counted as rate-limited),
// and the honest replicas keep committing.
func TestJunkSignaturesAreRateLimitedPerPeer(t *testing.T) {
	c := startCluster(t, 4, testSpec("hotstuff"), map[types.NodeID]bool{4: true})
	byz := c.hub.Endpoint(4)
	junk := make([]byte, types.SigSize)
	junk[0] = 1
	start := time.Now()
	sent := 0
	for time.Since(start) < time.Second {
		byz.Send(1, &types.Vote{View: types.View(sent%50 + 1), BlockID: types.Hash{byte(sent)}, Voter: 4, Sig: junk})
		sent++
		if sent%200 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	elapsed := time.Since(start).Seconds()
	require.Eventually(t, func() bool {
		return c.stats[0].Snapshot().Rejected["Vote/"+consensus.RuleRate] > 0
	}, 5*time.Second, 20*time.Millisecond, "junk beyond the budget is dropped unchecked")
	rej := c.stats[0].Snapshot().Rejected
	checked := rej["Vote/"+consensus.RuleSignature]
	t.Logf("%d junk votes in %.1f s: %d checked and refused, %d dropped unchecked", sent, elapsed, checked, rej["Vote/"+consensus.RuleRate])
	require.LessOrEqual(t, float64(checked), failBurst+failRate*(elapsed+1)+5, "checks spent on junk")
	h := c.reps[0].Status().CommittedHeight
	require.Eventually(t, func() bool { return c.reps[0].Status().CommittedHeight > h+3 }, 10*time.Second, 20*time.Millisecond, "the honest replicas keep committing")
}

// A submission that waits for its commit gave its waiter the whole submission, so a client that
// gave up (?wait=commit past its timeout) left its batch in memory until the transactions were
// delivered, duplicates included, which the mempool does not charge. The waiter keeps only what
// it needs: a duplicate batch is freed once its submitter is gone.
func TestWaitingSubmissionDoesNotHoldItsBatch(t *testing.T) {
	c := startCluster(t, 4, testSpec("hotstuff"), map[types.NodeID]bool{3: true, 4: true}) // no quorum: nothing commits
	txs := enginetest.TxBatch("held", 1, 50)
	_, err := c.reps[0].Submit(context.Background(), txs, false) // pending in the mempool
	require.NoError(t, err)
	freed := make(chan struct{})
	func() {
		buf := make([]byte, 48*len(txs))
		dup := make([]types.Tx, len(txs))
		for i, tx := range txs {
			b := buf[i*48 : (i+1)*48 : (i+1)*48]
			copy(b, tx.Data())
			dup[i] = types.NewTx(b)
		}
		runtime.SetFinalizer(&buf[0], func(*byte) { close(freed) })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		res, err := c.reps[0].Submit(ctx, dup, true)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, len(txs), res.Duplicates)
	}()
	require.Eventually(t, func() bool {
		runtime.GC()
		select {
		case <-freed:
			return true
		default:
			return false
		}
	}, 5*time.Second, 50*time.Millisecond, "the waiting submission's batch is still held")
}
