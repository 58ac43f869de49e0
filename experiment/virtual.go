package experiment

import (
	"context"
	"fmt"
	"time"

	"github.com/stratusbft/stratus/simnet/virtual"
)

// runVirtual runs a point in the virtual-time simulator, in this process, with the configuration
// server -virtual builds from the same knobs (virtual.Build).
func (s *Spec) runVirtual(_ context.Context, p Point, row *Row) error {
	cfg, err := s.baseConfig(p.Sets)
	if err != nil {
		return err
	}
	c, err := virtual.Build(cfg, p.Algorithm, p.Params)
	if err != nil {
		return err
	}
	c.Algorithm = p.Protocol
	res, err := virtual.Run(c)
	if err != nil {
		return err
	}
	row.Config = res.Config
	row.Metrics = virtualMetrics(res)
	for _, sr := range res.Series {
		row.SeriesTPS = append(row.SeriesTPS, sr.TPS)
	}
	if len(c.Links.Async) > 0 {
		// The throughput inside the first asynchrony window, and after it.
		w := c.Links.Async[0]
		in, after := 0.0, 0.0
		nin, nafter := 0, 0
		for _, sr := range res.Series {
			end := time.Duration(sr.T) * time.Second
			switch {
			case end > w.From && end <= w.To:
				in += sr.TPS
				nin++
			case end > w.To:
				after += sr.TPS
				nafter++
			}
		}
		if nin > 0 {
			row.Metrics["async_ktps"] = in / float64(nin) / 1000
		}
		if nafter > 0 {
			row.Metrics["after_async_ktps"] = after / float64(nafter) / 1000
		}
	}
	res.Series = nil // kept as series_tps
	row.Result = res
	warm := c.Warmup.Round(time.Millisecond)
	row.Measure = fmt.Sprintf("virtual time %v to %v: the first %v are warm-up, excluded from throughput and latency (series_tps has every second)",
		warm, c.Duration, warm)
	if len(res.Violations) > 0 {
		return fmt.Errorf("%d invariant violations: %v", len(res.Violations), res.Violations[0])
	}
	return nil
}
