package core

import (
	"encoding/binary"
	"math/bits"
	"slices"

	"github.com/stratusbft/stratus/types"
)

// DedupWindow remembers recently delivered transaction IDs, with the commit that delivered each,
// in two generations of up to size each, so memory stays bounded while duplicates within the last
// size..2×size deliveries are recognised. A transaction delivered longer ago is new again.
//
// Every delivered and every submitted transaction is looked up here, so the generations are
// tables made for it (idTable) rather than Go maps keyed by 32-byte IDs.
type DedupWindow struct {
	size      int
	gen       uint64 // the current generation's number (1 at first); prev is gen-1
	cur, prev *idTable
	mem       DedupMemory // nil: Go's heap, tables grown as they fill
	sink      uint64      // what warm read, kept so that its loads are not optimised away
}

// DedupMemory gives a dedup window the memory of its slots, IDs and commit indices, which hold no
// pointers: a driver passes memory outside Go's heap that the kernel backs with huge pages
// (internal/hugemem). Each call returns n zeroed elements that stay valid while the DedupMemory
// is reachable; the window keeps it so.
//
// A window given memory has both generations' tables sized for the whole window from the start,
// so they never grow. Their memory is taken chunk by chunk as it is first written, so a lightly
// loaded replica holds little of it; but the slots are written at random, so a generation's
// slots are all taken within its first few thousand transactions. In a process of 16 replicas
// under load, growing the tables in Go's heap (4 KiB page faults, and every entry moved at each
// doubling) cost a fifth of the throughput of a 10-s run (docs/performance.md).
type DedupMemory interface {
	Uint64s(n int) []uint64
	Hashes(n int) []types.Hash
}

func newDedupWindow(size int, mem DedupMemory) *DedupWindow {
	size = min(size, maxIDTable)
	w := &DedupWindow{size: size, gen: 1, mem: mem}
	room := 0
	if mem != nil {
		room = size
	}
	w.cur, w.prev = newIDTable(room, mem), newIDTable(room, mem)
	return w
}

// Has reports whether id is in the window.
func (s *DedupWindow) Has(id types.Hash) bool {
	_, ok := s.Get(id)
	return ok
}

// Get returns the commit that delivered id.
func (s *DedupWindow) Get(id types.Hash) (CommitInfo, bool) {
	info := s.cur.get(id)
	if info == nil {
		info = s.prev.get(id)
	}
	if info == nil {
		return CommitInfo{}, false
	}
	return *info, true
}

// add records id as delivered by info unless it already is, and reports whether it was new; the
// block's transactions share one info.
func (s *DedupWindow) add(id types.Hash, info *CommitInfo) bool {
	if s.prev.get(id) != nil {
		return false
	}
	if s.cur.len() >= s.size {
		if s.cur.get(id) != nil {
			return false
		}
		s.rotate()
	}
	return s.cur.insert(id, info)
}

// warm reads the home slots that Has, Get and add will read for the IDs of the first warmAhead of
// txs, all at once, so that their cache misses overlap rather than follow one another: in a full
// window each lookup waits for a slot in memory, and the windows of a process's replicas do not
// fit in the caches. Callers warm the transactions they are about to look up, warmAhead at a
// time. It changes nothing.
//
// BenchmarkDedupWindow/four-tables: 255 ns an add unwarmed, 125 ns warmed (four replicas' windows,
// full); in server -sim at N=4 the dedup window's share of the CPU profile went from 34 % to 18 %.
func (s *DedupWindow) warm(txs []types.Tx) {
	// The loops are a few instructions per ID, so that the processor has many of their loads in
	// flight: a first version that called the lookup's own helpers per ID had two or three.
	var keys [warmAhead]uint64
	n := min(len(txs), warmAhead)
	for i := range n {
		id := txs[i].ID()
		keys[i] = slotKey(&id)
	}
	s.sink += s.prev.cur.touch(keys[:n]) + s.cur.cur.touch(keys[:n])
}

