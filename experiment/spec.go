// Package experiment runs experiment specs: a JSON file under experiments/ names the protocols,
// replica counts, offered loads, microblock sizes, faults, network, duration, warm-up and
// repetitions of an experiment; the runner expands it into points, runs every point on a backend
// (virtual: the in-process virtual-time simulator; sim: one server -sim process in real time;
// tcp: one server process per replica on this machine, as bin/run.sh starts them), writes one row
// per run with its provenance (CSV and JSON lines), skips the runs a previous invocation finished,
// and then summarises the repetitions (mean and 95 % Student-t confidence interval), draws the
// spec's plots and checks its pass/fail criteria and regression baselines.
package experiment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/experiments"
	"github.com/stratusbft/stratus/simnet/virtual"
)

// Spec is one experiment. Every list is an axis: the points are their cross product
// (protocols × n × loads × msize × byzantine × zipf), each run once per repetition.
type Spec struct {
	Name   string `json:"name"`   // the results' directory and file names
	About  string `json:"about"`  // what the experiment shows
	Figure string `json:"figure"` // the paper's figure or table it reproduces, if any

	Backend string   `json:"backend"` // virtual (default), sim, tcp or ssh; the command line may override it
	Config  string   `json:"config"`  // a config.json to start from, relative to the spec (default: the built-in defaults)
	Set     []string `json:"set"`     // config overrides KEY=VALUE, as server -set

	Protocols []Protocol `json:"protocols"` // a preset name ("s-hs") or an object with a label and knobs
	N         []int      `json:"n"`
	Load      Load       `json:"load"`
	TxSize    int        `json:"tx_size"` // bytes (default: the config's payload_size)
	// MSize lists microblock sizes in bytes (0: the config's, fitted to the network on virtual);
	// MSizeByN picks one by N instead: the entry with the largest N at most the run's ("16": 131072,
	// "256": 262144 is the paper's rule). A protocol's own msize wins over both.
	MSize    []int          `json:"msize"`
	MSizeByN map[string]int `json:"msize_by_n"`
	BSize    int            `json:"bsize"` // block size (0: fitted on virtual, the config's elsewhere)

	Faults  Faults  `json:"faults"`
	Network Network `json:"network"`

	Duration    Duration  `json:"duration"`    // of each run (default 20s)
	Warmup      *Duration `json:"warmup"`      // excluded from throughput and latency (default a sixth of duration; "0s" for none)
	Repetitions int       `json:"repetitions"` // runs per point, seeds seed, seed+1, ... (default 1)
	Seed        int64     `json:"seed"`        // the first repetition's seed (default 1)

	CPU       string   `json:"cpu"`        // virtual: off (default), on or measure
	Fit       *bool    `json:"fit"`        // virtual: size blocks, timeouts and microblocks to the network (default true)
	TimeoutMs int      `json:"timeout_ms"` // view timeout (default: the config's; fitted upwards on virtual)
	Tick      Duration `json:"tick"`       // virtual: load tick (default N/2 ms)

	TCP TCPOptions `json:"tcp"` // options of the sim, tcp and ssh backends (clients: per client host on ssh)
	SSH SSHOptions `json:"ssh"` // the cluster of the ssh backend

	// Saturation replaces the offered loads by a search: see Saturation.
	Saturation *Saturation `json:"saturation"`

	// Quick overrides the spec for a short run (stratus-exp -quick, PAPER_QUICK=1 make paper).
	Quick *Quick `json:"quick"`

	Plots     []Plot     `json:"plots"`
	Checks    []Check    `json:"checks"`
	Baselines []Baseline `json:"baselines"`

	dir, path string // where the spec was read from
	raw       []byte
	// partial says why some points of the spec are not run (the quick variant, a subset of N):
	// a check or baseline about a point left out is skipped, not failed.
	partial string
}

