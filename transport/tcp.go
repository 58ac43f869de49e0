package transport

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

// The TCP transport keeps one connection per pair of replicas: the lower node ID dials the higher
// one and redials with backoff whenever the connection breaks (the peer restarted), so there is
// never a race between two connections of one pair.
//
// Handshake (fixed sizes, deadline-bound, before anything else is read):
//
//	dialer → listener: "STRATUS1" | from u32 | to u32 | X25519 ephemeral key (32)
//	listener → dialer: X25519 ephemeral key (32) | signature of the listener (65, or 96 with BLS)
//	dialer → listener: signature of the dialer (65, or 96 with BLS)
//	listener → dialer: 0x01 (accepted; a refusal closes the connection instead)
//
// Both sign Keccak(role | Keccak("stratus/tcp/v1" | from | to | both ephemeral keys)) with their
// node key, so each side proves its node ID to the other over fresh keys, and a signature cannot be
// replayed on another connection nor taken for a protocol message. Frames are then sealed with
// AES-256-GCM under keys derived (HKDF-SHA-256) from the ephemeral Diffie-Hellman secret (one key per direction,
// the frame counter as nonce): a man in the middle can neither read, alter, replay nor reorder
// them. Each frame is a 4-byte big-endian length and the sealed message (kind byte + RLP).

const (
	tcpMagic        = "STRATUS1"
	hello1Size      = len(tcpMagic) + 4 + 4 + 32
	hello2Size      = 32 + types.SigSize // with ECDSA keys; handshakeSig gives the scheme's size
	hello3Size      = types.SigSize
	helloAccepted   = 0x01 // the listener's last handshake byte: the dialer's signature verified
	sealOverhead    = 16   // GCM tag
	frameHeaderSize = 4
	readChunk       = 1 << 20 // frames are read in chunks: memory follows the bytes that arrived
	inboxHandoff    = 16      // messages between the per-peer queues and the replica
	writeBatch      = 256 << 10
)

// TCPOptions configures a TCP endpoint.
type TCPOptions struct {
	Self     types.NodeID
	Peers    map[types.NodeID]string // every node's peer address (host:port), Self included
	Listen   string                  // address to bind; default Peers[Self]
	Listener net.Listener            // an already bound listener (overrides Listen)
	Signer   crypto.Signer           // this node's key
	Verifier crypto.Verifier         // every node's public key
	Log      *logrus.Entry

	Buffer     int // received messages waiting per peer and lane (default 1024)
	InboxBytes int // received bytes waiting per peer and lane (default 16 MiB; one message of any size fits an empty queue)
	QueueMsgs  int // messages waiting to be sent per peer and lane before new ones are dropped (default 16384)
	QueueBytes int // bytes waiting to be sent per peer and lane before new ones are dropped (default 64 MiB)
	MaxFrame   int // largest frame accepted (default types.MaxFrame)

	HandshakeTimeout time.Duration // default 5 s
	WriteTimeout     time.Duration // a write making no progress for this long closes the connection (default 20 s)
	MinBackoff       time.Duration // first redial delay (default 50 ms); doubles up to MaxBackoff
	MaxBackoff       time.Duration // default 2 s
	MaxHandshakes    int           // concurrent inbound handshakes of unknown standing (default 64); the oldest gives way to a new one
	// MaxHandshakesPerSource caps the handshakes one source address holds before its hello
	// shows it is a peer dialling from its own host (default 8, plus 2 per peer configured at
	// that address); connections beyond it are closed at once.
	MaxHandshakesPerSource int
}

func (o *TCPOptions) defaults() {
	if o.Buffer <= 0 {
		o.Buffer = 1024
	}
	if o.InboxBytes <= 0 {
		o.InboxBytes = 16 << 20
	}
	if o.QueueMsgs <= 0 {
		o.QueueMsgs = 16384
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 64 << 20
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = types.MaxFrame
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 20 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 50 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(2*time.Second, o.MinBackoff)
	}
	if o.MaxHandshakes <= 0 {
		o.MaxHandshakes = 64
	}
	if o.MaxHandshakesPerSource <= 0 {
		o.MaxHandshakesPerSource = 8
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = logrus.NewEntry(l)
	}
}

