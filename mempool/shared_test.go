package mempool

// Unit tests of the shared mempools (smp, stratus/PAB, gossip, token bucket, DLB), one Shared
// instance at a time, driven through a recording Env with real keys, a virtual clock and timers
// fired by hand. Each test quotes the docs/spec.md §3 sentence it checks.

import (
	"fmt"
	"testing"
	"time"

	"github.com/kelindar/bitmap"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

const keySeed = 11

// mbOf builds a microblock signed by its creator's simulation key.
func mbOf(creator types.NodeID, epoch types.View, txs []types.Tx) *types.MicroBlock {
	return types.NewMicroBlock(creator, epoch, txs).Signed(crypto.NewSigner(creator, crypto.DeriveKey(keySeed, creator)).Sign)
}

// rig is one Shared mempool under test with its recording Env (real keys, a virtual clock) and
// the events it emitted.
type rig struct {
	t       *testing.T
	env     *enginetest.Env
	signers []*crypto.KeySigner // every replica's signer: the rig signs acks and proofs as others
	m       *Shared
	events  []consensus.Event
}

func newRig(t *testing.T, self types.NodeID, n int, cfg SharedConfig) *rig {
	t.Helper()
	signers, ver := crypto.SimKeys(keySeed, n)
	env := enginetest.NewEnv(self, n, signers[self-1], ver, int64(self))
	env.Clock = time.Unix(1_000, 0)
	r := &rig{t: t, env: env, signers: signers}
	cfg.Events = func(e consensus.Event) { r.events = append(r.events, e) }
	r.m = NewShared(r.env, cfg)
	return r
}

// advance moves the virtual clock by d, firing every timer that falls due on the way (also the
// ones set meanwhile), in time order.
func (r *rig) advance(d time.Duration) { r.env.Advance(d, r.m.OnTimer) }

// take returns what was sent since the last take.
func (r *rig) take() []enginetest.Sent { return r.env.Take() }

// signer returns replica id's signer.
func (r *rig) signer(id types.NodeID) *crypto.KeySigner { return r.signers[id-1] }

// ackBy is replica id's valid ack of mb.
func (r *rig) ackBy(id types.NodeID, mb *types.MicroBlock) *types.Ack {
	return &types.Ack{MBID: mb.ID, View: mb.View, Signer: id, Sig: r.signer(id).Sign(types.AckDigest(mb.ID, mb.View))}
}

// proofBy is a valid proof of mb signed by ids.
func (r *rig) proofBy(mb *types.MicroBlock, ids ...types.NodeID) *types.Proof {
	var set consensus.SigSet
	for _, id := range ids {
		set.Add(id, r.signer(id).Sign(types.AckDigest(mb.ID, mb.View)))
	}
	bm, sigs := set.Build()
	return &types.Proof{MBID: mb.ID, View: mb.View, Signers: bm, Sigs: sigs}
}

// addressed is a sent message of type T and its destination (0 = broadcast).
type addressed[T types.Message] struct {
	to types.NodeID
	m  T
}

func pick[T types.Message](msgs []enginetest.Sent) []addressed[T] {
	var out []addressed[T]
	for _, s := range msgs {
		if m, ok := s.Msg.(T); ok {
			out = append(out, addressed[T]{s.To, m})
		}
	}
	return out
}

func countEv[T consensus.Event](evs []consensus.Event) int {
	n := 0
	for _, e := range evs {
		if _, ok := e.(T); ok {
			n++
		}
	}
	return n
}

func eventsOf[T consensus.Event](evs []consensus.Event) []T {
	var out []T
	for _, e := range evs {
		if x, ok := e.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

func bm(ids ...types.NodeID) bitmap.Bitmap {
	var b bitmap.Bitmap
	for _, id := range ids {
		b.Set(types.SignerBit(id))
	}
	return b
}

func blockOf(view types.View, proposer types.NodeID, refs ...types.MBRef) *types.Block {
	return &types.Block{View: view, Proposer: proposer, Payload: &types.Payload{Refs: refs}}
}

func refOf(p *types.Proof) types.MBRef { return types.MBRef{ID: p.MBID, Proof: p} }

func txIDs(ts []types.Tx) []types.Hash { return ids(ts) }

// resolveTxs is m.Resolve(b) with the runs joined.
func resolveTxs(m Mempool, b *types.Block) ([]types.Tx, bool) {
	runs, ok := m.Resolve(b)
	var txs []types.Tx
	for _, run := range runs {
		txs = append(txs, run...)
	}
	return txs, ok
}

// pabCfg is stratus with N=4 (f=1): q = f+1 = 2, ten 16-byte transactions per microblock.
func pabCfg() SharedConfig {
	return SharedConfig{
		PAB:          true,
		BSize:        10,
		MemSize:      1 << 20,
		MSize:        10 * 16,
		BatchTimeout: 5 * time.Millisecond,
		Q:            2,
		FetchTimeout: 40 * time.Millisecond,
		PushTimeout:  time.Hour, // out of the way unless a test needs it
	}
}

// ---------------------------------------------------------------------------------------------
// PAB push phase

// docs/spec.md §3.3 step 2: "A receiver stores it and returns a signed Ack{mbID, view} to its
// sender — the creator, or the proxy that pushes for it — not to the leader." and
// docs/spec.md §3.4: "The proxy runs the PAB push phase for that microblock (acks come to the
// proxy)". The ack goes to mb.Sender, signed over AckDigest(id, view).
func TestPABAckGoesToSender(t *testing.T) {
	r := newRig(t, 2, 4, pabCfg())
	r.m.SetView(5)
	mb := mbOf(3, 5, txs('m', 0, 3))
	r.m.OnMessage(3, mb)
	out := r.take()
	require.Len(t, out, 1, "exactly one message: the ack")
	require.Equal(t, types.NodeID(3), out[0].To, "the ack goes to the creator (the sender), not to the leader 1 nor broadcast")
	a, ok := out[0].Msg.(*types.Ack)
	require.True(t, ok, "got %T", out[0].Msg)
	require.Equal(t, mb.ID, a.MBID)
	require.Equal(t, types.View(5), a.View)
	require.Equal(t, types.NodeID(2), a.Signer)
	require.True(t, r.env.Verifier().Verify(2, types.AckDigest(mb.ID, 5), a.Sig), "ack signed over AckDigest(id, view) by the receiver")
	require.False(t, r.env.Verifier().Verify(2, types.AckDigest(mb.ID, 6), a.Sig), "the epoch is part of what is signed")
	require.False(t, r.env.Verifier().Verify(3, types.AckDigest(mb.ID, 5), a.Sig), "signed with the receiver's own key")
	require.Equal(t, []consensus.MBReceived{{Bytes: 3 * 16}}, eventsOf[consensus.MBReceived](r.events))

	// A second copy from the same sender is redundant; the sender sends again only when it missed
	// the ack (a re-push), so it gets the same ack again (TestAckRepeatedForARepush).
	r.m.OnMessage(3, mb)
	again := pick[*types.Ack](r.take())
	require.Len(t, again, 1)
	require.Equal(t, a.Sig, again[0].m.Sig)
	require.Equal(t, []consensus.MBReceived{{Bytes: 48}, {Bytes: 48, Redundant: true}}, eventsOf[consensus.MBReceived](r.events))

	// Pushed by a proxy (4) on behalf of creator 3: the ack goes to the proxy.
	mb2 := mbOf(3, 5, txs('n', 0, 2)).Relay(4, 0)
	r.m.OnMessage(4, mb2)
	out = r.take()
	require.Len(t, out, 1)
	require.Equal(t, types.NodeID(4), out[0].To, "acks come to the proxy")
	a = out[0].Msg.(*types.Ack)
	require.Equal(t, mb2.ID, a.MBID)
	require.True(t, r.env.Verifier().Verify(2, types.AckDigest(mb2.ID, 5), a.Sig))
}

// docs/spec.md §3.3 step 3: "With q acks (its own counts; q configurable in [f+1, 2f+1], default f+1) the
// creator forms the proof σ = {mbID, signer bitmap, signatures}" and step 4: "The creator
// broadcasts Proof{σ}." With q = 3: own + 1 valid ack form nothing, the 3rd forms exactly one
// proof signed by exactly those 3; a bad-signature ack, a wrong-epoch ack, a duplicate and a late
// ack change nothing.
func TestPABProofFormsAtExactlyQ(t *testing.T) {
	cfg := pabCfg()
	cfg.Q = 3
	r := newRig(t, 1, 4, cfg)
	require.NoError(t, r.m.AddTxs(txs('a', 0, 10)))
	out := r.take()
	mbs := pick[*types.MicroBlock](out)
	require.Len(t, out, 1)
	require.Len(t, mbs, 1)
	require.Equal(t, types.NodeID(0), mbs[0].to, "the creator broadcasts the microblock")
	mb := mbs[0].m
	require.Equal(t, types.NodeID(1), mb.Sender)
	require.Equal(t, types.NodeID(1), mb.Creator)
	require.Equal(t, mb.ComputeID(), mb.ID)

	// An ack claiming signer 3 but signed with 4's key does not count.
	forged := r.ackBy(4, mb)
	forged.Signer = 3
	r.m.OnMessage(3, forged)
	// An ack over another epoch does not count.
	wrongEpoch := &types.Ack{MBID: mb.ID, View: mb.View + 1, Signer: 4, Sig: r.signer(4).Sign(types.AckDigest(mb.ID, mb.View+1))}
	r.m.OnMessage(4, wrongEpoch)
	// q-1 = 2 acks, own included: no proof yet.
	r.m.OnMessage(2, r.ackBy(2, mb))
	r.m.OnMessage(2, r.ackBy(2, mb)) // duplicate
	require.Empty(t, r.take(), "q-1 acks (own included) form no proof; forged, wrong-epoch and duplicate acks do not count")
	require.False(t, r.m.Ready())
	require.Zero(t, countEv[consensus.MBStable](r.events))

	// The q-th.
	r.m.OnMessage(3, r.ackBy(3, mb))
	out = r.take()
	require.Len(t, out, 1, "exactly one message: the proof")
	proofs := pick[*types.Proof](out)
	require.Len(t, proofs, 1)
	require.Equal(t, types.NodeID(0), proofs[0].to, "the creator broadcasts the proof (recovery phase)")
	p := proofs[0].m
	require.Equal(t, mb.ID, p.MBID)
	require.Equal(t, mb.View, p.View)
	require.Equal(t, []types.NodeID{1, 2, 3}, types.SignerIDs(p.Signers), "signers are exactly the q that acked")
	require.Len(t, p.Sigs, 3)
	require.NoError(t, consensus.VerifyCert(r.env.Verifier(), types.AckDigest(mb.ID, mb.View), p.Signers, p.Sigs, 3))
	require.Equal(t, 1, countEv[consensus.MBStable](r.events))

	// Late ack: no second proof.
	r.m.OnMessage(4, r.ackBy(4, mb))
	require.Empty(t, r.take(), "a late ack forms no second proof")
	require.Equal(t, 1, countEv[consensus.MBStable](r.events))

	// Now provably available: proposable with its proof.
	require.True(t, r.m.Ready())
	pl := r.m.MakePayload(1, nil)
	require.Len(t, pl.Refs, 1)
	require.Equal(t, mb.ID, pl.Refs[0].ID)
	require.Same(t, p, pl.Refs[0].Proof)
}

// badProofs builds, for mb created by 1 in epoch 1 with q = 3 and N = 4, proofs that must be
// rejected, and one good proof (the control).
func badProofs(r *rig, mb *types.MicroBlock) (good *types.Proof, bad map[string]*types.Proof) {
	d := types.AckDigest(mb.ID, mb.View)
	sig := func(id types.NodeID) []byte { return r.signer(id).Sign(d) }
	good = &types.Proof{MBID: mb.ID, View: mb.View, Signers: bm(1, 3, 4), Sigs: [][]byte{sig(1), sig(3), sig(4)}}
	// Replica 5 of a larger system with the same key seed: a genuine signature by a non-replica.
	outsider := crypto.NewSigner(5, crypto.DeriveKey(keySeed, 5))
	bad = map[string]*types.Proof{
		"too few signers": {MBID: mb.ID, View: mb.View, Signers: bm(1, 3), Sigs: [][]byte{sig(1), sig(3)}},
		"duplicate signer (bitmap/sig count mismatch)": {MBID: mb.ID, View: mb.View, Signers: bm(1, 3),
			Sigs: [][]byte{sig(1), sig(1), sig(3)}},
		"unknown signer (ID > N)": {MBID: mb.ID, View: mb.View, Signers: bm(1, 3, 5),
			Sigs: [][]byte{sig(1), sig(3), outsider.Sign(d)}},
		"invalid signature (other digest)": {MBID: mb.ID, View: mb.View, Signers: bm(1, 3, 4),
			Sigs: [][]byte{sig(1), sig(3), r.signer(4).Sign(types.AckDigest(mb.ID, mb.View+1))}},
		"invalid signature (another signer's)": {MBID: mb.ID, View: mb.View, Signers: bm(1, 3, 4),
			Sigs: [][]byte{sig(1), sig(3), sig(3)}},
		"epoch not the signed one": {MBID: mb.ID, View: mb.View + 1, Signers: bm(1, 3, 4),
			Sigs: [][]byte{sig(1), sig(3), sig(4)}},
	}
	return good, bad
}

// docs/spec.md §3.3 step 4: "A replica that verifies σ records the ID as available." — only then; and
// step 7: "A replica verifies every σ in the payload. One invalid σ → do not vote". Proofs with
// too few, duplicate, unknown or invalid signers are rejected as Proof messages (no effect,
// ProofChecked{OK:false}) and inside proposals (Reject).
func TestPABRejectsBadProofs(t *testing.T) {
	cfg := pabCfg()
	cfg.Q = 3
	mb := mbOf(1, 1, txs('p', 0, 4))
	probe := newRig(t, 2, 4, cfg)
	good, bad := badProofs(probe, mb)

	t.Run("control", func(t *testing.T) {
		r := newRig(t, 2, 4, cfg)
		r.m.SetView(1)
		r.m.OnMessage(1, good)
		require.Equal(t, []consensus.ProofChecked{{OK: true}}, eventsOf[consensus.ProofChecked](r.events))
		require.True(t, r.m.Ready(), "a verified proof makes the microblock proposable")
		v, err := newRig(t, 2, 4, cfg).m.CheckPayload(blockOf(1, 1, refOf(good)))
		require.NoError(t, err)
		require.Equal(t, consensus.Accept, v)
	})
	for name, p := range bad {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, 2, 4, cfg)
			r.m.SetView(1)
			r.m.OnMessage(1, p)
			require.Equal(t, []consensus.ProofChecked{{OK: false}}, eventsOf[consensus.ProofChecked](r.events))
			require.False(t, r.m.Ready(), "a rejected proof does not make the microblock proposable")
			require.Empty(t, r.m.MakePayload(1, nil).Refs)
			require.Empty(t, r.take(), "nothing sent")
			require.Empty(t, r.env.Timers, "no fetch started")
			require.Zero(t, r.m.Gauges().Microblocks, "nothing stored")

			r2 := newRig(t, 2, 4, cfg)
			v, err := r2.m.CheckPayload(blockOf(1, 1, types.MBRef{ID: mb.ID, Proof: p}))
			require.Equal(t, consensus.Reject, v)
			require.Error(t, err)
			require.Equal(t, []consensus.ProofChecked{{OK: false}}, eventsOf[consensus.ProofChecked](r2.events))
			require.Empty(t, r2.env.Timers, "no fetch started for a rejected proposal")
		})
	}
	t.Run("no proof or a proof of another microblock in a proposal", func(t *testing.T) {
		r := newRig(t, 2, 4, cfg)
		v, err := r.m.CheckPayload(blockOf(1, 1, types.MBRef{ID: mb.ID}))
		require.Equal(t, consensus.Reject, v)
		require.ErrorContains(t, err, "no availability proof")
		other := mbOf(1, 1, txs('q', 0, 4))
		v, err = r.m.CheckPayload(blockOf(1, 1, types.MBRef{ID: other.ID, Proof: good}))
		require.Equal(t, consensus.Reject, v)
		require.Error(t, err)
	})
}