// Protocol is one protocol of the comparison: a preset with knobs of its own.
type Protocol struct {
	Label      string `json:"label"`     // the series' name (default the algorithm)
	Algorithm  string `json:"algorithm"` // hotstuff, streamlet, smp-hs, s-hs, s-sl, s-hs-g
	Q          string `json:"q"`         // proof threshold: f+1, 2f+1 or a number (default the config's)
	MSize      int    `json:"msize"`
	Proofs     string `json:"proofs"` // inline or reference
	Signer     string `json:"signer"` // secp256k1 or bls12-381
	MaxBacklog *int   `json:"max_backlog_ms"`
	D          int    `json:"d"` // load balancing with d samples
	Gossip     bool   `json:"gossip"`
	Fanout     int    `json:"fanout"`
	EvenLoad   bool   `json:"even_load"` // ignore faults.zipf: uniform load (the reference line of the Zipf figures)
	MaxN       int    `json:"max_n"`     // leave out the points above this N (a protocol too slow to simulate there)
	MinN       int    `json:"min_n"`     // leave out the points below this N (a variant shown where it matters)
	// UplinkQueue overrides network.uplink_queue for this series (virtual): priority or fifo.
	UplinkQueue string   `json:"uplink_queue"`
	Set         []string `json:"set"` // further config overrides
}

// UnmarshalJSON takes a bare preset name or an object.
func (p *Protocol) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*p = Protocol{Label: s, Algorithm: s}
		return nil
	}
	type plain Protocol
	var q plain
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&q); err != nil {
		return err
	}
	*p = Protocol(q)
	if p.Algorithm == "" {
		p.Algorithm = p.Label
	}
	if p.Label == "" {
		p.Label = p.Algorithm
	}
	return nil
}

// Load is the offered load: absolute rates, or shares of a protocol's bandwidth limit (what the
// links can carry: simnet's bandwidth_limit_tps).
type Load struct {
	// Closed runs the clients closed-loop instead of at an offered rate: each keeps its requests in
	// flight (tcp.concurrency) and sends the next as one commits, so the replicas are saturated as
	// bin/sweep.sh measures them. The sim and tcp backends only: the simulator's clients are
	// open-loop.
	Closed      bool      `json:"closed"`
	Rates       []float64 `json:"rates"`        // tx/s over all replicas
	LimitShares []float64 `json:"limit_shares"` // × the bandwidth limit
	// LimitOf names the preset whose limit the shares scale (default: each protocol's own;
	// "s-hs" offers every protocol what the shared mempools' links carry, as the paper's Fig 6).
	LimitOf string `json:"limit_of"`
}

// Faults are the faults every point runs with.
type Faults struct {
	Byzantine      []int     `json:"byzantine"`       // Byzantine replicas (the last K IDs); an axis
	ByzantineShare []float64 `json:"byzantine_share"` // or as shares of N (rounded); an axis
	Strategy       string    `json:"strategy"`        // package byzantine's strategy (default missing; crash and silence are crash faults)
	Partition      string    `json:"partition"`       // virtual: FROM-TO:ID,ID,... separated by ;
	Async          string    `json:"async"`           // virtual: asynchrony windows FROM-TO:DELAY±JITTER
	Zipf           []string  `json:"zipf"`            // client load skew "s,v" ("" = uniform); an axis
}

// Network is the modelled (virtual) or shaped (tcp) network.
type Network struct {
	Preset        string   `json:"preset"` // lan, wan (default) or config
	UplinkMbps    *float64 `json:"uplink_mbps"`
	DownlinkMbps  *float64 `json:"downlink_mbps"`
	Latency       Duration `json:"latency"` // one way
	Jitter        Duration `json:"jitter"`
	Loss          *float64 `json:"loss"`
	LatencyMatrix string   `json:"latency_matrix"` // file, relative to the spec unless absolute
	UplinkQueue   string   `json:"uplink_queue"`   // virtual: priority (default: consensus messages first) or fifo
}

// TCPOptions drive the client processes of the sim and tcp backends.
type TCPOptions struct {
	Clients     int      `json:"clients"`     // client processes (default 4)
	Concurrency int      `json:"concurrency"` // requests in flight per client (default the config's)
	Batch       int      `json:"batch"`       // transactions per request (default the config's)
	Flags       []string `json:"server_flags"`
	ClientFlags []string `json:"client_flags"` // more flags for every client process
}

