package simnet

import (
	"bufio"
	"flag"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

var soakSeeds = flag.Int("soak", 240, "seeds the soak test runs (make soak runs many more)")

// TestSoak runs random scenarios (N 4..13, every engine and mempool, gossip and load balancing,
// up to f replicas with random strategies or crashes and restarts, loss and partitions until GST)
// and expects every one safe and live. A failure prints the seed and the replay command; a seed
// that failed once belongs in testdata/soak-regressions.txt.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	seeds := make(chan int64)
	var mu sync.Mutex
	var failed []SoakResult
	var wg sync.WaitGroup
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range seeds {
				if r := Soak(seed); r.Failed() {
					mu.Lock()
					failed = append(failed, r)
					mu.Unlock()
				}
			}
		}()
	}
	for s := int64(1); s <= int64(*soakSeeds); s++ {
		seeds <- s
	}
	close(seeds)
	wg.Wait()
	for _, r := range failed {
		t.Errorf("seed %d failed (%v): violations %v; live %v %s; replay: go run ./simnet/cmd/soak -seed %d",
			r.Scenario.Seed, r.Scenario, r.Violations, r.Live, r.Missing, r.Scenario.Seed)
	}
}

// TestSoakRegressions replays the seeds that once failed.
func TestSoakRegressions(t *testing.T) {
	f, err := os.Open("testdata/soak-regressions.txt")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		seed, err := strconv.ParseInt(strings.Fields(line)[0], 10, 64)
		require.NoError(t, err, "testdata/soak-regressions.txt: %q", line)
		r := Soak(seed)
		require.False(t, r.Failed(), "seed %d (%v): violations %v; live %v %s", seed, r.Scenario, r.Violations, r.Live, r.Missing)
	}
	require.NoError(t, sc.Err())
}

// A replayed seed gives the same event trace.
func TestSoakIsDeterministic(t *testing.T) {
	for _, seed := range []int64{3, 17, 101} {
		a, b := Soak(seed), Soak(seed)
		require.Equal(t, a.Trace, b.Trace, "seed %d (%v)", seed, a.Scenario)
		require.Equal(t, a.Steps, b.Steps)
		require.NotEmpty(t, a.Trace)
	}
	require.NotEqual(t, Soak(3).Trace, Soak(4).Trace, "different seeds, different runs")
}
