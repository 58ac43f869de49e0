package mempool

import (
	"math"
	"sort"
	"time"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// balancer is the state of distributed load balancing (paper Algorithm 4): the stable-time
// estimator, the samples of a busy replica, its forwarded microblocks and the ban list.
type balancer struct {
	cfg    SharedConfig
	window []time.Duration // the latest stable times, a ring
	next   int
	load   time.Duration // the configured percentile of the window
	busy   bool
	// pressedUntil: backpressure refused a submission, so this replica is busy until then
	// whatever its estimate says (press).
	pressedUntil time.Time
	own          uint64    // own microblocks created while busy, for probing
	nextProbe    time.Time // no probe before then: probes take at most 1/ProbeEvery of the uplink
	nonce        uint64
	samples      map[uint64]*sample
	forwards     map[types.Hash]*forward
	banned       map[types.NodeID]ban // proxy → its ban
}

// ban keeps a proxy out until it delivers the proof of the microblock that earned the ban, or
// until the ban expires. Only that proof lifts it: a proxy that dropped one microblock cannot
// come back by echoing the proof of another.
type ban struct {
	until time.Time
	mb    types.Hash
}

// banFor is how long a proxy that did not deliver stays banned unless it delivers a proof first: a
// Byzantine proxy is avoided for long, while an honest one that was merely slow comes back.
func (b *balancer) banFor() time.Duration { return 100 * b.cfg.ForwardTimeout }

func (b *balancer) isBanned(id types.NodeID, now time.Time) bool {
	bn, ok := b.banned[id]
	if ok && !now.Before(bn.until) {
		delete(b.banned, id)
		return false
	}
	return ok
}

type sample struct {
	mb      *types.MicroBlock
	asked   []types.NodeID
	answers map[types.NodeID]*types.LBInfo
}

type forward struct {
	mb      *types.MicroBlock
	proxies []types.NodeID // every proxy tried, the latest last
	attempt int
	done    bool // a proof arrived; kept until commit so that late proxies are unbanned too
}

type (
	lbTimer      struct{ nonce uint64 }
	forwardTimer struct {
		id      types.Hash
		attempt int
	}
)

func newBalancer(cfg SharedConfig) balancer {
	return balancer{
		cfg:      cfg,
		samples:  make(map[uint64]*sample),
		forwards: make(map[types.Hash]*forward),
		banned:   make(map[types.NodeID]ban),
	}
}

// observe adds the stable time of a microblock this replica pushed.
func (b *balancer) observe(st time.Duration) {
	if b.cfg.EstimateWindow <= 0 {
		return
	}
	if len(b.window) < b.cfg.EstimateWindow {
		b.window = append(b.window, st)
	} else {
		b.window[b.next] = st
		b.next = (b.next + 1) % len(b.window)
	}
	sorted := append([]time.Duration(nil), b.window...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	rank := int(math.Ceil(b.cfg.Percentile/100*float64(len(sorted)))) - 1
	b.load = sorted[max(0, min(rank, len(sorted)-1))]
}

// updateBusy sets the busy state from the estimate: busy iff load > busy_threshold.
func (b *balancer) updateBusy(emit func(consensus.Event)) {
	if !b.cfg.LoadBalance {
		return
	}
	busy := len(b.window) > 0 && b.load > b.cfg.BusyThreshold
	if busy != b.busy {
		b.busy = busy
		emit(consensus.LoadChanged{Busy: busy, Load: b.load})
	}
}

// press records that backpressure refused a submission, wait being how long the uplink needs
// before the next microblock: this replica's uplink cannot carry what its clients send, so it is
// busy for that wait and a while after it (busy_threshold + lb_timeout + forward_timeout; every
// refusal renews it) whatever its estimate says. The estimate alone never saw the busiest
// replicas of a skewed load as busy: backpressure keeps their queues, and so their stable times,
// short (135-210 ms against a 408-ms threshold at N=100 under Zipf1), and they refused their
// clients' excess instead of forwarding it.
func (b *balancer) press(now time.Time, wait time.Duration) {
	if b.cfg.LoadBalance {
		b.pressedUntil = now.Add(wait + b.cfg.BusyThreshold + b.cfg.LBTimeout + b.cfg.ForwardTimeout)
	}
}

// isBusy: the estimate says busy, or backpressure pressed this replica lately.
func (b *balancer) isBusy(now time.Time) bool { return b.busy || now.Before(b.pressedUntil) }

// shouldForward decides for a new own microblock. While busy every ProbeEvery-th one is still
// pushed by this replica, so that the estimate keeps measuring this replica's own capacity and the
// busy state can end — but no sooner than ProbeEvery × probeCost (the uplink time of pushing one
// to every peer; 0 when the uplink's rate is unknown) after the previous probe. Counted alone,
// probes grew with N: under Zipf1 at N=200 (12 KB microblocks, 100 Mbit/s) every tenth of the
// busiest replica's microblocks, pushed to 199 peers, took more than half of its uplink, and it
// refused 62 % of its clients' transactions although proxies could carry them.
func (b *balancer) shouldForward(now time.Time, probeCost time.Duration) bool {
	if !b.isBusy(now) {
		return false
	}
	b.own++
	if b.own%uint64(b.cfg.ProbeEvery) != 0 || now.Before(b.nextProbe) {
		return true
	}
	b.nextProbe = now.Add(time.Duration(b.cfg.ProbeEvery) * probeCost)
	return false
}

// delivered records a proof of a forwarded microblock arriving from a peer; it reports whether
// the microblock was one of ours in flight. A proxy that delivers is no longer banned.
func (b *balancer) delivered(id types.Hash, from types.NodeID) bool {
	f := b.forwards[id]
	if f == nil {
		return false
	}
	for _, p := range f.proxies {
		if p == from && b.banned[from].mb == id {
			delete(b.banned, from)
		}
	}
	first := !f.done
	f.done = true
	return first
}

func (b *balancer) forget(id types.Hash) { delete(b.forwards, id) }

// startForward samples d peers that are neither this replica nor banned and asks their load.
func (s *Shared) startForward(mb *types.MicroBlock) {
	var cand []types.NodeID
	now := s.env.Now()
	for i := 1; i <= s.env.N(); i++ {
		if id := types.NodeID(i); id != s.self && !s.lb.isBanned(id, now) {
			cand = append(cand, id)
		}
	}
	if len(cand) == 0 {
		delete(s.lb.forwards, mb.ID)
		s.startPush(mb, s.self)
		return
	}
	rng := s.env.Rand()
	rng.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	if len(cand) > s.cfg.D {
		cand = cand[:s.cfg.D]
	}
	s.lb.nonce++
	sm := &sample{mb: mb, asked: cand, answers: make(map[types.NodeID]*types.LBInfo)}
	s.lb.samples[s.lb.nonce] = sm
	for _, p := range cand {
		s.env.Send(p, &types.LBQuery{Nonce: s.lb.nonce})
	}
	s.env.SetTimer(s.cfg.LBTimeout, lbTimer{nonce: s.lb.nonce})
}

// onLBQuery answers a creator's load query, and takes one forward from it while the creator
// decides and the forward travels (lb_timeout + forward_timeout): a replica proxies only what it
// was asked to.
func (s *Shared) onLBQuery(from types.NodeID, q *types.LBQuery) {
	if s.cfg.LoadBalance && from != s.self {
		s.lbGrants[from] = s.env.Now().Add(s.cfg.LBTimeout + s.cfg.ForwardTimeout)
	}
	s.env.Send(from, &types.LBInfo{Nonce: q.Nonce, LoadUS: uint64(s.lb.load / time.Microsecond), Busy: s.lb.isBusy(s.env.Now())})
}

func (s *Shared) onLBInfo(from types.NodeID, info *types.LBInfo) {
	sm := s.lb.samples[info.Nonce]
	if sm == nil {
		return
	}
	asked := false
	for _, p := range sm.asked {
		asked = asked || p == from
	}
	if !asked {
		return
	}
	sm.answers[from] = info
	if len(sm.answers) == len(sm.asked) {
		s.lbDecide(info.Nonce)
	}
}

// lbDecide forwards to the least-loaded peer that answered and is not busy; when every one that
// answered is busy, to the least loaded of them; it pushes the microblock itself only when no
// peer that is not banned answered. A busy creator pushing to N-1 peers is what load balancing is
// there to avoid: under Zipf1 at N=200 the busiest replica found all three sampled peers busy in
// 25 of 539 samples, and those fallback pushes, with its probes, kept its uplink full.
func (s *Shared) lbDecide(nonce uint64) {
	sm := s.lb.samples[nonce]
	if sm == nil {
		return
	}
	delete(s.lb.samples, nonce)
	if s.delivered.has(sm.mb.ID) {
		return
	}
	var best, bestBusy types.NodeID
	var bestLoad, bestBusyLoad uint64
	for _, p := range sm.asked { // asked order is random: ties go to a random peer
		a := sm.answers[p]
		if a == nil || s.lb.isBanned(p, s.env.Now()) {
			continue
		}
		if a.Busy {
			if bestBusy == 0 || a.LoadUS < bestBusyLoad {
				bestBusy, bestBusyLoad = p, a.LoadUS
			}
		} else if best == 0 || a.LoadUS < bestLoad {
			best, bestLoad = p, a.LoadUS
		}
	}
	if best == 0 {
		best = bestBusy
	}
	if best == 0 {
		delete(s.lb.forwards, sm.mb.ID)
		s.startPush(sm.mb, s.self)
		return
	}
	f := s.lb.forwards[sm.mb.ID]
	if f == nil {
		f = &forward{mb: sm.mb}
		s.lb.forwards[sm.mb.ID] = f
	}
	f.proxies = append(f.proxies, best)
	f.attempt++
	s.lb.banned[best] = ban{until: s.env.Now().Add(s.lb.banFor()), mb: sm.mb.ID} // until it delivers this proof
	s.env.Send(best, &types.LBForward{MB: sm.mb})
	s.env.SetTimer(s.cfg.ForwardTimeout, forwardTimer{id: sm.mb.ID, attempt: f.attempt})
	s.emit(consensus.MBForwarded{Proxy: best})
}

// forwardExpired forwards again when the proxy did not return the proof in time.
func (s *Shared) forwardExpired(t forwardTimer) {
	f := s.lb.forwards[t.id]
	if f == nil || f.done || f.attempt != t.attempt || s.delivered.has(t.id) {
		return
	}
	s.startForward(f.mb)
}

// onLBForward: this replica is the proxy of another's microblock; it runs the push phase and will
// return the proof to the creator. Only with load balancing on, only one forward per load query
// this replica answered for the creator, never for a microblock it holds already (the creator
// broadcast it, or another proxy did: pushing it again would only multiply copies), at most
// maxProxied pushes per creator at a time, and once per microblock: a creator's forwards cannot
// make this replica push (and re-push) on its behalf beyond what it asked for.
func (s *Shared) onLBForward(from types.NodeID, mb *types.MicroBlock) {
	if !s.cfg.LoadBalance || mb.Creator != from || from == s.self {
		return
	}
	until, granted := s.lbGrants[from]
	if !granted || s.env.Now().After(until) {
		delete(s.lbGrants, from)
		s.emit(consensus.Rejected{Kind: types.KindLBForward, From: from, Rule: consensus.RuleUnsolicited, Detail: "a forward without a load query answered"})
		return
	}
	delete(s.lbGrants, from)
	if s.delivered.has(mb.ID) || s.pushes[mb.ID] != nil {
		return
	}
	e := s.mbs[mb.ID]
	if e != nil && e.mb != nil {
		s.emit(consensus.Rejected{Kind: types.KindLBForward, From: from, Rule: consensus.RuleUnsolicited, Detail: "a forward of a microblock held already"})
		return
	}
	if (e != nil && e.proxied) || s.proxying[from] >= maxProxied {
		return
	}
	if !s.admit(mb, e != nil) {
		return
	}
	if e == nil {
		e = s.entry(mb.ID, mb.View)
	}
	s.store(e, mb)
	if !s.cfg.PAB {
		s.avail.add(mb.ID)
	}
	e.proxied = true
	s.proxying[from]++
	s.startPush(mb, from)
}

// maxProxied bounds the pushes this replica runs at once for one creator. An honest creator bans
// a proxy until it returns the proof, so it has at most one in flight here.
const maxProxied = 2
