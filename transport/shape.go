package transport

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratusbft/stratus/internal/fifo"
	"github.com/stratusbft/stratus/internal/minheap"
	"github.com/stratusbft/stratus/types"
)

// DefaultShapeQueueBytes bounds the bytes waiting on one lane of a shaped uplink when
// ShapeOptions.QueueBytes is not set.
const DefaultShapeQueueBytes = 64 << 20

// ShapeOptions describes one replica's outgoing links.
type ShapeOptions struct {
	N          int           // replicas 1..N (Broadcast expands into one Send per peer, so that each copy costs uplink time)
	Delay      time.Duration // one-way delay added to every message
	Jitter     time.Duration // uniform in [-Jitter, +Jitter] around Delay (a message never arrives before it left)
	Bandwidth  float64       // uplink bits per second of this replica; 0 = unlimited
	Loss       float64       // probability that an outgoing message is dropped
	Seed       int64         // randomness of jitter, loss and flaky faults
	QueueBytes int           // bound on bytes waiting on the uplink per lane (0 = DefaultShapeQueueBytes); beyond it messages are dropped and counted
}

// Validate reports every option that Shape would not take as given, naming each.
func (o ShapeOptions) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.N < 1 || o.N > types.MaxNodes {
		bad("shape: N %d is outside [1, %d]", o.N, types.MaxNodes)
	}
	if o.Delay < 0 {
		bad("shape: delay %v is negative", o.Delay)
	}
	if o.Jitter < 0 {
		bad("shape: jitter %v is negative", o.Jitter)
	}
	if math.IsNaN(o.Bandwidth) || math.IsInf(o.Bandwidth, 0) || o.Bandwidth < 0 {
		bad("shape: bandwidth %v bit/s must be 0 (unlimited) or a positive number", o.Bandwidth)
	}
	if !(o.Loss >= 0 && o.Loss < 1) {
		bad("shape: loss %v is outside [0, 1)", o.Loss)
	}
	if o.QueueBytes < 0 {
		bad("shape: queue bytes %d is negative", o.QueueBytes)
	}
	return errors.Join(errs...)
}

// sanitized returns options Shape can run with: what Validate refuses is turned off (or clamped)
// rather than trusted.
func (o ShapeOptions) sanitized() ShapeOptions {
	if o.N > types.MaxNodes {
		o.N = types.MaxNodes
	}
	o.Delay = min(max(o.Delay, 0), maxShapeDelay)
	o.Jitter = min(max(o.Jitter, 0), maxShapeDelay)
	if math.IsNaN(o.Bandwidth) || math.IsInf(o.Bandwidth, 0) || o.Bandwidth < 0 {
		o.Bandwidth = 0
	}
	if math.IsNaN(o.Loss) || o.Loss < 0 {
		o.Loss = 0
	}
	o.Loss = min(o.Loss, 1)
	if o.QueueBytes <= 0 {
		o.QueueBytes = DefaultShapeQueueBytes
	}
	return o
}

// maxShapeDelay bounds delay and jitter so that arrival times cannot overflow.
const maxShapeDelay = 24 * time.Hour

