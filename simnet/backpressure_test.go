package simnet

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

// TestBackpressureLeavesNothingBehind overloads shaped uplinks under every shared-mempool
// preset, so that the mempools refuse submissions and hold back microblocks (max_backlog), then
// stops the load: every transaction a replica accepted is delivered everywhere, and once that is
// done no replica holds a pending transaction, one in flight or a waiting client. A batch left
// after the drain timer cut its full microblocks once had no timer and waited for the next
// submission, for good once the clients stopped (s-hs and s-sl failed here).
func TestBackpressureLeavesNothingBehind(t *testing.T) {
	for _, p := range presets {
		for _, seed := range firstSeeds(2) {
			t.Run(fmt.Sprintf("%s/seed=%d", p.name, seed), func(t *testing.T) {
				spec := sharedSpec(p, 4)
				spec.Shared.MaxBacklog = 20 * time.Millisecond
				s, err := New(Options{N: 4, Spec: spec, Seed: seed, Latency: 2 * time.Millisecond, Jitter: time.Millisecond,
					Links: Links{Uplink: 1e6}}) // 1 Mbit/s: a 320-byte microblock to 3 peers takes 8 ms
				require.NoError(t, err)
				// 45 transactions every millisecond for 2 s, many times what the uplinks carry; 45
				// is four and a half microblocks, so that a batch cut to its full microblocks
				// leaves a rest.
				const batch = 45
				txs := makeTxs(t.Name(), 2000*batch)
				results := make([]*error, 0, 2000)
				for k := 0; k*batch < len(txs); k++ {
					to := s.Nodes()[k%4].ID
					results = append(results, s.Submit(time.Duration(k)*time.Millisecond, to, txs[k*batch:(k+1)*batch]))
				}
				s.Run(2100 * time.Millisecond)
				var accepted []types.Tx
				refused := 0
				for k, res := range results {
					if *res == nil {
						accepted = append(accepted, txs[k*batch:(k+1)*batch]...)
					} else {
						refused++
					}
				}
				require.NotZero(t, refused, "the load must exceed the uplinks")
				require.NotEmpty(t, accepted)
				require.True(t, s.RunUntil(60*time.Second, func() bool { return s.AllDelivered(accepted) }),
					"accepted transactions not delivered: %s", s.describeMissing(accepted))
				require.Empty(t, s.Violations())
				requireNothingLeft(t, s)
			})
		}
	}
}
