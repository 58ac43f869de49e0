package virtual

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/simnet"
	"github.com/stratusbft/stratus/types"
)

func TestParseAsyncPartitionsZipf(t *testing.T) {
	w, err := ParseAsync("10s-20s:200ms±100ms, 25s-26s:1s+-0s")
	if err != nil || len(w) != 2 || w[0] != (simnet.AsyncWindow{From: 10 * time.Second, To: 20 * time.Second, Delay: 200 * time.Millisecond, Jitter: 100 * time.Millisecond}) ||
		w[1].Delay != time.Second || w[1].Jitter != 0 {
		t.Fatalf("ParseAsync = %+v, %v", w, err)
	}
	for _, bad := range []string{"10s:200ms", "20s-10s:1ms", "1s-2s:10ms±20ms", "x-2s:1ms"} {
		if _, err := ParseAsync(bad); err == nil || !strings.HasPrefix(err.Error(), "-async") {
			t.Errorf("ParseAsync(%q) = %v", bad, err)
		}
	}
	p, err := ParsePartitions("5s-8s:1,2; 9s-10s:3")
	if err != nil || len(p) != 2 || len(p[0].Side) != 2 || p[0].Side[1] != types.NodeID(2) || p[1].From != 9*time.Second {
		t.Fatalf("ParsePartitions = %+v, %v", p, err)
	}
	for _, bad := range []string{"5s-8s", "5s-8s:a", "q-8s:1"} {
		if _, err := ParsePartitions(bad); err == nil {
			t.Errorf("ParsePartitions(%q) accepted", bad)
		}
	}
	if z, err := ParseZipf("1.01, 10"); err != nil || z.S != 1.01 || z.V != 10 {
		t.Fatalf("ParseZipf = %+v, %v", z, err)
	}
	for _, bad := range []string{"1", "1,1", "2,0.5", "a,b"} {
		if _, err := ParseZipf(bad); err == nil {
			t.Errorf("ParseZipf(%q) accepted", bad)
		}
	}
}

func TestReadLatencyMatrix(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "m")
	if err := os.WriteFile(good, []byte("# one-way\n0 40ms\n40 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ReadLatencyMatrix(good, 2)
	if err != nil || m[0][1] != 40*time.Millisecond || m[1][0] != 40*time.Millisecond {
		t.Fatalf("ReadLatencyMatrix = %v, %v", m, err)
	}
	if _, err := ReadLatencyMatrix(good, 3); err == nil {
		t.Error("a 2x2 matrix was accepted for 3 replicas")
	}
	bad := filepath.Join(dir, "bad")
	_ = os.WriteFile(bad, []byte("0 soon\nsoon 0\n"), 0o644)
	if _, err := ReadLatencyMatrix(bad, 2); err == nil || !strings.Contains(err.Error(), "neither a duration") {
		t.Errorf("ReadLatencyMatrix(bad) = %v", err)
	}
}

// TestBuildVirtual: the defaults build server -virtual's default run, and every bad knob is named.
func TestBuildVirtual(t *testing.T) {
	p := DefaultParams()
	c, err := Build(config.Default(), "s-hs", p)
	if err != nil {
		t.Fatal(err)
	}
	if c.N != 16 || c.Net != "wan" || c.Links.Uplink != 100e6 || c.Warmup != 5*time.Second || c.Rate != DefaultRate(c) ||
		c.Spec.MemType != config.MemStratus || !c.Fit || c.Spec.BSize != 0 {
		t.Fatalf("default run: %+v", c)
	}
	for _, tc := range []struct {
		change func(*Params)
		want   string
	}{
		{func(p *Params) { p.N = 0 }, "-n 0"},
		{func(p *Params) { p.Net = "moon" }, "-net"},
		{func(p *Params) { p.CPU = "fast" }, "-cpu"},
		{func(p *Params) { p.Byz = 9 }, "-byz 9"},
		{func(p *Params) { p.Byz, p.Strategy = 1, "nope" }, "-strategy"},
		{func(p *Params) { p.Signatures = "maybe" }, "-signatures"},
		{func(p *Params) { p.Async = "soon" }, "-async"},
		{func(p *Params) { p.Warmup = time.Minute }, "-warmup"},
	} {
		q := DefaultParams()
		tc.change(&q)
		if _, err := Build(config.Default(), "s-hs", q); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error naming %s, got %v", tc.want, err)
		}
	}
	if _, err := Build(config.Default(), "paxos", p); err == nil {
		t.Error("an unknown algorithm was accepted")
	}
}
