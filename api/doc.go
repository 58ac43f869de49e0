// Package api is a node's HTTP surface: transaction submission (a batch, or one key-value write,
// optionally waiting for delivery), key-value reads (local or linearizable), statistics as text,
// JSON and Prometheus metrics, the live dashboard and its cluster view, and, when enabled, fault
// injection.
//
// Server serves one node (a replica behind the Node interface) with its statistics Collector. Each
// route has a body limit and answers 413 as soon as a body passes it; headers and bodies have
// deadlines, one client address holds a bounded number of connections, and the bodies in flight
// are bounded in all (limits.go); what is refused is counted by reason. The dashboard's page and
// assets are compiled in (dashboard/, go:embed) and ask peers for their statistics with a short
// timeout, at most one request per peer in flight.
//
// The package sits above replica and stats and below server. See docs/spec.md §6.2 for the
// semantics and docs/http-api.md for every route.
package api
