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
// votes it saw before the proposal) and parks the blocks that wait for them. It asks the peer that
// referred to the block first and then every other peer in turn, one per timeout.
type Syncer struct {
	env      Env
	timeout  time.Duration
	maxPark  int
	parked   map[types.Hash][]parkedBlock // missing ID → blocks waiting for it
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
}

// NewSyncer returns a syncer that retries after timeout and parks at most maxPark blocks.
func NewSyncer(env Env, timeout time.Duration, maxPark int) *Syncer {
	return &Syncer{
		env:      env,
		timeout:  timeout,
		maxPark:  maxPark,
		parked:   make(map[types.Hash][]parkedBlock),
		requests: make(map[types.Hash]*syncRequest),
	}
}

// Need requests block id, first from hint.
func (s *Syncer) Need(id types.Hash, hint types.NodeID) {
	if _, ok := s.requests[id]; ok {
		return
	}
	if len(s.requests) >= s.maxPark {
		return // bounded: further needs are re-discovered when the next block refers to them
	}
	if hint == s.env.Self() || hint == 0 {
		hint = s.env.Self()%types.NodeID(s.env.N()) + 1
	}
	s.requests[id] = &syncRequest{first: hint}
	s.ask(id, 0)
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
	}
	return out
}

// Pending reports whether id is being fetched.
func (s *Syncer) Pending(id types.Hash) bool { _, ok := s.requests[id]; return ok }

// OnTimer asks the next peer, for about two rounds over all peers, then gives up on the block and
// drops what waited for it; it reports whether it gave up.
func (s *Syncer) OnTimer(t SyncTimer) bool {
	req := s.requests[t.ID]
	if req == nil || req.attempt != t.Attempt {
		return false
	}
	if t.Attempt+1 >= 2*s.env.N() {
		s.Resolved(t.ID)
		return true
	}
	s.ask(t.ID, t.Attempt+1)
	return false
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