// docs/spec.md §3.3 step 7: "One invalid σ → do not vote (the leader is faulty; the view times out).
// Otherwise it votes immediately, without waiting for the data (this is the point)." and step 8 /
// step 5: "Missing data is fetched in the background", "from the signers of σ".
func TestPABVoteImmediatelyRejectOneBadProof(t *testing.T) {
	cfg := pabCfg()
	cfg.Q = 3 // N = 7, f = 2: q = f+1
	r := newRig(t, 2, 7, cfg)
	r.m.SetView(3)
	mbA := mbOf(3, 1, txs('a', 0, 3))
	mbB := mbOf(4, 2, txs('b', 0, 3))
	mbC := mbOf(1, 2, txs('c', 0, 3))
	pA := r.proofBy(mbA, 3, 5, 6) // the proposer (1) is not a signer
	pB := r.proofBy(mbB, 4, 6, 7)
	_, bad := badProofs(r, mbC)
	pC := bad["invalid signature (another signer's)"]

	v, err := r.m.CheckPayload(blockOf(3, 1, refOf(pA), types.MBRef{ID: mbC.ID, Proof: pC}, refOf(pB)))
	require.Equal(t, consensus.Reject, v, "one bad proof among good ones: no vote")
	require.ErrorContains(t, err, "reference 1")
	require.Empty(t, r.env.Timers, "nothing fetched for a rejected proposal")

	v, err = r.m.CheckPayload(blockOf(3, 1, refOf(pA), refOf(pB)))
	require.NoError(t, err)
	require.Equal(t, consensus.Accept, v, "all proofs verify: vote now, without the data")
	require.Empty(t, r.take(), "voting does not wait on a fetch")
	require.Equal(t, 2, r.m.Gauges().Fetching)

	// The data is fetched in the background from a signer of the proof.
	r.advance(cfg.FetchTimeout)
	reqs := pick[*types.FetchRequest](r.take())
	require.Len(t, reqs, 2)
	asked := map[types.Hash]types.NodeID{}
	for _, q := range reqs {
		require.Len(t, q.m.IDs, 1)
		asked[q.m.IDs[0]] = q.to
	}
	require.Contains(t, []types.NodeID{3, 5, 6}, asked[mbA.ID], "A requested from one of its signers")
	require.Contains(t, []types.NodeID{4, 6, 7}, asked[mbB.ID], "B requested from one of its signers")
	require.Equal(t, 2, countEv[consensus.MBMissing](r.events))
}

