package benchmark

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stratusbft/stratus/stats"
)

// Why a run ended.
const (
	StopDuration    = "duration"    // Options.Duration elapsed
	StopN           = "n"           // Options.N transactions were committed
	StopInterrupted = "interrupted" // the caller's context was cancelled (e.g. SIGTERM)
)

// Settings are the options a run used, as recorded in its result.
type Settings struct {
	Concurrency    int      `json:"concurrency"`
	Rate           int      `json:"rate"`    // tx/s, 0 = unlimited
	Payload        int      `json:"payload"` // bytes per transaction
	Batch          int      `json:"batch"`   // transactions per request
	N              int64    `json:"n"`       // commit target, 0 = none
	DurationLimitS float64  `json:"duration_limit_s"`
	TimeoutMS      int64    `json:"timeout_ms"`
	Distribution   string   `json:"distribution"` // uniform | zipf
	ZipfS          float64  `json:"zipfian_s,omitempty"`
	ZipfV          float64  `json:"zipfian_v,omitempty"`
	Targets        []Target `json:"targets"`
}

// Result summarises a run. Every number is finite: a run that committed nothing has zeros.
type Result struct {
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	StopReason string    `json:"stop_reason"` // duration | n | interrupted

	DurationS     float64       `json:"duration_s"`     // measured run time
	CommittedTx   int64         `json:"committed_tx"`   // transactions with a commit notice, duplicates excluded
	DuplicateTx   int64         `json:"duplicate_tx"`   // transactions in committed batches that the replica already had
	SentTx        int64         `json:"sent_tx"`        // transactions in requests that reached a replica
	Requests      int64         `json:"requests"`       // requests attempted (including failed connects)
	Batches       int64         `json:"batches"`        // requests answered with a commit notice
	ThroughputTPS float64       `json:"throughput_tps"` // committed_tx / duration_s
	Latency       stats.Latency `json:"latency_ms"`     // per transaction, submit → commit notice
	// LatencyHistogram holds every latency sample in buckets so that several clients' results
	// merge into exact percentiles (client -merge).
	LatencyHistogram stats.HistogramData `json:"latency_histogram"`

	Errors      map[string]int64 `json:"errors"` // failed requests by kind
	ErrorsTotal int64            `json:"errors_total"`
	// FirstErrors holds the first error of each kind, with the replica it came from, at most
	// MaxFirstErrors of them: what went wrong, where a run committed nothing.
	FirstErrors []string `json:"first_errors,omitempty"`

	// PerReplica counts committed transactions, and PerReplicaErrors failed requests, by target
	// node ID.
	PerReplica       map[string]int64 `json:"per_replica"`
	PerReplicaErrors map[string]int64 `json:"per_replica_errors"`

	// KV summarises a key-value run (Options.KV); the fields above then count operations
	// (committed_tx = operations answered, latency per operation).
	KV *KVResult `json:"kv,omitempty"`

	Settings
}

// finite maps NaN and infinities to 0 and rounds to 3 decimals.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1000) / 1000
}

// WriteText prints a human-readable summary.
// Line is the whole run in one line: throughput, what was committed, latency percentiles,
// duplicates and errors.
func (r Result) Line() string {
	unit, what := "tx/s", "tx committed"
	if r.KV != nil {
		unit, what = "ops/s", "operations answered"
	}
	return fmt.Sprintf("%.1f %s  %d %s in %.3f s  p50 %.3f ms  p99 %.3f ms  %d duplicates  %d errors",
		r.ThroughputTPS, unit, r.CommittedTx, what, r.DurationS, r.Latency.P50, r.Latency.P99, r.DuplicateTx, r.ErrorsTotal)
}

func (r Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Run ended (%s) after %.3f s\n", r.StopReason, r.DurationS)
	if r.KV == nil {
		fmt.Fprintf(&b, "  committed tx:  %d of %d sent (%d batches of %d committed, %d requests)\n",
			r.CommittedTx, r.SentTx, r.Batches, r.Batch, r.Requests)
		fmt.Fprintf(&b, "  duplicates:    %d (already pending or delivered at the replica; not errors)\n", r.DuplicateTx)
		fmt.Fprintf(&b, "  throughput:    %.1f tx/s\n", r.ThroughputTPS)
	} else {
		fmt.Fprintf(&b, "  operations:    %d answered of %d requests\n", r.CommittedTx, r.Requests)
		fmt.Fprintf(&b, "  throughput:    %.1f ops/s\n", r.ThroughputTPS)
	}
	l := r.Latency
	fmt.Fprintf(&b, "  latency (ms):  mean %.3f  p50 %.3f  p95 %.3f  p99 %.3f  max %.3f\n", l.Mean, l.P50, l.P95, l.P99, l.Max)
	fmt.Fprintf(&b, "  errors:        %d", r.ErrorsTotal)
	if len(r.Errors) > 0 {
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = fmt.Sprintf("%s=%d", k, r.Errors[k])
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	b.WriteString("\n")
	ids := make([]int, 0, len(r.Targets))
	for _, t := range r.Targets {
		ids = append(ids, t.ID)
	}
	sort.Ints(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		key := fmt.Sprint(id)
		parts[i] = fmt.Sprintf("%d=%d", id, r.PerReplica[key])
		if e := r.PerReplicaErrors[key]; e > 0 {
			parts[i] += fmt.Sprintf(" (%d errors)", e)
		}
	}
	fmt.Fprintf(&b, "  per replica:   %s, %s choice\n", strings.Join(parts, "  "), r.Distribution)
	if r.KV != nil {
		r.KV.writeText(&b)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteFile writes the result as indented JSON to path, atomically: readers see either no file or
// the whole of it.
func (r Result) WriteFile(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("benchmark: encode result: %w", err)
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("benchmark: write result: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("benchmark: write result: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("benchmark: write result: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("benchmark: write result: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("benchmark: write result: %w", err)
	}
	return nil
}

// Progress is a snapshot taken every progress interval.
type Progress struct {
	Elapsed   time.Duration // since the run started
	Committed int64         // transactions committed so far
	TPS       float64       // committed tx/s over the last interval
	P50, P99  float64       // latency of the last interval's commits, ms (0 when none)
	Errors    int64         // failed requests so far
	Dups      int64         // transactions answered as duplicates so far
}

// String renders the snapshot as one progress line.
func (p Progress) String() string {
	return fmt.Sprintf("[%5.0fs] committed %d  tps %.1f  p50 %.3f ms  p99 %.3f ms  duplicates %d  errors %d",
		p.Elapsed.Seconds(), p.Committed, p.TPS, p.P50, p.P99, p.Dups, p.Errors)
}
