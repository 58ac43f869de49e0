// Command soak runs random simulation scenarios and reports safety violations and liveness
// failures, each with the seed and a command that replays it.
//
//	soak -seeds 10000 [-from 1] [-parallel 2]   run seeds from..from+seeds-1
//	soak -seed 1234                             replay one seed (twice: the traces must match)
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/stratusbft/stratus/simnet"
)

func main() {
	seeds := flag.Int("seeds", 100, "number of seeds to run")
	from := flag.Int64("from", 1, "first seed")
	parallel := flag.Int("parallel", runtime.NumCPU(), "runs at a time")
	one := flag.Int64("seed", 0, "replay this seed only, twice, and print what happened")
	flag.Parse()
	if *one != 0 {
		os.Exit(replay(*one))
	}
	os.Exit(soak(*from, *seeds, max(1, *parallel)))
}

func replay(seed int64) int {
	a := simnet.Soak(seed)
	b := simnet.Soak(seed)
	fmt.Printf("seed %d: %v\n", seed, a.Scenario)
	fmt.Printf("virtual time %v, %d steps, trace %s\n", a.Virtual.Round(time.Millisecond), a.Steps, a.Trace)
	code := 0
	if a.Trace != b.Trace {
		fmt.Printf("NOT DETERMINISTIC: a second run gave trace %s\n", b.Trace)
		code = 1
	}
	for _, v := range a.Violations {
		fmt.Println("safety violation:", v)
		code = 1
	}
	if !a.Live {
		fmt.Printf("liveness failure: not every honest transaction delivered everywhere within %v after GST: %s\n", simnet.LivenessBound, a.Missing)
		code = 1
	}
	if code == 0 {
		fmt.Println("ok: safe, live, deterministic")
	}
	return code
}

func soak(from int64, n, parallel int) int {
	start := time.Now()
	results := make(chan simnet.SoakResult, parallel)
	next := make(chan int64)
	var wg sync.WaitGroup
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range next {
				results <- simnet.Soak(seed)
			}
		}()
	}
	go func() {
		for i := int64(0); i < int64(n); i++ {
			next <- from + i
		}
		close(next)
		wg.Wait()
		close(results)
	}()
	runs, unsafe, dead := 0, 0, 0
	var failures []simnet.SoakResult
	for r := range results {
		runs++
		if len(r.Violations) > 0 {
			unsafe++
		}
		if !r.Live {
			dead++
		}
		if r.Failed() {
			failures = append(failures, r)
			fmt.Printf("FAIL seed %d: %v\n", r.Scenario.Seed, r.Scenario)
			for _, v := range r.Violations[:min(3, len(r.Violations))] {
				fmt.Println("  safety:", v)
			}
			if !r.Live {
				fmt.Println("  liveness:", r.Missing)
			}
			fmt.Printf("  replay: go run ./simnet/cmd/soak -seed %d\n", r.Scenario.Seed)
		}
		if runs%500 == 0 {
			fmt.Printf("%d runs, %d safety violations, %d liveness failures, %v\n", runs, unsafe, dead, time.Since(start).Round(time.Second))
		}
	}
	fmt.Printf("runs %d, safety violations %d, liveness failures %d, wall time %v\n", runs, unsafe, dead, time.Since(start).Round(time.Second))
	if len(failures) > 0 {
		return 1
	}
	return 0
}