// SSHOptions name the cluster the ssh backend runs on.
type SSHOptions struct {
	// Settings is a deploy/settings.sh (relative to the spec): the hosts, ssh login and remote
	// directory of a cluster that deploy/ reaches. A point of N replicas runs on the first N
	// lines of its host files; clients run on its client hosts.
	Settings string `json:"settings"`
}

// Saturation searches the load where a protocol saturates: starting at start × its bandwidth
// limit, the offered load grows by step until p99 latency passes p99_ms, the refused share
// passes refused_share or the throughput falls below min_delivered × offered; the point is then
// measured at the last load below that knee.
type Saturation struct {
	Start        float64 `json:"start"`         // share of the limit (default 0.25)
	Step         float64 `json:"step"`          // factor per step (default 1.25)
	MaxSteps     int     `json:"max_steps"`     // default 10
	P99Ms        float64 `json:"p99_ms"`        // default 5000
	RefusedShare float64 `json:"refused_share"` // default 0.05
	MinDelivered float64 `json:"min_delivered"` // default 0.9
}

// defaults are the search's start, step and number of steps.
func (sat *Saturation) defaults() (float64, float64, int) {
	start, step, steps := sat.Start, sat.Step, sat.MaxSteps
	if start == 0 {
		start = 0.25
	}
	if step == 0 {
		step = 1.25
	}
	if steps == 0 {
		steps = 10
	}
	return start, step, steps
}

// knee says why a run is past the saturation knee ("" if it is not).
func (sat *Saturation) knee(m map[string]float64) string {
	p99, refused, delivered := sat.P99Ms, sat.RefusedShare, sat.MinDelivered
	if p99 == 0 {
		p99 = 5000
	}
	if refused == 0 {
		refused = 0.05
	}
	if delivered == 0 {
		delivered = 0.9
	}
	switch {
	case m["p99_ms"] > p99:
		return fmt.Sprintf("p99 %.0f ms > %.0f", m["p99_ms"], p99)
	case m["refused_share"] > refused:
		return fmt.Sprintf("refused %.1f %% > %.1f %%", 100*m["refused_share"], 100*refused)
	case m["offered_ktps"] > 0 && m["throughput_ktps"] < delivered*m["offered_ktps"]:
		return fmt.Sprintf("delivered %.1f of %.1f KTx/s offered", m["throughput_ktps"], m["offered_ktps"])
	}
	return ""
}

// Quick is what a quick run changes.
type Quick struct {
	Protocols   []string  `json:"protocols"` // labels to keep
	N           []int     `json:"n"`
	Load        *Load     `json:"load"`
	Byzantine   []int     `json:"byzantine"`
	Duration    Duration  `json:"duration"`
	Warmup      *Duration `json:"warmup"`
	Repetitions int       `json:"repetitions"`
	Zipf        []string  `json:"zipf"`
	Skip        bool      `json:"skip"` // leave the experiment out of a quick run
}

// Plot is one figure, drawn as PNG and SVG.
type Plot struct {
	File    string         `json:"file"` // base name in the results directory
	Title   string         `json:"title"`
	X       string         `json:"x"` // a point field or a metric; "t": the per-second series; "protocol": bars per protocol
	Y       string         `json:"y"`
	GroupBy []string       `json:"group_by"` // point fields whose values name a series (default protocol)
	Where   map[string]any `json:"where"`    // only the points matching these fields
	LogX    bool           `json:"log_x"`
	LogY    bool           `json:"log_y"`
	// Reference series, drawn dashed: the paper's published values (label them as such).
	Reference []Reference `json:"reference"`
}

// Reference is a published series.
type Reference struct {
	Label  string       `json:"label"`
	Source string       `json:"source"`
	Points [][2]float64 `json:"points"` // in the plot's units
	// Values are a bar chart's published values, by category (x: "protocol").
	Values map[string]float64 `json:"values"`
}

