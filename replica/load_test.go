package replica

import (
	"context"
	"testing"
	"time"

	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stretchr/testify/require"
)

// TestLoadGaugeIsLive: with load balancing on and a busy threshold no replica reaches, the busy
// state never flips, yet each replica's statistics show its current load estimate (the stable-time
// percentile) once its microblocks became stable, not the 0 of the last busy change.
func TestLoadGaugeIsLive(t *testing.T) {
	spec := testSpec("hotstuff")
	spec.MemType = "stratus"
	spec.Shared.MSize = 2048
	spec.Shared.BatchTimeout = 5 * time.Millisecond
	spec.Shared.Q = 3
	spec.Shared.FetchTimeout = 200 * time.Millisecond
	spec.Shared.PushTimeout = 500 * time.Millisecond
	spec.Shared.LoadBalance = true
	spec.Shared.D = 1
	spec.Shared.EstimateWindow = 10
	spec.Shared.Percentile = 90
	spec.Shared.BusyThreshold = time.Hour // never busy
	spec.Shared.LBTimeout = 100 * time.Millisecond
	spec.Shared.ForwardTimeout = 500 * time.Millisecond
	c := startCluster(t, 4, spec, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for k := 0; k < 8; k++ {
		_, err := c.reps[k%4].Submit(ctx, enginetest.TxBatch("load", k, 40), true)
		require.NoError(t, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mb := c.stats[0].Snapshot().Microblocks
		if mb.StableTimeMs.P50 > 0 && mb.LoadMs > 0 {
			require.False(t, mb.Busy)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 1: stable time p50 %.3f ms but load %.3f ms (busy %v)", mb.StableTimeMs.P50, mb.LoadMs, mb.Busy)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
