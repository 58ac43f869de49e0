// Command client generates load against the replicas of config.json/ips.txt: it submits batches of
// unique transactions over keep-alive connections with POST /txs?wait=commit, prints progress every
// second, and at the end prints a summary and writes it as JSON (committed transactions,
// throughput, end-to-end latency, errors by kind).
//
// SIGINT and SIGTERM end the run early; the summary is still printed and written. The exit code is
// 0 when the run committed something, 5 when it committed nothing (every request failed, or none
// was answered: the first errors are printed on standard error), 2 for usage or configuration
// errors, 1 when the summary file cannot be written, 3 when -kv -check finds the history is not
// linearizable and 4 when the check gave up.
//
// With -kv the load is key-value operations (PUT /k<n>?wait=commit, GET
// /k<n>?consistency=linearizable) and -check verifies the recorded history with porcupine.
// -merge combines the summaries of clients that ran side by side, with exact percentiles.
//
// The command is a thin wrapper around package benchmark. docs/binaries.md lists the flags;
// docs/spec.md §6.4 says what the client measures.
package main