// TCPEndpoint is a replica's endpoint over TCP.
type TCPEndpoint struct {
	opts    TCPOptions
	ln      net.Listener
	in      [types.NumLanes]*inLane
	peers   map[types.NodeID]*peer
	order   []*peer // peers by ID, for broadcasts
	stop    chan struct{}
	closed  atomic.Bool
	once    sync.Once
	wg      sync.WaitGroup
	hsSlots chan struct{}
	ctx     context.Context // cancelled by Close: ends dials in progress
	cancel  context.CancelFunc
	hsMu    sync.Mutex
	hsConns map[net.Conn]*handshake // connections in handshake
	hsByIP  map[string]int          // handshakes of unknown standing per source address
	peerIP  map[types.NodeID]string // the address each lower-ID peer dials from (its configured host)
	peersAt map[string]int          // lower-ID peers configured at each address
	// a token bucket for the handshakes this node signs for hellos not from the named peer's address
	unkTokens float64
	unkAt     time.Time
	refusals
	counters
}

// handshake is an inbound connection in handshake. It is of unknown standing until its hello
// names a lower-ID peer whose configured address it comes from; then it is vouched for: it no
// longer holds a slot, and strangers cannot evict it.
type handshake struct {
	since   time.Time
	ip      string
	slot    bool // holds one of the MaxHandshakes slots
	vouched bool
	from    types.NodeID
	evicted bool
}

// ListenTCP binds the endpoint's address and starts connecting to the peers.
func ListenTCP(opts TCPOptions) (*TCPEndpoint, error) {
	opts.defaults()
	if opts.Signer == nil || opts.Verifier == nil {
		return nil, errors.New("tcp: a signer and a verifier are required")
	}
	if opts.Signer.ID() != opts.Self {
		return nil, fmt.Errorf("tcp: the signer is node %d's, not node %d's", opts.Signer.ID(), opts.Self)
	}
	n := opts.Verifier.N()
	if int(opts.Self) < 1 || int(opts.Self) > n {
		return nil, fmt.Errorf("tcp: node %d is not in 1..%d", opts.Self, n)
	}
	for id := 1; id <= n; id++ {
		if opts.Peers[types.NodeID(id)] == "" {
			return nil, fmt.Errorf("tcp: no address for node %d", id)
		}
	}
	ln := opts.Listener
	if ln == nil {
		addr := opts.Listen
		if addr == "" {
			addr = opts.Peers[opts.Self]
		}
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("tcp: node %d: listen on %s: %w", opts.Self, addr, err)
		}
	}
	e := &TCPEndpoint{
		opts:    opts,
		ln:      ln,
		peers:   make(map[types.NodeID]*peer, n-1),
		stop:    make(chan struct{}),
		hsSlots: make(chan struct{}, opts.MaxHandshakes),
		hsConns: make(map[net.Conn]*handshake),
		hsByIP:  make(map[string]int),
		peerIP:  make(map[types.NodeID]string),
		peersAt: make(map[string]int),
	}
	for id := types.NodeID(1); id < opts.Self; id++ {
		if ip := hostIP(opts.Peers[id]); ip != "" {
			e.peerIP[id] = ip
			e.peersAt[ip]++
		}
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	for id := 1; id <= n; id++ {
		if types.NodeID(id) == opts.Self {
			continue
		}
		p := &peer{ep: e, id: types.NodeID(id), idx: len(e.order), addr: opts.Peers[types.NodeID(id)], wake: make(chan struct{}, 1)}
		e.peers[p.id] = p
		e.order = append(e.order, p)
	}
	for l := range e.in {
		e.in[l] = newInLane(len(e.order))
		e.wg.Add(1)
		go e.pump(e.in[l])
	}
	e.wg.Add(1)
	go e.accept()
	for _, p := range e.order {
		e.wg.Add(1)
		go p.write()
		if opts.Self < p.id {
			e.wg.Add(1)
			go p.dial()
		}
	}
	return e, nil
}

// Addr is the bound listen address.
func (e *TCPEndpoint) Addr() net.Addr { return e.ln.Addr() }

// Self implements Endpoint.
func (e *TCPEndpoint) Self() types.NodeID { return e.opts.Self }

// Inbox implements Endpoint.
func (e *TCPEndpoint) Inbox(l types.Lane) <-chan Envelope { return e.in[l].out }

// Counters implements Endpoint.
func (e *TCPEndpoint) Counters() Counters { return e.load() }

