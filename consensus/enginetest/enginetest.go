// Package enginetest is a harness for unit tests of consensus engines. It drives one engine instance
// at a time through a hand-made consensus.Env that records every send, broadcast and timer, keeps a
// virtual clock, and never starts goroutines or reads the wall clock. A fake mempool and a
// recording Output complete the picture, and a Fixture crafts and signs the blocks, votes,
// certificates and timeouts that other replicas would send, with keys from crypto.SimKeys.
//
// A test builds a Harness with the engine's constructor, calls Start, then feeds messages with
// Deliver, timers with Advance or Fire, and mempool changes with Mempool + Engine.OnMempool, and
// asserts on Env (what went out), Out (commits, orphans, events) and Engine.Status().
package enginetest

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/kelindar/bitmap"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

// Epoch is the virtual time the test clock starts at.
var Epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// ---------------------------------------------------------------------------------------------
// Env

// Sent is one message the engine handed to the Env. To is 0 for a broadcast.
type Sent struct {
	To  types.NodeID
	Msg types.Message
	At  time.Time
}

// TimerCall is one SetTimer call.
type TimerCall struct {
	Seq   int // order of the call, from 0
	After time.Duration
	Due   time.Time
	Timer consensus.Timer
	Fired bool
}

// Uplink is what an Env reports about the replica's uplink.
type Uplink struct {
	Backlog time.Duration // what Env.Backlog answers
	Rate    float64       // what Env.UplinkRate answers (bytes per second)
}

// Env is a recording consensus.Env with a virtual clock.
type Env struct {
	ID       types.NodeID
	Nodes    int
	Clock    time.Time
	Outbox   []Sent       // every Send and Broadcast, in order
	Timers   []*TimerCall // every SetTimer call, in order
	Uplink   Uplink       // the uplink state the Env reports; zero (none modelled) by default
	signer   crypto.Signer
	verifier crypto.Verifier
	rng      *rand.Rand
}

// NewEnv returns an Env for replica self among n, signing with signer and verifying with verifier.
func NewEnv(self types.NodeID, n int, signer crypto.Signer, verifier crypto.Verifier, seed int64) *Env {
	return &Env{ID: self, Nodes: n, Clock: Epoch, signer: signer, verifier: verifier, rng: rand.New(rand.NewSource(seed))}
}

// Self implements consensus.Env.
func (e *Env) Self() types.NodeID { return e.ID }

// N implements consensus.Env.
func (e *Env) N() int { return e.Nodes }

// Now implements consensus.Env: the virtual clock.
func (e *Env) Now() time.Time { return e.Clock }

// Send implements consensus.Env.
func (e *Env) Send(to types.NodeID, m types.Message) {
	e.Outbox = append(e.Outbox, Sent{To: to, Msg: m, At: e.Clock})
}

// Broadcast implements consensus.Env.
func (e *Env) Broadcast(m types.Message) {
	e.Outbox = append(e.Outbox, Sent{To: 0, Msg: m, At: e.Clock})
}

// SetTimer implements consensus.Env.
func (e *Env) SetTimer(after time.Duration, t consensus.Timer) {
	e.Timers = append(e.Timers, &TimerCall{Seq: len(e.Timers), After: after, Due: e.Clock.Add(after), Timer: t})
}

// Signer implements consensus.Env.
func (e *Env) Signer() crypto.Signer { return e.signer }

// Verifier implements consensus.Env.
func (e *Env) Verifier() crypto.Verifier { return e.verifier }

// Rand implements consensus.Env.
func (e *Env) Rand() *rand.Rand { return e.rng }

// Backlog implements consensus.Env: Uplink.Backlog (0 unless a test sets it).
func (e *Env) Backlog() time.Duration { return e.Uplink.Backlog }

// UplinkRate implements consensus.Env: Uplink.Rate (0 unless a test sets it).
func (e *Env) UplinkRate() float64 { return e.Uplink.Rate }

// ClearOutbox forgets the recorded messages (timers are kept).
func (e *Env) ClearOutbox() { e.Outbox = nil }

// Take returns the recorded messages and forgets them: what went out since the last Take or
// ClearOutbox.
func (e *Env) Take() []Sent {
	out := e.Outbox
	e.Outbox = nil
	return out
}

