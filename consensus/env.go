package consensus

import (
	"math/rand"
	"time"

	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

// Timer is a value a component asks to get back after a delay (see Env.SetTimer). Components
// define their own timer types and ignore stale ones; timers cannot be cancelled.
type Timer any

// Env is everything the core may do to the outside world. Calls never block and never call back
// into the core synchronously: the driver delivers outputs after the handler returns.
type Env interface {
	Self() types.NodeID
	N() int
	Now() time.Time // the driver's clock: real, or virtual in a simulation
	Send(to types.NodeID, m types.Message)
	Broadcast(m types.Message) // to every replica but Self
	SetTimer(after time.Duration, t Timer)
	Signer() crypto.Signer
	Verifier() crypto.Verifier
	Rand() *rand.Rand
	// Backlog is how long this replica's uplink needs to send what waits on it now: the
	// mempool's backpressure (no re-push of a copy still queued, no new microblock while the
	// uplink is behind, a refusal instead of a wait). 0 when nothing waits or the driver cannot
	// tell (an unshaped link).
	Backlog() time.Duration
	// UplinkRate is the uplink's capacity in bytes per second (0: unlimited or unknown): the
	// mempool paces its microblocks to a share of it.
	UplinkRate() float64
}

// Verdict is a mempool's answer about a payload before a vote.
type Verdict uint8

// Verdicts.
const (
	Accept Verdict = iota // vote
	Wait                  // data is missing and being fetched: ask again after the next mempool event
	Reject                // never vote for this payload
)

// Payloads is what an engine needs from the mempool.
type Payloads interface {
	// Ready reports whether MakePayload has something to propose.
	Ready() bool
	// MakePayload returns the payload for the block this replica proposes in view (possibly
	// empty), extending chain: the uncommitted blocks from the committed head to the parent,
	// whose payload must not be proposed again.
	MakePayload(view types.View, chain []*types.Block) *types.Payload
	// CheckPayload decides whether block b's payload may be voted for.
	CheckPayload(b *types.Block) (Verdict, error)
}

// Output receives what an engine decides. Calls happen inside engine handlers.
type Output interface {
	// Commit is called once per block, in chain order.
	Commit(b *types.Block)
	// Orphan is called for a block that can never be committed any more.
	Orphan(b *types.Block)
	// Event reports something worth counting.
	Event(e Event)
}

// Engine is a consensus protocol instance of one replica.
type Engine interface {
	Start()
	OnMessage(from types.NodeID, m types.Message)
	OnTimer(t Timer)
	// OnMempool tells the engine the mempool changed: a payload may be ready to propose, or data
	// a pending vote waited for may have arrived.
	OnMempool()
	// Status is a snapshot for statistics.
	Status() Status
	// SyncTo makes b, certified by qc and known to be committed (state transfer), the committed
	// head when it is above the engine's own; blocks that do not extend it are orphaned.
	SyncTo(b *types.Block, qc *types.QC)
	// CertOf returns a certificate of a block the engine holds, or nil.
	CertOf(id types.Hash) *types.QC
}

// Status describes an engine's position.
type Status struct {
	View            types.View
	Leader          types.NodeID
	CommittedHeight uint64
	CommittedView   types.View
	HighQCView      types.View
	LockedView      types.View
}

// Params configures an engine.
type Params struct {
	Env            Env
	Mempool        Payloads
	Out            Output
	Leaders        LeaderElection
	Timeout        time.Duration // base view timeout
	ProposeTimeout time.Duration // how long an idle leader waits for payload
	MaxBackoff     int           // cap on timeout doublings (default 6: 64 × Timeout)
	// Restore is the voting state a restarted replica saved before it crashed (nil: a fresh
	// start). The engine never votes in a view up to Restore.LastVoted nor against Restore.Lock.
	Restore *VotingState
	// Persist, when set, is called with the voting state before each vote leaves the engine; a
	// driver writes it to stable storage so that it survives a crash. When it fails, the vote
	// does not leave.
	Persist func(VotingState) error
	// Recovered is what a restarted replica found in its store (nil: nothing): the engine starts
	// from its delivered head and takes the certified blocks above it back into its tree.
	Recovered *Recovered
	// Certified, when set, is told of every block the engine holds a certificate for, once, so
	// that a driver can keep it: a Streamlet replica must never forget a notarized chain it
	// knew when it voted, and a HotStuff replica must keep the block it is locked on.
	Certified func(b *types.Block, qc *types.QC)
}

// Recovered is the engine's part of a replica's saved state: the last block it delivered, with a
// certificate of it, and the blocks above it it held certificates for (any order).
type Recovered struct {
	Head      *types.Block
	HeadCert  *types.QC
	Certified []CertifiedBlock
}

// CertifiedBlock is a block with a certificate of it.
type CertifiedBlock struct {
	Block *types.Block
	Cert  *types.QC
}

// VotingState is what a replica must remember across a crash so that, once restarted, it never
// votes twice in a view and never votes against its lock.
type VotingState struct {
	LastVoted types.View
	Lock      *types.QC // HotStuff: the certificate of the locked block; nil for Streamlet
}

// Event is something the core reports for statistics and debug logs.
type Event interface{ event() }

// ViewChange: the replica entered View.
type ViewChange struct {
	View   types.View
	Leader types.NodeID
	Cause  string // "start", "qc", "vote", "notarized", "tc", "timeouts", "sync"
}

// TimedOut: the view timer of View expired.
type TimedOut struct {
	View    types.View
	Backoff int
}

// Proposed: this replica proposed a block.
type Proposed struct {
	View  types.View
	Items int
}

// Voted: this replica voted for Block in View.
type Voted struct {
	View  types.View
	Block types.Hash
}

// Committed: the replica's engine committed Block (delivery may wait for data).
type Committed struct {
	Block *types.Block
}

// StateSynced: the replica skipped from delivered height From to To by state transfer; SkippedTxs
// transactions were delivered by the others in between.
type StateSynced struct {
	From, To   uint64
	Block      types.Hash
	Digest     types.Hash
	SkippedTxs uint64
}

// SyncFailed: block sync gave up on a block after asking every peer (it may be pruned everywhere:
// the replica may be further behind than the retained history).
type SyncFailed struct {
	ID types.Hash
}

// Rejected: a message failed a check and was dropped.
type Rejected struct {
	Kind   types.Kind
	From   types.NodeID
	Rule   string // short stable name of the check, e.g. "bad-signature"
	Detail string
}

func (ViewChange) event()  {}
func (TimedOut) event()    {}
func (Proposed) event()    {}
func (Voted) event()       {}
func (SyncFailed) event()  {}
func (Committed) event()   {}
func (StateSynced) event() {}
func (Rejected) event()    {}

// Rejection rule names shared by the engines.
const (
	RuleSignature    = "bad-signature"
	RuleLeader       = "wrong-leader"
	RuleCert         = "bad-certificate"
	RuleStructure    = "bad-structure"
	RuleStale        = "stale"
	RuleFuture       = "too-far-ahead"
	RuleUnsafe       = "unsafe"
	RulePayload      = "bad-payload"
	RuleDuplicate    = "duplicate-vote"
	RuleCapacity     = "capacity"
	RuleEquivocation = "equivocation" // a second block of a (view, proposer) nobody certified
	RuleRate         = "rate-limited" // a request beyond the peer's serving budget
	RuleStorage      = "not-saved"    // the voting state could not be saved: no vote
	RuleUnsolicited  = "unsolicited"  // an answer or hand-over nobody asked for (a load-balancing forward without a load query)
)

// Mempool events (shared mempools).

// MBCreated: this replica cut a microblock from its clients' transactions.
type MBCreated struct {
	Txs, Bytes int
}

// MBReceived: a microblock arrived by dissemination; Redundant when it was already held.
type MBReceived struct {
	Bytes     int
	Redundant bool
}

// MBMissing: a microblock a proof or proposal refers to did not arrive in time and is being fetched.
type MBMissing struct{}

// ProofMissing: a proposal references (by ID) Count microblocks whose proofs this replica does
// not hold; its vote waits while it asks the proposer, then the others.
type ProofMissing struct{ Count int }

// MBFetched: a missing microblock arrived from a fetch.
type MBFetched struct{}

// MBStable: a microblock this replica pushed got q acks after StableTime.
type MBStable struct {
	StableTime time.Duration
	Proxy      bool // pushed on behalf of another replica
}

// ProofChecked: a PAB proof was verified (OK) or rejected.
type ProofChecked struct {
	OK bool
}

// MBForwarded: a busy replica handed a microblock to a proxy.
type MBForwarded struct {
	Proxy types.NodeID
}

// MBDropped: a peer's microblock was refused, not stored and not acked.
type MBDropped struct {
	Reason string // "full", "stale"
}

// LoadChanged: the load estimate (stable-time percentile) changed the busy state.
type LoadChanged struct {
	Busy bool
	Load time.Duration
}

func (MBCreated) event()    {}
func (MBReceived) event()   {}
func (MBMissing) event()    {}
func (ProofMissing) event() {}
func (MBFetched) event()    {}
func (MBStable) event()     {}
func (ProofChecked) event() {}
func (MBForwarded) event()  {}
func (MBDropped) event()    {}
func (LoadChanged) event()  {}
