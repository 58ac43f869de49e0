package benchmark

import (
	"math/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/stats"
)

// TestMergeIsExact: merging the results of several clients gives the same percentiles as one
// histogram of all their samples, and the counts add up.
func TestMergeIsExact(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var all stats.Histogram
	var results []Result
	start := time.Unix(1000, 0)
	for c := 0; c < 3; c++ {
		var h stats.Histogram
		for i := 0; i < 1000*(c+1); i++ {
			d := time.Duration(rng.ExpFloat64()*float64(20*time.Millisecond)) + time.Duration(c)*time.Millisecond
			h.Record(d)
			all.Record(d)
		}
		r := Result{
			Start: start.Add(time.Duration(c) * time.Second), End: start.Add(time.Duration(10+c) * time.Second),
			CommittedTx: int64(1000 * (c + 1)), DuplicateTx: int64(c + 1), Batches: int64(10 * (c + 1)),
			Errors: map[string]int64{"timeout": int64(c)}, ErrorsTotal: int64(c),
			PerReplica: map[string]int64{"1": int64(1000 * (c + 1))},
			Latency:    h.Summary(), LatencyHistogram: h.Export(),
			Settings: Settings{Concurrency: 4, Targets: []Target{{ID: 1, Addr: "a"}}},
		}
		path := filepath.Join(t.TempDir(), "r.json")
		require.NoError(t, r.WriteFile(path))
		back, err := ReadResult(path)
		require.NoError(t, err)
		results = append(results, back)
	}
	m, err := Merge(results)
	require.NoError(t, err)
	require.Equal(t, int64(6000), m.CommittedTx)
	require.Equal(t, int64(6), m.DuplicateTx, "duplicates add up, apart from errors")
	require.Zero(t, m.ErrorsTotal-3)
	require.Equal(t, int64(3), m.Errors["timeout"])
	require.Equal(t, int64(6000), m.PerReplica["1"])
	require.Equal(t, 12, m.Concurrency)
	require.Equal(t, 12.0, m.DurationS)
	require.Equal(t, 500.0, m.ThroughputTPS)
	require.Equal(t, all.Summary(), m.Latency)

	_, err = Merge(nil)
	require.Error(t, err)
	bad := results[0]
	bad.LatencyHistogram.Count++
	_, err = Merge([]Result{bad})
	require.ErrorContains(t, err, "samples")
}