// warmAhead is how many transactions warm reads for at a time.
const warmAhead = 32

// rotate starts a new generation: the current one becomes the previous, whose table is reused.
func (s *DedupWindow) rotate() {
	old := s.prev
	s.prev, s.cur = s.cur, old
	s.cur.reset(s.size)
	s.gen++
}

// NewDedupWindow returns an empty window whose current generation is gen, for a store to Load
// what it saved into; the Core that adopts it sets its size.
func NewDedupWindow(gen uint64) *DedupWindow {
	w := newDedupWindow(1, nil)
	w.gen = gen
	return w
}

// Load adds ids, delivered by info, to generation gen if the window has it (the current one or
// the one before), and reports whether it does: a store loading what it saved.
func (s *DedupWindow) Load(gen uint64, info *CommitInfo, ids []types.Hash) bool {
	var t *idTable
	switch gen {
	case s.gen:
		t = s.cur
	case s.gen - 1:
		t = s.prev
	default:
		return false
	}
	for _, id := range ids {
		t.insert(id, info)
	}
	return true
}

// Export returns the current generation's number and both generations' IDs, each sorted: a store
// saving the whole window.
func (s *DedupWindow) Export() (gen uint64, prev, cur []types.Hash) {
	prev, cur = s.export()
	return s.gen, prev, cur
}

// export lists both generations, each sorted, so that replicas in the same state export the same.
func (s *DedupWindow) export() (prev, cur []types.Hash) {
	return s.prev.sortedIDs(), s.cur.sortedIDs()
}

// restore replaces the set by exported generations. Snapshots carry no per-transaction commits:
// every restored ID gets info, the snapshot's block, by which it was delivered.
func (s *DedupWindow) restore(prev, cur []types.Hash, info *CommitInfo) {
	if s.mem != nil {
		// Sized for the window already: emptied, they keep their memory.
		s.prev.reset(max(len(prev), s.size))
		s.cur.reset(max(len(cur), s.size))
	} else {
		s.prev, s.cur = newIDTable(len(prev), nil), newIDTable(max(len(cur), s.size), nil)
	}
	for _, id := range prev {
		s.prev.insert(id, info)
	}
	for _, id := range cur {
		s.cur.insert(id, info)
	}
}

// idTable is one generation: an open-addressing hash table with linear probing, at most half
// full, of 8-byte slots. A slot holds the top 40 bits of the ID's first 8 bytes (IDs are hashes,
// so those bytes are uniform and need no further hashing; the low bits choose the home slot) and,
// in its low 24 bits, the index of the entry, whose full ID is checked on a match; the entries are
// stored in insertion order. A lookup reads one slot's cache line, most often, and the entry's ID
// only when the tag matches. (A bitset of 8 bits per slot in front of the slots, meant to answer
// most absent IDs without touching them, cost a third cache miss per delivered transaction once
// 16 replicas' windows outgrew the caches, filters included: without it server -sim s-hs at N=16
// commits 5 % more.)
//
// Nothing is allocated or copied in bulk while replicas run. Slots and entries live in
// chunks of 32–128 KiB, allocated when first written; the table grows by doubling, incrementally:
// a few of the old slots are scanned, in order, with each insert and their entries placed in the
// new slots (an entry's home there is its old home or that plus the old length, so the writes
// advance nearly in order too), and lookups check the old slots until the scan is done. A window's first generation grows from nothing
// to half a million entries in every replica of a process at once, and fresh memory costs a page
// fault per 4 KiB (11–14 µs on the development machine): allocating and rehashing in one go
// stalled 16 replicas of one process for 2 s.
type idTable struct {
	cur, old idSlots // old: the slots before the last growth, until every entry has moved
	scan     int     // old slots before this one have had their entries placed in cur
	ids      chunked[types.Hash]
	// Entry j was delivered by infos[commits[j]]: the entries of a block share its commit, so
	// infos holds a pointer per block rather than per transaction (half a million pointers a
	// generation for the garbage collector to scan, in every replica).
	commits chunked[uint64]
	infos   []*CommitInfo
	n       int         // entries
	mem     DedupMemory // where slots, IDs and commits are taken from; nil: Go's heap
}

