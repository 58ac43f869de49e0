package replica

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/transport"
	"github.com/stratusbft/stratus/types"
)

// gated drops what its replica sends to others while closed, so that transactions submitted to
// that replica stay pending there (with rotating leaders only it proposes them).
type gated struct {
	transport.Endpoint
	open atomic.Bool
}

func (g *gated) Send(to types.NodeID, m types.Message) {
	if g.open.Load() || to == g.Self() {
		g.Endpoint.Send(to, m)
	}
}

func (g *gated) Broadcast(m types.Message) {
	if g.open.Load() {
		g.Endpoint.Broadcast(m)
	}
}

// deliveryLog records how often each transaction was delivered and by which block.
type deliveryLog struct {
	*stats.Collector
	mu    sync.Mutex
	count map[types.Hash]int
	by    map[types.Hash]core.CommitInfo
}

func (d *deliveryLog) DeliveredTxs(b *types.Block, txs []types.Tx) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range txs {
		d.count[t.ID()]++
		d.by[t.ID()] = core.CommitInfo{View: b.View, Height: b.Height, Block: b.ID()}
	}
}

func (d *deliveryLog) get(id types.Hash) (int, core.CommitInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count[id], d.by[id]
}

func (d *deliveryLog) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.count {
		n += c
	}
	return n
}

// TestDuplicateSubmissionsAreAnswered: a batch repeating a transaction, a batch re-sent while
// pending (with and without wait) and a batch re-sent after delivery are answered with the right
// accepted and duplicate counts; every accepted transaction is delivered exactly once at every
// replica; waiting duplicates get the commit of the original; /query counts the duplicates. With
// the shared mempool too, which takes the Core's word that what it is given is new: a duplicate
// reaching it would be ordered twice.
func TestDuplicateSubmissionsAreAnswered(t *testing.T) {
	for _, mem := range []string{"native", "stratus"} {
		t.Run(mem, func(t *testing.T) { testDuplicateSubmissions(t, mem) })
	}
}

