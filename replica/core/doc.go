// Package core is one replica's deterministic state machine, the Core: it wires an engine to a
// mempool and runs the commit → delivery pipeline. It is what the real-time driver (package
// replica) and the virtual-time simulator (package simnet) both run.
//
// A Core is called from one goroutine: it hands messages and timers to the engine or the
// mempool, takes client submissions (answering duplicates itself), delivers committed blocks in
// commit order once their data is here (the dedup window of dedup.go, the key-value store of
// kv.go, the chain digest, latency, waiting clients), runs state transfer (statesync.go), and
// takes an optional Adversary that makes it Byzantine. It stages what a crash must not take in a
// Store (store.go, durable.go): a MemStore here, or the driver's store on disk.
//
// Like the engines and the mempools it never starts a goroutine, reads the wall clock, takes a
// lock or touches a socket or a file; consensus/purity_test.go checks it with them. It sits above
// the engines, the mempools and byzantine's interface, and below replica and simnet. See
// docs/design.md §3.4 for the Core, and docs/spec.md §2.7 and §6.6 for state transfer and
// durability.
package core
