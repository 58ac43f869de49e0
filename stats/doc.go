// Package stats turns the events of a replica into numbers: counters, sliding-window throughput,
// latency histograms, and the text and JSON renderings served at /query.
//
// Collector receives what a replica's Core reports (consensus events, deliveries, rejections,
// submissions) and the gauges the event loop samples; it is safe for concurrent use (the event
// loop writes, HTTP handlers read) and reading never resets anything. Snapshot is a node's
// statistics at one instant, every number finite; Histogram records latencies in fixed memory
// (log-linear buckets, at most 1.6 % error) and exports its buckets so that results of several
// processes merge exactly; Window keeps the last 10 s.
//
// The package sits beside the core: the core emits events, stats counts them (docs/design.md §1.5).
// docs/spec.md §6.3 defines each number.
package stats
