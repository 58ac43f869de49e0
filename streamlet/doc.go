// Package streamlet implements Streamlet (Chan and Shi) as a pure state machine.
//
// Rules (docs/spec.md §2.3): the leader of epoch e proposes a block extending a longest notarized chain it
// knows, carrying the QC that notarizes the parent. Replicas broadcast a vote for the first valid
// proposal of the epoch's leader that extends a longest notarized chain they know. 2f+1 votes
// notarize a block. Three notarized blocks of consecutive epochs on one chain finalize the chain up
// to the second of them. Proposals and votes are echoed once (implicit echo) so that every honest
// replica sees what one saw. Epochs advance on notarization, with the view timer and signed
// timeouts (TCs) as fallback, so no synchronised clocks are needed.
//
// Engine embeds consensus.Base (view, tree, pacemaker, block sync) and adds the rules above; it
// has no lock, and checks every vote at once, since it echoes what it counts. The package sits on
// consensus and is driven by the replica's Core (docs/design.md §3.2).
package streamlet