// Check is a pass/fail criterion over the summarised points: the mean of metric at the point
// matching where, compared by op with value — or, with ratio_of, with value × the mean at that
// other point.
type Check struct {
	Name    string         `json:"name"`
	Metric  string         `json:"metric"`
	Where   map[string]any `json:"where"`
	Op      string         `json:"op"` // >= or <=
	Value   float64        `json:"value"`
	RatioOf map[string]any `json:"ratio_of"`
	// Known explains a failure that is understood (the paper's claim does not reproduce in this
	// design, and why): the check then reports KNOWN instead of FAIL and does not fail the run.
	Known string `json:"known_difference"`
}

// Baseline is a stored figure a regression must not fall below (above, for a latency) by more than
// tolerance (a share of the value).
type Baseline struct {
	Where     map[string]any `json:"where"`
	Metric    string         `json:"metric"`
	Value     float64        `json:"value"`
	Tolerance float64        `json:"tolerance"`
	Higher    string         `json:"better"` // "higher" (default) or "lower"
}

// Duration is a time.Duration written as "20s" in JSON.
type Duration time.Duration

// UnmarshalJSON reads "20s" (or a number of seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 20s, 500ms)", s)
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("%s is not a duration (e.g. \"20s\")", b)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// MarshalJSON writes "20s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D is the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// LoadSpec reads and validates a spec file.
func LoadSpec(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseAt(data, path)
}

// Resolve reads the spec arg names: a spec file (a path, or any name ending in .json), or the
// name of a spec this repository carries (experiments/NAME.json or experiments/paper/NAME.json,
// built into the binary; the earlier scenario names too, e.g. bandwidth for table3-bandwidth).
func Resolve(arg string) (*Spec, error) {
	if _, err := os.Stat(arg); err == nil || strings.HasSuffix(arg, ".json") || strings.ContainsRune(arg, os.PathSeparator) {
		return LoadSpec(arg)
	}
	data, file, err := experiments.Lookup(arg)
	if err != nil {
		return nil, err
	}
	return ParseAt(data, file)
}

// ParseNs reads a comma-separated list of replica counts.
func ParseNs(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want replica counts separated by commas, e.g. 16,64", list)
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseAt validates a spec read from path (the files it names are relative to path's directory).
func ParseAt(data []byte, path string) (*Spec, error) {
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.dir = filepath.Dir(path)
	s.path = path
	s.raw = data
	return s, nil
}

// OnlyN keeps the replica counts listed in ns (after the quick variant, if any); it fails when
// none of the spec's is among them.
func (s *Spec) OnlyN(ns []int) error {
	keep := map[int]bool{}
	for _, n := range ns {
		keep[n] = true
	}
	var kept []int
	for _, n := range s.N {
		if keep[n] {
			kept = append(kept, n)
		}
	}
	if len(kept) == 0 {
		return fmt.Errorf("%s: no point has N in %v (the spec's N: %v)", s.Name, ns, s.N)
	}
	if len(kept) < len(s.N) {
		s.partial = fmt.Sprintf("N limited to %v", kept)
	}
	s.N = kept
	return nil
}

// Parse reads a spec and validates it, naming every problem it finds.
func Parse(data []byte) (*Spec, error) {
	var problems []string
	// Unknown fields, all of them (the decoder stops at the first).
	var generic any
	if err := json.Unmarshal(data, &generic); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", jsonErr(data, err))
	}
	problems = append(problems, unknownFields("", generic, reflect.TypeOf(Spec{}))...)
	var s Spec
	if err := json.Unmarshal(data, &s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			problems = append(problems, fmt.Sprintf("%s: want %s, not a JSON %s", te.Field, te.Type, te.Value))
		} else {
			problems = append(problems, err.Error())
		}
		return nil, problemsErr(problems)
	}
	problems = append(problems, s.validate()...)
	if len(problems) > 0 {
		return nil, problemsErr(problems)
	}
	s.raw = data
	return &s, nil
}

// jsonErr adds the line of a syntax error.
func jsonErr(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
		return fmt.Errorf("line %d: %v", line, err)
	}
	return err
}

func problemsErr(p []string) error {
	return fmt.Errorf("%d problem(s) in the spec:\n  - %s", len(p), strings.Join(p, "\n  - "))
}

