// Package benchmark generates client load against the replicas' HTTP API and summarises what came
// back: committed transactions, end-to-end latency (submit → commit notice) and errors by kind.
//
// Run drives a fixed number of workers; each keeps one request in flight over keep-alive
// connections: a POST /txs?wait=commit batch of unique transactions (TxSource), or with the
// key-value workload a PUT /{key}?wait=commit or a linearizable GET, whose history the check
// verifies with porcupine. Result is a run's summary, with its latency histogram, so that Merge
// combines the results of clients that ran side by side with exact percentiles. The client binary
// (package client) is a thin wrapper around Run.
//
// The package sits beside the replicas, talking to them over HTTP only. See docs/spec.md §6.4 and
// docs/design.md §2.2.
package benchmark
