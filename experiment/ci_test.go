package experiment

import (
	"context"
	"io"
	"os"
	"testing"
	"time"
)

// TestRegressionGuard runs experiments/ci.json in virtual time and fails, naming the point, when a
// figure falls below its stored baseline by more than its tolerance (or a latency rises above it),
// or a check of the spec fails.
func TestRegressionGuard(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulator for a few seconds per point")
	}
	s, err := LoadSpec("../experiments/ci.json")
	if err != nil {
		t.Fatal(err)
	}
	var log io.Writer = io.Discard
	if testing.Verbose() {
		log = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, s, Options{Out: t.TempDir(), Log: log, Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed > 0 {
		for _, r := range rep.Rows {
			if r.Error != "" {
				t.Errorf("%s: the run failed: %s", r.Point.label(), r.Error)
			}
		}
	}
	if len(rep.Checks) == 0 {
		t.Fatal("the spec has no baselines or checks")
	}
	for _, c := range rep.Checks {
		if !c.Pass {
			t.Errorf("FAIL %s: %s", c.Name, c.Detail)
		} else if testing.Verbose() {
			t.Logf("pass %s: %s", c.Name, c.Detail)
		}
	}
}

// TestEveryShippedSpecIsValid parses every spec under experiments/.
func TestEveryShippedSpecIsValid(t *testing.T) {
	for _, pattern := range []string{"../experiments/*.json", "../experiments/paper/*.json"} {
		files, err := filepathGlob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			s, err := LoadSpec(f)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			for _, quick := range []bool{false, true} {
				c := *s
				if quick {
					c.applyQuick()
				}
				if _, err := c.Expand(""); err != nil {
					t.Errorf("%s (quick %v): %v", f, quick, err)
				}
			}
		}
	}
}