// Shaper is an Endpoint decorator that emulates one replica's uplink and its faults: a bandwidth
// limit shared by every outgoing copy, propagation delay with jitter, random loss, and faults that
// can be switched on at run time (Slow, Flaky, Drop, Isolate), each ending by itself.
//
// The uplink serializes one message at a time, size*8/Bandwidth seconds each, from two queues:
// the consensus lane is always served before the data lane, so a vote waits at most for the
// message already on the wire, never for the microblocks queued behind it. A broadcast is N-1
// copies on the uplink, which is what makes a leader that sends everything the bottleneck. After
// its serialization a message travels Delay±Jitter (plus any Slow fault) without occupying the
// uplink and is then handed to the wrapped endpoint. Without jitter each destination receives in
// the order the uplink sent.
//
// Sends never block. With nothing configured and no fault active, Send and Broadcast go straight
// to the wrapped endpoint. Received messages pass through one goroutine per lane, so that Isolate
// can discard them; the wrapped endpoint's lane stays the only buffer.
//
// A Shaper owns the wrapped endpoint: Close closes it.
type Shaper struct {
	inner   Endpoint
	sized   sizedSender // inner's send with a known wire size, if it has one
	self    types.NodeID
	opts    ShapeOptions
	shaping bool    // delay, jitter, bandwidth or loss configured
	nsPerB  float64 // uplink nanoseconds per byte; 0 = unlimited

	detour   atomic.Bool  // a fault may be active, or copies of a past one are still under way: sends take the shaped path
	isoUntil atomic.Int64 // Unix ns until which the replica is isolated; 0 = never was
	dropped  atomic.Uint64
	closed   atomic.Bool

	mu         sync.Mutex
	rng        *rand.Rand
	lanes      [types.NumLanes]fifo.Queue[shaped]
	laneBytes  [types.NumLanes]int
	onWire     bool                   // cur is being serialized
	cur        wireItem               // the message on the wire
	free       time.Time              // when the uplink finished its last message
	prop       minheap.Heap[inFlight] // serialized messages travelling to their destination
	seq        uint64
	lastAt     map[types.NodeID]time.Time // latest arrival scheduled per destination (FIFO without jitter)
	sleep      time.Time                  // when the loop wakes by itself; zero = only when woken
	delivering bool                       // the loop is handing arrived copies over (a direct send would overtake them)
	slow       struct {
		extra time.Duration
		until time.Time
	}
	flaky struct {
		p     float64
		until time.Time
	}
	drops   map[types.NodeID]time.Time
	isolate time.Time

	inbox [types.NumLanes]chan Envelope
	wake  chan struct{}
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// sizedSender is implemented by endpoints of this package that can skip recomputing a message's
// wire size.
type sizedSender interface {
	send(to types.NodeID, m types.Message, size int)
}

// shaped is one outgoing copy waiting on the uplink.
type shaped struct {
	to    types.NodeID // 0: peers unknown (N < 1), handed to inner.Broadcast
	m     types.Message
	size  int
	enq   time.Time     // when it was sent
	extra time.Duration // Slow fault in force when it was sent
}

type wireItem struct {
	shaped
	end time.Time // serialization ends
}

// Shape wraps inner. Options that Validate refuses are not trusted: negative durations count as
// 0, a bandwidth that is not a positive number means unlimited, loss is clamped to [0, 1]. With
// N < 1 the peers are unknown and a broadcast is one transmission handed to inner.Broadcast.
func Shape(inner Endpoint, opts ShapeOptions) *Shaper {
	opts = opts.sanitized()
	s := &Shaper{
		inner:   inner,
		self:    inner.Self(),
		opts:    opts,
		shaping: opts.Delay > 0 || opts.Jitter > 0 || opts.Bandwidth > 0 || opts.Loss > 0,
		rng:     rand.New(rand.NewSource(opts.Seed)),
		lastAt:  make(map[types.NodeID]time.Time),
		drops:   make(map[types.NodeID]time.Time),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	if opts.Bandwidth > 0 {
		s.nsPerB = 8e9 / opts.Bandwidth
	}
	s.sized, _ = inner.(sizedSender)
	s.wg.Add(1)
	go s.run()
	for l := range s.inbox {
		s.inbox[l] = make(chan Envelope)
		s.wg.Add(1)
		go s.pump(types.Lane(l))
	}
	return s
}

// Self is the wrapped endpoint's ID.
func (s *Shaper) Self() types.NodeID { return s.inner.Self() }

// Inbox returns the lane's receive queue: the wrapped endpoint's messages, less those that arrive
// while the replica is isolated.
func (s *Shaper) Inbox(l types.Lane) <-chan Envelope {
	if int(l) >= len(s.inbox) {
		return nil
	}
	return s.inbox[l]
}

// Refusals implements ConnRefuser when the shaped endpoint does (nil otherwise).
func (s *Shaper) Refusals() map[string]uint64 {
	if r, ok := s.inner.(ConnRefuser); ok {
		return r.Refusals()
	}
	return nil
}

// Counters are the wrapped endpoint's, with the shaper's own drops (loss, full uplink queue,
// faults, inbound messages discarded while isolated) added to Dropped.
func (s *Shaper) Counters() Counters {
	c := s.inner.Counters()
	c.Dropped += s.dropped.Load()
	return c
}

// Close stops the shaper's goroutines, discards what is still queued, and closes the wrapped
// endpoint.
func (s *Shaper) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.stop)
	})
	s.wg.Wait()
	return s.inner.Close()
}

// Send queues m for one peer. It never blocks.
func (s *Shaper) Send(to types.NodeID, m types.Message) {
	if !s.shaping && !s.detour.Load() {
		s.inner.Send(to, m)
		return
	}
	if s.peer(to) {
		s.one(to, m, types.WireSize(m))
	}
}

// send is Send with a known wire size, so that a shaper over a shaper measures a message once.
func (s *Shaper) send(to types.NodeID, m types.Message, size int) {
	if !s.shaping && !s.detour.Load() {
		s.forward(to, m, size)
		return
	}
	if s.peer(to) {
		s.one(to, m, size)
	}
}

// peer reports whether to names another replica (any ID up to types.MaxNodes when N is unknown).
func (s *Shaper) peer(to types.NodeID) bool {
	n := s.opts.N
	if n < 1 {
		n = types.MaxNodes
	}
	return to != 0 && to != s.self && int(to) <= n
}

