package mempool

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// push is the push phase of a microblock this replica sends: the acks it collects (its own
// included) until q of them make the proof.
type push struct {
	mb       *types.MicroBlock
	epoch    types.View
	start    time.Time
	acks     consensus.SigSet
	creator  types.NodeID // the creator when this replica is its proxy, else Self
	done     bool
	repushes int
}

// startPush sends mb as its sender and counts this replica's own ack.
func (s *Shared) startPush(mb *types.MicroBlock, creator types.NodeID) {
	out := mb
	if mb.Sender != s.self || mb.Hops != 0 {
		out = mb.Relay(s.self, 0)
	}
	if s.acks() {
		p := &push{mb: out, epoch: mb.View, start: s.env.Now(), creator: creator}
		s.pushes[mb.ID] = p
		p.acks.Add(s.self, s.env.Signer().Sign(types.AckDigest(mb.ID, mb.View)))
		if p.acks.Count() >= s.cfg.Q {
			s.stable(mb.ID, p)
		} else {
			s.env.SetTimer(s.cfg.PushTimeout, pushTimer{id: mb.ID})
		}
	}
	s.send(out, 0)
}

// pushTimer fires when a push is not stable after push_timeout.
type pushTimer struct{ id types.Hash }

// maxProxyRepushes bounds the re-pushes of a push run for another creator: if it cannot complete,
// the creator forwards the microblock again after forward_timeout anyway.
const maxProxyRepushes = 3

// endPush forgets a push (stable, or given up), and the proxy slot it took.
func (s *Shared) endPush(id types.Hash) {
	if p := s.pushes[id]; p != nil && p.creator != s.self {
		if s.proxying[p.creator]--; s.proxying[p.creator] <= 0 {
			delete(s.proxying, p.creator)
		}
	}
	delete(s.pushes, id)
}

// repush sends the microblock again, directly, to every replica that has not acked it: gossip may
// have missed them and a full queue may have dropped it. A microblock still waiting in the token
// bucket is not queued again.
func (s *Shared) repush(id types.Hash) {
	p := s.pushes[id]
	if p == nil || p.done {
		return
	}
	if p.creator != s.self {
		if p.repushes >= maxProxyRepushes {
			s.endPush(id)
			return
		}
		p.repushes++
	}
	if s.bucket.waiting[id] {
		s.env.SetTimer(s.cfg.PushTimeout, pushTimer{id: id})
		return
	}
	if b := s.uplinkBehind(); b > 0 {
		// The copies may still be waiting on this uplink: sending more would only queue them
		// behind. Look again once it has drained.
		s.env.SetTimer(max(b, s.cfg.PushTimeout), pushTimer{id: id})
		return
	}
	again := p.mb.Relay(s.self, uint8(min(s.cfg.R, types.MaxHops))) // no further gossip
	var to []types.NodeID
	for i := 1; i <= s.env.N(); i++ {
		if peer := types.NodeID(i); !p.acks.Has(peer) {
			to = append(to, peer)
		}
	}
	s.sendTo(again, to)
	s.env.SetTimer(s.cfg.PushTimeout, pushTimer{id: id})
}

// onMicroBlock stores a microblock from dissemination or a fetch, acks it to its sender and relays
// it when gossiping.
func (s *Shared) onMicroBlock(from types.NodeID, mb *types.MicroBlock, fetched bool) {
	if s.delivered.has(mb.ID) {
		return
	}
	e := s.mbs[mb.ID]
	if e != nil && e.mb != nil {
		if !fetched {
			s.emit(consensus.MBReceived{Bytes: mb.Bytes(), Redundant: true})
			s.ack(e, mb, from)
		}
		return
	}
	// Referenced by a proof or proposal, or being fetched: store whatever it costs.
	wanted := e != nil || s.fetches[mb.ID] != nil
	if fetched && !wanted {
		s.emit(consensus.MBDropped{Reason: "unsolicited"})
		return
	}
	if !s.admit(mb, wanted) {
		return
	}
	if e == nil {
		e = s.entry(mb.ID, mb.View)
	}
	s.store(e, mb)
	if fetched {
		delete(s.fetches, mb.ID)
		s.emit(consensus.MBFetched{})
	} else {
		s.emit(consensus.MBReceived{Bytes: mb.Bytes()})
		s.ack(e, mb, from)
		if s.cfg.Gossip && int(mb.Hops) < s.cfg.R {
			s.send(mb, from)
		}
	}
	if !s.cfg.PAB {
		s.avail.add(mb.ID) // smp: data here means proposable
	}
}