// Connected reports which peers have a live, authenticated connection.
func (e *TCPEndpoint) Connected() []types.NodeID {
	var ids []types.NodeID
	for _, p := range e.order {
		p.mu.Lock()
		if p.conn != nil {
			ids = append(ids, p.id)
		}
		p.mu.Unlock()
	}
	return ids
}

// Send implements Endpoint.
func (e *TCPEndpoint) Send(to types.NodeID, m types.Message) {
	if p := e.peers[to]; p != nil && !e.closed.Load() {
		p.enqueue(&outMsg{msg: m, size: types.WireSize(m)})
	}
}

// Broadcast implements Endpoint. The message is encoded once for all peers.
func (e *TCPEndpoint) Broadcast(m types.Message) {
	if e.closed.Load() {
		return
	}
	o := &outMsg{msg: m, size: types.WireSize(m)}
	for _, p := range e.order {
		p.enqueue(o)
	}
}

// Close stops listening, closes every connection and waits for the endpoint's goroutines.
func (e *TCPEndpoint) Close() error {
	e.once.Do(func() {
		e.closed.Store(true)
		close(e.stop)
		e.cancel()
		_ = e.ln.Close()
		e.hsMu.Lock()
		for nc := range e.hsConns {
			_ = nc.Close()
		}
		e.hsMu.Unlock()
		for _, p := range e.order {
			p.mu.Lock()
			if p.conn != nil {
				p.conn.close()
			}
			p.mu.Unlock()
		}
	})
	e.wg.Wait()
	return nil
}

// outMsg is a message waiting to be sent, encoded at most once however many peers it goes to.
type outMsg struct {
	msg  types.Message
	size int // wire size, for the queue bounds (computed once per message, not per peer)
	once sync.Once
	wire []byte
	err  error
}

func (o *outMsg) encode() ([]byte, error) {
	o.once.Do(func() { o.wire, o.err = types.Encode(o.msg) })
	return o.wire, o.err
}

type peer struct {
	ep   *TCPEndpoint
	id   types.NodeID
	idx  int // position in ep.order and in the inbound lanes
	addr string
	wake chan struct{}

	mu     sync.Mutex
	queue  [types.NumLanes][]*outMsg
	qbytes [types.NumLanes]int
	conn   *secureConn // nil while disconnected
}

func (p *peer) enqueue(o *outMsg) {
	l := o.msg.Kind().Lane()
	size := o.size
	p.mu.Lock()
	if len(p.queue[l]) >= p.ep.opts.QueueMsgs || p.qbytes[l]+size > p.ep.opts.QueueBytes {
		p.mu.Unlock()
		p.ep.dropped.Add(1)
		return
	}
	p.queue[l] = append(p.queue[l], o)
	p.qbytes[l] += size
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// next pops the next message, consensus lane first, once a connection exists.
func (p *peer) next() (*outMsg, *secureConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return nil, nil
	}
	for l := range p.queue {
		if q := p.queue[l]; len(q) > 0 {
			o := q[0]
			q[0] = nil
			p.queue[l] = q[1:]
			if len(p.queue[l]) == 0 {
				p.queue[l] = nil // let the backing array go
			}
			p.qbytes[l] -= o.size
			return o, p.conn
		}
	}
	return nil, p.conn
}

