// Package byzantine implements Byzantine strategies as decorators around an honest replica: an
// Adversary wraps the Env through which the honest engine, mempool and driver send, sees every
// message before the replica does, and has timers of its own. The honest code runs unchanged and
// knows nothing of it; the simulator and the server use the same adversaries.
//
// A Byzantine replica holds only its own key. It can sign anything as itself (blocks in the views
// it leads, votes, timeouts, acks, microblocks), relay, replay or alter what others signed (which
// breaks their signatures), and send different things to different replicas.
//
// New builds the Adversary of a strategy name, or of several joined by "+" (what one sends passes
// the next): silence, crash, slow, fork, equivocate, equivocate-flood, doublevote, missing,
// badproof, censor, flood and badsig (strategies.go). The replica's Core takes it as its
// core.Adversary (package replica/core).
//
// The package sits on consensus and types, beside the engines. See docs/spec.md §4.1 for what each
// strategy does and docs/design.md §3.5 for how an adversary wraps a Core.
package byzantine