// admit decides whether to store a peer's microblock: its creator signed it, and unless a proof or
// proposal wants it, it is fresh and its creator has room (peerRoom).
func (s *Shared) admit(mb *types.MicroBlock, wanted bool) bool {
	if !s.env.Verifier().Verify(mb.Creator, mb.ID, mb.Sig) {
		s.emit(consensus.MBDropped{Reason: "bad-signature"})
		return false
	}
	if wanted {
		return true
	}
	if !fresh(mb.View, s.view) {
		s.emit(consensus.MBDropped{Reason: "stale"})
		return false
	}
	if s.byCreator[mb.Creator]+mbCost(mb) > s.peerRoom(mb.Creator) {
		s.emit(consensus.MBDropped{Reason: "full"})
		return false
	}
	return true
}

// store keeps a peer's microblock data in its entry.
func (s *Shared) store(e *mbEntry, mb *types.MicroBlock) {
	e.mb, e.epoch = mb, mb.View
	s.hold(mb)
	cost := mbCost(mb)
	s.peerBytes += cost
	s.byCreator[mb.Creator] += cost
}

// ack answers the sender of a pushed microblock: once per sender for copies that gossip relays,
// and again whenever the sender itself sends it, since a re-push means the earlier ack was lost
// (a partition, a full queue) and without it the push would never complete. The signature is
// made once per microblock.
func (s *Shared) ack(e *mbEntry, mb *types.MicroBlock, from types.NodeID) {
	if !s.acks() || mb.Sender == s.self {
		return
	}
	acked := slices.Contains(e.acked, mb.Sender)
	if acked && from != mb.Sender {
		return
	}
	if !acked {
		e.acked = append(e.acked, mb.Sender)
	}
	if e.ackSig == nil {
		e.ackSig = s.env.Signer().Sign(types.AckDigest(mb.ID, mb.View))
	}
	s.env.Send(mb.Sender, &types.Ack{MBID: mb.ID, View: mb.View, Signer: s.self, Sig: e.ackSig})
}

func (s *Shared) onAck(from types.NodeID, a *types.Ack) {
	p := s.pushes[a.MBID]
	if p == nil || p.done || a.View != p.epoch {
		return
	}
	digest := types.AckDigest(a.MBID, a.View)
	if !s.deferral.Defers(from, a.Signer) {
		if !s.env.Verifier().Verify(a.Signer, digest, a.Sig) {
			return
		}
		p.acks.Add(a.Signer, a.Sig)
	} else {
		p.acks.AddUnchecked(a.Signer, a.Sig)
	}
	if p.acks.Count() < s.cfg.Q {
		return
	}
	// Unchecked acks (BLS, each from its signer) are checked together, one pairing, when they
	// can make the proof; a bad one is dropped and its signer's acks are checked at once from then on.
	if bad := p.acks.Check(s.env.Verifier(), digest); len(bad) > 0 {
		s.deferral.Failed(bad)
		for _, id := range bad {
			s.emit(consensus.Rejected{Kind: types.KindAck, From: id, Rule: consensus.RuleSignature, Detail: fmt.Sprintf("ack of %d for microblock %v does not verify (checked with the proof's quorum)", id, a.MBID)})
		}
		if p.acks.Count() < s.cfg.Q {
			return
		}
	}
	s.stable(a.MBID, p)
}

// stable ends the push phase: the proof is formed, and its pusher broadcasts it (recovery phase),
// the creator's proxy too. A proxy used to return the proof for the creator to broadcast, which
// cost the busy creator N-1 copies of every proof it had handed off: under Zipf1 at N=100, with
// 12 KB microblocks and f+1 signatures per proof, a quarter of the busiest replica's uplink.
// The creator gets the proof with everyone else and broadcasts it again only if the microblock
// is not delivered in time (recoverTimer), so a proxy that keeps the proof from the others delays
// the microblock and no more. Without PAB a proxy returns the proof to the creator alone.
func (s *Shared) stable(id types.Hash, p *push) {
	p.done = true
	bm, sigs := p.acks.BuildFor(s.env.Verifier())
	proof := &types.Proof{MBID: id, View: p.epoch, Signers: bm, Sigs: sigs}
	st := s.env.Now().Sub(p.start)
	s.lb.observe(st)
	s.emit(consensus.MBStable{StableTime: st, Proxy: p.creator != s.self})
	s.lb.updateBusy(s.emit)
	s.endPush(id)
	switch {
	case s.cfg.PAB:
		s.env.Broadcast(proof)
	case p.creator != s.self:
		s.env.Send(p.creator, proof)
	}
	s.setProof(id, proof)
}

