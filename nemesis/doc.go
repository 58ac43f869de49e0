// Package nemesis runs a cluster of real server processes (one per replica, authenticated TCP,
// each with its Pebble store) under the key-value workload of the real client, while a nemesis on
// a seeded schedule kills replicas with SIGKILL and restarts them, pauses them (SIGSTOP/SIGCONT),
// cuts links, makes replicas slow or flaky and cuts the power of the whole cluster once. Then it
// heals and checks: the client's history is linearizable (porcupine), every write a client was
// told committed reads back from every replica, every replica reaches the same height with the
// same chain digest, and no process is left. The same seed gives the same schedule.
//
// Schedule draws the faults of a seed (never more than f replicas killed or paused at once); Run
// starts the processes on free loopback ports, applies the schedule and returns a Result with
// every problem found. As root with iproute2, half the link cuts are made in the kernel, in a
// network namespace of the run's own (netns.go); otherwise through the /drop fault route.
// nemesis/cmd is the command behind make nemesis.
//
// The package sits above the binaries: it runs bin/server and bin/client. See docs/testing.md and
// docs/design.md §9.
package nemesis
