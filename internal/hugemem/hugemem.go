// Package hugemem gives large arrays that hold no pointers memory outside Go's heap, in regions
// the kernel may back with 2 MiB pages: a replica's dedup window (docs/design.md §3.4).
//
// Go's heap takes memory from the kernel in 4 KiB pages unless the system's transparent huge
// page setting is "always" (it is "madvise" on common distributions), and a page fault costs
// 11–14 µs on the development machine's virtual CPU. A dedup window reaches 56 MiB per replica,
// written at random: a process of 16 replicas took 283,000 page faults in a 10-s run with its
// windows in Go's heap and 101,000 with them here, where regions marked MADV_HUGEPAGE fault in
// 2 MiB at a time (docs/performance.md).
//
// An Arena hands out slices carved from its regions and never reuses them; what it handed out
// stays valid while the Arena is reachable, and its regions are unmapped once it is not. Keep
// the Arena reachable from whatever holds its slices (a method value such as a.Uint64s does).
package hugemem

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/stratusbft/stratus/types"
)

// regionSize is the memory an Arena maps at a time (virtual until written).
const regionSize = 32 << 20

// hugePage is the size the regions are rounded up to and aligned on, so that each can be backed
// by whole huge pages.
const hugePage = 2 << 20

// Arena carves slices from regions mapped outside Go's heap. It is safe for concurrent use.
type Arena struct {
	m *regions
}

// regions are an Arena's mappings; a cleanup attached to the Arena unmaps them.
type regions struct {
	mu     sync.Mutex
	mapped [][]byte
	rest   []byte // what is left of the last region
}

// New returns an empty Arena; it maps its first region when first asked for memory.
func New() *Arena {
	a := &Arena{m: &regions{}}
	runtime.AddCleanup(a, (*regions).unmapAll, a.m)
	return a
}

// Uint64s returns n zeroed uint64s.
func (a *Arena) Uint64s(n int) []uint64 {
	b := a.m.alloc(n * int(unsafe.Sizeof(uint64(0))))
	if b == nil {
		return make([]uint64, n)
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// Hashes returns n zeroed hashes.
func (a *Arena) Hashes(n int) []types.Hash {
	b := a.m.alloc(n * int(unsafe.Sizeof(types.Hash{})))
	if b == nil {
		return make([]types.Hash, n)
	}
	return unsafe.Slice((*types.Hash)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// Mapped returns the bytes the Arena has mapped (virtual; what is resident is what was written).
func (a *Arena) Mapped() int {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	total := 0
	for _, r := range a.m.mapped {
		total += len(r)
	}
	return total
}

// alloc returns size zeroed bytes aligned on 64, or nil when no region can be mapped (the caller
// then takes memory from Go's heap).
func (m *regions) alloc(size int) []byte {
	if size <= 0 {
		return nil
	}
	size = (size + 63) &^ 63
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.rest) < size {
		r := mapRegion(max(regionSize, (size+hugePage-1)/hugePage*hugePage))
		if r == nil {
			return nil
		}
		m.mapped = append(m.mapped, r)
		m.rest = r
	}
	b := m.rest[:size:size]
	m.rest = m.rest[size:]
	return b
}

func (m *regions) unmapAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.mapped {
		unmapRegion(r)
	}
	m.mapped, m.rest = nil, nil
}
