// Package replica drives a replica: the Core wires an engine to a mempool and runs the commit →
// delivery pipeline, deterministically; the Replica runs a Core in one event loop with a signature
// verification pool in front of it, real timers and a transport.
//
// Core is one replica's protocol state, called from one goroutine: it hands messages and timers to
// the engine or the mempool, takes client submissions (answering duplicates itself), delivers
// committed blocks in commit order once their data is here (dedup window, key-value store, chain
// digest, latency, waiting clients), runs state transfer (statesync.go), and takes an optional
// Adversary that makes it Byzantine. It is also what the simulator runs.
//
// Replica is the real-time driver: an event loop that owns the Core, a timer heap, verification
// workers that check structure and signatures in parallel before the loop (per-sender order kept,
// a failure budget per sender), Crash and restart, and the Store: a MemStore in the process, or a
// PebbleStore on disk with Options.DataDir, whose batches of up to 64 steps are committed by a
// committer goroutine beside the loop before their messages leave (group commit).
//
// The package sits above the engines, the mempools and transport, and below server and simnet.
// See docs/design.md §3.4 for the Core, docs/design.md §4 for the driver, stores and group
// commit, and docs/spec.md §2.7 and §6.6 for state transfer and durability.
package replica
