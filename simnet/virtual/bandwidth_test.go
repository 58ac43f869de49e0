package virtual

import (
	"testing"
	"time"

	"github.com/stratusbft/stratus/config"
)

// TestBandwidthByRoleWithinTheLink: the outbound Mbit/s a result reports for the leader and the
// other replicas, by message type and in total, never exceed the uplink — even above saturation,
// where a leader's queued copies leave in later views (counted by the role at queueing time over
// the run's duration, the N=64 S-HS leader of Table III sent "112.7 Mbit/s" on 100 Mbit/s).
func TestBandwidthByRoleWithinTheLink(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulator")
	}
	for _, tc := range []struct {
		alg    string
		inline bool
	}{{"hotstuff", false}, {"smp-hs", false}, {"s-hs", false}, {"s-hs", true}, {"s-sl", false}} {
		cfg := config.Default()
		p := DefaultParams()
		p.N, p.Duration, p.Warmup = 16, 6*time.Second, time.Second
		if tc.inline {
			cfg.Proofs, cfg.MaxBacklog = config.ProofsInline, 0
		}
		c, err := Build(cfg, tc.alg, p)
		if err != nil {
			t.Fatal(err)
		}
		c.Rate = 2 * LimitTPS(c) // saturated: the queues grow
		res, err := Run(c)
		if err != nil {
			t.Fatal(err)
		}
		link := c.Links.Uplink / 1e6
		for role, rb := range res.Bandwidth {
			if rb.Total > link*1.0001 {
				t.Errorf("%s (inline proofs %v): %s sends %.1f Mbit/s on a %.0f Mbit/s uplink", tc.alg, tc.inline, role, rb.Total, link)
			}
		}
		if res.Bandwidth["leader"].Total < link/10 {
			t.Errorf("%s: the leader sends %.1f Mbit/s at twice the load its links carry", tc.alg, res.Bandwidth["leader"].Total)
		}
	}
}