// unknownFields names every object key of v that t (a struct type) has no field for.
func unknownFields(prefix string, v any, t reflect.Type) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice {
			arr, ok := v.([]any)
			if !ok {
				return nil
			}
			var out []string
			for i, e := range arr {
				out = append(out, unknownFields(fmt.Sprintf("%s[%d]", prefix, i), e, t.Elem())...)
			}
			return out
		}
		t = t.Elem()
	}
	obj, ok := v.(map[string]any)
	if !ok || t.Kind() != reflect.Struct {
		return nil
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if tag != "" && tag != "-" {
			fields[tag] = t.Field(i).Type
			names = append(names, tag)
		}
	}
	var out []string
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		ft, ok := fields[k]
		if !ok {
			out = append(out, fmt.Sprintf("%s: unknown field (known here: %s)", name, strings.Join(names, ", ")))
			continue
		}
		if ft == reflect.TypeOf(map[string]any{}) || ft == reflect.TypeOf(Duration(0)) {
			continue
		}
		out = append(out, unknownFields(name, obj[k], ft)...)
	}
	return out
}

// validate names every problem of s.
func (s *Spec) validate() []string {
	var p []string
	bad := func(f string, a ...any) { p = append(p, fmt.Sprintf(f, a...)) }
	if s.Name == "" {
		bad("name: missing (it names the results' files)")
	} else if strings.ContainsAny(s.Name, "/\\ ") {
		bad("name %q: no slashes or spaces (it names the results' files)", s.Name)
	}
	switch s.Backend {
	case "", "virtual", "sim", "tcp", "ssh":
	default:
		bad("backend %q: want virtual, sim, tcp or ssh", s.Backend)
	}
	if len(s.Protocols) == 0 {
		bad("protocols: missing (e.g. [\"s-hs\", \"hotstuff\"])")
	}
	labels := map[string]bool{}
	for i, pr := range s.Protocols {
		at := fmt.Sprintf("protocols[%d]", i)
		if !isPreset(pr.Algorithm) {
			bad("%s.algorithm %q: want one of %s", at, pr.Algorithm, strings.Join(config.PresetNames(), ", "))
		}
		if labels[pr.Label] {
			bad("%s.label %q: used twice (labels name the series)", at, pr.Label)
		}
		labels[pr.Label] = true
		if pr.Q != "" {
			if _, err := qFor(pr.Q, 4); err != nil {
				bad("%s.q: %v", at, err)
			}
		}
		if pr.MSize < 0 {
			bad("%s.msize %d: want a positive number of bytes", at, pr.MSize)
		}
		if pr.MinN < 0 || pr.MaxN < 0 || pr.MaxN > 0 && pr.MinN > pr.MaxN {
			bad("%s: min_n %d, max_n %d: want replica counts with min_n at most max_n (0: no bound)", at, pr.MinN, pr.MaxN)
		}
		switch pr.Proofs {
		case "", config.ProofsInline, config.ProofsReference:
		default:
			bad("%s.proofs %q: want inline or reference", at, pr.Proofs)
		}
		switch pr.Signer {
		case "", "secp256k1", "bls12-381":
		default:
			bad("%s.signer %q: want secp256k1 or bls12-381", at, pr.Signer)
		}
		switch pr.UplinkQueue {
		case "", "priority", "fifo":
		default:
			bad("%s.uplink_queue %q: want priority or fifo", at, pr.UplinkQueue)
		}
		if pr.D < 0 || pr.Fanout < 0 || (pr.MaxBacklog != nil && *pr.MaxBacklog < 0) {
			bad("%s: d, fanout and max_backlog_ms must not be negative", at)
		}
		p = append(p, checkSets(at+".set", pr.Set)...)
	}
	p = append(p, checkSets("set", s.Set)...)
	if len(s.N) == 0 {
		bad("n: missing (replica counts, e.g. [16, 64])")
	}
	for i, n := range s.N {
		if n < 1 || n > 1000 {
			bad("n[%d] = %d: want 1..1000 replicas", i, n)
		}
	}
	if s.Load.Closed {
		if s.Saturation != nil || len(s.Load.Rates) > 0 || len(s.Load.LimitShares) > 0 {
			bad("load.closed: closed-loop clients offer no rate; give no rates, limit_shares or saturation search beside it")
		}
		if s.Backend == "virtual" {
			bad("load.closed: runs on the sim, tcp and ssh backends, not virtual (the simulator's clients are open-loop)")
		}
	} else if s.Saturation == nil && len(s.Load.Rates) == 0 && len(s.Load.LimitShares) == 0 {
		bad("load: give rates (tx/s), limit_shares (× the bandwidth limit), a saturation search or closed")
	}
	for i, r := range s.Load.Rates {
		if !(r > 0) || math.IsInf(r, 0) {
			bad("load.rates[%d] = %v: want a positive number of tx/s", i, r)
		}
	}
	for i, r := range s.Load.LimitShares {
		if !(r > 0) || r > 100 {
			bad("load.limit_shares[%d] = %v: want a share of the bandwidth limit in (0, 100]", i, r)
		}
	}
	if s.Load.LimitOf != "" && !isPreset(s.Load.LimitOf) {
		bad("load.limit_of %q: want a preset (%s)", s.Load.LimitOf, strings.Join(config.PresetNames(), ", "))
	}
	if s.TxSize < 0 || s.BSize < 0 {
		bad("tx_size and bsize must not be negative")
	}
	for i, m := range s.MSize {
		if m < 0 {
			bad("msize[%d] = %d: want a number of bytes", i, m)
		}
	}
	for k, m := range s.MSizeByN {
		if n, err := strconv.Atoi(k); err != nil || n < 1 {
			bad("msize_by_n: key %q: want a replica count", k)
		}
		if m <= 0 {
			bad("msize_by_n[%s] = %d: want a positive number of bytes", k, m)
		}
	}
	if len(s.MSize) > 0 && len(s.MSizeByN) > 0 {
		bad("msize and msize_by_n: give one of them")
	}
	f := s.Faults
	if len(f.Byzantine) > 0 && len(f.ByzantineShare) > 0 {
		bad("faults.byzantine and faults.byzantine_share: give one of them")
	}
	for i, k := range f.Byzantine {
		for _, n := range s.N {
			if n >= 1 && n <= 1000 && (k < 0 || k > config.Faults(n)) {
				bad("faults.byzantine[%d] = %d: want 0..f (f = %d at n = %d)", i, k, config.Faults(n), n)
			}
		}
	}
	for i, sh := range f.ByzantineShare {
		if sh < 0 || sh > 1.0/3 {
			bad("faults.byzantine_share[%d] = %v: want 0..1/3", i, sh)
		}
	}
	if f.Strategy != "" {
		if err := config.CheckStrategy(f.Strategy); err != nil {
			bad("faults.strategy: %v", err)
		}
	}
	if f.Partition != "" {
		if _, err := virtual.ParsePartitions(f.Partition); err != nil {
			bad("faults.partition: %v", strings.TrimPrefix(err.Error(), "-partition "))
		}
	}
	if f.Async != "" {
		if _, err := virtual.ParseAsync(f.Async); err != nil {
			bad("faults.async: %v", strings.TrimPrefix(err.Error(), "-async "))
		}
	}
	for i, z := range f.Zipf {
		if z == "" {
			continue
		}
		if _, err := virtual.ParseZipf(z); err != nil {
			bad("faults.zipf[%d]: %v", i, strings.TrimPrefix(err.Error(), "-zipf "))
		}
	}
	nw := s.Network
	switch nw.Preset {
	case "", "lan", "wan", "config":
	default:
		bad("network.preset %q: want lan, wan or config", nw.Preset)
	}
	for name, v := range map[string]*float64{"uplink_mbps": nw.UplinkMbps, "downlink_mbps": nw.DownlinkMbps} {
		if v != nil && (*v < 0 || math.IsInf(*v, 0)) {
			bad("network.%s %v: want Mbit/s >= 0 (0: unlimited)", name, *v)
		}
	}
	switch nw.UplinkQueue {
	case "", "priority", "fifo":
	default:
		bad("network.uplink_queue %q: want priority or fifo", nw.UplinkQueue)
	}
	if nw.Latency < 0 || nw.Jitter < 0 {
		bad("network.latency and network.jitter must not be negative")
	}
	if nw.Loss != nil && (*nw.Loss < 0 || *nw.Loss >= 1) {
		bad("network.loss %v: want 0 <= loss < 1", *nw.Loss)
	}
	if s.Duration < 0 {
		bad("duration %v: want a positive duration", s.Duration.D())
	}
	dur := s.Duration.D()
	if dur == 0 {
		dur = 20 * time.Second
	}
	if s.Warmup != nil && (*s.Warmup < 0 || s.Warmup.D() >= dur) {
		bad("warmup %v: want 0 <= warmup < duration (%v)", s.Warmup.D(), dur)
	}
	if s.Repetitions < 0 || s.Repetitions > 100 {
		bad("repetitions %d: want 1..100", s.Repetitions)
	}
	switch s.CPU {
	case "", "off", "on", "measure":
	default:
		bad("cpu %q: want off, on or measure", s.CPU)
	}
	if s.TimeoutMs < 0 || s.Tick < 0 {
		bad("timeout_ms and tick must not be negative")
	}
	if s.TCP.Clients < 0 || s.TCP.Concurrency < 0 || s.TCP.Batch < 0 {
		bad("tcp: clients, concurrency and batch must not be negative")
	}
	if sat := s.Saturation; sat != nil {
		if sat.Start < 0 || sat.Step < 0 || sat.MaxSteps < 0 || sat.P99Ms < 0 || sat.RefusedShare < 0 || sat.MinDelivered < 0 {
			bad("saturation: every field must be positive (or left out for its default)")
		}
		if sat.Step != 0 && sat.Step <= 1 {
			bad("saturation.step %v: want a factor > 1", sat.Step)
		}
	}
	if q := s.Quick; q != nil {
		for i, l := range q.Protocols {
			if !labels[l] {
				bad("quick.protocols[%d] %q: no protocol has that label", i, l)
			}
		}
		for i, n := range q.N {
			if n < 1 || n > 1000 {
				bad("quick.n[%d] = %d: want 1..1000 replicas", i, n)
			}
		}
		if q.Duration < 0 || (q.Warmup != nil && *q.Warmup < 0) || q.Repetitions < 0 {
			bad("quick: duration, warmup and repetitions must not be negative")
		}
	}
	for i, pl := range s.Plots {
		at := fmt.Sprintf("plots[%d]", i)
		if pl.File == "" || strings.ContainsAny(pl.File, "/\\") {
			bad("%s.file %q: want a base name (no directories)", at, pl.File)
		}
		if pl.X != "t" && !isMetric(pl.X) && !isField(pl.X) {
			bad("%s.x %q: want t, a point field (%s) or a metric (%s)", at, pl.X, strings.Join(fieldNames, ", "), strings.Join(metricNames(), ", "))
		}
		if !isMetric(pl.Y) {
			bad("%s.y %q: want a metric (%s)", at, pl.Y, strings.Join(metricNames(), ", "))
		}
		for _, g := range pl.GroupBy {
			if !isField(g) {
				bad("%s.group_by %q: want point fields (%s)", at, g, strings.Join(fieldNames, ", "))
			}
		}
		p = append(p, checkWhere(at+".where", pl.Where)...)
		for j, r := range pl.Reference {
			if r.Label == "" || (len(r.Points) == 0 && len(r.Values) == 0) {
				bad("%s.reference[%d]: want a label and points (or values, for a bar chart)", at, j)
			}
		}
	}
	for i, c := range s.Checks {
		at := fmt.Sprintf("checks[%d]", i)
		if c.Name == "" {
			bad("%s.name: missing", at)
		}
		if !isMetric(c.Metric) {
			bad("%s.metric %q: want one of %s", at, c.Metric, strings.Join(metricNames(), ", "))
		}
		if c.Op != ">=" && c.Op != "<=" {
			bad("%s.op %q: want >= or <=", at, c.Op)
		}
		if len(c.Where) == 0 {
			bad("%s.where: name the point (e.g. {\"protocol\": \"s-hs\", \"n\": 100})", at)
		}
		p = append(p, checkWhere(at+".where", c.Where)...)
		p = append(p, checkWhere(at+".ratio_of", c.RatioOf)...)
	}
	for i, b := range s.Baselines {
		at := fmt.Sprintf("baselines[%d]", i)
		if !isMetric(b.Metric) {
			bad("%s.metric %q: want one of %s", at, b.Metric, strings.Join(metricNames(), ", "))
		}
		if len(b.Where) == 0 {
			bad("%s.where: name the point", at)
		}
		if b.Tolerance < 0 || b.Tolerance >= 1 {
			bad("%s.tolerance %v: want a share in [0, 1)", at, b.Tolerance)
		}
		if b.Higher != "" && b.Higher != "higher" && b.Higher != "lower" {
			bad("%s.better %q: want higher or lower", at, b.Higher)
		}
		p = append(p, checkWhere(at+".where", b.Where)...)
	}
	return p
}

