// Package crypto provides replica keys, signing and verification (secp256k1 via go-ethereum, P-256,
// and BLS12-381 with aggregation via blst), and a bounded verification cache so that a signature
// or aggregate checked once in a process is not checked again.
//
// A Signer signs digests as one replica; a Verifier checks the signatures of replicas 1..N. An
// Aggregator is a Verifier whose scheme aggregates (BLS12-381): a certificate carries one aggregate
// signature, checked with one pairing against the signers' summed keys, and every BLS key is
// accepted only with a valid proof of possession (the defence against rogue keys). Cache wraps a
// Verifier and remembers valid signatures and aggregates; all replicas of a process share one.
// SimKeys and SimKeysFor derive simulation keys from a seed; SimMACKeys makes the simulator's
// keyed-hash signatures (cheap, unforgeable inside the simulator, sized like the real scheme);
// GenerateKeys and ReadPublicKeys are the deployment key files (node<i>.key, pubkeys.txt).
//
// The package sits under consensus and the drivers; see docs/design.md §7.4 and, for what a
// certificate is, docs/spec.md §2.5.
package crypto
