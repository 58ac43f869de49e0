package benchmark

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/stratusbft/stratus/stats"
)

// ReadResult reads a result file written by Result.WriteFile.
func ReadResult(path string) (Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Result{}, fmt.Errorf("benchmark: %w", err)
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return Result{}, fmt.Errorf("benchmark: %s: %w", path, err)
	}
	return r, nil
}

// Merge combines the results of client processes that ran side by side: counts add up, the
// throughput is the total committed over the span from the first start to the last end, and the
// latency percentiles come from the merged histograms, so they are exact.
func Merge(results []Result) (Result, error) {
	if len(results) == 0 {
		return Result{}, fmt.Errorf("benchmark: no results to merge")
	}
	out := Result{
		StopReason:       "merged",
		Errors:           map[string]int64{},
		PerReplica:       map[string]int64{},
		PerReplicaErrors: map[string]int64{},
		Settings:         results[0].Settings,
	}
	out.Settings.Concurrency = 0
	var h stats.Histogram
	targets := map[int]Target{}
	for i, r := range results {
		if i == 0 || r.Start.Before(out.Start) {
			out.Start = r.Start
		}
		if r.End.After(out.End) {
			out.End = r.End
		}
		out.CommittedTx += r.CommittedTx
		out.DuplicateTx += r.DuplicateTx
		out.SentTx += r.SentTx
		out.Requests += r.Requests
		out.Batches += r.Batches
		out.ErrorsTotal += r.ErrorsTotal
		out.Concurrency += r.Concurrency
		for k, v := range r.Errors {
			out.Errors[k] += v
		}
		for _, e := range r.FirstErrors {
			if len(out.FirstErrors) < MaxFirstErrors {
				out.FirstErrors = append(out.FirstErrors, e)
			}
		}
		for k, v := range r.PerReplica {
			out.PerReplica[k] += v
		}
		for k, v := range r.PerReplicaErrors {
			out.PerReplicaErrors[k] += v
		}
		for _, t := range r.Targets {
			targets[t.ID] = t
		}
		if err := h.Import(r.LatencyHistogram); err != nil {
			return Result{}, fmt.Errorf("benchmark: result %d: %w", i+1, err)
		}
	}
	out.Targets = out.Targets[:0:0]
	for _, t := range targets {
		out.Targets = append(out.Targets, t)
	}
	sort.Slice(out.Targets, func(i, j int) bool { return out.Targets[i].ID < out.Targets[j].ID })
	out.DurationS = finite(out.End.Sub(out.Start).Seconds())
	if out.DurationS > 0 {
		out.ThroughputTPS = finite(float64(out.CommittedTx) / out.DurationS)
	}
	out.Latency = h.Summary()
	out.LatencyHistogram = h.Export()
	return out, nil
}
