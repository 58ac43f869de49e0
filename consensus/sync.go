package consensus

import (
	"time"

	"github.com/stratusbft/stratus/types"
)

// SyncTimer fires when a block request went unanswered.
type SyncTimer struct {
	ID      types.Hash
	Attempt int
}

// Syncer fetches blocks a replica is missing (a parent it never received, a block certified by
// votes it saw before the proposal) and parks the blocks that wait for them. It asks two peers at
// once, the one that referred to the block and the next, then the others in turn, one per
// timeout; every other peer that refers to the block is asked at once too. So a slow Byzantine
// peer that keeps referring a lagging replica to what it misses cannot set the pace of its sync.
type Syncer struct {
	env      Env
	timeout  time.Duration
	maxPark  int
	parked   map[types.Hash][]parkedBlock // missing ID → blocks waiting for it
	parkedID map[types.Hash]bool          // IDs of the parked blocks
	slots    map[slot]types.Hash          // the parked block of each (view, proposer)
	nparked  int
	requests map[types.Hash]*syncRequest
}

type parkedBlock struct {
	block *types.Block
	from  types.NodeID
}

type syncRequest struct {
	first   types.NodeID
	attempt int
	hinted  []types.NodeID // peers that referred to the block and were asked at once
}

// NewSyncer returns a syncer that retries after timeout and parks at most maxPark blocks.
func NewSyncer(env Env, timeout time.Duration, maxPark int) *Syncer {
	return &Syncer{
		env:      env,
		timeout:  timeout,
		maxPark:  maxPark,
		parked:   make(map[types.Hash][]parkedBlock),
		parkedID: make(map[types.Hash]bool),
		slots:    make(map[slot]types.Hash),
		requests: make(map[types.Hash]*syncRequest),
	}
}

// Need requests block id, first from hint and the peer after it.
func (s *Syncer) Need(id types.Hash, hint types.NodeID) {
	if req, ok := s.requests[id]; ok {
		s.hint(id, req, hint)
		return
	}
	if len(s.requests) >= s.maxPark {
		return // bounded: further needs are re-discovered when the next block refers to them
	}
	if hint == s.env.Self() || hint == 0 {
		hint = s.env.Self()%types.NodeID(s.env.N()) + 1
	}
	req := &syncRequest{first: hint}
	s.requests[id] = req
	s.ask(id, 0)
	if second := s.peerAt(hint, 1); second != hint {
		req.hinted = append(req.hinted, second)
		s.env.Send(second, &types.BlockRequest{ID: id})
	}
}

// hint asks a peer that refers to a block being fetched at once, once per request.
func (s *Syncer) hint(id types.Hash, req *syncRequest, peer types.NodeID) {
	if peer == 0 || peer == s.env.Self() || peer == req.first || len(req.hinted) >= s.env.N() {
		return
	}
	for _, p := range req.hinted {
		if p == peer {
			return
		}
	}
	req.hinted = append(req.hinted, peer)
	s.env.Send(peer, &types.BlockRequest{ID: id})
}

// peerAt is the k-th peer after first in ID order, skipping this replica.
func (s *Syncer) peerAt(first types.NodeID, k int) types.NodeID {
	n := s.env.N()
	p := first
	for ; k > 0; k-- {
		p = p%types.NodeID(n) + 1
		if p == s.env.Self() {
			p = p%types.NodeID(n) + 1
		}
	}
	return p
}

// Arrived ends the request for a block that arrived but waits for its own parent (parked):
// asking for it again would be useless; the blocks waiting for it stay parked.
func (s *Syncer) Arrived(id types.Hash) { delete(s.requests, id) }

// IsParked reports whether block id is parked.
func (s *Syncer) IsParked(id types.Hash) bool { return s.parkedID[id] }

// ParkedSlot returns the ID of the block parked for proposer's view v, if any.
func (s *Syncer) ParkedSlot(v types.View, proposer types.NodeID) (types.Hash, bool) {
	id, ok := s.slots[slot{v, proposer}]
	return id, ok
}

// unpark forgets a parked block's ID and slot.
func (s *Syncer) unpark(b *types.Block) {
	delete(s.parkedID, b.ID())
	if k := (slot{b.View, b.Proposer}); s.slots[k] == b.ID() {
		delete(s.slots, k)
	}
}

func (s *Syncer) ask(id types.Hash, attempt int) {
	req := s.requests[id]
	n := s.env.N()
	peer := types.NodeID((int(req.first)-1+attempt)%n + 1)
	if peer == s.env.Self() {
		attempt++
		peer = types.NodeID((int(req.first)-1+attempt)%n + 1)
	}
	req.attempt = attempt
	if peer != s.env.Self() {
		s.env.Send(peer, &types.BlockRequest{ID: id})
	}
	s.env.SetTimer(s.timeout, SyncTimer{ID: id, Attempt: attempt})
}

// Park stores b until its parent arrives and requests the parent. It reports false when the
// parking space is full (b is dropped; a later reference fetches it again).
func (s *Syncer) Park(b *types.Block, from types.NodeID) bool {
	for _, p := range s.parked[b.Parent] {
		if p.block.ID() == b.ID() {
			return true
		}
	}
	if s.nparked >= s.maxPark {
		return false
	}
	s.parked[b.Parent] = append(s.parked[b.Parent], parkedBlock{b, from})
	s.parkedID[b.ID()] = true
	if k := (slot{b.View, b.Proposer}); s.slots[k] == (types.Hash{}) {
		s.slots[k] = b.ID()
	}
	s.nparked++
	s.Need(b.Parent, from)
	return true
}

// Resolved ends the request for id and returns the blocks that waited for it, in arrival order.
func (s *Syncer) Resolved(id types.Hash) []*types.Block {
	delete(s.requests, id)
	ps := s.parked[id]
	delete(s.parked, id)
	s.nparked -= len(ps)
	out := make([]*types.Block, len(ps))
	for i, p := range ps {
		out[i] = p.block
		s.unpark(p.block)
	}
	return out
}

// Pending reports whether id is being fetched.
func (s *Syncer) Pending(id types.Hash) bool { _, ok := s.requests[id]; return ok }

// OnTimer asks the next peer, for about two rounds over all peers, then gives up on the block and
// drops what waited for it; it reports whether it gave up, and the blocks it dropped.
func (s *Syncer) OnTimer(t SyncTimer) (gaveUp bool, dropped []*types.Block) {
	req := s.requests[t.ID]
	if req == nil || req.attempt != t.Attempt {
		return false, nil
	}
	if t.Attempt+1 >= 2*s.env.N() {
		return true, s.Resolved(t.ID)
	}
	s.ask(t.ID, t.Attempt+1)
	return false, nil
}

// Forget drops requests and parked blocks at or below a committed height that can no longer matter.
func (s *Syncer) Forget(keep func(b *types.Block) bool) {
	for id, ps := range s.parked {
		kept := ps[:0]
		for _, p := range ps {
			if keep(p.block) {
				kept = append(kept, p)
			} else {
				s.nparked--
				s.unpark(p.block)
			}
		}
		if len(kept) == 0 {
			delete(s.parked, id)
			delete(s.requests, id)
		} else {
			s.parked[id] = kept
		}
	}
}