// setProof records a verified proof: under PAB the microblock becomes proposable.
func (s *Shared) setProof(id types.Hash, p *types.Proof) {
	if !s.cfg.PAB {
		return
	}
	e := s.entry(id, p.View)
	if e.proof != nil {
		return
	}
	e.proof, e.epoch, e.proofAt = p, p.View, s.env.Now()
	if !s.decided.has(id) {
		s.avail.add(id)
		if e.own && s.cfg.Master != 0 && s.cfg.Master != s.self {
			s.env.SetTimer(s.cfg.PushTimeout, masterTimer{id: id}) // until the master proposes it
		}
	}
	if e.mb == nil {
		s.fetch(id, s.fetchOrder(p, 0), false, 0)
	}
}

// verifyProof checks that p holds valid acks of at least Q distinct replicas on the ack digest of
// its microblock and epoch (one aggregate signature under BLS).
func (s *Shared) verifyProof(p *types.Proof) error {
	return consensus.VerifyCert(s.env.Verifier(), types.AckDigest(p.MBID, p.View), p.Signers, p.Sigs, s.cfg.Q)
}

// checkRef checks a reference r of a proposal for view v under PAB: it must carry a proof of the
// microblock it names, whose epoch is still fresh in v and whose acks verify (verifyProof).
func (s *Shared) checkRef(r types.MBRef, v types.View) error {
	if r.Proof == nil {
		return errors.New("no availability proof")
	}
	if r.Proof.MBID != r.ID {
		return fmt.Errorf("proof is for %v", r.Proof.MBID)
	}
	if !fresh(r.Proof.View, v) {
		return fmt.Errorf("microblock made in view %d is stale in view %d", r.Proof.View, v)
	}
	// A proof seen before costs cache lookups here: the verifier remembers valid signatures.
	if err := s.verifyProof(r.Proof); err != nil {
		s.emit(consensus.ProofChecked{OK: false})
		return fmt.Errorf("proof: %w", err)
	}
	s.emit(consensus.ProofChecked{OK: true})
	return nil
}

func (s *Shared) onProof(from types.NodeID, p *types.Proof) {
	if s.delivered.has(p.MBID) {
		return
	}
	if err := s.verifyProof(p); err != nil {
		s.emit(consensus.ProofChecked{OK: false})
		return
	}
	s.emit(consensus.ProofChecked{OK: true})
	if s.lb.delivered(p.MBID, from) && s.cfg.PAB {
		// A proxy finished the push phase of our microblock and broadcast the proof: this replica
		// broadcasts it too if the microblock is not delivered by then.
		s.env.SetTimer(recoverAfter*s.cfg.ForwardTimeout, recoverTimer{proof: p})
	}
	if !fresh(p.View, s.view) {
		return
	}
	s.setProof(p.MBID, p)
}

// fetch is the recovery of a missing microblock: ask one peer at a time, the next after
// fetch_timeout. A fetch that a committed block or a verified proof needs cycles through every
// replica until the data arrives (an honest replica has it). A fetch that only a pending vote
// needs (smp) makes one round over the candidates and ends when the replica leaves that view, so
// a leader naming made-up IDs costs a bounded number of requests.
type fetch struct {
	order    fetchPlan
	next     int
	asked    bool       // a request went out (the first may wait one timeout)
	voteView types.View // > 0: only a vote in this view needs the data
}

// fetch starts (or, with now, hurries) the recovery of id from the peers in order. voteView > 0
// says only a vote in that view needs it; 0 says delivery or a verified proof does.
func (s *Shared) fetch(id types.Hash, order fetchPlan, now bool, voteView types.View) {
	f := s.fetches[id]
	if f == nil {
		if order.len() == 0 {
			return
		}
		f = &fetch{order: order, voteView: voteView}
		s.fetches[id] = f
		if !now {
			s.env.SetTimer(s.cfg.FetchTimeout, fetchTimer{id: id})
			return
		}
	} else {
		if voteView == 0 && f.voteView != 0 {
			f.voteView = 0 // needed for good now: keep asking, every replica
			f.order = order
			if !f.asked {
				s.env.SetTimer(s.cfg.FetchTimeout, fetchTimer{id: id})
			}
		}
		if !now || f.asked {
			return
		}
	}
	s.fetchNext(id)
}

