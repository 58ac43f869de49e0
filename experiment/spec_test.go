package experiment

import (
	"context"
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/experiments"
)

func TestParseNamesEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`{"name": "a b", "protocols": ["s-hs", {"algorithm": "paxos"}], "n": [0, 4],
		"load": {"rates": [-1]}, "network": {"preset": "moon", "uplink_queue": "lifo"}, "bogus": true,
		"plots": [{"file": "p", "x": "n", "y": "nope", "extra": 1}]}`))
	if err == nil {
		t.Fatal("a spec with errors was accepted")
	}
	for _, want := range []string{`name "a b"`, `protocols[1].algorithm "paxos"`, "n[0] = 0", "load.rates[0] = -1",
		`network.preset "moon"`, `network.uplink_queue "lifo"`, "bogus: unknown field", "plots[0].extra: unknown field", `plots[0].y "nope"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q:\n%v", want, err)
		}
	}
}

func TestParseRejectsWrongTypesWithoutPanic(t *testing.T) {
	for _, in := range []string{`{"name": "x", "n": "4"}`, `{"name": `, `[]`, `null`, `{"protocols": [4]}`, `{"duration": "soon"}`} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: accepted", in)
		}
	}
}

func TestExpandCrossProductAndKeys(t *testing.T) {
	s, err := Parse([]byte(`{"name": "x", "protocols": ["s-hs", {"label": "s-hs-2f", "algorithm": "s-hs", "q": "2f+1"}],
		"n": [4, 7], "load": {"rates": [1000, 2000]}, "faults": {"byzantine": [0, 1]}, "repetitions": 3, "duration": "2s"}`))
	if err != nil {
		t.Fatal(err)
	}
	pts, err := s.Expand("")
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2*2*2*2*3 {
		t.Fatalf("%d points, want 48", len(pts))
	}
	keys := map[string]bool{}
	groups := map[string]int{}
	for _, p := range pts {
		keys[p.Key] = true
		groups[p.group()]++
		if p.Protocol == "s-hs-2f" && p.N == 7 && p.Params.Q != 5 {
			t.Errorf("q = %d at n=7 for 2f+1, want 5", p.Params.Q)
		}
	}
	if len(keys) != len(pts) || len(groups) != 16 {
		t.Errorf("%d keys and %d groups, want %d and 16", len(keys), len(groups), len(pts))
	}
}

func TestStudentT(t *testing.T) {
	st := Describe([]float64{10, 12, 14})
	// mean 12, sd 2, t(0.975, 2) = 4.303: half-width 4.303 × 2 / √3
	if st.Mean != 12 || math.Abs(st.SD-2) > 1e-12 || math.Abs(st.CI95-4.303*2/math.Sqrt(3)) > 1e-9 {
		t.Errorf("Describe = %+v", st)
	}
	if Describe([]float64{5}).CI95 != 0 {
		t.Error("one sample has a confidence interval")
	}
	if T975(1) != 12.706 || T975(30) != 2.042 || T975(1000) != 1.96 {
		t.Error("t table")
	}
}

func filepathGlob(p string) ([]string, error) { return filepath.Glob(p) }

func TestSaturationSearchStopsAtTheKnee(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulator")
	}
	s, err := Parse([]byte(`{"name": "sat", "protocols": ["s-hs"], "n": [4], "msize": [16384], "duration": "4s",
		"network": {"preset": "wan", "uplink_mbps": 10, "downlink_mbps": 10},
		"saturation": {"start": 0.5, "step": 2, "max_steps": 4}}`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), s, Options{Out: t.TempDir(), Log: io.Discard, NoPlots: true})
	if err != nil {
		t.Fatal(err)
	}
	// 0.5 × the limit is delivered, 1 × is refused in part by backpressure: the knee; 2 × and 4 × never run.
	if rep.Ran != 2 || len(rep.Knees) != 1 || rep.Knees[0].Share != 0.5 || rep.Knees[0].Why == "" {
		t.Fatalf("ran %d points, knees %+v", rep.Ran, rep.Knees)
	}
}

// TestClosedLoad: closed-loop clients stand alone (no rates, shares or search beside them) and run
// only on the real-process backends; their points offer no rate.
func TestClosedLoad(t *testing.T) {
	_, err := Parse([]byte(`{"name": "x", "protocols": ["s-hs"], "n": [4], "load": {"closed": true, "rates": [1000]}, "backend": "virtual"}`))
	if err == nil {
		t.Fatal("closed load with rates on virtual was accepted")
	}
	for _, want := range []string{"give no rates", "not virtual"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	s, err := Parse([]byte(`{"name": "x", "protocols": ["s-hs", "hotstuff"], "n": [4, 16], "load": {"closed": true}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expand(""); err == nil || !strings.Contains(err.Error(), "not virtual") {
		t.Errorf("closed load expanded on the default backend (virtual): %v", err)
	}
	pts, err := s.Expand("tcp")
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 4 {
		t.Fatalf("%d points, want 2 protocols × 2 N", len(pts))
	}
	for _, p := range pts {
		if p.Rate != 0 || !strings.Contains(p.label(), "load=closed") {
			t.Errorf("%s: rate %v", p.label(), p.Rate)
		}
	}
}

// TestVirtualOnlyFaultsRefusedElsewhere: a spec whose faults or uplink model only the simulator
// has does not run on real processes without them; the error names each.
func TestVirtualOnlyFaultsRefusedElsewhere(t *testing.T) {
	s, err := Parse([]byte(`{"name": "x", "protocols": ["s-hs", {"label": "S-HS-fifo", "algorithm": "s-hs", "uplink_queue": "fifo"}],
		"n": [4], "load": {"rates": [1000]}, "faults": {"async": "1s-2s:200ms", "partition": "1s-2s:1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	pts, err := s.Expand("virtual")
	if err != nil || len(pts) != 2 {
		t.Fatalf("virtual: %d points, %v", len(pts), err)
	}
	if got := s.params(s.Protocols[1], pts[0]).FIFOUplink; !got {
		t.Error("the series' uplink_queue fifo did not reach the simulator's parameters")
	}
	if got := s.params(s.Protocols[0], pts[0]).FIFOUplink; got {
		t.Error("a series without uplink_queue got a FIFO uplink")
	}
	for _, backend := range []string{"sim", "tcp", "ssh"} {
		_, err := s.Expand(backend)
		if err == nil {
			t.Fatalf("%s: expanded a spec with virtual-only faults", backend)
		}
		for _, want := range []string{"faults.async", "faults.partition", "uplink_queue fifo", backend} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the error does not name %q: %v", backend, want, err)
			}
		}
	}
}

// TestKeysIgnoreZeroFields: a knob added with its zero value as the default does not change the
// keys of the points measured before it, so a rerun still skips them.
func TestKeysIgnoreZeroFields(t *testing.T) {
	type before struct {
		N    int    `json:"n"`
		Name string `json:"name"`
	}
	type after struct {
		N     int      `json:"n"`
		Name  string   `json:"name"`
		New   bool     `json:"new"`
		Extra []string `json:"extra"`
		Sub   struct {
			Z int `json:"z"`
		} `json:"sub"`
	}
	if a, b := hashJSON(before{N: 4, Name: "x"}), hashJSON(after{N: 4, Name: "x"}); a != b {
		t.Errorf("an added zero field changed the key: %s, %s", a, b)
	}
	if a, b := hashJSON(after{N: 4, Name: "x"}), hashJSON(after{N: 4, Name: "x", New: true}); a == b {
		t.Error("a set field did not change the key")
	}
	if a, b := hashJSON(before{N: 4}), hashJSON(before{N: 16}); a == b {
		t.Error("different N, same key")
	}
}

// TestEmbeddedSpecsRunSmall: every spec this repository carries is valid, is found by name, and
// each of its series runs at N=4 for 3 virtual seconds without an invariant violation or a
// throughput above the links' limit (the smoke test the scenarios had before they became specs).
func TestEmbeddedSpecsRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulator")
	}
	for _, name := range experiments.Names() {
		t.Run(name, func(t *testing.T) {
			s, err := Resolve(name)
			if err != nil {
				t.Fatal(err)
			}
			if s.Load.Closed {
				return // real processes only
			}
			pts, err := s.Expand("virtual")
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, p := range pts {
				if seen[p.Protocol] {
					continue
				}
				seen[p.Protocol] = true
				p.N, p.Params.N = 4, 4
				p.Params.Duration, p.Params.Warmup = 3*time.Second, time.Second
				p.Params.Byz = min(p.Params.Byz, 1)
				p.Params.Async, p.Params.Partition = "", ""
				if p.Params.Q > 0 {
					p.Params.Q = 2 // q was resolved for the spec's N: f+1 at N=4
				}
				var row Row
				if err := s.runVirtual(context.Background(), p, &row); err != nil {
					t.Fatalf("%s: %v", p.label(), err)
				}
				if lim := row.Metrics["limit_ktps"]; lim > 0 && row.Metrics["throughput_ktps"] > lim*1.0001 {
					t.Errorf("%s: %.1f KTx/s above the limit %.1f", p.label(), row.Metrics["throughput_ktps"], lim)
				}
			}
		})
	}
}

// TestChecksOfPointsLeftOutAreSkipped: in a quick or N-limited run a check about a point that was
// not run is SKIP, not FAIL; in a full run a check that matches nothing still fails.
func TestChecksOfPointsLeftOutAreSkipped(t *testing.T) {
	spec := `{"name": "x", "protocols": ["s-hs"], "n": [4, 64], "load": {"rates": [1000]},
		"quick": {"n": [4]},
		"checks": [{"name": "big", "metric": "throughput_ktps", "where": {"n": 64}, "op": ">=", "value": 1}]}`
	sums := []Summary{{Point: Point{Protocol: "s-hs", N: 4}, Runs: 1, Metrics: map[string]Stat{"throughput_ktps": {Mean: 1}}}}
	for _, tc := range []struct {
		name  string
		prep  func(s *Spec) error
		wants string
	}{
		{"full run", func(*Spec) error { return nil }, "FAIL"},
		{"quick", func(s *Spec) error { s.applyQuick(); return nil }, "SKIP"},
		{"only_n", func(s *Spec) error { return s.OnlyN([]int{4}) }, "SKIP"},
	} {
		s, err := Parse([]byte(spec))
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.prep(s); err != nil {
			t.Fatal(err)
		}
		got := s.check(sums)
		if len(got) != 1 || got[0].Verdict() != tc.wants {
			t.Errorf("%s: %+v, want %s", tc.name, got, tc.wants)
		}
	}
	s, _ := Parse([]byte(spec))
	if err := s.OnlyN([]int{8}); err == nil || !strings.Contains(err.Error(), "no point has N") {
		t.Errorf("OnlyN with no N of the spec: %v", err)
	}
}

func TestMinAndMaxNBoundAProtocolsPoints(t *testing.T) {
	s, err := Parse([]byte(`{"name": "x", "protocols": [{"label": "small", "algorithm": "s-sl", "max_n": 8},
		{"label": "large", "algorithm": "s-hs", "signer": "bls12-381", "min_n": 16}, "hotstuff"],
		"n": [4, 8, 16, 32], "load": {"rates": [1000]}, "duration": "2s"}`))
	require.NoError(t, err)
	pts, err := s.Expand("")
	require.NoError(t, err)
	got := map[string][]int{}
	for _, p := range pts {
		got[p.Protocol] = append(got[p.Protocol], p.N)
	}
	require.Equal(t, map[string][]int{"small": {4, 8}, "large": {16, 32}, "hotstuff": {4, 8, 16, 32}}, got)
	_, err = Parse([]byte(`{"name": "x", "protocols": [{"algorithm": "s-hs", "min_n": 64, "max_n": 16}, {"label": "b", "algorithm": "s-hs", "min_n": -1}],
		"n": [4], "load": {"rates": [1000]}}`))
	require.ErrorContains(t, err, "protocols[0]: min_n 64, max_n 16")
	require.ErrorContains(t, err, "protocols[1]: min_n -1")
}

func TestWhereListsMatchAnyOfTheirValues(t *testing.T) {
	zipf1 := Point{Protocol: "S-HS-d3", N: 200, Zipf: "1.01,1"}
	even := Point{Protocol: "S-HS-even", N: 200}
	zipf10 := Point{Protocol: "S-HS-d3", N: 200, Zipf: "1.01,10"}
	where := map[string]any{"zipf": []any{"1.01,1", ""}, "n": 200.0}
	require.True(t, zipf1.matches(where))
	require.True(t, even.matches(where))
	require.False(t, zipf10.matches(where))
	require.False(t, zipf1.matches(map[string]any{"n": []any{100.0, 400.0}}))
	_, err := Parse([]byte(`{"name": "x", "protocols": ["s-hs"], "n": [4], "load": {"rates": [1000]},
		"plots": [{"file": "p", "x": "n", "y": "throughput_ktps", "where": {"zipf": [], "n": [[4]]}}]}`))
	require.ErrorContains(t, err, "plots[0].where.zipf: an empty list matches no point")
	require.ErrorContains(t, err, "plots[0].where.n: [4]: want a value or a list of values")
}
