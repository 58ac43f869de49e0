package hugemem

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

func TestSlicesAreZeroedAlignedAndApart(t *testing.T) {
	a := New()
	u := a.Uint64s(1000)
	h := a.Hashes(333)
	v := a.Uint64s(1) // smaller than the 64-byte grain
	require.Len(t, u, 1000)
	require.Len(t, h, 333)
	for _, x := range u {
		require.Zero(t, x)
	}
	for _, x := range h {
		require.Zero(t, x)
	}
	for _, p := range []unsafe.Pointer{unsafe.Pointer(&u[0]), unsafe.Pointer(&h[0]), unsafe.Pointer(&v[0])} {
		require.Zero(t, uintptr(p)%64, "every slice starts on a cache line")
	}
	// Writing every element of one slice leaves the others as they were.
	for i := range u {
		u[i] = ^uint64(0)
	}
	for i := range h {
		h[i] = types.Hash{1}
	}
	v[0] = 7
	for _, x := range u {
		require.Equal(t, ^uint64(0), x)
	}
	for _, x := range h {
		require.Equal(t, types.Hash{1}, x)
	}
	require.Equal(t, uint64(7), v[0])
	require.Equal(t, 1, cap(v), "a slice cannot be grown into its neighbour")
	runtime.KeepAlive(a)
}

func TestLargeRequestsGetARegionOfTheirOwn(t *testing.T) {
	a := New()
	small := a.Uint64s(10)
	big := a.Hashes(2 * regionSize / 32) // 2 regions' worth
	big[0], big[len(big)-1] = types.Hash{2}, types.Hash{3}
	small[9] = 4
	require.Equal(t, types.Hash{2}, big[0])
	require.Equal(t, types.Hash{3}, big[len(big)-1])
	require.Equal(t, uint64(4), small[9])
	if runtime.GOOS == "linux" {
		require.GreaterOrEqual(t, a.Mapped(), regionSize+2*regionSize)
	}
	runtime.KeepAlive(a)
}

// TestRegionsAreMarkedForHugePages reads the kernel's view of a region: it is aligned on 2 MiB
// and eligible for transparent huge pages wherever the kernel has them.
func TestRegionsAreMarkedForHugePages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("huge pages are asked for on Linux only")
	}
	if mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil || strings.Contains(string(mode), "[never]") {
		t.Skip("transparent huge pages are off on this machine")
	}
	a := New()
	u := a.Uint64s(1 << 20) // 8 MiB
	for i := 0; i < len(u); i += 512 {
		u[i] = 1
	}
	start := uintptr(unsafe.Pointer(&u[0]))
	require.Zero(t, start%hugePage, "the first slice of a region starts on a huge-page boundary")
	f, err := os.Open("/proc/self/smaps")
	require.NoError(t, err)
	defer f.Close()
	var inRegion, eligible bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			inRegion = lo <= start && start < hi
			continue
		}
		if inRegion && strings.HasPrefix(line, "THPeligible:") {
			eligible = strings.TrimSpace(strings.TrimPrefix(line, "THPeligible:")) == "1"
		}
	}
	require.NoError(t, sc.Err())
	require.True(t, eligible, "the region is eligible for transparent huge pages (smaps THPeligible)")
	runtime.KeepAlive(a)
}

// TestUnreachableArenaIsUnmapped: once nothing refers to an Arena its regions go back to the
// kernel.
func TestUnreachableArenaIsUnmapped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("regions are mapped on Linux only")
	}
	m := func() *regions {
		a := New()
		a.Uint64s(100)[0] = 1
		return a.m
	}()
	require.Eventually(t, func() bool {
		runtime.GC()
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.mapped == nil
	}, 10*time.Second, 10*time.Millisecond, "the cleanup unmapped the regions")
}
