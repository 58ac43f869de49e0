package byzantine

import (
	"fmt"

	"github.com/kelindar/bitmap"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// silence: a replica that crashed for good.
type silence struct{ honest }

func (silence) outbound(*Adversary, types.NodeID, types.Message) []out { return nil }
func (silence) inbound(*Adversary, types.NodeID, types.Message) bool   { return false }

// slow: everything leaves Slow late.
type slow struct{ honest }

func (slow) outbound(a *Adversary, to types.NodeID, m types.Message) []out {
	return []out{{to: to, m: m, delay: a.p.Slow}}
}

// fork: the leader builds its proposal on an older block than the latest certified one, which
// orphans it: in even views on the grandparent of its honest proposal (what honest replicas lock
// on: only a TC can justify it), in odd views three blocks further back, behind every lock (honest
// replicas refuse it as unsafe).
type fork struct{ honest }

func (fork) outbound(a *Adversary, to types.NodeID, m types.Message) []out {
	b, own := a.ownProposal(m)
	if !own {
		return []out{{to: to, m: m}}
	}
	target := a.blocks[b.Parent] // the latest certified block, which the fork orphans
	for back := 1 + 2*int(b.View%2); back > 0 && target != nil; back-- {
		target = a.blocks[target.Parent]
	}
	if target == nil {
		return []out{{to: to, m: m}}
	}
	cert := a.certOf(target)
	if cert == nil {
		return []out{{to: to, m: m}}
	}
	forked := a.resign(b, func(c *types.Block) {
		c.Parent, c.Height, c.QC = target.ID(), target.Height+1, cert
	})
	a.remember(forked)
	return []out{{to: to, m: forked}}
}

// certOf finds a QC of b among the remembered blocks (a child carries it).
func (a *Adversary) certOf(b *types.Block) *types.QC {
	if b.Height == 0 {
		return types.GenesisQC()
	}
	for _, c := range a.blocks {
		if c.Parent == b.ID() && c.QC != nil && c.QC.BlockID == b.ID() {
			return c.QC
		}
	}
	return nil
}

// equivocate: the leader sends conflicting proposals of its view. With one copy, half the replicas
// (by ID) get the honest proposal and the others a conflicting one; with more, every replica
// gets that many conflicting proposals (the flooding variant).
type equivocate struct {
	honest
	copies int
}

func (e equivocate) outbound(a *Adversary, to types.NodeID, m types.Message) []out {
	b, own := a.ownProposal(m)
	if !own || to != 0 {
		return []out{{to: to, m: m}}
	}
	peers := a.others()
	if e.copies == 1 {
		alt := a.conflicting(b, 0)
		var outs []out
		for i, p := range peers {
			if i < len(peers)/2 {
				outs = append(outs, out{to: p, m: b})
			} else {
				outs = append(outs, out{to: p, m: alt})
			}
		}
		return outs
	}
	alts := make([]*types.Block, e.copies)
	for i := range alts {
		alts[i] = a.conflicting(b, i)
	}
	var outs []out
	for _, p := range peers {
		first := a.rng.Intn(len(alts))
		for i := range alts {
			outs = append(outs, out{to: p, m: alts[(first+i)%len(alts)]})
		}
	}
	return outs
}

// conflicting returns the i-th block that conflicts with b: same view, parent and certificates,
// another payload.
func (a *Adversary) conflicting(b *types.Block, i int) *types.Block {
	return a.resign(b, func(c *types.Block) {
		p := &types.Payload{}
		if a.p.MemType == config.MemNative {
			p.Txs = append(p.Txs, b.Payload.Txs[:len(b.Payload.Txs)/2]...)
			p.Txs = append(p.Txs, types.NewTx([]byte(fmt.Sprintf("equivocation %d/%d/%d", a.p.Self, b.View, i))))
		} else {
			// Half the references (a valid proposal of its own), made distinct by a made-up
			// one when that is not enough.
			p.Refs = append(p.Refs, b.Payload.Refs[:len(b.Payload.Refs)/2]...)
			if i > 0 || len(p.Refs) == len(b.Payload.Refs) {
				p.Refs = append(p.Refs, types.MBRef{ID: a.junkHash()})
			}
		}
		c.Payload = p
	})
}

// doubleVote: every vote goes out with a second one for another block of the same view: one the
// replica saw, or a made-up one.
type doubleVote struct{ honest }

func (doubleVote) outbound(a *Adversary, to types.NodeID, m types.Message) []out {
	v, ok := m.(*types.Vote)
	if !ok || v.Voter != a.p.Self {
		return []out{{to: to, m: m}}
	}
	other := a.junkHash()
	for _, b := range a.blocksOfView(v.View) {
		if b.ID() != v.BlockID {
			other = b.ID()
			break
		}
	}
	second := &types.Vote{View: v.View, BlockID: other, Voter: a.p.Self, Sig: a.sign(types.VoteDigest(v.View, other))}
	return []out{{to: to, m: second}, {to: to, m: v}}
}

// badSig sends its votes, acks and timeouts with a signature over another digest: well formed (it
// decodes, as a pre-check wants) but not valid. Under BLS the replicas count these unchecked and
// check a quorum as one aggregate, so each one makes that check fail and fall back to checking
// the signatures one by one; the replica must then drop it and check this sender's signatures at
// once from then on.
type badSig struct{ honest }

func (badSig) outbound(a *Adversary, to types.NodeID, m types.Message) []out {
	junk := a.sign(a.junkHash())
	switch m := m.(type) {
	case *types.Vote:
		if m.Voter == a.p.Self {
			c := *m
			c.Sig = junk
			return []out{{to: to, m: &c}}
		}
	case *types.Ack:
		if m.Signer == a.p.Self {
			c := *m
			c.Sig = junk
			return []out{{to: to, m: &c}}
		}
	case *types.Timeout:
		if m.Sender == a.p.Self {
			c := *m
			c.Sig = junk
			return []out{{to: to, m: &c}}
		}
	}
	return []out{{to: to, m: m}}
}

// missing withholds the replica's own microblocks (the paper's Byzantine senders): under smp they
// go to the leaders of the current and the next view only (another replica than itself must be
// able to propose them), under PAB to the q-1 lowest other IDs (with its own ack that makes a
// proof). It serves them to nobody who asks.
type missing struct{ honest }

func (missing) outbound(a *Adversary, to types.NodeID, m types.Message) []out {
	switch m := m.(type) {
	case *types.MicroBlock:
		if m.Creator != a.p.Self {
			break
		}
		var allowed []types.NodeID
		if a.p.MemType == config.MemStratus {
			allowed = a.others()[:max(0, min(a.p.Q-1, a.p.N-1))]
		} else {
			v := max(a.view, 1)
			allowed = []types.NodeID{a.p.Leaders.Leader(v), a.p.Leaders.Leader(v + 1)}
		}
		var outs []out
		for i, p := range allowed {
			if p != a.p.Self && (to == 0 || to == p) && (i == 0 || p != allowed[0]) {
				outs = append(outs, out{to: p, m: m})
			}
		}
		return outs
	case *types.FetchResponse:
		var kept []*types.MicroBlock
		for _, mb := range m.MBs {
			if mb.Creator != a.p.Self {
				kept = append(kept, mb)
			}
		}
		if len(kept) == 0 {
			return nil
		}
		return []out{{to: to, m: &types.FetchResponse{MBs: kept}}}
	}
	return []out{{to: to, m: m}}
}

// badProof: as leader, proposals whose references carry a bad availability proof, a different
// flaw every view: an invalid signature, no proof (by reference: a reference nobody can prove),
// the proof of another microblock, a proof its signer count cannot reach q, and (the defect it found) the honest proposal to everyone but one
// replica, which gets a copy whose proofs name only this replica. It keeps the proofs of its own
// microblocks to itself, so that only it proposes them. Without proofs (smp), made-up
// references; with a native mempool, a duplicated transaction. It also relays every block of
// another proposer with its proofs swapped, keeping the signature.
type badProof struct{ honest }

func (badProof) outbound(a *Adversary, to types.NodeID, m types.Message) []out {
	switch m := m.(type) {
	case *types.MicroBlock:
		if m.Creator == a.p.Self {
			a.own[m.ID] = true
		}
	case *types.Proof:
		if a.own[m.MBID] {
			return nil
		}
	case *types.Block:
		if m.Proposer != a.p.Self {
			return []out{{to: to, m: a.tamperedCopy(m)}}
		}
		if a.p.MemType == config.MemStratus && m.View%5 == 4 && to == 0 {
			peers := a.others()
			victim := peers[int(m.View/5)%len(peers)]
			outs := []out{{to: victim, m: a.withSoleProofs(m)}}
			for _, p := range peers {
				if p != victim {
					outs = append(outs, out{to: p, m: m})
				}
			}
			return outs
		}
		return []out{{to: to, m: a.withBadProofs(m, int(m.View%4))}}
	case *types.BlockResponse:
		if m.Block.Proposer != a.p.Self {
			return []out{{to: to, m: &types.BlockResponse{Block: a.tamperedCopy(m.Block)}}}
		}
	}
	return []out{{to: to, m: m}}
}

// withBadProofs returns b's payload made invalid in the given way, re-signed.
func (a *Adversary) withBadProofs(b *types.Block, how int) *types.Block {
	return a.resign(b, func(c *types.Block) {
		p := &types.Payload{}
		switch {
		case a.p.MemType == config.MemNative:
			p.Txs = append(p.Txs, b.Payload.Txs...)
			dup := types.NewTx([]byte(fmt.Sprintf("duplicate %d/%d", a.p.Self, b.View)))
			p.Txs = append(p.Txs, dup, dup)
		case a.p.MemType == config.MemSMP:
			p.Refs = append(p.Refs, b.Payload.Refs...)
			p.Refs = append(p.Refs, types.MBRef{ID: a.junkHash()}, types.MBRef{ID: a.junkHash()})
		default:
			p.Refs = append(p.Refs, b.Payload.Refs...)
			if len(p.Refs) == 0 {
				id := a.junkHash()
				p.Refs = append(p.Refs, types.MBRef{ID: id, Proof: a.soleProof(id, b.View)})
				break
			}
			r := p.Refs[0]
			if r.Proof == nil {
				// Proofs by reference: the honest proposal carries none.
				switch how {
				case 0: // an inline proof whose signature does not verify
					bad := a.soleProof(r.ID, b.View)
					if len(bad.Sigs[0]) == types.BLSSigSize {
						// BLS: its own signature as the "aggregate" of every replica
						// (a non-subset aggregate).
						for _, id := range a.others() {
							bad.Signers.Set(types.SignerBit(id))
						}
					} else {
						bad.Sigs[0][7] ^= 0xff
					}
					p.Refs[0].Proof = bad
				case 1: // a reference nobody can prove
					p.Refs = append(p.Refs, types.MBRef{ID: a.junkHash()})
				case 2: // the proof of another microblock
					p.Refs[0].Proof = a.soleProof(a.junkHash(), b.View)
				default: // a proof signed by this replica alone
					p.Refs[0].Proof = a.soleProof(r.ID, b.View)
				}
				break
			}
			switch how {
			case 0: // a signature that does not verify
				bad := *r.Proof
				bad.Sigs = append([][]byte{}, r.Proof.Sigs...)
				bad.Sigs[0] = append([]byte{}, bad.Sigs[0]...)
				bad.Sigs[0][7] ^= 0xff
				p.Refs[0].Proof = &bad
			case 1: // no proof
				p.Refs[0].Proof = nil
			case 2: // the proof of another microblock
				other := a.junkHash()
				p.Refs[0].Proof = &types.Proof{MBID: other, View: r.Proof.View, Signers: r.Proof.Signers, Sigs: r.Proof.Sigs}
			default: // a proof signed by this replica alone
				p.Refs[0].Proof = a.soleProof(r.ID, r.Proof.View)
			}
		}
		c.Payload = p
	})
}

// withSoleProofs returns b with every proof replaced by one this replica signed alone, re-signed:
// a replica that kept it would find only this replica named as holding the data.
func (a *Adversary) withSoleProofs(b *types.Block) *types.Block {
	if len(b.Payload.Refs) == 0 {
		return a.withBadProofs(b, 3)
	}
	return a.resign(b, func(c *types.Block) {
		p := &types.Payload{Refs: make([]types.MBRef, len(b.Payload.Refs))}
		for i, r := range b.Payload.Refs {
			epoch := b.View
			if r.Proof != nil {
				epoch = r.Proof.View
			}
			p.Refs[i] = types.MBRef{ID: r.ID, Proof: a.soleProof(r.ID, epoch)}
		}
		c.Payload = p
	})
}

// soleProof is a well-formed proof of id signed by this replica only: fewer than q signers.
func (a *Adversary) soleProof(id types.Hash, epoch types.View) *types.Proof {
	var bm bitmap.Bitmap
	bm.Set(types.SignerBit(a.p.Self))
	return &types.Proof{MBID: id, View: epoch, Signers: bm, Sigs: [][]byte{a.sign(types.AckDigest(id, epoch))}}
}

// tamperedCopy returns another proposer's block with its proofs reversed (or, without proofs, a
// payload reference dropped), keeping its ID-less fields and its signature.
func (a *Adversary) tamperedCopy(b *types.Block) *types.Block {
	refs := b.Payload.Refs
	if len(refs) == 0 {
		return b
	}
	p := &types.Payload{Refs: make([]types.MBRef, len(refs))}
	for i, r := range refs {
		p.Refs[i] = types.MBRef{ID: r.ID, Proof: refs[len(refs)-1-i].Proof}
	}
	if len(refs) == 1 {
		p.Refs[0].Proof = a.soleProof(refs[0].ID, b.View)
	}
	return &types.Block{View: b.View, Height: b.Height, Parent: b.Parent, QC: b.QC, TC: b.TC, Payload: p, Proposer: b.Proposer, Sig: b.Sig}
}

// censor: as a load-balancing proxy, it reports an idle load to attract microblocks and drops
// them.
type censor struct{ honest }

func (censor) outbound(_ *Adversary, to types.NodeID, m types.Message) []out {
	if info, ok := m.(*types.LBInfo); ok {
		return []out{{to: to, m: &types.LBInfo{Nonce: info.Nonce}}}
	}
	return []out{{to: to, m: m}}
}

func (censor) inbound(_ *Adversary, _ types.NodeID, m types.Message) bool {
	_, fw := m.(*types.LBForward)
	return !fw
}

// flood: honest, plus a burst of junk every FloodEvery: signed votes and timeouts for views far
// ahead, requests for made-up blocks and microblocks, fetch requests of the maximum size for real
// microblocks, proofs of made-up microblocks, state requests, and replays of old messages.
type flood struct {
	honest
	seen   []types.Message // recent messages received, for replays
	mbIDs  []types.Hash    // microblock IDs seen, for oversized fetches
	nextIn int
}

const floodKeep = 256

func (f *flood) start(a *Adversary) { a.inner.SetTimer(a.p.FloodEvery, tickTimer{}) }

func (f *flood) inbound(_ *Adversary, _ types.NodeID, m types.Message) bool {
	if len(f.seen) < floodKeep {
		f.seen = append(f.seen, m)
	} else {
		f.seen[f.nextIn%floodKeep] = m
		f.nextIn++
	}
	var id types.Hash
	switch m := m.(type) {
	case *types.MicroBlock:
		id = m.ID
	case *types.Proof:
		id = m.MBID
	default:
		return true
	}
	if len(f.mbIDs) < types.MaxFetch {
		f.mbIDs = append(f.mbIDs, id)
	} else {
		f.mbIDs[(int(id[0])<<8|int(id[1]))%len(f.mbIDs)] = id
	}
	return true
}

func (f *flood) onTimer(a *Adversary, t consensus.Timer) {
	if _, ok := t.(tickTimer); !ok {
		return
	}
	a.inner.SetTimer(a.p.FloodEvery, tickTimer{})
	peers := a.others()
	to := peers[a.rng.Intn(len(peers))]
	far := a.view + types.View(200+a.rng.Intn(5000))
	junk := a.junkHash()
	a.inner.Broadcast(&types.Vote{View: far, BlockID: junk, Voter: a.p.Self, Sig: a.sign(types.VoteDigest(far, junk))})
	a.inner.Broadcast(&types.Timeout{View: far, HighQC: types.GenesisQC(), Sender: a.p.Self, Sig: a.sign(types.TimeoutDigest(far))})
	a.inner.Send(to, &types.BlockRequest{ID: a.junkHash()})
	ids := make([]types.Hash, types.MaxFetch)
	for i := range ids {
		if len(f.mbIDs) > 0 && i%2 == 0 {
			ids[i] = f.mbIDs[a.rng.Intn(len(f.mbIDs))]
		} else {
			ids[i] = a.junkHash()
		}
	}
	a.inner.Send(to, &types.FetchRequest{IDs: ids})
	a.inner.Broadcast(a.soleProof(a.junkHash(), max(a.view, 1)))
	a.inner.Send(to, &types.StateRequest{})
	a.inner.Send(to, &types.LBQuery{Nonce: a.rng.Uint64()})
	for i := 0; i < 4 && len(f.seen) > 0; i++ {
		a.inner.Send(peers[a.rng.Intn(len(peers))], f.seen[a.rng.Intn(len(f.seen))])
	}
}