// Advance moves the virtual clock by d and hands fire, in due order (then SetTimer order), every
// timer that is due, including timers set while firing that fall due by the new time; the clock
// reads each timer's due time while it fires. It returns the timers fired.
func (e *Env) Advance(d time.Duration, fire func(consensus.Timer)) []consensus.Timer {
	until := e.Clock.Add(d)
	var fired []consensus.Timer
	for {
		var next *TimerCall
		for _, t := range e.Timers {
			if t.Fired || t.Due.After(until) {
				continue
			}
			if next == nil || t.Due.Before(next.Due) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.Fired = true
		if next.Due.After(e.Clock) {
			e.Clock = next.Due
		}
		fired = append(fired, next.Timer)
		fire(next.Timer)
	}
	e.Clock = until
	return fired
}

// Broadcasts returns the broadcast messages, in order.
func (e *Env) Broadcasts() []types.Message {
	var out []types.Message
	for _, s := range e.Outbox {
		if s.To == 0 {
			out = append(out, s.Msg)
		}
	}
	return out
}

// SentTo returns the messages sent point-to-point to id, in order.
func (e *Env) SentTo(id types.NodeID) []types.Message {
	var out []types.Message
	for _, s := range e.Outbox {
		if s.To == id {
			out = append(out, s.Msg)
		}
	}
	return out
}

// Sends returns the point-to-point sends, in order.
func (e *Env) Sends() []Sent {
	var out []Sent
	for _, s := range e.Outbox {
		if s.To != 0 {
			out = append(out, s)
		}
	}
	return out
}

// Messages returns every recorded message (sent or broadcast), in order.
func (e *Env) Messages() []types.Message {
	out := make([]types.Message, len(e.Outbox))
	for i, s := range e.Outbox {
		out[i] = s.Msg
	}
	return out
}

// Pending returns the timers that have not fired yet, in SetTimer order.
func (e *Env) Pending() []*TimerCall {
	var out []*TimerCall
	for _, t := range e.Timers {
		if !t.Fired {
			out = append(out, t)
		}
	}
	return out
}

// Of returns the messages of type T among msgs, in order.
func Of[T types.Message](msgs []types.Message) []T {
	var out []T
	for _, m := range msgs {
		if t, ok := m.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// TimersOf returns the SetTimer calls whose timer has type T, in order.
func TimersOf[T any](e *Env) []*TimerCall {
	var out []*TimerCall
	for _, t := range e.Timers {
		if _, ok := t.Timer.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// Durations returns the After of each call, in order.
func Durations(calls []*TimerCall) []time.Duration {
	out := make([]time.Duration, len(calls))
	for i, c := range calls {
		out[i] = c.After
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// Mempool

// Mempool is a scriptable consensus.Mempool.
type Mempool struct {
	IsReady  bool                                     // what Ready returns
	Next     []*types.Payload                         // what MakePayload returns while IsReady, in order; else empty payloads
	Verdict  consensus.Verdict                        // what CheckPayload answers (Accept by default)
	Err      error                                    // the error CheckPayload returns with a Reject verdict
	VerdictF func(p *types.Payload) consensus.Verdict // overrides Verdict when set
	Made     []*types.Payload                         // payloads handed out by MakePayload
	Checked  []*types.Payload                         // payloads passed to CheckPayload
}

// Ready implements consensus.Mempool.
func (m *Mempool) Ready() bool { return m.IsReady }

// MakePayload implements consensus.Mempool.
func (m *Mempool) MakePayload(types.View, []*types.Block) *types.Payload {
	p := &types.Payload{}
	if m.IsReady && len(m.Next) > 0 {
		p, m.Next = m.Next[0], m.Next[1:]
	}
	m.Made = append(m.Made, p)
	return p
}

// CheckPayload implements consensus.Mempool.
func (m *Mempool) CheckPayload(b *types.Block) (consensus.Verdict, error) {
	p := b.Payload
	m.Checked = append(m.Checked, p)
	v := m.Verdict
	if m.VerdictF != nil {
		v = m.VerdictF(p)
	}
	if v == consensus.Reject {
		err := m.Err
		if err == nil {
			err = fmt.Errorf("enginetest: payload rejected")
		}
		return v, err
	}
	return v, nil
}

// ---------------------------------------------------------------------------------------------
// Output

// Output records what an engine reports.
type Output struct {
	Commits []*types.Block
	Orphans []*types.Block
	Events  []consensus.Event
}

// Commit implements consensus.Output.
func (o *Output) Commit(b *types.Block) { o.Commits = append(o.Commits, b) }

// Orphan implements consensus.Output.
func (o *Output) Orphan(b *types.Block) { o.Orphans = append(o.Orphans, b) }

// Event implements consensus.Output.
func (o *Output) Event(e consensus.Event) { o.Events = append(o.Events, e) }

// EventsOf returns the events of type T, in order.
func EventsOf[T consensus.Event](o *Output) []T {
	var out []T
	for _, e := range o.Events {
		if t, ok := e.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// Rejections returns the Rejected events, in order.
func (o *Output) Rejections() []consensus.Rejected { return EventsOf[consensus.Rejected](o) }

// RejectedRules returns the rule of each Rejected event, in order.
func (o *Output) RejectedRules() []string {
	var out []string
	for _, r := range o.Rejections() {
		out = append(out, r.Rule)
	}
	return out
}

// VotedViews returns the views of the Voted events, in order.
func (o *Output) VotedViews() []types.View {
	var out []types.View
	for _, v := range EventsOf[consensus.Voted](o) {
		out = append(out, v.View)
	}
	return out
}

// CommitIDs returns the IDs of the committed blocks, in commit order.
func (o *Output) CommitIDs() []types.Hash { return IDs(o.Commits) }

// IDs returns the IDs of blocks, in order.
func IDs(bs []*types.Block) []types.Hash {
	out := make([]types.Hash, len(bs))
	for i, b := range bs {
		out[i] = b.ID()
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// Fixture: keys and crafted messages

// Fixture holds the keys of N replicas and the leader election, and crafts signed messages.
type Fixture struct {
	N        int
	Signers  []*crypto.KeySigner // Signers[i] is replica i+1
	Verifier *crypto.KeyVerifier
	Leaders  consensus.LeaderElection
	// Outsider signs as replica N+1, which the Verifier does not know.
	Outsider *crypto.KeySigner
}

// NewFixture returns keys for n replicas derived from seed, and round-robin leaders.
func NewFixture(seed int64, n int) *Fixture {
	signers, verifier := crypto.SimKeys(seed, n)
	more, _ := crypto.SimKeys(seed, n+1)
	return &Fixture{N: n, Signers: signers, Verifier: verifier, Leaders: consensus.RoundRobin{N: n}, Outsider: more[n]}
}

// Signer returns replica id's signer (the outsider for id N+1).
func (f *Fixture) Signer(id types.NodeID) *crypto.KeySigner {
	if int(id) == f.N+1 {
		return f.Outsider
	}
	return f.Signers[id-1]
}

// Sign signs digest as id.
func (f *Fixture) Sign(id types.NodeID, digest types.Hash) []byte { return f.Signer(id).Sign(digest) }

// Payload returns a payload with one transaction per string.
func Payload(txs ...string) *types.Payload {
	p := &types.Payload{}
	for _, s := range txs {
		p.Txs = append(p.Txs, types.NewTx([]byte(s)))
	}
	return p
}

// TxBatch returns n distinct 48-byte transactions named by tag and k: the same arguments give the
// same transactions.
func TxBatch(tag string, k, n int) []types.Tx {
	txs := make([]types.Tx, n)
	for i := range txs {
		b := make([]byte, 48)
		copy(b, tag)
		binary.BigEndian.PutUint32(b[40:], uint32(k))
		binary.BigEndian.PutUint32(b[44:], uint32(i))
		txs[i] = types.NewTx(b)
	}
	return txs
}

// BlockSpec describes a block to craft. Zero fields take defaults: Height = parent height + 1,
// QC = the genesis QC when Parent is genesis, Proposer = leader of View, Payload = empty.
type BlockSpec struct {
	View     types.View
	Parent   *types.Block // nil means genesis
	QC       *types.QC
	TC       *types.TC
	Payload  *types.Payload
	Proposer types.NodeID
	Height   uint64
	SignAs   types.NodeID // signing key; default Proposer
}

// Block crafts and signs a block.
func (f *Fixture) Block(s BlockSpec) *types.Block {
	parent := s.Parent
	if parent == nil {
		parent = types.Genesis()
	}
	qc := s.QC
	if qc == nil && parent == types.Genesis() {
		qc = types.GenesisQC()
	}
	h := s.Height
	if h == 0 {
		h = parent.Height + 1
	}
	prop := s.Proposer
	if prop == 0 {
		prop = f.Leaders.Leader(s.View)
	}
	pl := s.Payload
	if pl == nil {
		pl = &types.Payload{}
	}
	b := &types.Block{View: s.View, Height: h, Parent: parent.ID(), QC: qc, TC: s.TC, Payload: pl, Proposer: prop}
	signAs := s.SignAs
	if signAs == 0 {
		signAs = prop
	}
	b.Sig = f.Sign(signAs, b.ID())
	return b
}

// Clone copies a block's fields into a fresh block (whose ID is computed anew), so that a test can
// tamper with a copy.
func Clone(b *types.Block) *types.Block {
	return &types.Block{View: b.View, Height: b.Height, Parent: b.Parent, QC: b.QC, TC: b.TC,
		Payload: b.Payload, Proposer: b.Proposer, Sig: slices.Clone(b.Sig)}
}

// Bitmap returns a signer bitmap of ids.
func Bitmap(ids ...types.NodeID) bitmap.Bitmap {
	var bm bitmap.Bitmap
	for _, id := range ids {
		bm.Set(types.SignerBit(id))
	}
	return bm
}

// QC returns a QC for (view, block) signed by ids (ascending order is the caller's job when it
// matters; the bitmap is always ascending, so pass ids ascending for a valid QC).
func (f *Fixture) QC(view types.View, block types.Hash, ids ...types.NodeID) *types.QC {
	d := types.VoteDigest(view, block)
	qc := &types.QC{View: view, BlockID: block, Signers: Bitmap(ids...)}
	for _, id := range ids {
		qc.Sigs = append(qc.Sigs, f.Sign(id, d))
	}
	return qc
}

// QCFor returns a QC for b signed by the first 2f+1 replicas.
func (f *Fixture) QCFor(b *types.Block) *types.QC {
	return f.QC(b.View, b.ID(), f.Quorum()...)
}

// Quorum returns the IDs 1..2f+1.
func (f *Fixture) Quorum() []types.NodeID {
	q := consensus.QuorumSize(f.N)
	ids := make([]types.NodeID, q)
	for i := range ids {
		ids[i] = types.NodeID(i + 1)
	}
	return ids
}

// TC returns a TC for view signed by ids (pass them ascending for a valid TC).
func (f *Fixture) TC(view types.View, ids ...types.NodeID) *types.TC {
	d := types.TimeoutDigest(view)
	tc := &types.TC{View: view, Signers: Bitmap(ids...)}
	for _, id := range ids {
		tc.Sigs = append(tc.Sigs, f.Sign(id, d))
	}
	return tc
}

// Vote returns voter's signed vote for (view, block).
func (f *Fixture) Vote(voter types.NodeID, view types.View, block types.Hash) *types.Vote {
	return &types.Vote{View: view, BlockID: block, Voter: voter, Sig: f.Sign(voter, types.VoteDigest(view, block))}
}

// VoteFor returns voter's signed vote for b.
func (f *Fixture) VoteFor(voter types.NodeID, b *types.Block) *types.Vote {
	return f.Vote(voter, b.View, b.ID())
}

// Timeout returns sender's signed timeout for view carrying highQC (genesis QC when nil).
func (f *Fixture) Timeout(sender types.NodeID, view types.View, highQC *types.QC) *types.Timeout {
	if highQC == nil {
		highQC = types.GenesisQC()
	}
	return &types.Timeout{View: view, HighQC: highQC, Sender: sender, Sig: f.Sign(sender, types.TimeoutDigest(view))}
}

// Link is a block with the QC that certifies (HotStuff) or notarizes (Streamlet) it.
type Link struct {
	Block *types.Block
	QC    *types.QC
}

// Chain crafts blocks extending genesis with the given increasing views, each carrying the QC of
// its parent. With withTC, a block whose view does not follow its parent's view carries a TC for
// view-1 (HotStuff); Streamlet blocks carry none.
func (f *Fixture) Chain(withTC bool, views ...types.View) []Link {
	var links []Link
	var parent *types.Block
	qc := types.GenesisQC()
	var prevView types.View
	for _, v := range views {
		s := BlockSpec{View: v, Parent: parent, QC: qc}
		if withTC && v != prevView+1 {
			s.TC = f.TC(v-1, f.Quorum()...)
		}
		b := f.Block(s)
		l := Link{Block: b, QC: f.QCFor(b)}
		links = append(links, l)
		parent, qc, prevView = b, l.QC, v
	}
	return links
}

// ---------------------------------------------------------------------------------------------
// Harness

// Config configures a Harness. Zero values take defaults: N 4, Seed 1, round-robin leaders,
// Timeout 1s, ProposeTimeout 100ms.
type Config struct {
	Self           types.NodeID
	N              int
	Seed           int64
	Leaders        consensus.LeaderElection
	Timeout        time.Duration
	ProposeTimeout time.Duration
	MaxBackoff     int
}

// Factory builds the engine under test.
type Factory func(consensus.Params) consensus.Engine

// Harness drives one engine instance.
type Harness struct {
	T testing.TB
	*Fixture
	Cfg     Config
	Env     *Env
	Mempool *Mempool
	Out     *Output
	Engine  consensus.Engine
}

// New builds the engine for cfg with a fresh Env, Mempool and Output. It does not call Start.
func New(t testing.TB, cfg Config, factory Factory) *Harness {
	t.Helper()
	if cfg.N == 0 {
		cfg.N = 4
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Second
	}
	if cfg.ProposeTimeout == 0 {
		cfg.ProposeTimeout = 100 * time.Millisecond
	}
	if cfg.Self == 0 {
		t.Fatalf("enginetest: Config.Self is required")
	}
	f := NewFixture(cfg.Seed, cfg.N)
	if cfg.Leaders != nil {
		f.Leaders = cfg.Leaders
	}
	h := &Harness{
		T:       t,
		Fixture: f,
		Cfg:     cfg,
		Env:     NewEnv(cfg.Self, cfg.N, f.Signer(cfg.Self), f.Verifier, cfg.Seed),
		Mempool: &Mempool{},
		Out:     &Output{},
	}
	h.Engine = factory(consensus.Params{
		Env:            h.Env,
		Mempool:        h.Mempool,
		Out:            h.Out,
		Leaders:        f.Leaders,
		Timeout:        cfg.Timeout,
		ProposeTimeout: cfg.ProposeTimeout,
		MaxBackoff:     cfg.MaxBackoff,
	})
	return h
}

// Self is the ID of the replica under test.
func (h *Harness) Self() types.NodeID { return h.Cfg.Self }

// Start starts the engine.
func (h *Harness) Start() *Harness { h.Engine.Start(); return h }

// Deliver hands m from a peer to the engine.
func (h *Harness) Deliver(from types.NodeID, msgs ...types.Message) {
	for _, m := range msgs {
		h.Engine.OnMessage(from, m)
	}
}

// Propose delivers b from its proposer.
func (h *Harness) Propose(bs ...*types.Block) {
	for _, b := range bs {
		h.Engine.OnMessage(b.Proposer, b)
	}
}

// Fire hands t to the engine now, whether or not it was set.
func (h *Harness) Fire(t consensus.Timer) { h.Engine.OnTimer(t) }

// Advance moves the virtual clock by d and fires, in due order (then SetTimer order), every timer
// that is due, including timers set while firing that fall due by the new time. It returns the
// timers fired.
func (h *Harness) Advance(d time.Duration) []consensus.Timer {
	return h.Env.Advance(d, h.Engine.OnTimer)
}

// FireNext fires the earliest pending timer of type T (moving the clock to its due time if later)
// and reports whether there was one.
func FireNext[T any](h *Harness) bool {
	var next *TimerCall
	for _, t := range h.Env.Timers {
		if _, ok := t.Timer.(T); !ok || t.Fired {
			continue
		}
		if next == nil || t.Due.Before(next.Due) {
			next = t
		}
	}
	if next == nil {
		return false
	}
	next.Fired = true
	if next.Due.After(h.Env.Clock) {
		h.Env.Clock = next.Due
	}
	h.Engine.OnTimer(next.Timer)
	return true
}

// Votes returns the votes this replica sent or broadcast, in order.
func (h *Harness) Votes() []*types.Vote { return Of[*types.Vote](h.Env.Messages()) }

// OwnVotes returns the votes cast by this replica that went out (echoes of others' votes excluded).
func (h *Harness) OwnVotes() []*types.Vote {
	var out []*types.Vote
	for _, v := range h.Votes() {
		if v.Voter == h.Self() {
			out = append(out, v)
		}
	}
	return out
}

// Proposals returns the blocks this replica proposed (broadcast blocks it signed), in order.
func (h *Harness) Proposals() []*types.Block {
	var out []*types.Block
	for _, b := range Of[*types.Block](h.Env.Broadcasts()) {
		if b.Proposer == h.Self() {
			out = append(out, b)
		}
	}
	return out
}

// Status is the engine's status.
func (h *Harness) Status() consensus.Status { return h.Engine.Status() }

// OwnVoteIDs lists the blocks this replica voted for that left it, in order.
func (h *Harness) OwnVoteIDs() []types.Hash {
	var out []types.Hash
	for _, v := range h.OwnVotes() {
		out = append(out, v.BlockID)
	}
	return out
}

// RequireIDs asserts got equals want, treating nil and empty alike.
func RequireIDs(t *testing.T, want, got []types.Hash, msg string) {
	t.Helper()
	if len(want) == 0 {
		require.Empty(t, got, msg)
		return
	}
	require.Equal(t, want, got, msg)
}