// Broadcast queues one copy of m per peer; the copies share the uplink one after another. It
// never blocks.
func (s *Shaper) Broadcast(m types.Message) {
	if !s.shaping && !s.detour.Load() {
		s.inner.Broadcast(m)
		return
	}
	if s.closed.Load() {
		return
	}
	size := types.WireSize(m)
	now := time.Now()
	s.mu.Lock()
	if s.opts.N < 1 {
		direct := s.queue(0, m, size, now)
		s.mu.Unlock()
		if direct {
			s.deliver(0, m, size)
		}
		return
	}
	for id := 1; id <= s.opts.N; id++ {
		to := types.NodeID(id)
		if to != s.self && s.queue(to, m, size, now) {
			s.mu.Unlock()
			s.deliver(to, m, size)
			s.mu.Lock()
		}
	}
	s.mu.Unlock()
}

// one shapes a single copy.
func (s *Shaper) one(to types.NodeID, m types.Message, size int) {
	if s.closed.Load() {
		return
	}
	now := time.Now()
	s.mu.Lock()
	direct := s.queue(to, m, size, now)
	s.mu.Unlock()
	if direct {
		s.deliver(to, m, size)
	}
}

// queue drops a copy, queues it on the uplink or puts it in flight, and reports whether it is to
// be handed over at once instead, on the caller's goroutine (after releasing mu). to 0 stands for
// a broadcast to unknown peers. Caller holds mu.
func (s *Shaper) queue(to types.NodeID, m types.Message, size int, now time.Time) (direct bool) {
	if !s.admit(to, now) {
		s.dropped.Add(1)
		return false
	}
	it := shaped{to: to, m: m, size: size, enq: now, extra: s.slowExtra(now)}
	if s.nsPerB > 0 {
		l := m.Kind().Lane()
		if s.laneBytes[l] > 0 && s.laneBytes[l]+size > s.opts.QueueBytes {
			s.dropped.Add(1)
			return false
		}
		s.lanes[l].Push(it)
		s.laneBytes[l] += size
		if !s.onWire {
			s.wakeBy(now)
		}
		return false
	}
	at := s.arrival(it, now)
	if !at.After(now) && len(s.prop) == 0 && !s.delivering {
		return true // nothing to wait for and nothing ahead of it
	}
	s.schedule(it, at)
	return false
}

// admit decides whether a copy leaves at all: faults first, then random loss. Caller holds mu.
func (s *Shaper) admit(to types.NodeID, now time.Time) bool {
	if s.detour.Load() {
		s.prune(now)
		if now.Before(s.isolate) {
			return false
		}
		if until, ok := s.drops[to]; ok && now.Before(until) {
			return false
		}
		if now.Before(s.flaky.until) && s.rng.Float64() < s.flaky.p {
			return false
		}
	}
	return s.opts.Loss == 0 || s.rng.Float64() >= s.opts.Loss
}

// reachable decides whether a copy that finished its journey may still be delivered: isolation
// and a dropped link also stop what was already under way. Caller holds mu.
func (s *Shaper) reachable(to types.NodeID, now time.Time) bool {
	if !s.detour.Load() {
		return true
	}
	if now.Before(s.isolate) {
		return false
	}
	until, ok := s.drops[to]
	return !ok || !now.Before(until)
}

func (s *Shaper) slowExtra(now time.Time) time.Duration {
	if s.detour.Load() && now.Before(s.slow.until) {
		return s.slow.extra
	}
	return 0
}

// arrival is when a copy whose serialization ended at end reaches its destination. Caller holds mu.
func (s *Shaper) arrival(it shaped, end time.Time) time.Time {
	d := s.opts.Delay + it.extra
	if j := s.opts.Jitter; j > 0 {
		d += time.Duration(s.rng.Int63n(int64(2*j)+1)) - j
	}
	at := end.Add(max(d, 0))
	if s.opts.Jitter == 0 {
		if last, ok := s.lastAt[it.to]; ok && at.Before(last) {
			at = last
		}
		if at.After(end) {
			s.lastAt[it.to] = at
		}
	}
	return at
}

// schedule puts a copy in flight until at and makes sure the loop delivers it then. Caller holds mu.
func (s *Shaper) schedule(it shaped, at time.Time) {
	s.launch(it, at)
	s.wakeBy(at)
}

// launch puts a copy in flight until at. Caller holds mu.
func (s *Shaper) launch(it shaped, at time.Time) {
	s.seq++
	s.prop.Push(inFlight{at: at, seq: s.seq, to: it.to, m: it.m, size: it.size})
}

// wakeBy makes sure the loop runs no later than t. Caller holds mu.
func (s *Shaper) wakeBy(t time.Time) {
	if !s.sleep.IsZero() && !t.Before(s.sleep) {
		return
	}
	s.sleep = t
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Shaper) deliver(to types.NodeID, m types.Message, size int) {
	if to == 0 {
		s.inner.Broadcast(m)
		return
	}
	s.forward(to, m, size)
}

