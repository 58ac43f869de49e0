package replica

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/crypto"
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
	by    map[types.Hash]CommitInfo
}

func (d *deliveryLog) DeliveredTxs(b *types.Block, txs []types.Tx) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range txs {
		d.count[t.ID()]++
		d.by[t.ID()] = CommitInfo{View: b.View, Height: b.Height, Block: b.ID()}
	}
}

func (d *deliveryLog) get(id types.Hash) (int, CommitInfo) {
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
// replica; waiting duplicates get the commit of the original; /query counts the duplicates.
func TestDuplicateSubmissionsAreAnswered(t *testing.T) {
	const n = 4
	spec := testSpec("hotstuff")
	spec.Timeout = 300 * time.Millisecond
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
		log := &deliveryLog{Collector: col, count: map[types.Hash]int{}, by: map[types.Hash]CommitInfo{}}
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
	a := txBatch("dup", 0, 10)
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
	var last CommitInfo
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
	last = CommitInfo{}
	for _, tx := range a {
		if _, info := logs[0].get(tx.ID()); info.Height > last.Height {
			last = info
		}
	}
	res, err = r1.Submit(ctx, a, true)
	require.NoError(t, err)
	require.Equal(t, SubmitResult{CommitInfo: last, Duplicates: 10}, res)

	// A mix of delivered and new transactions waits for the new ones.
	b := txBatch("dup", 1, 5)
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
	c := txBatch("dup", 2, 100)
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

// TestIDSetRemembersCommits: the dedup window answers with the commit that delivered an ID,
// forgets IDs older than two generations, and restored IDs carry the snapshot's block.
func TestIDSetRemembersCommits(t *testing.T) {
	s := newIDSet(2)
	i1, i2 := &CommitInfo{Height: 1}, &CommitInfo{Height: 2}
	ids := []types.Hash{types.Keccak([]byte("a")), types.Keccak([]byte("b")), types.Keccak([]byte("c")), types.Keccak([]byte("d")), types.Keccak([]byte("e"))}
	s.add(ids[0], i1)
	s.add(ids[1], i1)
	s.add(ids[2], i2)
	info, ok := s.get(ids[0])
	require.True(t, ok)
	require.Equal(t, uint64(1), info.Height)
	info, ok = s.get(ids[2])
	require.True(t, ok)
	require.Equal(t, uint64(2), info.Height)
	s.add(ids[3], i2)
	s.add(ids[4], i2)
	// Older than the window: treated as new.
	_, ok = s.get(ids[0])
	require.False(t, ok)

	s.restore([]types.Hash{ids[0]}, []types.Hash{ids[1]}, &CommitInfo{Height: 9})
	info, ok = s.get(ids[0])
	require.True(t, ok)
	require.Equal(t, uint64(9), info.Height, "restored IDs answer with the snapshot's block")
	require.False(t, s.has(ids[4]))
}

// TestIDSetMatchesMaps: the open-addressing generations answer exactly as two Go maps with the
// same rotation would, for IDs that repeat, IDs that share their first 8 bytes (the slot key: the
// full ID decides), and across many rotations, growth and a restore; warming (reads only) between
// the steps changes no answer and reads only memory the tables have, at every size they pass through.
func TestIDSetMatchesMaps(t *testing.T) {
	const size = 300
	s := newIDSet(size)
	gen := uint64(1)
	cur, prev := map[types.Hash]*CommitInfo{}, map[types.Hash]*CommitInfo{}
	refAdd := func(id types.Hash, info *CommitInfo) bool {
		if _, ok := cur[id]; ok {
			return false
		}
		if _, ok := prev[id]; ok {
			return false
		}
		if len(cur) >= size {
			prev, cur = cur, map[types.Hash]*CommitInfo{}
			gen++
		}
		cur[id] = info
		return true
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]types.Hash, 2000)
	for i := range pool {
		pool[i] = types.Keccak(fmt.Appendf(nil, "id-%d", i))
		if i%5 == 1 { // the same slot key as the one before, another ID
			copy(pool[i][:8], pool[i-1][:8])
		}
	}
	warmTxs := make([]types.Tx, 100)
	for i := range warmTxs {
		warmTxs[i] = types.NewTx(fmt.Appendf(nil, "tx-%d", i))
	}
	infos := []*CommitInfo{{Height: 1}, {Height: 2}, {Height: 3}}
	for step := 0; step < 20000; step++ {
		if step%7 == 0 {
			from := rng.IntN(len(warmTxs))
			s.warm(warmTxs[from:min(from+rng.IntN(2*warmAhead), len(warmTxs))])
		}
		id := pool[rng.IntN(len(pool))]
		if rng.IntN(4) == 0 {
			want, ok := cur[id]
			if !ok {
				want, ok = prev[id]
			}
			got, gotOK := s.get(id)
			require.Equal(t, ok, gotOK, "step %d", step)
			if ok {
				require.Equal(t, *want, got, "step %d", step)
			}
			continue
		}
		info := infos[rng.IntN(len(infos))]
		require.Equal(t, refAdd(id, info), s.add(id, info), "step %d", step)
		require.Equal(t, gen, s.gen, "step %d", step)
		if step == 10000 { // a restore in the middle: the same answers after it
			p, c := s.export()
			require.Len(t, p, len(prev))
			require.Len(t, c, len(cur))
			at := &CommitInfo{Height: 7}
			s.restore(p, c, at)
			for id := range prev {
				prev[id] = at
			}
			for id := range cur {
				cur[id] = at
			}
		}
	}
	require.Greater(t, gen, uint64(20), "many rotations")
}

// BenchmarkDedupWindow: one delivery of a new ID into a full-size window (2^19 per generation),
// the open-addressing generations against Go maps keyed by the 32-byte ID (what they replaced).
func BenchmarkDedupWindow(b *testing.B) {
	const size = 1 << 19
	ids := make([]types.Hash, 4*size)
	for i := range ids {
		ids[i] = types.Keccak(binary.BigEndian.AppendUint64(nil, uint64(i)))
	}
	info := &CommitInfo{Height: 1}
	// Each op is what a submitted transaction costs (a lookup) and what its delivery costs (an
	// add), in a window already full, as in a long run.
	b.Run("table", func(b *testing.B) {
		s := newIDSet(size)
		for i := range 2 * size {
			s.add(ids[i], info)
		}
		for i := 2 * size; b.Loop(); i++ {
			id := ids[i%len(ids)]
			s.has(id)
			s.add(id, info)
		}
	})
	// Four replicas of one process, each delivering every transaction: the windows do not fit in
	// the caches, as in server -sim.
	txs := make([]types.Tx, len(ids))
	for i := range txs {
		txs[i] = types.NewTx(binary.BigEndian.AppendUint64(nil, uint64(i)))
	}
	four := func(b *testing.B, warm bool) {
		var sets [4]*idSet
		for r := range sets {
			sets[r] = newIDSet(size)
			for i := range 2 * size {
				sets[r].add(txs[i].ID(), info)
			}
		}
		const block = 256
		for i := 2 * size; b.Loop(); i += block {
			j := i % len(txs)
			blk := txs[j:min(j+block, len(txs))]
			sets[0].has(blk[0].ID())
			for _, s := range sets {
				for k, t := range blk {
					if warm && k%warmAhead == 0 {
						s.warm(blk[k:min(k+warmAhead, len(blk))])
					}
					s.add(t.ID(), info)
				}
			}
		}
	}
	b.Run("four-tables", func(b *testing.B) { four(b, false) })
	b.Run("four-tables-warmed", func(b *testing.B) { four(b, true) })
	b.Run("maps", func(b *testing.B) {
		cur, prev := map[types.Hash]*CommitInfo{}, map[types.Hash]*CommitInfo{}
		add := func(id types.Hash) {
			if _, ok := cur[id]; ok {
				return
			}
			if _, ok := prev[id]; ok {
				return
			}
			if len(cur) >= size {
				prev, cur = cur, make(map[types.Hash]*CommitInfo, size)
			}
			cur[id] = info
		}
		for i := range 2 * size {
			add(ids[i])
		}
		for i := 2 * size; b.Loop(); i++ {
			id := ids[i%len(ids)]
			_, ok := cur[id]
			if !ok {
				_, _ = prev[id]
			}
			add(id)
		}
	})
}