// docs/spec.md §3.3 step 5: "fetches it from the signers of σ: ask one random not-yet-asked signer, wait
// fetch_timeout, ask the next; at least one signer is honest, so it ends."
func TestPABFetchFromSignersPastSilentOnes(t *testing.T) {
	cfg := pabCfg()
	cfg.Q = 3
	r := newRig(t, 4, 4, cfg)
	r.m.SetView(1)
	mb := mbOf(1, 1, txs('f', 0, 5))
	p := r.proofBy(mb, 1, 2, 3)
	r.m.OnMessage(1, p)
	require.Equal(t, []consensus.ProofChecked{{OK: true}}, eventsOf[consensus.ProofChecked](r.events))
	require.True(t, r.m.Ready(), "provably available: proposable before the data is here")
	require.Empty(t, r.take(), "the push gets its chance first")

	r.advance(cfg.FetchTimeout - time.Millisecond)
	require.Empty(t, r.take())
	r.advance(time.Millisecond) // fetch_timeout after the proof: the first request
	var asked []types.NodeID
	for i := 0; i < 3; i++ {
		if i > 0 {
			r.advance(cfg.FetchTimeout) // the asked signer is silent: the next one
		}
		reqs := pick[*types.FetchRequest](r.take())
		require.Len(t, reqs, 1, "request %d: one signer at a time", i+1)
		require.Equal(t, []types.Hash{mb.ID}, reqs[0].m.IDs)
		require.Contains(t, []types.NodeID{1, 2, 3}, reqs[0].to, "only signers are asked")
		require.NotContains(t, asked, reqs[0].to, "request %d goes to a signer not asked yet", i+1)
		asked = append(asked, reqs[0].to)
	}
	require.Equal(t, 1, countEv[consensus.MBMissing](r.events))

	// The third signer answers.
	blk := blockOf(2, 2, refOf(p))
	r.m.OnMessage(asked[2], &types.FetchResponse{MBs: []*types.MicroBlock{mb}})
	require.Equal(t, 1, countEv[consensus.MBFetched](r.events))
	require.Zero(t, r.m.Gauges().Fetching)
	got, ok := resolveTxs(r.m, blk)
	require.True(t, ok)
	require.Equal(t, txIDs(mb.Txs), txIDs(got))
	r.advance(5 * cfg.FetchTimeout)
	require.Empty(t, pick[*types.FetchRequest](r.take()), "no request once the data is here")
}

// docs/spec.md §3.3 with "StaleViews": refuse proposals referring to microblocks older than StaleViews
// views, and docs/spec.md §2.4: a transaction is delivered exactly once, so a committed microblock cannot
// be proposed again.
func TestPABRejectsStaleAndCommitted(t *testing.T) {
	cfg := pabCfg()
	r := newRig(t, 2, 4, cfg)
	mb := mbOf(1, 7, txs('s', 0, 3))
	p := r.proofBy(mb, 1, 3)

	v, err := r.m.CheckPayload(blockOf(7+StaleViews+1, 3, refOf(p)))
	require.Equal(t, consensus.Reject, v, "epoch more than StaleViews behind the block's view")
	require.ErrorContains(t, err, "stale")
	v, err = r.m.CheckPayload(blockOf(7+StaleViews, 3, refOf(p)))
	require.NoError(t, err)
	require.Equal(t, consensus.Accept, v, "exactly StaleViews behind is still fresh")

	r2 := newRig(t, 2, 4, cfg)
	r2.m.SetView(8)
	r2.m.OnMessage(1, mb)
	blk := blockOf(8, 3, refOf(p))
	v, err = r2.m.CheckPayload(blk)
	require.NoError(t, err)
	require.Equal(t, consensus.Accept, v)
	_, ok := resolveTxs(r2.m, blk)
	require.True(t, ok)
	r2.m.Committed(blk)
	v, err = r2.m.CheckPayload(blockOf(9, 4, refOf(p)))
	require.Equal(t, consensus.Reject, v, "an already committed microblock")
	require.ErrorContains(t, err, "committed")
}

// docs/spec.md §2.4: "A committed block is delivered only when all its transactions are present locally
// (for shared mempools, missing microblocks are fetched first)"; docs/spec.md §3 "Committed / Requeue (garbage
// collection and fork recovery)".
func TestPABResolveCommittedRequeue(t *testing.T) {
	cfg := pabCfg()
	r := newRig(t, 1, 4, cfg)
	r.m.SetView(1)
	require.NoError(t, r.m.AddTxs(txs('o', 0, 20)))
	own := pick[*types.MicroBlock](r.take())
	require.Len(t, own, 2)
	a, b := own[0].m, own[1].m
	r.m.OnMessage(2, r.ackBy(2, a))
	r.m.OnMessage(3, r.ackBy(3, b))
	r.take()

	require.True(t, r.m.Ready())
	p1 := r.m.MakePayload(1, nil)
	require.Equal(t, []types.Hash{a.ID, b.ID}, refIDs(p1.Refs), "oldest first")
	require.NotNil(t, p1.Refs[0].Proof)
	b1 := &types.Block{View: 1, Proposer: 1, Payload: p1}
	require.Empty(t, r.m.MakePayload(2, []*types.Block{b1}).Refs, "a block extending the one that holds them does not propose them again")
	require.True(t, r.m.Ready(), "they stay available until committed")
	r.m.Requeue(b1)
	p2 := r.m.MakePayload(3, nil)
	require.Equal(t, []types.Hash{a.ID, b.ID}, refIDs(p2.Refs), "a block on another branch proposes them again")

	// A peer microblock known by its proof only.
	c := mbOf(3, 1, txs('c', 0, 4))
	pc := r.proofBy(c, 3, 4)
	r.m.OnMessage(3, pc)
	blk := blockOf(4, 2, p2.Refs[1], refOf(pc), p2.Refs[0]) // B, C, A
	v, err := r.m.CheckPayload(blk)
	require.NoError(t, err)
	require.Equal(t, consensus.Accept, v)
	// blk is decided; the block of p2 loses the fork: A and B stay out of proposals.
	r.m.Decided(blk)
	r.m.Requeue(&types.Block{View: 3, Proposer: 1, Payload: p2})
	require.False(t, r.m.Ready(), "microblocks of a decided block are not requeued")
	_, ok := resolveTxs(r.m, blk)
	require.False(t, ok, "C is missing")
	reqs := pick[*types.FetchRequest](r.take())
	require.Len(t, reqs, 1, "delivery waits: the fetch is hurried")
	require.Contains(t, []types.NodeID{3, 4}, reqs[0].to)
	r.m.OnMessage(reqs[0].to, &types.FetchResponse{MBs: []*types.MicroBlock{c}})
	got, ok := resolveTxs(r.m, blk)
	require.True(t, ok)
	want := append(append(append([]types.Tx(nil), b.Txs...), c.Txs...), a.Txs...)
	require.Equal(t, txIDs(want), txIDs(got), "transactions in reference order")

	g := r.m.Gauges()
	require.Equal(t, 3, g.Microblocks)
	require.Equal(t, 20*(16+TxOverhead), g.PendingBytes, "charged bytes")
	require.Equal(t, 20, g.InFlightTxs, "own transactions in microblocks: A's and B's")
	r.m.Committed(blk)
	g = r.m.Gauges()
	require.Zero(t, g.Microblocks, "Committed frees the entries")
	require.Zero(t, g.PendingBytes, "own transactions freed")
	require.Zero(t, g.PeerBytes)
	require.Zero(t, g.InFlightTxs)
	require.False(t, r.m.Ready())

	v, err = r.m.CheckPayload(blockOf(5, 3, p2.Refs[0]))
	require.Equal(t, consensus.Reject, v, "a later proposal of a committed ID")
	require.ErrorContains(t, err, "committed")

	// Committed data is retained for replicas still fetching it.
	r.m.OnMessage(4, &types.FetchRequest{IDs: []types.Hash{c.ID}})
	resp := pick[*types.FetchResponse](r.take())
	require.Len(t, resp, 1)
	require.Equal(t, types.NodeID(4), resp[0].to)
	require.Equal(t, c.ID, resp[0].m.MBs[0].ID)
}

