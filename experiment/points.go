package experiment

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/simnet/virtual"
)

// Point is one run of an experiment: a value of every axis and a repetition.
type Point struct {
	Protocol  string  `json:"protocol"` // the protocol's label
	Algorithm string  `json:"algorithm"`
	N         int     `json:"n"`
	Rate      float64 `json:"rate"`       // offered tx/s over all replicas
	LoadShare float64 `json:"load_share"` // the rate as a share of the bandwidth limit, when the spec gives shares
	MSize     int     `json:"msize"`      // 0: the config's (fitted on virtual)
	Byzantine int     `json:"byzantine"`
	Zipf      string  `json:"zipf"` // "" uniform
	Rep       int     `json:"rep"`  // 1..repetitions
	Seed      int64   `json:"seed"`

	Backend  string   `json:"backend"`
	Duration Duration `json:"duration"`
	Warmup   Duration `json:"warmup"`
	// Sets are the config overrides the point runs with (the spec's, then the protocol's).
	Sets []string `json:"sets"`
	// Params are the virtual run's knobs.
	Params virtual.Params `json:"params"`

	Key string `json:"key"` // identifies the point: a hash of everything above but Rep's label
}

// fieldNames are the point fields plots, checks and baselines select by.
var fieldNames = []string{"protocol", "algorithm", "n", "rate", "load_share", "msize", "byzantine", "zipf", "rep", "seed"}

func isField(s string) bool {
	for _, f := range fieldNames {
		if f == s {
			return true
		}
	}
	return false
}

// Field is a point field's value, for selecting and naming series.
func (p *Point) Field(name string) any {
	switch name {
	case "protocol":
		return p.Protocol
	case "algorithm":
		return p.Algorithm
	case "n":
		return p.N
	case "rate":
		return p.Rate
	case "load_share":
		return p.LoadShare
	case "msize":
		return p.MSize
	case "byzantine":
		return p.Byzantine
	case "zipf":
		return p.Zipf
	case "rep":
		return p.Rep
	case "seed":
		return p.Seed
	}
	return nil
}

// matches says whether every field of where has the point's value; a list of values matches a
// field with any of them ({"zipf": ["1.01,1", ""]}: Zipf1 and even load).
func (p *Point) matches(where map[string]any) bool {
	for k, want := range where {
		if !anyValue(p.Field(k), want) {
			return false
		}
	}
	return true
}

func anyValue(have, want any) bool {
	list, ok := want.([]any)
	if !ok {
		return sameValue(have, want)
	}
	for _, w := range list {
		if sameValue(have, w) {
			return true
		}
	}
	return false
}

func sameValue(have, want any) bool {
	hf, hok := toFloat(have)
	wf, wok := toFloat(want)
	if hok && wok {
		return math.Abs(hf-wf) <= 1e-9*math.Max(1, math.Abs(hf))
	}
	return fmt.Sprint(have) == fmt.Sprint(want)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// label names the point in progress lines.
func (p *Point) label() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s n=%d", p.Protocol, p.N)
	if p.LoadShare > 0 {
		fmt.Fprintf(&b, " load=%.2g×limit (%.0f tx/s)", p.LoadShare, p.Rate)
	} else if p.Rate == 0 {
		b.WriteString(" load=closed")
	} else {
		fmt.Fprintf(&b, " load=%.0f tx/s", p.Rate)
	}
	if p.MSize > 0 {
		fmt.Fprintf(&b, " msize=%dK", p.MSize/1024)
	}
	if p.Byzantine > 0 {
		fmt.Fprintf(&b, " byz=%d", p.Byzantine)
	}
	if p.Zipf != "" {
		fmt.Fprintf(&b, " zipf=%s", p.Zipf)
	}
	fmt.Fprintf(&b, " rep=%d seed=%d", p.Rep, p.Seed)
	return b.String()
}

// group is the point without its repetition: the key of its summary.
func (p *Point) group() string {
	q := *p
	q.Rep, q.Seed, q.Key, q.Params.Seed = 0, 0, "", 0
	return hashJSON(q)
}

// hashJSON hashes v's JSON without its zero-valued fields, so that a knob added later with its
// zero value as the default leaves the keys of the points measured before it unchanged (and a
// rerun skips them).
func hashJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain data
	}
	var tree any
	if err := json.Unmarshal(data, &tree); err != nil {
		panic(err)
	}
	if data, err = json.Marshal(dropZeros(tree)); err != nil {
		panic(err)
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:8])
}

// dropZeros removes the object members whose value is false, 0, "", null or empty.
func dropZeros(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			x = dropZeros(x)
			switch y := x.(type) {
			case nil:
				delete(t, k)
				continue
			case bool:
				if !y {
					delete(t, k)
					continue
				}
			case float64:
				if y == 0 {
					delete(t, k)
					continue
				}
			case string:
				if y == "" {
					delete(t, k)
					continue
				}
			case []any:
				if len(y) == 0 {
					delete(t, k)
					continue
				}
			case map[string]any:
				if len(y) == 0 {
					delete(t, k)
					continue
				}
			}
			t[k] = x
		}
	case []any:
		for i, x := range t {
			t[i] = dropZeros(x)
		}
	}
	return v
}