func (s *Shaper) forward(to types.NodeID, m types.Message, size int) {
	if s.sized != nil {
		s.sized.send(to, m, size)
		return
	}
	s.inner.Send(to, m)
}

// run moves messages from the uplink queues onto the wire and delivers them when they arrive. It
// sleeps until the next serialization ends or the next message arrives, and on waking handles
// everything due by then, so that small messages do not cost a timer each.
func (s *Shaper) run() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []inFlight
	for {
		s.mu.Lock()
		now := time.Now()
		due = s.advance(now, due[:0])
		next := s.nextEvent()
		s.sleep = next
		s.delivering = len(due) > 0
		s.mu.Unlock()
		if len(due) > 0 {
			for i := range due {
				s.deliver(due[i].to, due[i].m, due[i].size)
				due[i] = inFlight{} // let the message go
			}
			s.mu.Lock()
			s.delivering = false
			s.mu.Unlock()
		}
		var tick <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			tick = timer.C
		}
		select {
		case <-tick:
		case <-s.wake:
		case <-s.stop:
			return
		}
	}
}

// advance serializes what the uplink has finished by now, in the order it would have, and
// collects the messages that have arrived. Caller holds mu.
func (s *Shaper) advance(now time.Time, due []inFlight) []inFlight {
	for {
		if s.onWire {
			if s.cur.end.After(now) {
				break
			}
			s.onWire = false
			s.free = s.cur.end
			s.launch(s.cur.shaped, s.arrival(s.cur.shaped, s.cur.end))
			s.cur = wireItem{}
		}
		it, ok := s.next()
		if !ok {
			break
		}
		start := it.enq
		if s.free.After(start) {
			start = s.free
		}
		s.laneBytes[it.m.Kind().Lane()] -= it.size
		s.cur = wireItem{shaped: it, end: start.Add(s.txTime(it.size))}
		s.onWire = true
	}
	for len(s.prop) > 0 && !s.prop.Min().at.After(now) {
		x := s.prop.Pop()
		if s.reachable(x.to, now) {
			due = append(due, x)
		} else {
			s.dropped.Add(1)
		}
	}
	return due
}

// next takes the message the uplink sends after its current one: the consensus lane's head if it
// was waiting when the uplink became free (or came first), else the data lane's. Caller holds mu.
func (s *Shaper) next() (shaped, bool) {
	c, okc := s.lanes[types.LaneConsensus].Peek()
	d, okd := s.lanes[types.LaneData].Peek()
	switch {
	case okc && (!okd || !c.enq.After(s.free) || !c.enq.After(d.enq)):
		s.lanes[types.LaneConsensus].Pop()
		return c, true
	case okd:
		s.lanes[types.LaneData].Pop()
		return d, true
	}
	return shaped{}, false
}

// Backlog implements Backlogger: the time the uplink needs for the messages queued on it (both
// lanes) and the rest of the one on the wire; 0 without a bandwidth limit.
func (s *Shaper) Backlog() time.Duration {
	if s.nsPerB == 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.txTime(s.laneBytes[types.LaneConsensus] + s.laneBytes[types.LaneData])
	if now := time.Now(); s.onWire && s.cur.end.After(now) {
		d += s.cur.end.Sub(now)
	}
	return d
}

// UplinkRate implements Backlogger: the shaped bandwidth in bytes per second; 0 when unlimited.
func (s *Shaper) UplinkRate() float64 {
	if s.nsPerB == 0 {
		return 0
	}
	return 1e9 / s.nsPerB
}

func (s *Shaper) txTime(size int) time.Duration {
	ns := float64(size) * s.nsPerB
	if ns > float64(24*time.Hour) {
		return 24 * time.Hour
	}
	return time.Duration(ns)
}

// nextEvent is when the loop next has work: a serialization ends or a message arrives; zero when
// nothing is pending. Caller holds mu.
func (s *Shaper) nextEvent() time.Time {
	var next time.Time
	if s.onWire {
		next = s.cur.end
	}
	if len(s.prop) > 0 && (next.IsZero() || s.prop.Min().at.Before(next)) {
		next = s.prop.Min().at
	}
	return next
}

// pump forwards a lane of the wrapped endpoint, discarding what arrives while isolated.
func (s *Shaper) pump(l types.Lane) {
	defer s.wg.Done()
	in, out := s.inner.Inbox(l), s.inbox[l]
	for {
		select {
		case env, ok := <-in:
			if !ok {
				return
			}
			if u := s.isoUntil.Load(); u != 0 && time.Now().UnixNano() < u {
				s.dropped.Add(1)
				continue
			}
			select {
			case out <- env:
			case <-s.stop:
				return
			}
		case <-s.stop:
			return
		}
	}
}
