// Package replica drives a replica in real time: the Replica runs a Core (package replica/core,
// the deterministic state machine the simulator runs too) in one event loop, with a signature
// verification pool in front of it, real timers and a transport.
//
// The event loop owns the Core and a timer heap; verification workers check structure and
// signatures in parallel before the loop (per-sender order kept, a failure budget per sender); a
// Replica can crash and restart its Core; and its Store is a MemStore in the process or a
// PebbleStore on disk with Options.DataDir, whose batches of up to 64 steps are committed by a
// committer goroutine beside the loop before their messages leave (group commit). kvread.go
// serves reads of the key-value store through the loop.
//
// The package sits above replica/core and transport, and below server and simnet. See
// docs/design.md §4 for the driver, stores and group commit, and docs/spec.md §6.6 for
// durability.
package replica
