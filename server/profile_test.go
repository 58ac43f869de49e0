package main

import "testing"

// TestNodePath: {id} becomes the node's ID (every occurrence), "sim" for a one-process cluster;
// a path without it is left as it is.
func TestNodePath(t *testing.T) {
	for _, c := range []struct {
		path string
		id   int
		want string
	}{
		{"cpu.{id}.pprof", 3, "cpu.3.pprof"},
		{"/tmp/{id}/cpu-{id}.pprof", 12, "/tmp/12/cpu-12.pprof"},
		{"cpu.{id}.pprof", 0, "cpu.sim.pprof"},
		{"cpu.pprof", 5, "cpu.pprof"},
		{"", 5, ""},
	} {
		if got := nodePath(c.path, c.id); got != c.want {
			t.Errorf("nodePath(%q, %d) = %q, want %q", c.path, c.id, got, c.want)
		}
	}
}