// Expand lists the points of s on backend (the spec's when empty). Rates given as shares of the
// bandwidth limit are resolved here, from the run each point builds.
func (s *Spec) Expand(backend string) ([]Point, error) {
	if backend == "" {
		backend = s.Backend
	}
	if backend == "" {
		backend = "virtual"
	}
	if s.Load.Closed && backend == "virtual" {
		return nil, errors.New("load.closed runs on the sim, tcp and ssh backends, not virtual: the simulator's clients are open-loop")
	}
	if backend != "virtual" {
		// Faults the processes cannot inject would be left out of the run without a word.
		var only []string
		if s.Faults.Async != "" {
			only = append(only, "faults.async")
		}
		if s.Faults.Partition != "" {
			only = append(only, "faults.partition")
		}
		for _, pr := range s.Protocols {
			if s.uplinkQueue(pr) == "fifo" {
				only = append(only, "uplink_queue fifo")
				break
			}
		}
		if len(only) > 0 {
			return nil, fmt.Errorf("%s: only the virtual backend models them, not %s", strings.Join(only, ", "), backend)
		}
	}
	dur := s.Duration.D()
	if dur == 0 {
		dur = 20 * time.Second
	}
	warm := dur / 6
	if s.Warmup != nil {
		warm = s.Warmup.D()
	}
	reps := max(s.Repetitions, 1)
	seed := s.Seed
	if seed == 0 {
		seed = 1
	}
	byz := func(n int) []int {
		if len(s.Faults.ByzantineShare) > 0 {
			var out []int
			for _, sh := range s.Faults.ByzantineShare {
				out = append(out, min(int(math.Round(sh*float64(n))), config.Faults(n)))
			}
			return out
		}
		if len(s.Faults.Byzantine) > 0 {
			return s.Faults.Byzantine
		}
		return []int{0}
	}
	zipfs := s.Faults.Zipf
	if len(zipfs) == 0 {
		zipfs = []string{""}
	}
	var out []Point
	var problems []string
	for _, pr := range s.Protocols {
		for _, n := range s.N {
			if pr.MaxN > 0 && n > pr.MaxN || n < pr.MinN {
				continue
			}
			for _, msize := range s.msizes(pr, n) {
				for _, k := range byz(n) {
					for _, z := range zipfs {
						if pr.EvenLoad {
							z = ""
						}
						base := Point{Protocol: pr.Label, Algorithm: pr.Algorithm, N: n, MSize: msize, Byzantine: k, Zipf: z,
							Backend: backend, Duration: Duration(dur), Warmup: Duration(warm)}
						base.Sets = append(append([]string{}, s.Set...), pr.sets(n)...)
						base.Params = s.params(pr, base)
						loads, err := s.loads(pr, base)
						if err != nil {
							problems = append(problems, fmt.Sprintf("%s n=%d: %v", pr.Label, n, err))
							continue
						}
						for _, l := range loads {
							for r := 1; r <= reps; r++ {
								p := base
								p.Rate, p.LoadShare = l.rate, l.share
								p.Params.Rate = l.rate
								p.Rep, p.Seed = r, seed+int64(r-1)
								p.Params.Seed = p.Seed
								p.Key = hashJSON(p)
								out = append(out, p)
							}
						}
					}
					if pr.EvenLoad && len(zipfs) > 1 {
						break // one uniform series, not one per skew
					}
				}
			}
		}
	}
	if len(problems) > 0 {
		return nil, problemsErr(problems)
	}
	// Points that differ in nothing (an even-load protocol under several skews) run once.
	seen := map[string]bool{}
	kept := out[:0]
	for _, p := range out {
		if !seen[p.Key] {
			seen[p.Key] = true
			kept = append(kept, p)
		}
	}
	return kept, nil
}

// msizes is the microblock-size axis of protocol pr at n.
func (s *Spec) msizes(pr Protocol, n int) []int {
	if pr.Algorithm == "hotstuff" || pr.Algorithm == "streamlet" {
		return []int{0} // a native mempool has no microblocks
	}
	if pr.MSize > 0 {
		return []int{pr.MSize}
	}
	if len(s.MSizeByN) > 0 {
		best, size := -1, 0
		for k, m := range s.MSizeByN {
			kn, _ := strconv.Atoi(k)
			if kn <= n && kn > best {
				best, size = kn, m
			}
		}
		return []int{size}
	}
	if len(s.MSize) > 0 {
		return s.MSize
	}
	return []int{0}
}

// sets are a protocol's config overrides at n.
func (pr Protocol) sets(n int) []string {
	var out []string
	if pr.Signer != "" {
		out = append(out, "signer="+pr.Signer)
	}
	if pr.MaxBacklog != nil {
		out = append(out, fmt.Sprintf("max_backlog=%d", *pr.MaxBacklog))
	}
	if pr.Gossip {
		out = append(out, "gossip=true")
	}
	if pr.Fanout > 0 {
		out = append(out, fmt.Sprintf("fanout=%d", pr.Fanout))
	}
	return append(out, pr.Set...)
}

