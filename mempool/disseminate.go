package mempool

import (
	"time"

	"github.com/stratusbft/stratus/internal/fifo"
	"github.com/stratusbft/stratus/types"
)

// forwardNext decides whether the next own microblock goes to a proxy: load balancing is on and
// this replica is busy or pressed (then all but the probes, balancer.shouldForward).
func (s *Shared) forwardNext() bool {
	return s.cfg.LoadBalance && s.lb.shouldForward(s.env.Now(), s.probeCost())
}

// probeCost is the uplink time of pushing a full microblock to every peer, 0 when the uplink's
// rate is unknown.
func (s *Shared) probeCost() time.Duration {
	rate := s.env.UplinkRate()
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(s.cfg.MSize+MBOverhead) * float64(s.pushCopies()) / rate * float64(time.Second))
}

// pushCopies is how many copies of a microblock this replica's push sends: one to every peer, or
// fanout when gossiping.
func (s *Shared) pushCopies() int {
	if s.cfg.Gossip {
		return min(s.env.N()-1, s.cfg.Fanout)
	}
	return s.env.N() - 1
}

// disseminate sends a new own microblock: forwarded to a proxy (forwardNext), else pushed by this
// replica.
func (s *Shared) disseminate(mb *types.MicroBlock, forward bool) {
	if !s.cfg.PAB {
		s.avail.add(mb.ID) // smp: the creator holds the data, so it is proposable at once
		if s.cfg.Master != 0 && s.cfg.Master != s.self {
			s.env.SetTimer(s.cfg.PushTimeout, masterTimer{id: mb.ID})
		}
	}
	if forward {
		s.startForward(mb)
		return
	}
	s.startPush(mb, s.self)
}

// masterTimer fires when an own microblock (smp), or its proof (PAB), may not have reached the
// static leader.
type masterTimer struct {
	id      types.Hash
	attempt int
}

// maxRepushBackoff caps the doubling of the interval between re-pushes to the master.
const maxRepushBackoff = 6

// repushToMaster sends an own smp microblock to the static leader again while it is undecided.
// smp has no acks, so the creator cannot tell whether the master stored it or dropped it over
// the creator's quota; without this, a dropped microblock would wait for the stale re-issue,
// tens of thousands of views later. Under PAB it sends the microblock's proof instead: the proof
// is broadcast once, when it forms, and a master that missed it (a lost message, a partition, a
// restart, which gives back microblocks without their proofs) never asks for it, as it votes on
// no one else's proposal. A microblock the replica saw in a live proposal waits.
func (s *Shared) repushToMaster(t masterTimer) {
	e := s.mbs[t.id]
	if e == nil || !e.own || e.mb == nil || s.decided.has(t.id) {
		return
	}
	switch {
	case e.proposed:
	case s.cfg.PAB:
		if e.proof != nil {
			s.env.Send(s.cfg.Master, e.proof)
		}
	default:
		s.sendTo(e.mb, []types.NodeID{s.cfg.Master})
	}
	next := t.attempt + 1
	s.env.SetTimer(s.cfg.PushTimeout<<min(next, maxRepushBackoff), masterTimer{id: t.id, attempt: next})
}

// tokenBucket limits microblock sends: each send takes a token; a token comes back every
// fillInterval, up to capacity. Sends without a token wait in order.
type tokenBucket struct {
	tokens  int
	queue   fifo.Queue[sendJob]
	armed   bool
	waiting map[types.Hash]bool // microblocks with a job in the queue
}

type sendJob struct {
	mb   *types.MicroBlock
	from types.NodeID   // gossip relay: do not send back
	to   []types.NodeID // explicit recipients (re-pushes); nil: broadcast or gossip
}

// send disseminates mb: to everyone, or when gossiping to fanout random peers with one more hop.
// from is the peer it came from (0 for this replica's own pushes).
func (s *Shared) send(mb *types.MicroBlock, from types.NodeID) {
	s.submit(sendJob{mb: mb, from: from})
}

// sendTo sends mb to the given replicas, through the token bucket like every microblock send.
func (s *Shared) sendTo(mb *types.MicroBlock, to []types.NodeID) {
	if len(to) > 0 {
		s.submit(sendJob{mb: mb, to: to})
	}
}

func (s *Shared) submit(j sendJob) {
	if s.cfg.FillInterval > 0 {
		if s.bucket.tokens == 0 {
			s.bucket.queue.Push(j)
			if s.bucket.waiting == nil {
				s.bucket.waiting = make(map[types.Hash]bool)
			}
			s.bucket.waiting[j.mb.ID] = true
			s.armRefill()
			return
		}
		s.bucket.tokens--
		s.armRefill()
	}
	s.transmit(j)
}

func (s *Shared) transmit(j sendJob) {
	mb, from := j.mb, j.from
	if j.to != nil {
		for _, p := range j.to {
			s.env.Send(p, mb)
		}
		return
	}
	if !s.cfg.Gossip {
		s.env.Broadcast(mb)
		return
	}
	out := mb.Relay(mb.Sender, mb.Hops+1)
	for _, p := range s.gossipPeers(mb, from) {
		s.env.Send(p, out)
	}
}

// gossipPeers picks fanout random peers other than this replica, the creator and the peer the
// microblock came from.
func (s *Shared) gossipPeers(mb *types.MicroBlock, from types.NodeID) []types.NodeID {
	var cand []types.NodeID
	for i := 1; i <= s.env.N(); i++ {
		id := types.NodeID(i)
		if id != s.self && id != from && id != mb.Creator {
			cand = append(cand, id)
		}
	}
	rng := s.env.Rand()
	rng.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	if len(cand) > s.cfg.Fanout {
		cand = cand[:s.cfg.Fanout]
	}
	return cand
}

func (s *Shared) armRefill() {
	if !s.bucket.armed && (s.bucket.tokens < s.cfg.Capacity || s.bucket.queue.Len() > 0) {
		s.bucket.armed = true
		s.env.SetTimer(s.cfg.FillInterval, refillTimer{})
	}
}

// refill adds a token and sends what waited for one.
func (s *Shared) refill() {
	s.bucket.armed = false
	if s.bucket.tokens < s.cfg.Capacity {
		s.bucket.tokens++
	}
	for s.bucket.tokens > 0 && s.bucket.queue.Len() > 0 {
		j, _ := s.bucket.queue.Pop()
		delete(s.bucket.waiting, j.mb.ID)
		s.bucket.tokens--
		s.transmit(j)
	}
	s.armRefill()
}
