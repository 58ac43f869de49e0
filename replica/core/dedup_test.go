package core

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/internal/hugemem"
	"github.com/stratusbft/stratus/types"
)

// TestIDSetRemembersCommits: the dedup window answers with the commit that delivered an ID,
// forgets IDs older than two generations, and restored IDs carry the snapshot's block.
func TestIDSetRemembersCommits(t *testing.T) {
	s := newDedupWindow(2, nil)
	i1, i2 := &CommitInfo{Height: 1}, &CommitInfo{Height: 2}
	ids := []types.Hash{types.Keccak([]byte("a")), types.Keccak([]byte("b")), types.Keccak([]byte("c")), types.Keccak([]byte("d")), types.Keccak([]byte("e"))}
	s.add(ids[0], i1)
	s.add(ids[1], i1)
	s.add(ids[2], i2)
	info, ok := s.Get(ids[0])
	require.True(t, ok)
	require.Equal(t, uint64(1), info.Height)
	info, ok = s.Get(ids[2])
	require.True(t, ok)
	require.Equal(t, uint64(2), info.Height)
	s.add(ids[3], i2)
	s.add(ids[4], i2)
	// Older than the window: treated as new.
	_, ok = s.Get(ids[0])
	require.False(t, ok)

	s.restore([]types.Hash{ids[0]}, []types.Hash{ids[1]}, &CommitInfo{Height: 9})
	info, ok = s.Get(ids[0])
	require.True(t, ok)
	require.Equal(t, uint64(9), info.Height, "restored IDs answer with the snapshot's block")
	require.False(t, s.Has(ids[4]))
}

// TestIDSetMatchesMaps: the open-addressing generations answer exactly as two Go maps with the
// same rotation would, for IDs that repeat, IDs that share their first 8 bytes (the slot key: the
// full ID decides), and across many rotations, growth and a restore; warming (reads only) between
// the steps changes no answer and reads only memory the tables have, at every size they pass through.
//
// A window given memory (a DedupMemory) answers the same, never grows its tables, and keeps its
// slots, IDs and their commits in nothing but that memory, also across rotations and a restore.
func TestIDSetMatchesMaps(t *testing.T) {
	t.Run("heap", func(t *testing.T) { testIDSetMatchesMaps(t, nil) })
	t.Run("memory", func(t *testing.T) {
		mem := &testMemory{given: map[unsafe.Pointer]bool{}}
		s := testIDSetMatchesMaps(t, mem)
		for _, tb := range []*idTable{s.cur, s.prev} {
			require.Zero(t, tb.old.slots.n, "a table sized for the window never grows")
			require.Equal(t, 1024, tb.cur.slots.n, "room for the window at most half full")
			for _, ch := range tb.cur.slots.chunks {
				require.True(t, ch == nil || mem.given[unsafe.Pointer(&ch[0])], "slots from the memory")
			}
			for _, ch := range tb.ids.chunks {
				require.True(t, ch == nil || mem.given[unsafe.Pointer(&ch[0])], "IDs from the memory")
			}
			for _, ch := range tb.commits.chunks {
				require.True(t, ch == nil || mem.given[unsafe.Pointer(&ch[0])], "commits from the memory")
			}
		}
		// Slots, a chunk of IDs and one of their commits per generation, each taken once:
		// rotations and the restore reuse them.
		require.Equal(t, 2*(1024*8+chunkLen*32+chunkLen*8), mem.bytes)
	})
	t.Run("arena", func(t *testing.T) { testIDSetMatchesMaps(t, hugemem.New()) })
}

// testMemory is a DedupMemory that remembers what it gave.
type testMemory struct {
	given map[unsafe.Pointer]bool
	bytes int
}

func (m *testMemory) Uint64s(n int) []uint64 {
	s := make([]uint64, n)
	m.given[unsafe.Pointer(&s[0])] = true
	m.bytes += 8 * n
	return s
}

func (m *testMemory) Hashes(n int) []types.Hash {
	s := make([]types.Hash, n)
	m.given[unsafe.Pointer(&s[0])] = true
	m.bytes += 32 * n
	return s
}

func testIDSetMatchesMaps(t *testing.T, mem DedupMemory) *DedupWindow {
	const size = 300
	s := newDedupWindow(size, mem)
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
			got, gotOK := s.Get(id)
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
	return s
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
		s := newDedupWindow(size, nil)
		for i := range 2 * size {
			s.add(ids[i], info)
		}
		for i := 2 * size; b.Loop(); i++ {
			id := ids[i%len(ids)]
			s.Has(id)
			s.add(id, info)
		}
	})
	// Four replicas of one process, each delivering every transaction: the windows do not fit in
	// the caches, as in server -sim.
	txs := make([]types.Tx, len(ids))
	for i := range txs {
		txs[i] = types.NewTx(binary.BigEndian.AppendUint64(nil, uint64(i)))
	}
	b.Run("four-tables", func(b *testing.B) { benchWindows(b, 4, false, txs, info) })
	b.Run("four-tables-warmed", func(b *testing.B) { benchWindows(b, 4, true, txs, info) })
	b.Run("sixteen-tables-warmed", func(b *testing.B) { benchWindows(b, 16, true, txs, info) })
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

// benchWindows adds blocks of txs to windows replicas' windows, full, as deliveries do.
func benchWindows(b *testing.B, windows int, warm bool, txs []types.Tx, info *CommitInfo) {
	const size = 1 << 19
	sets := make([]*DedupWindow, windows)
	for r := range sets {
		sets[r] = newDedupWindow(size, nil)
		for i := range 2 * size {
			sets[r].add(txs[i].ID(), info)
		}
	}
	const block = 256
	for i := 2 * size; b.Loop(); i += block {
		j := i % len(txs)
		blk := txs[j:min(j+block, len(txs))]
		sets[0].Has(blk[0].ID())
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
