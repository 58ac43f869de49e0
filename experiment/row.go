package experiment

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/stratusbft/stratus/simnet/virtual"
)

// Row is the result of one run, with its provenance.
type Row struct {
	Key     string  `json:"key"`
	Point   Point   `json:"point"`
	Spec    SpecRef `json:"spec"`
	Backend string  `json:"backend"`
	Commit  string  `json:"commit"`
	// Binary is the SHA-256 (first 16 hex digits) of the executable that ran the protocol: the
	// runner itself on the virtual backend, the bin/ directory's server on the others. Commit is
	// the repository where the runner was started; two rows with the same Binary ran the same code.
	Binary  string             `json:"binary,omitempty"`
	Machine Machine            `json:"machine"`
	Start   time.Time          `json:"start"`
	WallS   float64            `json:"wall_s"`
	Measure string             `json:"measured"` // what the figures cover (warm-up excluded)
	Metrics map[string]float64 `json:"metrics"`
	// SeriesTPS is the throughput of every second of the run, warm-up included.
	SeriesTPS []float64 `json:"series_tps,omitempty"`
	// Config is the resolved configuration: the simulator's (fitted values included), or the
	// config file and flags the processes ran with.
	Config any `json:"config"`
	// Result is what the backend reported: the simulator's JSON, or the merged client summary and
	// every replica's /query figures.
	Result any    `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

// SpecRef names the spec a row came from.
type SpecRef struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Quick  bool   `json:"quick"`
}

// Machine is where a row was measured.
type Machine struct {
	Cores     int     `json:"cores"`
	MemoryGiB float64 `json:"memory_gib"`
	OS        string  `json:"os"`
	Go        string  `json:"go"`
}

func thisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) >= 2 && fs[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(fs[1], 64)
				m.MemoryGiB = math.Round(kb/1024/1024*10) / 10
			}
		}
		f.Close()
	}
	return m
}

// gitCommit is the repository's HEAD (with -dirty-HASH when tracked files differ, HASH from the
// diff), else the build's.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err == nil {
		rev := strings.TrimSpace(string(out))
		if diff, err := exec.Command("git", "diff", "HEAD").Output(); err == nil && len(diff) > 0 {
			// Uncommitted changes: the hash of the diff tells two dirty trees apart.
			h := sha256.Sum256(diff)
			rev += "-dirty-" + hex.EncodeToString(h[:4])
		}
		return rev
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// binarySum returns the first 16 hex digits of the SHA-256 of the file at path, or "unknown".
func binarySum(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "unknown"
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// protocolBinary is the executable that runs backend's protocol (see Row.Binary).
func protocolBinary(backend string, opts Options) string {
	if backend == "virtual" {
		self, err := os.Executable()
		if err != nil {
			return ""
		}
		return self
	}
	return filepath.Join(opts.Bin, "server")
}

// metricDefs are the figures of a row: name and meaning.
var metricDefs = []struct{ name, about string }{
	{"throughput_tps", "transactions delivered per second at the first honest replica, warm-up excluded"},
	{"throughput_ktps", "the same in thousands"},
	{"committed_tx", "transactions the clients saw committed, warm-up excluded (tcp, sim)"},
	{"offered_ktps", "offered load, thousands of tx/s (none with closed-loop clients)"},
	{"limit_ktps", "the network's bandwidth limit for the protocol, thousands of tx/s (virtual)"},
	{"share_of_limit", "throughput ÷ bandwidth limit (virtual)"},
	{"latency_mean_ms", "mean latency (virtual: arrival at the replica → delivery; tcp: client submit → commit notice)"},
	{"p50_ms", "median latency"},
	{"p95_ms", "95th percentile latency"},
	{"p99_ms", "99th percentile latency"},
	{"e2e_p50_ms", "end-to-end median latency including the client's links (virtual)"},
	{"refused_share", "share of submitted transactions the replicas refused (backpressure)"},
	{"view_changes", "view changes"},
	{"timed_out_views", "views that ended by timeout"},
	{"height", "committed height at the reference replica"},
	{"leader_mbps", "outbound Mbit/s of the leader role (virtual)"},
	{"others_mbps", "outbound Mbit/s per non-leader replica (virtual)"},
	{"errors", "failed client requests (tcp, sim)"},
	{"saturated", "1 when the run delivered less than 90 % of what was offered: its latency then measures its queues"},
	{"violations", "invariant violations (virtual)"},
	{"wall_s", "wall-clock seconds of the run"},
	{"async_ktps", "mean throughput (KTx/s) during the first asynchrony window (virtual)"},
	{"after_async_ktps", "mean throughput (KTx/s) after the first asynchrony window (virtual)"},
}

// metricNames lists the metric names; leader_mbps.KIND and others_mbps.KIND (e.g.
// leader_mbps.Block) name one message type's share.
func metricNames() []string {
	var out []string
	for _, m := range metricDefs {
		out = append(out, m.name)
	}
	return append(out, "leader_mbps.KIND", "others_mbps.KIND", "tps_at_t")
}

func isMetric(s string) bool {
	for _, m := range metricDefs {
		if m.name == s {
			return true
		}
	}
	return s == "tps_at_t" || strings.HasPrefix(s, "leader_mbps.") || strings.HasPrefix(s, "others_mbps.")
}

// virtualMetrics are the figures of a simulator result.
func virtualMetrics(r *virtual.Result) map[string]float64 {
	m := map[string]float64{
		"throughput_tps":  r.ThroughputTPS,
		"throughput_ktps": r.ThroughputTPS / 1000,
		"offered_ktps":    r.OfferedTPS / 1000,
		"limit_ktps":      r.LimitTPS / 1000,
		"share_of_limit":  r.ShareOfLimit,
		"latency_mean_ms": r.Latency.Mean,
		"p50_ms":          r.Latency.P50,
		"p95_ms":          r.Latency.P95,
		"p99_ms":          r.Latency.P99,
		"e2e_p50_ms":      r.EndToEnd.P50,
		"view_changes":    float64(r.ViewChanges),
		"timed_out_views": float64(r.TimedOutViews),
		"height":          float64(r.Height),
		"violations":      float64(len(r.Violations)),
		"wall_s":          r.WallClockSeconds,
	}
	m["saturated"] = saturated(r.ThroughputTPS, r.OfferedTPS)
	if r.SubmittedTxs > 0 {
		m["refused_share"] = float64(r.RefusedTxs) / float64(r.SubmittedTxs)
	} else {
		m["refused_share"] = 0
	}
	for role, rb := range r.Bandwidth {
		m[role+"_mbps"] = rb.Total
		for k, v := range rb.ByType {
			m[role+"_mbps."+k] = v
		}
	}
	return m
}

// csvColumns are the CSV's metric columns after the point's.
var csvColumns = []string{"throughput_ktps", "committed_tx", "offered_ktps", "share_of_limit", "latency_mean_ms", "p50_ms", "p99_ms",
	"saturated", "refused_share", "view_changes", "timed_out_views", "leader_mbps", "others_mbps", "errors", "violations", "wall_s"}

func csvHeader() []string {
	return append([]string{"key", "spec", "backend", "protocol", "algorithm", "n", "rate", "load_share", "msize", "byzantine",
		"zipf", "rep", "seed", "duration_s", "warmup_s", "commit", "cores", "memory_gib", "start"}, append(csvColumns, "error")...)
}

func (r *Row) csv() []string {
	p := r.Point
	rec := []string{r.Key, r.Spec.Name, r.Backend, p.Protocol, p.Algorithm, strconv.Itoa(p.N), fnum(p.Rate), fnum(p.LoadShare),
		strconv.Itoa(p.MSize), strconv.Itoa(p.Byzantine), p.Zipf, strconv.Itoa(p.Rep), strconv.FormatInt(p.Seed, 10),
		fnum(p.Duration.D().Seconds()), fnum(p.Warmup.D().Seconds()), r.Commit, strconv.Itoa(r.Machine.Cores),
		fnum(r.Machine.MemoryGiB), r.Start.UTC().Format(time.RFC3339)}
	for _, c := range csvColumns {
		if v, ok := r.Metrics[c]; ok {
			rec = append(rec, fnum(v))
		} else {
			rec = append(rec, "")
		}
	}
	return append(rec, r.Error)
}

func fnum(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// readRows reads a JSON-lines file of rows (none if it does not exist).
func readRows(path string) ([]Row, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<28)
	line := 0
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r Row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			// A line cut short by an interrupted run: that point runs again.
			fmt.Fprintf(os.Stderr, "%s:%d: unreadable row skipped (%v)\n", path, line, err)
			continue
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// saturated is 1 when a run delivered less than 90 % of what was offered: its latency then
// measures its queues.
func saturated(tput, offered float64) float64 {
	if offered > 0 && tput < 0.9*offered {
		return 1
	}
	return 0
}