func refIDs(refs []types.MBRef) []types.Hash {
	out := make([]types.Hash, len(refs))
	for i, r := range refs {
		out[i] = r.ID
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// smp

// docs/spec.md §3.2: "A replica missing referenced microblocks fetches them from the leader and votes only
// when it has them all" and "The leader proposes the IDs of up to bsize microblocks it holds".
func TestSMPFetchesFromLeaderBeforeVoting(t *testing.T) {
	cfg := pabCfg()
	cfg.PAB = false
	r := newRig(t, 2, 4, cfg)
	r.m.SetView(1)
	c := mbOf(4, 1, txs('c', 0, 4))
	blk := blockOf(1, 3, types.MBRef{ID: c.ID}) // proposed by 3, created by 4
	v, err := r.m.CheckPayload(blk)
	require.NoError(t, err)
	require.Equal(t, consensus.Wait, v, "no vote while a referenced microblock is missing")
	reqs := pick[*types.FetchRequest](r.take())
	require.Len(t, reqs, 1)
	require.Equal(t, types.NodeID(3), reqs[0].to, "fetched from the leader (the proposer), at once")
	require.Equal(t, []types.Hash{c.ID}, reqs[0].m.IDs)
	v, _ = r.m.CheckPayload(blk)
	require.Equal(t, consensus.Wait, v)
	require.Empty(t, r.take(), "asked once")

	r.m.OnMessage(3, &types.FetchResponse{MBs: []*types.MicroBlock{c}})
	v, err = r.m.CheckPayload(blk)
	require.NoError(t, err)
	require.Equal(t, consensus.Accept, v, "votes once it has them all")
	got, ok := resolveTxs(r.m, blk)
	require.True(t, ok)
	require.Equal(t, txIDs(c.Txs), txIDs(got))

	// smp receivers do not ack, and proposals carry IDs without proofs.
	d := mbOf(4, 1, txs('d', 0, 2))
	r.m.OnMessage(4, d)
	require.Empty(t, pick[*types.Ack](r.take()), "smp has no acks")
	require.NoError(t, r.m.AddTxs(txs('o', 0, 10)))
	out := pick[*types.MicroBlock](r.take())
	require.Len(t, out, 1)
	require.Equal(t, types.NodeID(0), out[0].to, "the creator broadcasts")
	require.True(t, r.m.Ready())
	p := r.m.MakePayload(2, []*types.Block{blk})
	require.Equal(t, []types.Hash{d.ID, out[0].m.ID}, refIDs(p.Refs), "held and not in the chain extended: d and the own one; c is in the parent")
	for _, ref := range p.Refs {
		require.Nil(t, ref.Proof, "smp proposals carry IDs only")
	}
}

// ---------------------------------------------------------------------------------------------
// Batching

// docs/spec.md §3.2: "A replica batches its own client transactions into a microblock when it reaches
// msize payload bytes or batch_timeout ms passed since the first transaction in the batch".
func TestBatchingMSizeAndTimeout(t *testing.T) {
	cfg := pabCfg() // msize = ten 16-byte transactions, batch_timeout 5 ms
	r := newRig(t, 1, 4, cfg)
	in := txs('b', 0, 30)
	require.NoError(t, r.m.AddTxs(in[:5]))
	require.Empty(t, r.take(), "below msize: nothing cut")
	r.advance(3 * time.Millisecond)
	require.NoError(t, r.m.AddTxs(in[5:20])) // 20 held: cut 10, 10 left = msize → cut again
	mbs := pick[*types.MicroBlock](r.take())
	require.Len(t, mbs, 2)
	require.Equal(t, txIDs(in[:10]), txIDs(mbs[0].m.Txs))
	require.Equal(t, txIDs(in[10:20]), txIDs(mbs[1].m.Txs))
	require.Equal(t, []consensus.MBCreated{{Txs: 10, Bytes: 160}, {Txs: 10, Bytes: 160}}, eventsOf[consensus.MBCreated](r.events))
	require.Zero(t, r.m.Gauges().PendingTxs)

	require.NoError(t, r.m.AddTxs(in[20:24])) // at t = 3 ms
	r.advance(4 * time.Millisecond)           // t = 7 ms: the first timer (due at 5 ms) is stale
	require.Empty(t, r.take(), "the batch timer of a batch already cut does not cut the next one early")
	require.Equal(t, 4, r.m.Gauges().PendingTxs)
	r.advance(time.Millisecond) // t = 8 ms = 3 ms + batch_timeout
	mbs = pick[*types.MicroBlock](r.take())
	require.Len(t, mbs, 1, "a partial batch is cut batch_timeout after its first transaction")
	require.Equal(t, txIDs(in[20:24]), txIDs(mbs[0].m.Txs))
	require.Zero(t, r.m.Gauges().PendingTxs)
	r.advance(time.Second)
	require.Empty(t, r.take())
}

// docs/spec.md §2.4: "Mempool full → the submission is refused with a clear error ...; never accepted and
// then silently dropped." and mempool.go: "It accepts all of them or none".
func TestSharedFullRefusesAndKeepsNothing(t *testing.T) {
	cfg := pabCfg()
	const cost = 16 + TxOverhead
	cfg.MemSize = cost * 15
	r := newRig(t, 1, 4, cfg)
	require.NoError(t, r.m.AddTxs(txs('a', 0, 12))) // one microblock of 10 + 2 pending
	r.take()
	err := r.m.AddTxs(txs('b', 0, 4))
	require.ErrorIs(t, err, ErrFull)
	require.ErrorContains(t, err, fmt.Sprintf("holds %d bytes, batch adds %d, memsize is %d", 12*cost, 4*cost, 15*cost))
	g := r.m.Gauges()
	require.Equal(t, 2, g.PendingTxs, "nothing of the refused batch kept")
	require.Equal(t, 12*cost, g.PendingBytes)
	r.advance(time.Second)
	mbs := pick[*types.MicroBlock](r.take())
	require.Len(t, mbs, 1)
	require.Equal(t, txIDs(txs('a', 10, 2)), txIDs(mbs[0].m.Txs), "only the accepted transactions travel")
	require.NoError(t, r.m.AddTxs(txs('b', 0, 3)), "3 more fit")
}

// ---------------------------------------------------------------------------------------------
// Gossip

// docs/spec.md §3.5: "each receiver forwards a microblock it sees for the first time to fanout random
// peers ..., up to r hops. Acks still go to the microblock's sender; redundant receptions are
// counted." Works with smp and stratus."
func TestGossipRelay(t *testing.T) {
	cfg := pabCfg()
	cfg.Gossip, cfg.Fanout, cfg.R = true, 2, 3
	r := newRig(t, 2, 7, cfg)
	for i := 0; i < 20; i++ {
		creator := types.NodeID(3 + i%5) // 3..7
		from := types.NodeID(1 + (i+3)%7)
		if from == 2 {
			from = creator
		}
		mb := mbOf(creator, 0, txs(byte(i), 0, 2)).Relay(creator, uint8(i%3)) // hops 0, 1, 2 < r
		r.m.OnMessage(from, mb)
		out := r.take()
		acks := pick[*types.Ack](out)
		require.Len(t, acks, 1)
		require.Equal(t, creator, acks[0].to, "acks still go to the creator")
		relays := pick[*types.MicroBlock](out)
		require.Len(t, relays, 2, "relayed to exactly fanout peers")
		require.NotEqual(t, relays[0].to, relays[1].to)
		for _, x := range relays {
			require.NotContains(t, []types.NodeID{0, 2, from, creator}, x.to, "not broadcast, not self, not the sender, not the creator")
			require.Equal(t, mb.Hops+1, x.m.Hops)
			require.Equal(t, mb.ID, x.m.ID)
			require.Equal(t, creator, x.m.Sender, "the sender stays the creator: acks go to it")
		}
		// A redundant copy is counted and not relayed again.
		r.m.OnMessage(from, mb)
		require.Empty(t, pick[*types.MicroBlock](r.take()))
	}
	require.Equal(t, 20, countRedundant(r.events))

	// At the hop limit: acked, not relayed.
	mb := mbOf(5, 0, txs('z', 0, 2)).Relay(5, 3)
	r.m.OnMessage(4, mb)
	out := r.take()
	require.Len(t, out, 1)
	require.Equal(t, types.NodeID(5), out[0].To)
	require.IsType(t, &types.Ack{}, out[0].Msg)

	// The creator sends its own microblock to fanout peers with one hop, no broadcast.
	require.NoError(t, r.m.AddTxs(txs('o', 0, 10)))
	own := pick[*types.MicroBlock](r.take())
	require.Len(t, own, 2)
	for _, x := range own {
		require.NotContains(t, []types.NodeID{0, 2}, x.to)
		require.Equal(t, uint8(1), x.m.Hops)
	}
}

func countRedundant(evs []consensus.Event) int {
	n := 0
	for _, e := range eventsOf[consensus.MBReceived](evs) {
		if e.Redundant {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------------------------------
// Token bucket

// docs/spec.md §3.3: "microblock sending can be rate-limited by a token bucket (capacity, fillInterval)".
// At most capacity sends before a refill; one more per fillInterval; tokens never exceed capacity.
func TestTokenBucketLimitsSends(t *testing.T) {
	cfg := pabCfg()
	cfg.MSize = 16 // one transaction per microblock
	cfg.FillInterval, cfg.Capacity = 10*time.Millisecond, 2
	r := newRig(t, 1, 4, cfg)
	require.NoError(t, r.m.AddTxs(txs('t', 0, 5)))
	require.Equal(t, 5, countEv[consensus.MBCreated](r.events))
	sends := func() int { return len(pick[*types.MicroBlock](r.take())) }
	require.Equal(t, 2, sends(), "capacity sends before any refill")
	r.advance(9 * time.Millisecond)
	require.Zero(t, sends())
	r.advance(time.Millisecond)
	require.Equal(t, 1, sends(), "one token per fillInterval")
	r.advance(10 * time.Millisecond)
	require.Equal(t, 1, sends())
	r.advance(10 * time.Millisecond)
	require.Equal(t, 1, sends())
	r.advance(time.Second)
	require.Zero(t, sends(), "all five sent")
	require.NoError(t, r.m.AddTxs(txs('u', 0, 4)))
	require.Equal(t, 2, sends(), "idle time accumulates at most capacity tokens")
}

// ---------------------------------------------------------------------------------------------
// Distributed load balancing

func lbCfg() SharedConfig {
	cfg := pabCfg()
	cfg.LoadBalance = true
	cfg.D = 3
	cfg.EstimateWindow = 4
	cfg.Percentile = 95
	cfg.BusyThreshold = 10 * time.Millisecond
	cfg.LBTimeout = 20 * time.Millisecond
	cfg.ForwardTimeout = 100 * time.Millisecond
	return cfg
}

// pushOwn makes this replica cut one microblock (ten transactions tagged tag) and returns what it
// sent.
func (r *rig) pushOwn(tag byte) []enginetest.Sent {
	r.t.Helper()
	require.NoError(r.t, r.m.AddTxs(txs(tag, 0, 10)))
	return r.take()
}

// stableAfter pushes an own microblock, lets d pass, and acks it from peer: its stable time is d.
func (r *rig) stableAfter(tag byte, d time.Duration, peer types.NodeID) {
	r.t.Helper()
	mbs := pick[*types.MicroBlock](r.pushOwn(tag))
	require.Len(r.t, mbs, 1)
	r.advance(d)
	r.m.OnMessage(peer, r.ackBy(peer, mbs[0].m))
	require.Len(r.t, pick[*types.Proof](r.take()), 1)
}

// busyRig is replica 1 of n made busy by its stable times: 4 ms (below the 10 ms threshold), then
// 25 ms; the p95 of [4 ms, 25 ms] is 25 ms.
func busyRig(t *testing.T, n int, cfg SharedConfig) *rig {
	t.Helper()
	r := newRig(t, 1, n, cfg)
	r.stableAfter(1, 4*time.Millisecond, 2)
	require.Empty(t, eventsOf[consensus.LoadChanged](r.events), "4 ms is below the threshold")
	require.False(t, r.m.Gauges().Busy)
	r.stableAfter(2, 25*time.Millisecond, 2)
	require.Equal(t, []consensus.LoadChanged{{Busy: true, Load: 25 * time.Millisecond}}, eventsOf[consensus.LoadChanged](r.events))
	g := r.m.Gauges()
	require.True(t, g.Busy)
	require.Equal(t, 25*time.Millisecond, g.Load)
	p := r.m.MakePayload(1, nil)
	require.Len(t, p.Refs, 2, "the two pushed microblocks are proposed")
	r.m.Decided(&types.Block{View: 1, Payload: p}) // and committed: out of the way
	return r
}

// lbQueries returns the peers asked and the nonce of one sampling round.
func lbQueries(t *testing.T, out []enginetest.Sent) ([]types.NodeID, uint64) {
	t.Helper()
	qs := pick[*types.LBQuery](out)
	require.NotEmpty(t, qs)
	var peers []types.NodeID
	for _, q := range qs {
		require.Equal(t, qs[0].m.Nonce, q.m.Nonce)
		peers = append(peers, q.to)
	}
	return peers, qs[0].m.Nonce
}

// docs/spec.md §3.4: "busy iff load > busy_threshold ms" and "A busy replica, on a new microblock: sample d
// random peers (not itself, not banned), send LBQuery; peers answer LBInfo{load} (or "busy").
// After d answers ...: forward LBForward{mb} to the least-loaded peer (the proxy) and ban it until
// it delivers."
func TestDLBBusyForwardsToLeastLoaded(t *testing.T) {
	cfg := lbCfg()
	r := busyRig(t, 7, cfg)
	out := r.pushOwn(3)
	require.Empty(t, pick[*types.MicroBlock](out), "a busy replica does not push its microblock itself")
	peers, nonce := lbQueries(t, out)
	require.Len(t, out, 3, "only the queries")
	require.Len(t, peers, 3, "exactly d peers")
	require.NotContains(t, peers, types.NodeID(1), "not itself")
	require.Len(t, map[types.NodeID]bool{peers[0]: true, peers[1]: true, peers[2]: true}, 3, "distinct")
	mb := mbOf(1, 1, txs(3, 0, 10)) // epoch 1: busyRig proposed in view 1

	// Ignored: a wrong nonce and a peer that was not asked.
	r.m.OnMessage(peers[0], &types.LBInfo{Nonce: nonce + 1, LoadUS: 1})
	var outsider types.NodeID
	for id := types.NodeID(2); id <= 7; id++ {
		if id != peers[0] && id != peers[1] && id != peers[2] {
			outsider = id
		}
	}
	r.m.OnMessage(outsider, &types.LBInfo{Nonce: nonce, LoadUS: 1})
	// The lowest load is busy; the least-loaded non-busy one wins.
	r.m.OnMessage(peers[0], &types.LBInfo{Nonce: nonce, LoadUS: 500, Busy: true})
	r.m.OnMessage(peers[1], &types.LBInfo{Nonce: nonce, LoadUS: 8000})
	require.Empty(t, r.take(), "waits for d answers")
	r.m.OnMessage(peers[2], &types.LBInfo{Nonce: nonce, LoadUS: 2000})
	out = r.take()
	require.Len(t, out, 1)
	fw := pick[*types.LBForward](out)
	require.Len(t, fw, 1)
	require.Equal(t, peers[2], fw[0].to, "least-loaded non-busy peer")
	require.Equal(t, mb.ID, fw[0].m.MB.ID)
	require.Equal(t, []consensus.MBForwarded{{Proxy: peers[2]}}, eventsOf[consensus.MBForwarded](r.events))
	require.Equal(t, 1, r.m.Gauges().Banned, "the proxy is banned until it delivers")
	r.advance(cfg.LBTimeout)
	require.Empty(t, r.take(), "decided once")

	// The banned proxy is not sampled again.
	for i := 0; i < 5; i++ {
		ps, _ := lbQueries(t, r.pushOwn(byte(10+i)))
		require.NotContains(t, ps, peers[2])
	}
}

// docs/spec.md §3.4: "After d answers or lb_timeout ms: no answer → broadcast itself; else forward ... to
// the least-loaded peer that is not busy, or the least loaded if every one is" — ties, busy peers
// and timeouts.
func TestDLBDecisionCases(t *testing.T) {
	cfg := lbCfg()
	cfg.D = 2
	type ans struct {
		load uint64
		busy bool
	}
	cases := []struct {
		name    string
		answers []*ans // per asked peer; nil = no answer (lb_timeout decides)
		want    []int  // indexes of acceptable proxies; empty = pushes itself
	}{
		{"tie", []*ans{{1000, false}, {1000, false}}, []int{0, 1}},
		{"lower load wins", []*ans{{3000, false}, {1000, false}}, []int{1}},
		{"busy peers are skipped", []*ans{{10, true}, {9000, false}}, []int{1}},
		{"all busy: the least loaded of them", []*ans{{30, true}, {20, true}}, []int{1}},
		{"a busy one beats no answer", []*ans{nil, {20, true}}, []int{1}},
		{"partial answers at lb_timeout", []*ans{nil, {7000, false}}, []int{1}},
		{"no answer: push itself", []*ans{nil, nil}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := busyRig(t, 4, cfg)
			peers, nonce := lbQueries(t, r.pushOwn(9))
			require.Len(t, peers, 2)
			answered := 0
			for i, a := range tc.answers {
				if a != nil {
					r.m.OnMessage(peers[i], &types.LBInfo{Nonce: nonce, LoadUS: a.load, Busy: a.busy})
					answered++
				}
			}
			if answered < 2 {
				require.Empty(t, r.take())
				r.advance(cfg.LBTimeout)
			}
			out := r.take()
			require.Len(t, out, 1)
			if tc.want == nil {
				mbs := pick[*types.MicroBlock](out)
				require.Len(t, mbs, 1, "pushes itself")
				require.Equal(t, types.NodeID(0), mbs[0].to)
				require.Empty(t, eventsOf[consensus.MBForwarded](r.events))
				return
			}
			fw := pick[*types.LBForward](out)
			require.Len(t, fw, 1)
			var ok []types.NodeID
			for _, i := range tc.want {
				ok = append(ok, peers[i])
			}
			require.Contains(t, ok, fw[0].to)
		})
	}
}

// docs/spec.md §3.4: the estimator — "busy iff load > busy_threshold". An idle replica pushes its own
// microblocks and never queries or forwards.
func TestDLBIdleNeverForwards(t *testing.T) {
	cfg := lbCfg()
	r := newRig(t, 1, 7, cfg)
	for i := 0; i < 8; i++ {
		mbs := pick[*types.MicroBlock](r.pushOwn(byte(i)))
		require.Len(t, mbs, 1)
		require.Equal(t, types.NodeID(0), mbs[0].to, "pushed by itself")
		r.advance(time.Duration(2+i) * time.Millisecond) // 2..9 ms, all ≤ 10 ms
		r.m.OnMessage(3, r.ackBy(3, mbs[0].m))
		out := r.take()
		require.Empty(t, pick[*types.LBQuery](out))
		require.Empty(t, pick[*types.LBForward](out))
	}
	r.advance(time.Second)
	out := r.take()
	require.Empty(t, pick[*types.LBQuery](out))
	require.Empty(t, pick[*types.LBForward](out))
	require.Empty(t, eventsOf[consensus.LoadChanged](r.events))
	require.Empty(t, eventsOf[consensus.MBForwarded](r.events))
	g := r.m.Gauges()
	require.False(t, g.Busy)
	require.Equal(t, 9*time.Millisecond, g.Load, "p95 of the last 4 stable times (6..9 ms)")
}

// docs/spec.md §3.4: "No proof within forward_timeout ms → forward again to another proxy" (the first is
// banned) and "sends the proof back to the original creator, which then runs the recovery phase
// (broadcasts Proof)".
func TestDLBReforwardAfterTimeout(t *testing.T) {
	cfg := lbCfg()
	cfg.D = 2
	r := busyRig(t, 4, cfg)
	peers, nonce := lbQueries(t, r.pushOwn(5))
	require.Len(t, peers, 2)
	r.m.OnMessage(peers[0], &types.LBInfo{Nonce: nonce, LoadUS: 100})
	r.m.OnMessage(peers[1], &types.LBInfo{Nonce: nonce, LoadUS: 900})
	fw := pick[*types.LBForward](r.take())
	require.Len(t, fw, 1)
	first := fw[0].to
	require.Equal(t, peers[0], first)
	mb := fw[0].m.MB

	// The proxy stays silent.
	r.advance(cfg.ForwardTimeout - time.Millisecond)
	require.Empty(t, r.take())
	r.advance(time.Millisecond)
	peers2, nonce2 := lbQueries(t, r.take())
	require.Len(t, peers2, 2, "d peers among the 2 not banned")
	require.NotContains(t, peers2, first, "the silent proxy is banned: not sampled again")
	require.NotContains(t, peers2, types.NodeID(1))
	r.m.OnMessage(peers2[0], &types.LBInfo{Nonce: nonce2, LoadUS: 700})
	r.m.OnMessage(peers2[1], &types.LBInfo{Nonce: nonce2, LoadUS: 300})
	fw = pick[*types.LBForward](r.take())
	require.Len(t, fw, 1)
	second := fw[0].to
	require.Equal(t, peers2[1], second)
	require.NotEqual(t, first, second)
	require.Equal(t, mb.ID, fw[0].m.MB.ID, "the same microblock again")
	require.Equal(t, 2, r.m.Gauges().Banned)
	require.False(t, r.m.Ready(), "not available before a proof")

	// The second proxy delivers, having broadcast the proof: the creator sends nothing now.
	var other types.NodeID = 2
	for other == second || other == 1 {
		other++
	}
	p := r.proofBy(mb, second, other)
	r.m.OnMessage(second, p)
	require.Empty(t, r.take(), "the proxy broadcast the proof")
	require.Equal(t, 1, r.m.Gauges().Banned, "the delivering proxy is no longer banned")
	require.True(t, r.m.Ready())
	require.Equal(t, []types.Hash{mb.ID}, refIDs(r.m.MakePayload(10, nil).Refs))

	// A late proof from anyone changes nothing; no further forward.
	r.m.OnMessage(first, r.proofBy(mb, first, 1))
	r.advance(recoverAfter*cfg.ForwardTimeout - time.Millisecond)
	require.Empty(t, r.take())

	// Still not delivered: the creator broadcasts the proof itself (recovery phase), once.
	r.advance(time.Millisecond)
	out := r.take()
	proofs := pick[*types.Proof](out)
	require.Len(t, proofs, 1)
	require.Equal(t, types.NodeID(0), proofs[0].to, "the creator runs the recovery phase")
	require.Equal(t, mb.ID, proofs[0].m.MBID)
	require.Empty(t, pick[*types.LBForward](out))
	require.Empty(t, pick[*types.LBQuery](out))
	r.advance(10 * cfg.ForwardTimeout)
	require.Empty(t, r.take())
}

// A proxy that returned the proof to the creator alone (a Byzantine one keeping it from the
// others) delays the microblock by recoverAfter × forward_timeout; once the microblock is
// delivered the creator does not broadcast its proof at all.
func TestDLBCreatorRebroadcastsOnlyAnUndeliveredProof(t *testing.T) {
	for _, delivered := range []bool{false, true} {
		cfg := lbCfg()
		r := busyRig(t, 4, cfg)
		peers, nonce := lbQueries(t, r.pushOwn(5))
		for _, p := range peers {
			r.m.OnMessage(p, &types.LBInfo{Nonce: nonce, LoadUS: 100})
		}
		fw := pick[*types.LBForward](r.take())
		require.Len(t, fw, 1)
		mb, proxy := fw[0].m.MB, fw[0].to
		r.m.OnMessage(proxy, r.proofBy(mb, proxy, 1))
		require.Empty(t, r.take())
		if delivered {
			r.m.Committed(blockOf(2, 1, types.MBRef{ID: mb.ID}))
			r.take()
		}
		r.advance(recoverAfter * cfg.ForwardTimeout)
		proofs := pick[*types.Proof](r.take())
		if delivered {
			require.Empty(t, proofs, "delivered: nothing to recover")
		} else {
			require.Len(t, proofs, 1)
			require.Equal(t, types.NodeID(0), proofs[0].to)
		}
	}
}

// docs/spec.md §3.4: "The proxy runs the PAB push phase for that microblock (acks come to the proxy)
// and broadcasts the proof".
func TestDLBProxyPushesAndBroadcastsProof(t *testing.T) {
	cfg := lbCfg()
	r := newRig(t, 3, 4, cfg)
	mb := mbOf(1, 0, txs('x', 0, 6))

	// Load queries are answered with the estimate.
	r.m.OnMessage(1, &types.LBQuery{Nonce: 7})
	info := pick[*types.LBInfo](r.take())
	require.Len(t, info, 1)
	require.Equal(t, types.NodeID(1), info[0].to)
	require.Equal(t, types.LBInfo{Nonce: 7}, *info[0].m)

	// Only the creator may hand over its microblock.
	r.m.OnMessage(2, &types.LBForward{MB: mb})
	require.Empty(t, r.take())

	r.m.OnMessage(1, &types.LBForward{MB: mb})
	out := r.take()
	require.Len(t, out, 1)
	mbs := pick[*types.MicroBlock](out)
	require.Len(t, mbs, 1)
	require.Equal(t, types.NodeID(0), mbs[0].to, "the proxy pushes to everyone")
	require.Equal(t, types.NodeID(3), mbs[0].m.Sender, "as the sender: acks come to the proxy")
	require.Equal(t, types.NodeID(1), mbs[0].m.Creator)
	require.Equal(t, mb.ID, mbs[0].m.ID)
	require.Zero(t, mbs[0].m.Hops)

	r.m.OnMessage(2, r.ackBy(2, mb))
	out = r.take()
	require.Len(t, out, 1)
	proofs := pick[*types.Proof](out)
	require.Len(t, proofs, 1)
	require.Equal(t, types.NodeID(0), proofs[0].to, "the proxy broadcasts the proof, to the creator too")
	require.Equal(t, []types.NodeID{2, 3}, types.SignerIDs(proofs[0].m.Signers))
	require.NoError(t, consensus.VerifyCert(r.env.Verifier(), types.AckDigest(mb.ID, mb.View), proofs[0].m.Signers, proofs[0].m.Sigs, 2))
	require.Equal(t, []consensus.MBStable{{StableTime: 0, Proxy: true}}, eventsOf[consensus.MBStable](r.events))
}

// docs/spec.md §3.4 probing (balance.go): while busy, every ProbeEvery-th own microblock is pushed by the
// replica itself so the estimate keeps measuring it.
func TestDLBProbeEvery(t *testing.T) {
	cfg := lbCfg()
	r := busyRig(t, 7, cfg)
	rounds, pushes := 0, 0
	for i := 0; i < 20; i++ {
		out := r.pushOwn(byte(50 + i))
		if len(pick[*types.LBQuery](out)) > 0 {
			rounds++
		}
		pushes += len(pick[*types.MicroBlock](out))
	}
	require.Equal(t, 18, rounds)
	require.Equal(t, 2, pushes, "every 10th is pushed by the busy replica itself")
}

// docs/spec.md §3.4 probing: "... but no more often than keeps probes to a tenth of its uplink".
// A probe costs N-1 copies of a microblock, so counted alone (every tenth) probes took more of a
// busy replica's uplink the larger N was; paced by their uplink time they stay a tenth of it.
func TestDLBProbesTakeATenthOfTheUplink(t *testing.T) {
	cfg := lbCfg()
	r := busyRig(t, 7, cfg)
	probe := 50 * time.Millisecond // the uplink time of one microblock to the 6 peers
	r.env.Uplink.Rate = float64((cfg.MSize+MBOverhead)*6) / probe.Seconds()
	pushes := func(k int, tag byte) (n int) {
		for i := 0; i < k; i++ {
			n += len(pick[*types.MicroBlock](r.pushOwn(tag + byte(i))))
		}
		return n
	}
	require.Equal(t, 1, pushes(40, 50), "the first tenth is a probe, the next three come within 10 x 50 ms of it")
	r.advance(10 * probe)
	r.take() // the samples' lb_timeouts: no peer answered, so those microblocks went out too
	require.Equal(t, 1, pushes(10, 90), "the next tenth after 10 x 50 ms is")
}

// ---------------------------------------------------------------------------------------------
// Regressions: bugs found while writing these tests, since fixed. Each comment quotes the rule and
// says what the test checks now.

// docs/design.md §1.4: "Nothing a peer or client sends can panic a process or grow memory without bound."
// Pushed peer microblocks are charged to their creator's quota and refused once it is full.
// Microblocks sent in a FetchResponse that no proof, proposal or fetch asked for are dropped as
// unsolicited, whatever their number and epoch, so peer storage stays within the quota there too.
func TestSharedUnsolicitedFetchResponseIsBounded(t *testing.T) {
	cfg := pabCfg()
	cfg.MemSize = 160
	pushed := newRig(t, 2, 4, cfg)
	cost := mbCost(mbOf(3, 0, txs(0, 0, 10)))
	fit := pushed.m.peerRoom(3) / cost // alone, creator 3 may fill its share or memsize
	require.Positive(t, fit)
	for i := 0; i < fit+2; i++ {
		pushed.m.OnMessage(3, mbOf(3, 0, txs(byte(i), 0, 10)))
	}
	require.Equal(t, fit*cost, pushed.m.Gauges().PeerBytes)
	require.Equal(t, []consensus.MBDropped{{Reason: "full"}, {Reason: "full"}}, eventsOf[consensus.MBDropped](pushed.events))

	r := newRig(t, 2, 4, cfg)
	var junk []*types.MicroBlock
	for i := 0; i < 100; i++ {
		junk = append(junk, mbOf(3, types.View(i)*StaleViews*4, txs(byte(i), 0, 10)))
	}
	r.m.OnMessage(3, &types.FetchResponse{MBs: junk})
	require.LessOrEqual(t, r.m.Gauges().PeerBytes, r.m.peerRoom(3), "unsolicited fetched data must be bounded like pushed data")
}

// docs/spec.md §4.3: "Liveness after GST: with at most f faulty replicas, throughput recovers to > 0 and
// every accepted transaction is eventually delivered", and shared.go's StaleViews comment ("one
// whose data was garbage-collected everywhere (refused as stale)"). A peer pushes microblocks that
// are acked but never get a proof, until its quota is full. Once the view has moved more than
// StaleViews past them they can never be proposed, and SetView's periodic sweep frees them. The
// test checks that a fresh microblock from an honest creator is then acked, not dropped.
func TestSharedStalePeerMicroblocksAreFreed(t *testing.T) {
	cfg := pabCfg()
	cfg.MemSize = 160
	r := newRig(t, 2, 4, cfg)
	for i := 0; i < 20; i++ {
		r.m.OnMessage(4, mbOf(4, 0, txs(byte(i), 0, 10))) // acked, never proven
	}
	require.Greater(t, r.m.Gauges().PeerBytes+mbCost(mbOf(4, 0, txs(0, 0, 10))), r.m.peerRoom(4), "the faulty creator's room is full")
	r.take()
	r.events = nil
	v := types.View(StaleViews + 10)
	r.m.SetView(v) // the faulty creator's microblocks can never be proposed any more
	honest := mbOf(3, v, txs('h', 0, 10))
	r.m.OnMessage(3, honest)
	require.Empty(t, eventsOf[consensus.MBDropped](r.events), "stale, unprovable peer data must not crowd out fresh microblocks")
	require.Len(t, pick[*types.Ack](r.take()), 1)
}

// docs/spec.md §3.4: "forward LBForward{mb} to the least-loaded peer (the proxy) and ban it until it
// delivers". The microblock is re-forwarded after forward_timeout, so both proxies are banned;
// the second one delivers first and is unbanned. The forward is kept after the first proof, so
// when the first, merely slow proxy delivers the proof of the microblock that earned its ban, its
// ban is lifted too instead of lasting 100 × forward_timeout.
func TestDLBLateProxyIsUnbannedWhenItDelivers(t *testing.T) {
	cfg := lbCfg()
	cfg.D = 2
	r := busyRig(t, 4, cfg)
	peers, nonce := lbQueries(t, r.pushOwn(5))
	r.m.OnMessage(peers[0], &types.LBInfo{Nonce: nonce, LoadUS: 100})
	r.m.OnMessage(peers[1], &types.LBInfo{Nonce: nonce, LoadUS: 900})
	fw := pick[*types.LBForward](r.take())
	require.Len(t, fw, 1)
	first, mb := fw[0].to, fw[0].m.MB
	r.advance(cfg.ForwardTimeout)
	peers2, nonce2 := lbQueries(t, r.take())
	for _, p := range peers2 {
		r.m.OnMessage(p, &types.LBInfo{Nonce: nonce2, LoadUS: 100})
	}
	fw = pick[*types.LBForward](r.take())
	require.Len(t, fw, 1)
	second := fw[0].to
	require.Equal(t, 2, r.m.Gauges().Banned)
	r.m.OnMessage(second, r.proofBy(mb, second, 1))
	require.Equal(t, 1, r.m.Gauges().Banned)
	// The first proxy was merely slow: it delivers now.
	r.m.OnMessage(first, r.proofBy(mb, first, 1))
	require.Zero(t, r.m.Gauges().Banned, "a proxy that delivered is no longer banned")
}

// docs/spec.md §3.3: "microblock sending can be rate-limited by a token bucket (capacity, fillInterval)".
// Re-pushes after push_timeout go through the bucket like every microblock send: with capacity 1,
// the re-push due at 60 ms waits for the refill at 100 ms, so only one send goes out before it.
func TestTokenBucketAlsoLimitsRepushes(t *testing.T) {
	cfg := pabCfg()
	cfg.MSize = 16
	cfg.FillInterval, cfg.Capacity = 100*time.Millisecond, 1
	cfg.PushTimeout = 60 * time.Millisecond
	r := newRig(t, 1, 4, cfg)
	require.NoError(t, r.m.AddTxs(txs('r', 0, 1)))
	r.advance(99 * time.Millisecond) // nobody acks; the refill is due at 100 ms
	require.Len(t, pick[*types.MicroBlock](r.take()), 1, "capacity 1: one microblock send before the first refill")
}

// Storage is charged to the signed creator: a microblock claiming another creator is refused, and
// one creator's junk does not crowd out another creator's microblocks.
func TestCreatorSignatureAndQuota(t *testing.T) {
	cfg := pabCfg()
	cfg.MemSize = 160 // quota per peer: max(4×160/3, 4×msize)
	r := newRig(t, 2, 4, cfg)
	forged := types.NewMicroBlock(3, 0, txs('f', 0, 10)).Signed(crypto.NewSigner(4, crypto.DeriveKey(keySeed, 4)).Sign)
	r.m.OnMessage(4, forged)
	require.Empty(t, pick[*types.Ack](r.take()), "a forged creator gets no ack")
	require.Zero(t, r.m.Gauges().PeerBytes)
	require.Len(t, eventsOf[consensus.MBDropped](r.events), 1)

	room := r.m.peerRoom(4) // alone, creator 4 may fill its share or memsize
	for i := 0; ; i++ {
		mb := mbOf(4, 0, txs(byte(i), 0, 10))
		if r.m.Gauges().PeerBytes+mbCost(mb) > room {
			r.m.OnMessage(4, mb)
			require.Empty(t, pick[*types.Ack](r.take()), "over its quota, creator 4 gets no ack")
			break
		}
		r.m.OnMessage(4, mb)
		require.Len(t, pick[*types.Ack](r.take()), 1)
	}
	r.m.OnMessage(3, mbOf(3, 0, txs('h', 0, 10)))
	require.Len(t, pick[*types.Ack](r.take()), 1, "creator 3 still has its own room")
}

// docs/spec.md §3.7: a peer creator may hold its equal share of 4 × memsize whatever the others
// hold, and more while all peers' microblocks together hold less than memsize; peers' microblocks
// never hold more than 5 × memsize. A creator with most of the clients (a skewed load) gets room
// beyond its share — the equal split alone refused its microblocks at its proxies and peers at
// N=400 under Zipf1 — and creators that fill the room beyond leave every other creator its share.
func TestPeerRoomEqualSharesAndMemsizeBeyond(t *testing.T) {
	cfg := pabCfg()
	cfg.MemSize = 64 << 10
	r := newRig(t, 1, 9, cfg) // eight peers: equal shares of 32 KiB, 64 KiB beyond
	share := r.m.equalShare()
	require.Equal(t, 32<<10, share)
	fill := func(creator types.NodeID, tag byte) (held int) {
		for i := 0; i < 1000; i++ {
			mb := mbOf(creator, 0, txs(tag, i*10, 10))
			r.m.OnMessage(creator, mb)
			if len(pick[*types.Ack](r.take())) == 0 {
				return held
			}
			held += mbCost(mb)
			require.LessOrEqual(t, r.m.Gauges().PeerBytes, 5*cfg.MemSize, "peers' microblocks within 5 × memsize")
		}
		t.Fatalf("creator %d was never refused", creator)
		return 0
	}
	cost := mbCost(mbOf(2, 0, txs('x', 0, 10)))

	busy := fill(2, 'a')
	require.Greater(t, busy, cfg.MemSize-cost, "the busy creator holds up to memsize, twice its equal share")
	require.LessOrEqual(t, busy, cfg.MemSize)

	for c := types.NodeID(3); c <= 9; c++ {
		got := fill(c, byte('b'+c))
		require.Greater(t, got, share-cost, "creator %d still has its equal share", c)
		require.LessOrEqual(t, got, share)
	}
	require.LessOrEqual(t, r.m.Gauges().PeerBytes, 5*cfg.MemSize)
	require.Zero(t, fill(2, 'z'), "the busy creator, over its share, waits for the room beyond to drain")
}

// TestFetchPlanListsEveryReplicaOnce: a fetch plan is its first candidates, then every other
// replica but self in ID order — the whole list fetchOrder used to write out, with the tail
// written only when a fetch gets there.
func TestFetchPlanListsEveryReplicaOnce(t *testing.T) {
	p := fetchPlan{first: []types.NodeID{5, 2}, n: 7, self: 3}
	require.Equal(t, 6, p.len())
	var got []types.NodeID
	for k := range p.len() {
		got = append(got, p.at(k))
	}
	require.Equal(t, []types.NodeID{5, 2, 1, 4, 6, 7}, got)
	q := fetchPlan{first: []types.NodeID{4}, n: 4, self: 1}
	require.Nil(t, q.rest)
	require.Equal(t, types.NodeID(4), q.at(0))
	require.Nil(t, q.rest, "the tail is not written while the first candidates last")
	require.Equal(t, []types.NodeID{4, 2, 3}, []types.NodeID{q.at(0), q.at(1), q.at(2)})
}