// fetchNext asks the next candidate and schedules the one after.
func (s *Shared) fetchNext(id types.Hash) {
	f := s.fetches[id]
	if f == nil {
		return
	}
	if e := s.mbs[id]; (e != nil && e.mb != nil) || s.delivered.has(id) {
		delete(s.fetches, id)
		return
	}
	if f.voteView != 0 && (f.voteView < s.view || f.next >= f.order.len()) {
		delete(s.fetches, id) // the vote can no longer happen, or every candidate was asked
		return
	}
	peer := f.order.at(f.next % f.order.len())
	f.next++
	if !f.asked {
		f.asked = true
		s.emit(consensus.MBMissing{})
	}
	s.env.Send(peer, &types.FetchRequest{IDs: []types.Hash{id}})
	s.env.SetTimer(s.cfg.FetchTimeout, fetchTimer{id: id})
}

// fetchOrder lists the candidates to fetch a microblock from: the signers of proof, which the
// caller verified, in a random order; then first; then every other replica. This replica is never
// a candidate. Everybody is on the list, so a fetch ends as long as one honest replica holds the
// data, whoever named the signers.
func (s *Shared) fetchOrder(proof *types.Proof, first types.NodeID) fetchPlan {
	n := s.env.N()
	valid := func(id types.NodeID) bool { return id >= 1 && int(id) <= n && id != s.self }
	var ids []types.NodeID
	if proof != nil {
		// A bitmap lists each signer once, so only the range and self need a check; every
		// replica runs this for every proof it lacks the data of, so the list is sized once
		// (growing it by appends was 8 % of an N=1000 simulation).
		ids = make([]types.NodeID, 0, min(proof.Signers.Count(), n)+1)
		proof.Signers.Range(func(bit uint32) {
			if id := types.NodeID(bit + 1); valid(id) {
				ids = append(ids, id)
			}
		})
		s.env.Rand().Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	}
	if valid(first) && (proof == nil || !proof.Signers.Contains(types.SignerBit(first))) {
		ids = append(ids, first)
	}
	return fetchPlan{first: ids, n: n, self: s.self}
}

// fetchPlan is fetchOrder's list without its tail written out: the candidates to try first, then
// every other replica but self in ID order. Every replica holds one for each microblock it has a
// proof of and lacks, so with the tail written out they took N² IDs per replica (a fifth of an
// N=400 simulation's memory); the tail is listed only for a fetch that gets that far.
type fetchPlan struct {
	first []types.NodeID
	rest  []types.NodeID // the tail, once asked for
	n     int
	self  types.NodeID
}

// len is the number of candidates: every replica but self.
func (p *fetchPlan) len() int {
	if p.self >= 1 && int(p.self) <= p.n {
		return p.n - 1
	}
	return p.n
}

// at is the k-th candidate, k < len().
func (p *fetchPlan) at(k int) types.NodeID {
	if k < len(p.first) {
		return p.first[k]
	}
	if p.rest == nil {
		listed := make([]bool, p.n+1)
		if p.self >= 1 && int(p.self) <= p.n {
			listed[p.self] = true
		}
		for _, id := range p.first {
			listed[id] = true
		}
		for i := 1; i <= p.n; i++ {
			if !listed[i] {
				p.rest = append(p.rest, types.NodeID(i))
			}
		}
	}
	return p.rest[k-len(p.first)]
}

// maxServedIDs bounds the IDs of one fetch request that are looked at: an honest replica asks for
// one microblock at a time.
const maxServedIDs = 256