func testDuplicateSubmissions(t *testing.T, mem string) {
	const n = 4
	spec := testSpec("hotstuff")
	spec.Timeout = 300 * time.Millisecond
	if spec.MemType = mem; mem == "stratus" {
		spec.Shared.MSize = 512 // a few transactions each
		spec.Shared.BatchTimeout = 5 * time.Millisecond
		spec.Shared.Q = 2
		spec.Shared.FetchTimeout = 200 * time.Millisecond
		spec.Shared.PushTimeout = 500 * time.Millisecond
	}
	signers, pub := crypto.SimKeys(7, n)
	keys := crypto.NewCache(pub)
	hub := transport.NewHub(n, transport.HubOptions{Buffer: 4096})
	gate := &gated{Endpoint: hub.Endpoint(1)}
	var reps []*Replica
	var logs []*deliveryLog
	var hook1 *logtest.Hook
	for i := 0; i < n; i++ {
		id := types.NodeID(i + 1)
		ep := transport.Endpoint(hub.Endpoint(id))
		if id == 1 {
			ep = gate
		}
		col := stats.New(stats.Info{Node: id, N: n}, time.Now)
		logger, _ := logtest.NewNullLogger()
		if id == 1 {
			logger, hook1 = logtest.NewNullLogger()
		}
		r, err := New(Options{ID: id, N: n, Spec: spec, Signer: signers[i], Verifier: keys, Workers: 2, Seed: 3, Stats: col, Log: logrus.NewEntry(logger)}, ep)
		require.NoError(t, err)
		log := &deliveryLog{Collector: col, count: map[types.Hash]int{}, by: map[types.Hash]core.CommitInfo{}}
		r.obs = log
		r.core, err = r.newCore()
		require.NoError(t, err)
		reps, logs = append(reps, r), append(logs, log)
	}
	for _, r := range reps {
		r.Start()
	}
	t.Cleanup(func() {
		for _, r := range reps {
			r.Stop()
		}
		hub.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r1, col1 := reps[0], logs[0].Collector

	// A batch with internal duplicates: the second copy of each is a duplicate.
	a := enginetest.TxBatch("dup", 0, 10)
	res, err := r1.Submit(ctx, append(append([]types.Tx(nil), a...), a[2], a[5], a[2]), false)
	require.NoError(t, err)
	require.Equal(t, 10, res.Accepted)
	require.Equal(t, 3, res.Duplicates)

	// Re-sent while pending (node 1 cannot get anything ordered yet): all duplicates.
	res, err = r1.Submit(ctx, a, false)
	require.NoError(t, err)
	require.Equal(t, SubmitResult{Duplicates: 10}, res)
	waited := make(chan SubmitResult, 1)
	go func() {
		res, err := r1.Submit(ctx, a[:4], true)
		if err != nil {
			res = SubmitResult{}
		}
		waited <- res
	}()
	require.Eventually(t, func() bool { return col1.Snapshot().SubmittedDupTx == 3+10+4 }, 5*time.Second, time.Millisecond)
	for _, l := range logs {
		require.Zero(t, l.total(), "nothing of node 1 is delivered while its messages are dropped")
	}

	// Once node 1 is heard, the originals are delivered and release the waiting duplicates.
	gate.open.Store(true)
	var got SubmitResult
	select {
	case got = <-waited:
	case <-ctx.Done():
		t.Fatal("the waiting duplicate was not released by the original's delivery")
	}
	require.Equal(t, 0, got.Accepted)
	require.Equal(t, 4, got.Duplicates)
	var last core.CommitInfo
	for _, tx := range a[:4] {
		// The observer hears of a block right after its waiters are released.
		require.Eventually(t, func() bool { c, _ := logs[0].get(tx.ID()); return c > 0 }, 5*time.Second, time.Millisecond)
		c, info := logs[0].get(tx.ID())
		require.Equal(t, 1, c)
		if info.Height > last.Height {
			last = info
		}
	}
	require.Equal(t, last, got.CommitInfo, "the commit of the last original")

	// Re-sent after delivery, with wait: answered at once with the commit that delivered them.
	require.Eventually(t, func() bool { return col1.Snapshot().CommittedTx == 10 }, 10*time.Second, time.Millisecond)
	last = core.CommitInfo{}
	for _, tx := range a {
		if _, info := logs[0].get(tx.ID()); info.Height > last.Height {
			last = info
		}
	}
	res, err = r1.Submit(ctx, a, true)
	require.NoError(t, err)
	require.Equal(t, SubmitResult{CommitInfo: last, Duplicates: 10}, res)

	// A mix of delivered and new transactions waits for the new ones.
	b := enginetest.TxBatch("dup", 1, 5)
	res, err = r1.Submit(ctx, append(append([]types.Tx(nil), a[:5]...), b...), true)
	require.NoError(t, err)
	require.Equal(t, 5, res.Accepted)
	require.Equal(t, 5, res.Duplicates)
	require.Greater(t, res.Height, last.Height)

	// Every accepted transaction is delivered exactly once, at every replica.
	accepted := append(append([]types.Tx(nil), a...), b...)
	require.Eventually(t, func() bool {
		for _, l := range logs {
			if l.total() != len(accepted) {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond)
	for _, l := range logs {
		for _, tx := range accepted {
			c, _ := l.get(tx.ID())
			require.Equal(t, 1, c)
		}
		require.Zero(t, l.Snapshot().DuplicateTx, "no transaction was ordered twice")
	}
	s := col1.Snapshot()
	require.Equal(t, uint64(15), s.SubmittedTx)
	require.Equal(t, uint64(3+10+4+10+5), s.SubmittedDupTx)
	require.Equal(t, uint64(15), s.CommittedTx)
	require.Contains(t, s.Text(), "Duplicate txs answered: 32\n")

	// Mostly duplicates: logged once, with the counts of the window.
	warnings := func() (out []string) {
		for _, e := range hook1.AllEntries() {
			if strings.Contains(e.Message, "were duplicates") {
				out = append(out, e.Message)
			}
		}
		return out
	}
	require.Empty(t, warnings(), "32 of 47 submissions: too few to be a pattern")
	c := enginetest.TxBatch("dup", 2, 100)
	_, err = r1.Submit(ctx, c, false)
	require.NoError(t, err)
	for range 2 {
		_, err = r1.Submit(ctx, c, false)
		require.NoError(t, err)
	}
	got2 := warnings()
	require.Len(t, got2, 1, "once per interval")
	require.Contains(t, got2[0], "transactions submitted in the last 10 s were duplicates")
	require.Greater(t, col1.Snapshot().SubmittedDupShare, 0.5)
}
