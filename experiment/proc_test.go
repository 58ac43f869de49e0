package experiment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildBinaries builds server and client into a temporary directory: what the sim and tcp
// backends start.
func buildBinaries(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not available")
	}
	dir := t.TempDir()
	for _, b := range []string{"server", "client"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), "../"+b)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b, err, out)
		}
	}
	return dir
}

// TestProcessBackends runs one small point on each real-process backend — sim (every replica in
// one server -sim process) and tcp (a server -id process per replica over authenticated TCP, with
// its store on disk and the network preset as shaping) — and checks that each commits, that its row
// carries the provenance a reader needs (resolved config, the flags the processes ran with, the
// clients' merged summary, every replica's /query on tcp, commit, machine), that a rerun resumes
// rather than running the point again, and that no process it started is left running.
func TestProcessBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real server and client processes")
	}
	bin := buildBinaries(t)
	// sim runs closed-loop clients (as bin/sweep.sh does), tcp an offered rate.
	specs := map[string]string{
		"sim": `"load": {"closed": true}, "tcp": {"clients": 2, "concurrency": 4, "client_flags": ["-batch", "50"]}`,
		"tcp": `"load": {"rates": [4000]}, "msize": [8192], "tcp": {"clients": 2, "concurrency": 32, "batch": 50}`,
	}
	for _, backend := range []string{"sim", "tcp"} {
		t.Run(backend, func(t *testing.T) {
			spec := []byte(`{"name": "backends", "about": "one small point on a real-process backend",
  "protocols": ["s-hs"], "n": [4], "network": {"preset": "lan"}, "duration": "5s", "warmup": "1s", ` + specs[backend] + `}`)
			s, err := Parse(spec)
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			var log io.Writer = io.Discard
			if testing.Verbose() {
				log = os.Stderr
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			opts := Options{Out: out, Backend: backend, Bin: bin, Log: log, NoPlots: true}
			rep, err := Run(ctx, s, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Rows) != 1 {
				t.Fatalf("%d rows for one point", len(rep.Rows))
			}
			row := rep.Rows[0]
			if row.Error != "" {
				t.Fatalf("the run failed: %s", row.Error)
			}
			if row.Backend != backend {
				t.Errorf("row backend %q, want %q", row.Backend, backend)
			}
			if tps := row.Metrics["throughput_tps"]; tps < 1000 {
				t.Errorf("throughput %.0f tx/s: the point did not run", tps)
			}
			if _, offered := row.Metrics["offered_ktps"]; offered != (backend == "tcp") {
				t.Errorf("offered_ktps in the row: %v, want it only with an offered rate", offered)
			}
			if row.Metrics["p50_ms"] <= 0 {
				t.Errorf("no latency: %v", row.Metrics)
			}
			if row.Commit == "" || row.Machine.Cores == 0 || row.Start.IsZero() || row.Measure == "" {
				t.Errorf("provenance missing: commit %q, machine %+v, start %v, measured %q", row.Commit, row.Machine, row.Start, row.Measure)
			}
			// The row names the binary that ran, not only the repository the runner started in.
			exe, err := os.ReadFile(filepath.Join(bin, "server"))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(exe)
			if want := hex.EncodeToString(sum[:])[:16]; row.Binary != want {
				t.Errorf("row binary %q, want the server's SHA-256 %s", row.Binary, want)
			}
			b, err := json.Marshal(row)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Config struct {
					Config      map[string]any `json:"config"`
					ServerFlags []string       `json:"server_flags"`
					ClientFlags []string       `json:"client_flags"`
				} `json:"config"`
				Result struct {
					Clients  map[string]any            `json:"clients"`
					Replicas map[string]map[string]any `json:"replicas"`
				} `json:"result"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Config.Config) == 0 || len(got.Config.ServerFlags) == 0 || len(got.Config.ClientFlags) == 0 {
				t.Errorf("the row does not say what ran: %+v", got.Config)
			}
			flags := strings.Join(got.Config.ClientFlags, " ")
			if closed := !strings.Contains(flags, "-rate"); closed != (backend == "sim") || !strings.Contains(flags, "-batch 50") {
				t.Errorf("client flags %q: want -rate only with an offered rate, and -batch 50", flags)
			}
			if got.Result.Clients["committed_tx"] == nil {
				t.Errorf("no client summary in the row: %v", got.Result.Clients)
			}
			if len(got.Result.Replicas) != 4 {
				t.Errorf("/query of %d replicas in the row, want 4", len(got.Result.Replicas))
			}
			if backend == "tcp" {
				if _, ok := got.Config.Config["bandwidth"]; !ok {
					t.Errorf("the lan preset did not become the config's shaping: %v", got.Config.Config)
				}
			}
			// Every process the point started is gone: the runner stops their process groups. Each
			// was started with its run directory, under out, in its arguments.
			if left := processesMentioning(t, out); len(left) > 0 {
				t.Errorf("processes still running: %v", left)
			}
			// A rerun finds the row and runs nothing.
			start := time.Now()
			rep2, err := Run(ctx, s, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep2.Rows) != 1 || rep2.Rows[0].Start != row.Start {
				t.Errorf("the rerun ran the point again")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the rerun took %v: it should only read the finished row", d)
			}
		})
	}
}

// processesMentioning lists the running processes whose command line contains s (from /proc).
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil || len(dirs) == 0 {
		t.Skip("no /proc to list processes")
	}
	var out []string
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue // gone meanwhile, or a kernel thread
		}
		if strings.Contains(string(cmdline), s) {
			out = append(out, filepath.Base(d)+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}