// serveFetch answers with the requested microblocks held here (among the first maxServedIDs
// asked), at most 8 MiB, within the peer's serving budget.
func (s *Shared) serveFetch(from types.NodeID, r *types.FetchRequest) {
	if !s.serve.Ready(from, s.env.Now()) {
		s.emit(consensus.Rejected{Kind: types.KindFetchRequest, From: from, Rule: consensus.RuleRate, Detail: "serving budget spent"})
		return
	}
	var out []*types.MicroBlock
	bytes := 0
	for _, id := range r.IDs[:min(len(r.IDs), maxServedIDs)] {
		mb := s.retained.get(id)
		if e := s.mbs[id]; e != nil && e.mb != nil {
			mb = e.mb
		}
		if mb == nil {
			continue
		}
		if bytes += mb.Bytes(); bytes > 8<<20 && len(out) > 0 {
			break
		}
		out = append(out, mb)
	}
	if len(out) == 0 {
		return
	}
	resp := &types.FetchResponse{MBs: out}
	s.serve.Charge(from, types.WireSize(resp), s.env.Now())
	s.env.Send(from, resp)
}

// proofWait is a vote waiting for the proofs of the microblocks a proposal references by ID: the
// proposer is asked first (it proposed them, so it holds their proofs), then one other replica
// every fetch_timeout, for as long as the vote's view lasts. A leader that names a microblock
// nobody can prove gets no vote from this replica, and so no QC; its view times out.
type proofWait struct {
	view  types.View
	ids   []types.Hash
	order fetchPlan
	next  int
}

type proofTimer struct{ block types.Hash }

// recoverTimer: broadcast the proof a proxy returned if its microblock is not delivered by then.
type recoverTimer struct{ proof *types.Proof }

// recoverAfter × forward_timeout is how long a creator waits for its forwarded microblock to be
// delivered, once the proxy's proof is in, before it broadcasts the proof itself: a proof leads
// to a proposal and a commit within a few views, and forward_timeout already covers a push and
// its acks.
const recoverAfter = 4

// recoverProof broadcasts the proof of an own forwarded microblock that is still not delivered.
func (s *Shared) recoverProof(t recoverTimer) {
	if !s.delivered.has(t.proof.MBID) {
		s.env.Broadcast(t.proof)
	}
}

// awaitProofs starts (once per block) asking for the proofs ids of block b.
func (s *Shared) awaitProofs(b *types.Block, ids []types.Hash) {
	if w := s.proofWaits[b.ID()]; w != nil {
		w.ids = ids
		return
	}
	if b.View < s.view {
		return
	}
	// An engine has one vote pending at a time: a new one ends the wait for any other block, so
	// blocks that never get a vote (an equivocating leader's) leave nothing behind.
	clear(s.proofWaits)
	w := &proofWait{view: b.View, ids: ids, order: s.fetchOrder(nil, b.Proposer)}
	s.proofWaits[b.ID()] = w
	s.emit(consensus.ProofMissing{Count: len(ids)})
	s.askProofs(b.ID())
}

// askProofs asks the next candidate for the proofs still missing, and schedules the one after.
func (s *Shared) askProofs(block types.Hash) {
	w := s.proofWaits[block]
	if w == nil {
		return
	}
	missing := w.ids[:0]
	for _, id := range w.ids {
		if e := s.mbs[id]; e == nil || e.proof == nil {
			missing = append(missing, id)
		}
	}
	w.ids = missing
	if len(missing) == 0 || w.view < s.view {
		delete(s.proofWaits, block)
		return
	}
	if w.next >= w.order.len() {
		return // every replica was asked; the entry stays until its view ends, so none is asked twice
	}
	peer := w.order.at(w.next)
	w.next++
	s.env.Send(peer, &types.ProofRequest{IDs: append([]types.Hash(nil), missing...)})
	s.env.SetTimer(s.cfg.FetchTimeout, proofTimer{block: block})
}

// serveProofs answers a ProofRequest with the verified proofs held here (among the first
// maxServedIDs asked), within the peer's serving budget.
func (s *Shared) serveProofs(from types.NodeID, r *types.ProofRequest) {
	if !s.serve.Ready(from, s.env.Now()) {
		s.emit(consensus.Rejected{Kind: types.KindProofRequest, From: from, Rule: consensus.RuleRate, Detail: "serving budget spent"})
		return
	}
	sent := 0
	for _, id := range r.IDs[:min(len(r.IDs), maxServedIDs)] {
		if e := s.mbs[id]; e != nil && e.proof != nil {
			s.env.Send(from, e.proof)
			sent += types.WireSize(e.proof)
		}
	}
	if sent > 0 {
		s.serve.Charge(from, sent, s.env.Now())
	}
}
