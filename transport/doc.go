// Package transport moves messages between replicas: the Endpoint interface, the in-process
// channel hub used by `server -sim`, TCP for one process per replica, and decorators for link
// emulation and faults.
//
// Sends never block: a message that finds its send queue full is dropped and counted. Every
// endpoint has two inbound lanes, consensus and data, so consensus traffic is never stuck behind
// bulk data. The hub's lanes drop what finds them full; over TCP a peer's inbound data is dropped
// when its queue is full while its consensus messages wait for room, which holds up only that
// peer's connection. The protocols tolerate loss (view timeouts, block sync, fetches), so a slow
// replica cannot stall the others.
//
// Hub connects the replicas of one process over Go channels (messages pass as values, not
// encoded). TCPEndpoint keeps one authenticated connection per pair of replicas: an X25519
// handshake signed with the node keys, then AES-256-GCM frames of one kind byte and RLP, bounded
// queues per peer and lane, and limits on strangers' handshakes. Shape (Shaper) emulates one
// replica's uplink — bandwidth with consensus first, delay and jitter, loss — and the timed faults
// of the HTTP API.
//
// The package sits under replica and server and imports only types and crypto. See docs/design.md §5.
package transport
