// Command nemesis runs one or more nemesis tests (package nemesis) against real server processes.
//
//	go run ./nemesis/cmd [-n 4] [-seed 1] [-seeds 1] [-duration 120s] [-algorithm s-hs] [-cuts auto|tc|off] [-bin bin] [-dir DIR]
//
// It prints each run's schedule, the faults as they happen and the verdict, and exits 1 when a
// run failed (the line to replay it is printed).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/nemesis"
)

func main() {
	n := flag.Int("n", 4, "replicas (4..7)")
	seed := flag.Int64("seed", 1, "the first run's seed")
	seeds := flag.Int("seeds", 1, "runs, with seeds seed, seed+1, ...")
	duration := flag.Duration("duration", 2*time.Minute, "workload and faults per run (at least 30s)")
	alg := flag.String("algorithm", config.AlgSHS, "server -algorithm")
	cuts := flag.String("cuts", nemesis.CutsAuto, "kernel link cuts: tc (a network namespace of the run's own and tc; needs root), off, or auto (tc where it can)")
	bin := flag.String("bin", "bin", "directory holding server and client (make build)")
	dir := flag.String("dir", "", "work directory (default: a new one under the system's temporary directory, removed after a run that passed)")
	flag.Parse()
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	failed := 0
	start := time.Now()
	for s := *seed; s < *seed+int64(*seeds); s++ {
		work := *dir
		if work == "" {
			if work, err = os.MkdirTemp("", fmt.Sprintf("stratus-nemesis-%d-", s)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		} else {
			work = filepath.Join(work, fmt.Sprintf("seed-%d", s))
		}
		res, err := nemesis.Run(nemesis.Options{N: *n, Seed: s, Duration: *duration, Algorithm: *alg, Cuts: *cuts, BinDir: binDir, Dir: work, Out: os.Stdout})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if !res.OK() {
			failed++
		} else if *dir == "" {
			_ = os.RemoveAll(work)
		}
	}
	fmt.Printf("nemesis: %d of %d runs passed in %v\n", *seeds-failed, *seeds, time.Since(start).Round(time.Second))
	if failed > 0 {
		os.Exit(1)
	}
}
