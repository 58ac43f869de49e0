// Package hotstuff implements chained HotStuff (Bamboo style) as a pure state machine: it reacts to
// messages, timers and mempool events, and acts only through its consensus.Env.
//
// Rules (docs/spec.md §2.2): the leader of view v proposes once it holds a QC for v-1 or a TC, and either
// payload or an expired propose timer. A replica votes for a block iff the proposer is the leader,
// the signature and certificates verify, v > lastVoted, the block extends the locked block or its
// QC is newer than the lock (safeNode), and the mempool accepts the payload. Votes go to the next
// leader; 2f+1 make a QC. A QC for B locks B's parent and commits B's grandparent when the three
// views are consecutive. On timeout a replica broadcasts a signed Timeout; 2f+1 make a TC.
//
// Engine embeds consensus.Base, which holds the view, the tree, the pacemaker and block sync, and
// adds the rules above, the lock (kept across a restart in the voting state) and the handling of a
// view whose votes are split. The package sits on consensus and is driven by the replica's Core
// (docs/design.md §3.2).
package hotstuff
