package replica

import (
	"encoding/binary"
	"math/bits"
	"slices"

	"github.com/stratusbft/stratus/types"
)

// idSet remembers recently delivered transaction IDs, with the commit that delivered each, in two
// generations of up to size each, so memory stays bounded while duplicates within the last
// size..2×size deliveries are recognised. A transaction delivered longer ago is new again.
//
// Every delivered and every submitted transaction is looked up here, so the generations are
// tables made for it (idTable) rather than Go maps keyed by 32-byte IDs.
type idSet struct {
	size      int
	gen       uint64 // the current generation's number (1 at first); prev is gen-1
	cur, prev *idTable
}

func newIDSet(size int) *idSet {
	size = min(size, maxIDTable)
	return &idSet{size: size, gen: 1, cur: newIDTable(0), prev: newIDTable(0)}
}

func (s *idSet) has(id types.Hash) bool {
	_, ok := s.get(id)
	return ok
}

// get returns the commit that delivered id.
func (s *idSet) get(id types.Hash) (CommitInfo, bool) {
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
func (s *idSet) add(id types.Hash, info *CommitInfo) bool {
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

// rotate starts a new generation: the current one becomes the previous, whose table is reused.
func (s *idSet) rotate() {
	old := s.prev
	s.prev, s.cur = s.cur, old
	s.cur.reset(s.size)
	s.gen++
}

// export lists both generations, each sorted, so that replicas in the same state export the same.
func (s *idSet) export() (prev, cur []types.Hash) {
	return s.prev.sortedIDs(), s.cur.sortedIDs()
}

// restore replaces the set by exported generations. Snapshots carry no per-transaction commits:
// every restored ID gets info, the snapshot's block, by which it was delivered.
func (s *idSet) restore(prev, cur []types.Hash, info *CommitInfo) {
	s.prev, s.cur = newIDTable(len(prev)), newIDTable(max(len(cur), s.size))
	for _, id := range prev {
		s.prev.insert(id, info)
	}
	for _, id := range cur {
		s.cur.insert(id, info)
	}
}

// idTable is one generation: an open-addressing hash table with linear probing, at most half
// full, of 8-byte slots. A slot holds the top 40 bits of the ID's first 8 bytes (IDs are Keccak
// hashes, so those bytes are uniform and need no further hashing; the low bits choose the home
// slot) and, in its low 24 bits, the index of the entry, whose full ID is checked on a match; the
// entries are stored in insertion order. In front of it a bitset with 16 bits per slot
// pair (1 MiB for the default window, small enough to stay in cache) has the bit of every ID in
// the table set: an ID whose bit is clear, most IDs that are not there, is answered without
// touching the table, which at 16 MiB a generation costs a cache and a TLB miss per probe.
type idTable struct {
	slots  []uint64 // a power of two long; 0 is empty
	filter []uint64 // 8 × len(slots) bits
	ids    []types.Hash
	infos  []*CommitInfo
}

// A slot is tag | ref: ref, 1 or more, is the entry's index plus one.
const (
	refBits    = 24
	refMask    = 1<<refBits - 1
	maxIDTable = refMask // entries a table can index
)

// newIDTable returns a table with room for n entries before it grows.
func newIDTable(n int) *idTable {
	t := &idTable{}
	t.reset(n)
	return t
}

// reset empties the table, keeping room for at least n entries.
func (t *idTable) reset(n int) {
	want := 16
	if n > 0 {
		want = max(want, 1<<bits.Len(uint(2*n-1))) // at most half full
	}
	if len(t.slots) >= want && len(t.slots) <= 4*want {
		clear(t.slots)
		clear(t.filter)
	} else {
		t.slots = make([]uint64, want)
		t.filter = make([]uint64, want/8)
	}
	clear(t.infos) // no pointers kept alive
	t.ids, t.infos = t.ids[:0], t.infos[:0]
}

func (t *idTable) len() int { return len(t.ids) }

func slotKey(id *types.Hash) uint64 { return binary.LittleEndian.Uint64(id[:8]) }

func slotTag(key uint64) uint64 { return key &^ refMask }

// filterBit is the bit of id in a filter of n words: from bytes of the ID other than the slot key's.
func filterBit(id *types.Hash, n int) (word int, bit uint64) {
	h := binary.LittleEndian.Uint64(id[8:16]) & uint64(64*n-1)
	return int(h >> 6), 1 << (h & 63)
}

// mayHave is false when id is certainly not in the table.
func (t *idTable) mayHave(id *types.Hash) bool {
	w, b := filterBit(id, len(t.filter))
	return t.filter[w]&b != 0
}

// find returns the slot of id, or of the empty slot where it would go.
func (t *idTable) find(id *types.Hash) int {
	mask := len(t.slots) - 1
	key := slotKey(id)
	tag := slotTag(key)
	for i := int(key) & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 || slotTag(s) == tag && t.ids[s&refMask-1] == *id {
			return i
		}
	}
}

// get returns the commit of id, or nil when id is not in the table.
func (t *idTable) get(id types.Hash) *CommitInfo {
	if !t.mayHave(&id) {
		return nil
	}
	if s := t.slots[t.find(&id)]; s != 0 {
		return t.infos[s&refMask-1]
	}
	return nil
}

// insert adds id with info and reports true, or reports false when id is already there.
func (t *idTable) insert(id types.Hash, info *CommitInfo) bool {
	if 2*(len(t.ids)+1) > len(t.slots) {
		t.grow()
	}
	i := t.find(&id)
	if t.slots[i] != 0 {
		return false
	}
	w, b := filterBit(&id, len(t.filter))
	t.filter[w] |= b
	t.ids = append(t.ids, id)
	t.infos = append(t.infos, info)
	t.slots[i] = slotTag(slotKey(&id)) | uint64(len(t.ids))
	return true
}

// grow quadruples the slots (a window fills its first generation in a few steps) and places every
// entry again; the entries get room for as many as the slots can take, so that they are not
// copied again and again as they are appended.
func (t *idTable) grow() {
	t.slots = make([]uint64, 4*len(t.slots))
	t.ids = slices.Grow(t.ids, len(t.slots)/2-len(t.ids))
	t.infos = slices.Grow(t.infos, len(t.slots)/2-len(t.infos))
	t.filter = make([]uint64, len(t.slots)/8)
	mask := len(t.slots) - 1
	for j := range t.ids {
		w, b := filterBit(&t.ids[j], len(t.filter))
		t.filter[w] |= b
		key := slotKey(&t.ids[j])
		i := int(key) & mask
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = slotTag(key) | uint64(j+1)
	}
}

func (t *idTable) sortedIDs() []types.Hash {
	return slices.SortedFunc(slices.Values(t.ids), types.CompareHash)
}
