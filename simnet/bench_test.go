package simnet

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkProtocols runs each protocol over 4 simulated replicas (real signatures, virtual time)
// and reports how many transactions the simulation delivers per second of CPU: the cost of the
// protocol logic alone (signatures, hashing, bookkeeping, the invariant checker), without HTTP,
// clients or goroutines.
func BenchmarkProtocols(b *testing.B) {
	all := append([]preset{{"hotstuff", "hotstuff", "native", false, false}, {"streamlet", "streamlet", "native", false, false}}, presets...)
	for _, p := range all {
		b.Run(p.name, func(b *testing.B) {
			const n = 20_000
			for i := 0; i < b.N; i++ {
				sp := sharedSpec(p, 4)
				sp.Shared.MSize = 500 * 32 // microblocks of 500 transactions: the crypto per microblock amortises
				if p.memType == "native" {
					sp = spec(p.engine)
					sp.BSize = 500
				}
				s, err := New(Options{N: 4, Spec: sp, Seed: int64(i + 1), Latency: time.Millisecond})
				if err != nil {
					b.Fatal(err)
				}
				txs := makeTxs(fmt.Sprintf("bench-%d", i), n)
				load(s, txs, 100, time.Millisecond)
				if !s.RunUntil(time.Minute, func() bool { return s.AllDelivered(txs) }) {
					b.Fatal("not delivered")
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tx/s")
		})
	}
}
