// Package mempool defines the Mempool a replica's engine proposes from and its variants: native
// (transactions inside proposals) and shared (microblocks disseminated by their creators: smp, and
// stratus with provably available broadcast, gossip and distributed load balancing). Mempools are
// deterministic state machines like the engines.
//
// Mempool is the interface the replica's Core drives: AddTxs (all or none), OnMessage, OnTimer,
// MakePayload and CheckPayload (for the engine), Decided, Resolve and Committed (the delivery
// pipeline), Requeue (orphans), and what a restart or a state transfer needs. Native holds its
// clients' transactions until they commit; Shared batches them into microblocks and runs the push
// phase and the recovery phase of PAB (pab.go), broadcast, gossip and the token bucket
// (disseminate.go), load balancing (balance.go), and backpressure. PreVerify checks a mempool
// message's signatures without state, for the verification workers. Every item held is charged
// with its bookkeeping (TxOverhead, MBOverhead), and peers' microblocks to their signed creator's
// quota.
//
// The package sits beside the engines, on consensus. See docs/spec.md §3 for the rules and
// docs/design.md §3.3 for the structure.
package mempool