// params are the virtual knobs of a point (rate and seed apart).
func (s *Spec) params(pr Protocol, p Point) virtual.Params {
	v := virtual.DefaultParams()
	v.N, v.Duration, v.Warmup = p.N, p.Duration.D(), p.Warmup.D()
	if s.Network.Preset != "" {
		v.Net = s.Network.Preset
	}
	if s.Network.UplinkMbps != nil {
		v.Uplink = *s.Network.UplinkMbps
	}
	if s.Network.DownlinkMbps != nil {
		v.Downlink = *s.Network.DownlinkMbps
	}
	if s.Network.Latency > 0 {
		v.Latency = s.Network.Latency.D()
	}
	if s.Network.Jitter > 0 {
		v.Jitter = s.Network.Jitter.D()
	}
	if s.Network.Loss != nil {
		v.Loss = *s.Network.Loss
	}
	if s.Network.LatencyMatrix != "" {
		v.LatencyMatrix = s.file(s.Network.LatencyMatrix)
	}
	v.FIFOUplink = s.uplinkQueue(pr) == "fifo"
	v.TxSize, v.MSize, v.BSize = s.TxSize, p.MSize, s.BSize
	if p.Byzantine > 0 {
		v.Byz = p.Byzantine
		if s.Faults.Strategy != "" {
			v.Strategy = s.Faults.Strategy
		}
	}
	v.Zipf, v.Async, v.Partition = p.Zipf, s.Faults.Async, s.Faults.Partition
	if s.CPU != "" {
		v.CPU = s.CPU
	}
	if s.Fit != nil {
		v.Fit = *s.Fit
	}
	if s.TimeoutMs > 0 {
		v.TimeoutMs = s.TimeoutMs
	}
	v.Tick = s.Tick.D()
	if pr.Q != "" {
		v.Q, _ = qFor(pr.Q, p.N)
	}
	v.Proofs = pr.Proofs
	if pr.D > 0 {
		v.D = pr.D
	}
	v.ConfigName = "the spec's config"
	if s.Config != "" {
		v.ConfigName = s.Config
	}
	return v
}

// uplinkQueue is the series' uplink queue: its own, else the network's.
func (s *Spec) uplinkQueue(pr Protocol) string {
	if pr.UplinkQueue != "" {
		return pr.UplinkQueue
	}
	return s.Network.UplinkQueue
}

type load struct{ rate, share float64 }

// loads resolves the offered loads of a point.
func (s *Spec) loads(pr Protocol, p Point) ([]load, error) {
	if s.Load.Closed {
		return []load{{}}, nil // no offered rate: the clients saturate the replicas
	}
	var out []load
	for _, r := range s.Load.Rates {
		out = append(out, load{rate: r})
	}
	if len(s.Load.LimitShares) > 0 || s.Saturation != nil {
		alg := pr.Algorithm
		if s.Load.LimitOf != "" {
			alg = s.Load.LimitOf
		}
		lim, err := s.limit(alg, p)
		if err != nil {
			return nil, err
		}
		if sat := s.Saturation; sat != nil {
			// The search's ladder: start × the limit, raised by step; the runner stops a
			// protocol's ladder at its knee.
			start, step, steps := sat.defaults()
			var out []load
			for i, sh := 0, start; i < steps; i, sh = i+1, sh*step {
				sh = math.Round(sh*1000) / 1000
				out = append(out, load{rate: math.Floor(sh * lim), share: sh})
			}
			return out, nil
		}
		for _, sh := range s.Load.LimitShares {
			out = append(out, load{rate: math.Floor(sh * lim), share: sh})
		}
	}
	return out, nil
}

// ladderKey identifies a saturation search: the point without its load and repetition.
func (p *Point) ladderKey() string {
	return fmt.Sprintf("%s|%d|%d|%d|%s", p.Protocol, p.N, p.MSize, p.Byzantine, p.Zipf)
}

// limit is the bandwidth limit of preset alg at point p.
func (s *Spec) limit(alg string, p Point) (float64, error) {
	cfg, err := s.baseConfig(p.Sets)
	if err != nil {
		return 0, err
	}
	params := p.Params
	params.Rate = 1
	c, err := virtual.Build(cfg, alg, params)
	if err != nil {
		return 0, err
	}
	lim := virtual.LimitTPS(c)
	if math.IsInf(lim, 0) || lim <= 0 {
		return 0, fmt.Errorf("load.limit_shares: the network has no bandwidth limit; give rates")
	}
	return lim, nil
}

// file is a path the spec names: as it is when absolute, else relative to the spec's directory.
func (s *Spec) file(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(s.dir, path)
}

// baseConfig is the spec's config with sets applied.
func (s *Spec) baseConfig(sets []string) (config.Config, error) {
	if s.Config != "" {
		return config.LoadWith(s.file(s.Config), sets)
	}
	data, err := config.Override([]byte("{}"), "the defaults", sets)
	if err != nil {
		return config.Config{}, err
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return cfg, fmt.Errorf("config: the defaults with %s: %w", strings.Join(sets, " "), err)
	}
	return cfg, nil
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
