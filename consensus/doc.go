// Package consensus holds what the engines share: the Env, Engine and Payloads interfaces, quorum
// certificate checks and aggregation, the block tree, the pacemaker, leader election and block
// synchronisation. Everything here is a deterministic state machine: no goroutines, no clocks, no I/O.
//
// Env is everything the core may do to the outside world (send, broadcast, set a timer, read the
// driver's clock, sign, verify, report the uplink's backlog); Engine is a consensus protocol
// instance; Payloads is what an engine asks of the mempool (a payload to propose, a verdict before
// a vote); Output receives commits, orphans and events. Base is the state and the mechanics both
// engines embed — view, Tree, Pacemaker, VoteCollector, Syncer, serving budgets, timeouts and TCs,
// restoring a restarted replica's voting state and certified blocks — and an engine adds its Rules.
// VerifyQC, VerifyTC and VerifyCert check certificates (one aggregate under BLS); SigSet and
// Deferral count signatures a signer sent itself unchecked under BLS and check a quorum's as one
// aggregate. PreVerify checks a message's signatures without replica state, for the drivers'
// verification workers.
//
// The package sits between the engines (hotstuff, streamlet) and types, crypto and config; a test
// (purity_test.go) keeps it and the engines and mempools free of I/O, clocks, goroutines and locks.
// See docs/design.md §3 and, for the rules, docs/spec.md §2.
package consensus
