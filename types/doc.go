// Package types defines what replicas exchange: transactions, blocks, votes, certificates and the
// other protocol messages, their IDs and digests, and the RLP wire codec with size limits.
//
// Messages are immutable once sent: in single-process runs the same value reaches every receiver,
// so nothing may modify a message after handing it to a transport. IDs are computed from content
// (never taken from the wire), so a receiver always checks what it hashes.
//
// The main types are Tx (opaque bytes identified by their SHA-256 hash), Block with its Payload
// (transactions or microblock references, MBRef), QC and TC, Vote and Timeout, MicroBlock, Ack and
// Proof (provably available broadcast), the request and answer kinds of block sync, fetches and
// state transfer (Snapshot), and the load-balancing messages. Every message has a Kind, which
// names it on the wire and chooses its Lane (consensus or data).
//
// Encode writes one kind byte and the RLP encoding (go-ethereum's rlp); Decode reads it back with
// a decoder that allocates in proportion to the bytes it read, refuses a frame above its kind's
// limit (MaxFrameFor), and runs Validate, which checks a message's structure whatever transport
// delivered it. Signed digests (VoteDigest, TimeoutDigest, AckDigest, block IDs) and the chain
// digest are Keccak-256; transaction IDs and the ID lists of microblocks, payloads and snapshots are
// SHA-256.
//
// The package sits at the bottom: everything else imports it, and it imports no package of this
// module. See docs/design.md §7 for the wire format and its limits, and docs/spec.md §7 for what a
// receiver checks of each kind.
package types
