package transport

import (
	"container/heap"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratusbft/stratus/types"
)

// HubOptions configures an in-process network.
type HubOptions struct {
	Buffer int           // messages per inbound lane
	Delay  time.Duration // added to every message
	Jitter time.Duration // uniform in [-Jitter, +Jitter] around Delay
	Seed   int64         // jitter randomness
}

// Hub connects the endpoints of all replicas of one process over Go channels. Messages are passed
// as immutable values, not copied.
type Hub struct {
	opts HubOptions
	eps  []*chanEndpoint // index = node ID; 0 unused
	dl   *delayLine      // nil without delay emulation
}

// NewHub returns a hub for replicas 1..n.
func NewHub(n int, opts HubOptions) *Hub {
	if opts.Buffer <= 0 {
		opts.Buffer = 1024
	}
	h := &Hub{opts: opts, eps: make([]*chanEndpoint, n+1)}
	for i := 1; i <= n; i++ {
		ep := &chanEndpoint{hub: h, id: types.NodeID(i)}
		for l := range ep.lanes {
			ep.lanes[l] = make(chan Envelope, opts.Buffer)
		}
		h.eps[i] = ep
	}
	if opts.Delay > 0 || opts.Jitter > 0 {
		h.dl = newDelayLine(opts)
	}
	return h
}

// Endpoint returns replica id's endpoint.
func (h *Hub) Endpoint(id types.NodeID) Endpoint { return h.eps[id] }

// Close stops delay emulation and closes every endpoint.
func (h *Hub) Close() {
	if h.dl != nil {
		h.dl.close()
	}
	for _, ep := range h.eps[1:] {
		_ = ep.Close()
	}
}

// Envelopes carry their wire size (computed once per message, not per receiver) for the traffic
// counters.
type chanEndpoint struct {
	hub    *Hub
	id     types.NodeID
	lanes  [types.NumLanes]chan Envelope
	closed atomic.Bool
	counters
}

func (e *chanEndpoint) Self() types.NodeID { return e.id }

func (e *chanEndpoint) Inbox(l types.Lane) <-chan Envelope { return e.lanes[l] }

func (e *chanEndpoint) Counters() Counters { return e.load() }

func (e *chanEndpoint) Close() error {
	e.closed.Store(true)
	return nil
}

func (e *chanEndpoint) Send(to types.NodeID, m types.Message) {
	e.send(to, m, types.WireSize(m))
}

func (e *chanEndpoint) send(to types.NodeID, m types.Message, size int) {
	if e.closed.Load() || to == e.id || int(to) >= len(e.hub.eps) || to == 0 {
		return
	}
	e.countSent(m.Kind(), size)
	env := Envelope{From: e.id, Msg: m, Size: size}
	dst := e.hub.eps[to]
	if e.hub.dl != nil {
		e.hub.dl.schedule(dst, env)
		return
	}
	dst.deliver(env)
}

func (e *chanEndpoint) Broadcast(m types.Message) {
	size := types.WireSize(m)
	for id := 1; id < len(e.hub.eps); id++ {
		if types.NodeID(id) != e.id {
			e.send(types.NodeID(id), m, size)
		}
	}
}

// deliver enqueues without blocking; a full lane drops the message.
func (e *chanEndpoint) deliver(env Envelope) {
	if e.closed.Load() {
		return
	}
	select {
	case e.lanes[env.Msg.Kind().Lane()] <- env:
		e.countRecv(env.Msg.Kind(), env.Size)
	default:
		e.dropped.Add(1)
	}
}

// delayLine holds messages until their delivery time.
type delayLine struct {
	mu   sync.Mutex
	rng  *rand.Rand
	opts HubOptions
	q    delayQueue
	seq  uint64
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type delayed struct {
	at  time.Time
	seq uint64
	dst *chanEndpoint
	env Envelope
}

type delayQueue []delayed

func (q delayQueue) Len() int { return len(q) }
func (q delayQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q delayQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *delayQueue) Push(x any)   { *q = append(*q, x.(delayed)) }
func (q *delayQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

func newDelayLine(opts HubOptions) *delayLine {
	d := &delayLine{
		rng:  rand.New(rand.NewSource(opts.Seed)),
		opts: opts,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go d.run()
	return d
}

func (d *delayLine) schedule(dst *chanEndpoint, env Envelope) {
	d.mu.Lock()
	delay := d.opts.Delay
	if j := d.opts.Jitter; j > 0 {
		delay += time.Duration(d.rng.Int63n(int64(2*j)+1)) - j
	}
	if delay < 0 {
		delay = 0
	}
	d.seq++
	heap.Push(&d.q, delayed{at: time.Now().Add(delay), seq: d.seq, dst: dst, env: env})
	first := d.q[0].seq == d.seq
	d.mu.Unlock()
	if first {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

func (d *delayLine) run() {
	defer close(d.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		d.mu.Lock()
		now := time.Now()
		var due []delayed
		for len(d.q) > 0 && !d.q[0].at.After(now) {
			due = append(due, heap.Pop(&d.q).(delayed))
		}
		wait := time.Hour
		if len(d.q) > 0 {
			wait = d.q[0].at.Sub(now)
		}
		d.mu.Unlock()
		for _, x := range due {
			x.dst.deliver(x.env)
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-d.wake:
		case <-d.stop:
			return
		}
	}
}

func (d *delayLine) close() {
	d.once.Do(func() { close(d.stop) })
	<-d.done
}