func checkWhere(at string, w map[string]any) []string {
	var p []string
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !isField(k) {
			p = append(p, fmt.Sprintf("%s: %q is not a point field (%s)", at, k, strings.Join(fieldNames, ", ")))
		}
		vals, isList := w[k].([]any)
		if !isList {
			vals = []any{w[k]}
		} else if len(vals) == 0 {
			p = append(p, fmt.Sprintf("%s.%s: an empty list matches no point: give one value or several", at, k))
		}
		for _, v := range vals {
			switch v.(type) {
			case []any, map[string]any, nil:
				p = append(p, fmt.Sprintf("%s.%s: %v: want a value or a list of values", at, k, v))
			}
		}
	}
	return p
}

func checkSets(at string, sets []string) []string {
	var p []string
	for i, s := range sets {
		if k, _, ok := strings.Cut(s, "="); !ok || k == "" {
			p = append(p, fmt.Sprintf("%s[%d] %q: want KEY=VALUE", at, i, s))
		}
	}
	return p
}

func isPreset(name string) bool {
	for _, p := range config.PresetNames() {
		if p == name {
			return true
		}
	}
	return false
}

// qFor reads a proof threshold: f+1, 2f+1 or a number.
func qFor(q string, n int) (int, error) {
	f := config.Faults(n)
	switch strings.ReplaceAll(q, " ", "") {
	case "f+1":
		return f + 1, nil
	case "2f+1":
		return 2*f + 1, nil
	}
	v, err := strconv.Atoi(q)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%q: want f+1, 2f+1 or a positive number", q)
	}
	return v, nil
}

// applyQuick returns s as a quick run changes it.
func (s *Spec) applyQuick() {
	q := s.Quick
	if q == nil {
		return
	}
	s.partial = "the quick variant"
	if len(q.Protocols) > 0 {
		keep := map[string]bool{}
		for _, l := range q.Protocols {
			keep[l] = true
		}
		var ps []Protocol
		for _, p := range s.Protocols {
			if keep[p.Label] {
				ps = append(ps, p)
			}
		}
		s.Protocols = ps
	}
	if len(q.N) > 0 {
		s.N = q.N
	}
	if q.Load != nil {
		s.Load = *q.Load
	}
	if len(q.Byzantine) > 0 {
		s.Faults.Byzantine, s.Faults.ByzantineShare = q.Byzantine, nil
	}
	if len(q.Zipf) > 0 {
		s.Faults.Zipf = q.Zipf
	}
	if q.Duration > 0 {
		s.Duration = q.Duration
	}
	if q.Warmup != nil {
		s.Warmup = q.Warmup
	}
	if s.Duration > 0 && s.Warmup != nil && *s.Warmup >= s.Duration {
		s.Warmup = nil // a sixth of the quick duration
	}
	if q.Repetitions > 0 {
		s.Repetitions = q.Repetitions
	}
}