// idSlots are a table's slots.
type idSlots struct {
	slots chunked[uint64] // a power of two long; 0 is empty
}

// A slot is tag | ref: ref, 1 or more, is the entry's index plus one.
const (
	refBits    = 24
	refMask    = 1<<refBits - 1
	maxIDTable = refMask // entries a table can index
	// scanPerInsert old slots are scanned with each insert: the old slots are as many as the
	// inserts until the next growth, so the scan ends long before it.
	scanPerInsert = 4
)

// newIDTable returns a table with room for n entries before it grows, whose slots, IDs and
// commit indices are taken from mem (nil: Go's heap).
func newIDTable(n int, mem DedupMemory) *idTable {
	t := &idTable{mem: mem}
	if mem != nil {
		t.ids.alloc, t.commits.alloc = mem.Hashes, mem.Uint64s
	}
	t.reset(n)
	return t
}

// reset empties the table, keeping room for at least n entries and the chunks it has.
func (t *idTable) reset(n int) {
	want := 16
	if n > 0 {
		want = max(want, 1<<bits.Len(uint(2*n-1))) // at most half full
	}
	if t.cur.slots.n == want {
		t.cur.slots.clear()
	} else {
		t.cur = t.newSlots(want)
	}
	t.old, t.scan = idSlots{}, 0
	clear(t.infos) // no pointers kept alive
	t.infos = t.infos[:0]
	t.n = 0
}

// newSlots returns n empty slots.
func (t *idTable) newSlots(n int) idSlots {
	s := idSlots{slots: newChunked[uint64](n)}
	if t.mem != nil {
		s.slots.alloc = t.mem.Uint64s
	}
	return s
}

func (t *idTable) len() int { return t.n }

func slotKey(id *types.Hash) uint64 { return binary.LittleEndian.Uint64(id[:8]) }

func slotTag(key uint64) uint64 { return key &^ refMask }

// lookup returns the entry of id placed in s, or -1.
func (s *idSlots) lookup(id *types.Hash, ids *chunked[types.Hash]) int {
	if s.slots.n == 0 {
		return -1
	}
	mask := s.slots.n - 1
	key := slotKey(id)
	tag := slotTag(key)
	for i := int(key) & mask; ; i = (i + 1) & mask {
		v := s.slots.get(i)
		if v == 0 {
			return -1
		}
		if slotTag(v) == tag && *ids.at(int(v&refMask - 1)) == *id {
			return int(v&refMask) - 1
		}
	}
}

// touch reads the home slots of the IDs whose slot keys are keys and returns them summed (see
// DedupWindow.warm).
func (s *idSlots) touch(keys []uint64) (sum uint64) {
	if s.slots.n == 0 {
		return 0
	}
	chunks, mask := s.slots.chunks, uint64(s.slots.n-1)
	for _, key := range keys {
		h := key & mask
		if ch := chunks[h>>chunkShift]; ch != nil {
			sum += ch[h&chunkMask]
		}
	}
	return sum
}

// place puts entry j, whose ID is id and which is not in s, into its empty slot.
func (s *idSlots) place(j int, id *types.Hash) {
	mask := s.slots.n - 1
	i := int(slotKey(id)) & mask
	for s.slots.get(i) != 0 {
		i = (i + 1) & mask
	}
	*s.slots.ptr(i) = slotTag(slotKey(id)) | uint64(j+1)
}

// entry returns the index of id's entry, or -1.
func (t *idTable) entry(id *types.Hash) int {
	if j := t.cur.lookup(id, &t.ids); j >= 0 {
		return j
	}
	if t.old.slots.n != 0 {
		return t.old.lookup(id, &t.ids) // an entry not moved yet, or -1
	}
	return -1
}