// install makes c the peer's connection, closing the one it replaces. After Close it closes c
// and reports false: Close sets closed before it visits each peer under p.mu, so a connection
// is either seen by Close or refused here.
func (p *peer) install(c *secureConn) bool {
	p.mu.Lock()
	if p.ep.closed.Load() {
		p.mu.Unlock()
		c.close()
		return false
	}
	old := p.conn
	p.conn = c
	p.mu.Unlock()
	if old != nil {
		old.close()
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return true
}

// drop forgets c if it is still the peer's connection.
func (p *peer) drop(c *secureConn) {
	p.mu.Lock()
	if p.conn == c {
		p.conn = nil
	}
	p.mu.Unlock()
	c.close()
}

// write sends the queued messages over the current connection, batching small frames into one
// write.
func (p *peer) write() {
	defer p.ep.wg.Done()
	var buf []byte
	var kinds []types.Kind
	var sizes []int
	for {
		o, c := p.next()
		if o == nil {
			select {
			case <-p.wake:
				continue
			case <-p.ep.stop:
				return
			}
		}
		buf, kinds, sizes = buf[:0], kinds[:0], sizes[:0]
		for o != nil {
			wire, err := o.encode()
			if err != nil {
				p.ep.opts.Log.WithError(err).WithField("to", p.id).Error("tcp: message not sent")
				p.ep.dropped.Add(1)
			} else {
				before := len(buf)
				buf = c.seal(buf, wire)
				kinds = append(kinds, o.msg.Kind())
				sizes = append(sizes, len(buf)-before)
			}
			if len(buf) >= writeBatch {
				break
			}
			var c2 *secureConn
			if o, c2 = p.next(); c2 != c {
				if o != nil { // the connection changed under us: keep the message for the new one
					p.requeue(o)
				}
				break
			}
		}
		if len(buf) == 0 {
			continue
		}
		if err := c.write(buf, p.ep.opts.WriteTimeout); err != nil {
			if !p.ep.closed.Load() {
				p.ep.opts.Log.WithError(err).WithField("peer", p.id).Info("tcp: connection lost while sending")
			}
			p.drop(c)
			p.ep.dropped.Add(uint64(len(kinds)))
			continue
		}
		for i, k := range kinds {
			p.ep.countSent(k, sizes[i])
		}
		if cap(buf) > 4*writeBatch {
			buf = nil // do not pin a large frame's buffer
		}
	}
}

func (p *peer) requeue(o *outMsg) {
	l := o.msg.Kind().Lane()
	p.mu.Lock()
	p.queue[l] = append([]*outMsg{o}, p.queue[l]...)
	p.qbytes[l] += o.size
	p.mu.Unlock()
}

// dial keeps a connection to a higher-numbered peer, redialling with backoff.
func (p *peer) dial() {
	defer p.ep.wg.Done()
	o := p.ep.opts
	backoff := o.MinBackoff
	failures := 0
	for !p.ep.closed.Load() {
		c, err := p.connect()
		if err != nil {
			failures++
			if failures == 1 || failures%50 == 0 {
				o.Log.WithFields(logrus.Fields{"peer": p.id, "addr": p.addr, "attempts": failures}).WithError(err).Info("tcp: cannot reach peer yet; retrying")
			}
			select {
			case <-time.After(jittered(backoff)):
			case <-p.ep.stop:
				return
			}
			backoff = min(2*backoff, o.MaxBackoff)
			continue
		}
		failures = 0
		if lived := p.serve(c); lived > time.Second {
			backoff = o.MinBackoff
			continue
		}
		// A connection that broke at once (the peer is shutting down, or refuses us after the
		// handshake) is retried with backoff too, not in a tight loop.
		select {
		case <-time.After(jittered(backoff)):
		case <-p.ep.stop:
			return
		}
		backoff = min(2*backoff, o.MaxBackoff)
	}
}

func jittered(d time.Duration) time.Duration {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return d/2 + time.Duration(int64(binary.BigEndian.Uint16(b[:]))*int64(d/2)/65535)
}

// loopbackSource is the local address to dial from: this node's own IP when both it and the peer
// are loopback IPs (nodes on one machine, each on its own 127.x.y.z), so that packets name their
// sender and a link can be cut between two of them in the kernel; nil (the kernel's choice)
// otherwise.
func loopbackSource(self, peer string) net.Addr {
	sh, _, err1 := net.SplitHostPort(self)
	ph, _, err2 := net.SplitHostPort(peer)
	if err1 != nil || err2 != nil {
		return nil
	}
	sip, pip := net.ParseIP(sh), net.ParseIP(ph)
	if sip == nil || pip == nil || !sip.IsLoopback() || !pip.IsLoopback() || sip.Equal(pip) {
		return nil
	}
	return &net.TCPAddr{IP: sip}
}

func (p *peer) connect() (*secureConn, error) {
	o := p.ep.opts
	d := net.Dialer{Timeout: o.HandshakeTimeout, LocalAddr: loopbackSource(o.Peers[o.Self], p.addr)}
	nc, err := d.DialContext(p.ep.ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	// Close cuts a handshake in progress short (a peer that accepts and never answers).
	stop := context.AfterFunc(p.ep.ctx, func() { _ = nc.Close() })
	c, err := handshakeDial(nc, o.Self, p.id, o.Signer, o.Verifier, o.HandshakeTimeout)
	if !stop() {
		err = errors.New("endpoint closed")
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return c, nil
}
