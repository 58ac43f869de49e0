// Package simnet is a deterministic discrete-event simulator: it runs the Cores of N replicas on a
// virtual clock over a modelled network, injects client load, network faults, Byzantine
// strategies and crashes with restarts, and checks the safety invariants of docs/spec.md §4.3 as
// it goes. The same seed gives the same run, event for event: TraceHash fingerprints it.
//
// Sim runs the real core.Core (package replica/core) of every replica with its adversary and
// store; Links models uplinks and downlinks with their queues, latency matrices and asynchrony
// windows; CPU charges signatures and hashing per replica; Disk keeps exactly what a replica's
// Pebble store synced across a crash and can fail its writes; Checker holds every honest replica
// to agreement, one vote per view, locking, the commit rules and valid certificates, and checks
// liveness after the faults end. Soak draws random scenarios from seeds (simnet/cmd/soak runs
// them). Package simnet/virtual runs the simulator at scale for server -virtual and the paper's
// experiments.
//
// The package sits beside replica and above replica/core, the engines, mempools and byzantine.
// See docs/design.md §6.
package simnet