// get returns the commit of id, or nil when id is not in the table.
func (t *idTable) get(id types.Hash) *CommitInfo {
	if j := t.entry(&id); j >= 0 {
		return t.infos[*t.commits.at(j)]
	}
	return nil
}

// insert adds id with info and reports true, or reports false when id is already there.
func (t *idTable) insert(id types.Hash, info *CommitInfo) bool {
	if t.entry(&id) >= 0 {
		return false
	}
	if 2*(t.n+1) > t.cur.slots.n {
		t.grow()
	}
	j := t.n
	*t.ids.ptr(j) = id
	if k := len(t.infos); k == 0 || t.infos[k-1] != info {
		t.infos = append(t.infos, info)
	}
	*t.commits.ptr(j) = uint64(len(t.infos) - 1)
	t.n++
	t.cur.place(j, &id)
	t.move(scanPerInsert)
	return true
}

// grow doubles the slots; the entries placed so far move over with the inserts that follow.
func (t *idTable) grow() {
	t.move(t.old.slots.n) // the previous growth's scan, if it is not done
	t.old, t.scan = t.cur, 0
	t.cur = t.newSlots(2 * t.cur.slots.n)
}

// move scans up to k more old slots and places their entries in the current slots.
func (t *idTable) move(k int) {
	if t.old.slots.n == 0 {
		return
	}
	for end := min(t.scan+k, t.old.slots.n); t.scan < end; t.scan++ {
		if v := t.old.slots.get(t.scan); v != 0 {
			j := int(v&refMask) - 1
			t.cur.place(j, t.ids.at(j))
		}
	}
	if t.scan == t.old.slots.n {
		t.old = idSlots{} // every entry has moved
	}
}

func (t *idTable) sortedIDs() []types.Hash {
	out := make([]types.Hash, t.n)
	for j := range out {
		out[j] = *t.ids.at(j)
	}
	slices.SortFunc(out, types.CompareHash)
	return out
}

// chunkShift sets the chunk length of chunked: 4096 elements.
const (
	chunkShift = 12
	chunkLen   = 1 << chunkShift
	chunkMask  = chunkLen - 1
)

// chunked is an array stored in chunks of chunkLen elements (or n, when n is smaller), each
// allocated when first written and never copied. n is its length, zero for one that grows as it is
// written; an element never written reads as the zero value. alloc, when set, gives the chunks
// their memory (a DedupMemory's), else they are made in Go's heap.
type chunked[T any] struct {
	chunks [][]T
	n      int
	alloc  func(n int) []T
}

func newChunked[T any](n int) chunked[T] {
	return chunked[T]{chunks: make([][]T, (n+chunkLen-1)>>chunkShift), n: n}
}

// get returns element i.
func (c *chunked[T]) get(i int) (v T) {
	if k := i >> chunkShift; k < len(c.chunks) && c.chunks[k] != nil {
		v = c.chunks[k][i&chunkMask]
	}
	return v
}

// at returns element i, which was written.
func (c *chunked[T]) at(i int) *T { return &c.chunks[i>>chunkShift][i&chunkMask] }

// ptr returns element i, allocating its chunk if it has none.
func (c *chunked[T]) ptr(i int) *T {
	k := i >> chunkShift
	for k >= len(c.chunks) {
		c.chunks = append(c.chunks, nil)
	}
	if c.chunks[k] == nil {
		size := chunkLen
		if c.n > 0 {
			size = min(chunkLen, c.n)
		}
		if c.alloc != nil {
			c.chunks[k] = c.alloc(size)
		} else {
			c.chunks[k] = make([]T, size)
		}
	}
	return &c.chunks[k][i&chunkMask]
}

// clear zeroes the elements, keeping the chunks.
func (c *chunked[T]) clear() {
	for _, ch := range c.chunks {
		clear(ch)
	}
}
