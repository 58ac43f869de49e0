//go:build linux

package hugemem

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapRegion maps size bytes of zeroed anonymous memory, aligned on hugePage and marked for huge
// pages, or returns nil.
func mapRegion(size int) []byte {
	// Map a huge page more than needed and unmap both ends, so that the region starts on a
	// huge-page boundary: only aligned 2 MiB ranges can be backed by a huge page.
	whole := uintptr(size + hugePage)
	p, err := unix.MmapPtr(-1, 0, nil, whole, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil
	}
	start := uintptr(p)
	aligned := (start + hugePage - 1) &^ (hugePage - 1)
	if head := aligned - start; head > 0 {
		_ = unix.MunmapPtr(p, head)
	}
	if tail := start + whole - (aligned + uintptr(size)); tail > 0 {
		_ = unix.MunmapPtr(unsafe.Add(p, aligned-start+uintptr(size)), tail)
	}
	r := unsafe.Slice((*byte)(unsafe.Add(p, aligned-start)), size)
	// Without transparent huge pages (or with them off) the region stays in 4 KiB pages.
	_ = unix.Madvise(r, unix.MADV_HUGEPAGE)
	return r
}

func unmapRegion(r []byte) { _ = unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(r)), uintptr(len(r))) }
