package transport

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/internal/fifo"
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

// unknownSignRate and unknownSignBurst bound how often this node signs in handshakes whose hello
// does not come from the named peer's configured address.
const (
	unknownSignRate  = 50.0
	unknownSignBurst = 50.0
)

// Why inbound connections were refused before they carried a message.
const (
	refusedPerSource = iota // its source address held its cap of handshakes
	refusedEvicted          // evicted, still in handshake, to make room
	refusedHandshake        // the handshake failed (timeout, bad hello, wrong key)
	refusedFrame            // an authenticated connection closed for a frame that is too large, forged or undecodable
	numRefusals
)

var refusalNames = [numRefusals]string{"per-source cap", "evicted", "handshake failed", "bad frame"}

// refusalLogEvery is how often at most the refusals are logged: a flood of strangers costs the
// log one line per interval, with the counts.
const refusalLogEvery = 10 * time.Second

// refusals counts refused inbound connections by reason and logs them at most every
// refusalLogEvery.
type refusals struct {
	refusedN [numRefusals]atomic.Uint64
	logMu    sync.Mutex
	logged   time.Time
	since    [numRefusals]uint64 // counts at the last log line
}

func (e *TCPEndpoint) refused(reason int, detail string) {
	e.refusedN[reason].Add(1)
	e.logMu.Lock()
	defer e.logMu.Unlock()
	now := time.Now()
	if now.Sub(e.logged) < refusalLogEvery {
		return
	}
	e.logged = now
	f := logrus.Fields{}
	for i := range e.since {
		n := e.refusedN[i].Load()
		if d := n - e.since[i]; d > 0 {
			f[refusalNames[i]] = d
		}
		e.since[i] = n
	}
	if detail != "" {
		f["last"] = detail
	}
	e.opts.Log.WithFields(f).Warnf("tcp: inbound connections refused (logged at most every %v)", refusalLogEvery)
}

// Refusals returns the inbound connections refused so far, by reason.
func (e *TCPEndpoint) Refusals() map[string]uint64 {
	out := make(map[string]uint64, numRefusals)
	for i := range e.refusedN {
		out[refusalNames[i]] = e.refusedN[i].Load()
	}
	return out
}

// hostIP is the IP address of a host:port, resolved if it is a name (empty if that fails).
func hostIP(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, h)
	if err != nil || len(ips) == 0 {
		return ""
	}
	return ips[0].IP.String()
}

// remoteIP is the source address of an inbound connection.
func remoteIP(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	h, _, _ := net.SplitHostPort(nc.RemoteAddr().String())
	return h
}

// sourceCap is how many handshakes of unknown standing ip may hold at once.
func (e *TCPEndpoint) sourceCap(ip string) int {
	return e.opts.MaxHandshakesPerSource + 2*e.peersAt[ip]
}

// admit starts tracking an inbound connection's handshake, unless its source address holds its
// cap already.
func (e *TCPEndpoint) admit(nc net.Conn) bool {
	ip := remoteIP(nc)
	e.hsMu.Lock()
	defer e.hsMu.Unlock()
	if e.hsByIP[ip] >= e.sourceCap(ip) {
		return false
	}
	e.hsByIP[ip]++
	e.hsConns[nc] = &handshake{since: time.Now(), ip: ip}
	return true
}

// tookSlot records that nc holds a handshake slot (false if nc was evicted or released meanwhile).
func (e *TCPEndpoint) tookSlot(nc net.Conn) bool {
	e.hsMu.Lock()
	defer e.hsMu.Unlock()
	if h := e.hsConns[nc]; h != nil && !h.evicted {
		h.slot = true
		return true
	}
	return false
}

// release forgets nc's handshake (ended, refused or evicted) and frees what it held; it reports
// whether the handshake was evicted.
func (e *TCPEndpoint) release(nc net.Conn) (evicted bool) {
	e.hsMu.Lock()
	defer e.hsMu.Unlock()
	h := e.hsConns[nc]
	if h == nil {
		return false
	}
	delete(e.hsConns, nc)
	if !h.vouched {
		e.unknownGone(h.ip)
	}
	if h.slot {
		<-e.hsSlots
	}
	return h.evicted
}

func (e *TCPEndpoint) unknownGone(ip string) {
	if e.hsByIP[ip]--; e.hsByIP[ip] <= 0 {
		delete(e.hsByIP, ip)
	}
}

// vouch is called with the node a handshake's hello names, before this node signs anything: a
// hello from a lower-ID peer's own address is vouched for (it gives up its slot and strangers can
// no longer evict it), at most two per peer (a third replaces the oldest). Any other hello keeps
// its slot and stays evictable. It fails if the connection was evicted meanwhile.
func (e *TCPEndpoint) vouch(nc net.Conn, from types.NodeID) error {
	e.hsMu.Lock()
	defer e.hsMu.Unlock()
	h := e.hsConns[nc]
	if h == nil || h.evicted {
		return errors.New("evicted")
	}
	if h.vouched {
		return nil
	}
	if e.peerIP[from] != h.ip {
		// Not from the peer's own address (a stranger, or a peer behind another address): this
		// node signs for such hellos at most unknownSignRate a second in all, so that strangers
		// cannot make it sign as fast as they can send 48 bytes.
		now := time.Now()
		e.unkTokens = min(unknownSignBurst, e.unkTokens+now.Sub(e.unkAt).Seconds()*unknownSignRate)
		e.unkAt = now
		if e.unkTokens < 1 {
			return errors.New("hello from an address not configured for it, over the budget for such handshakes")
		}
		e.unkTokens--
		return nil
	}
	var oldest net.Conn
	count := 0
	for c, o := range e.hsConns {
		if o.vouched && o.from == from && !o.evicted {
			count++
			if oldest == nil || o.since.Before(e.hsConns[oldest].since) {
				oldest = c
			}
		}
	}
	if count >= 2 {
		e.hsConns[oldest].evicted = true
		_ = oldest.Close()
		e.refused(refusedEvicted, "")
	}
	h.vouched, h.from = true, from
	e.unknownGone(h.ip)
	if h.slot {
		h.slot = false
		<-e.hsSlots
	}
	return nil
}

// evictOldestHandshake closes the handshake of unknown standing that has lasted longest, so that
// strangers holding every slot cannot keep a peer out: an honest handshake is vouched for as soon
// as its hello is read, theirs last until they are evicted.
func (e *TCPEndpoint) evictOldestHandshake() {
	e.hsMu.Lock()
	defer e.hsMu.Unlock()
	var oldest net.Conn
	var since time.Time
	for nc, h := range e.hsConns {
		if h.slot && !h.vouched && !h.evicted && (oldest == nil || h.since.Before(since)) {
			oldest, since = nc, h.since
		}
	}
	if oldest != nil {
		e.hsConns[oldest].evicted = true
		_ = oldest.Close()
		e.refused(refusedEvicted, "")
	}
}

// serve installs c and reads from it until it breaks; it returns how long the connection lived.
func (p *peer) serve(c *secureConn) time.Duration {
	start := time.Now()
	if !p.install(c) {
		return 0
	}
	p.ep.opts.Log.WithFields(logrus.Fields{"peer": p.id, "remote": c.c.RemoteAddr().String()}).Info("tcp: connected")
	err := p.ep.read(p, c)
	p.drop(c)
	if !p.ep.closed.Load() {
		p.ep.opts.Log.WithFields(logrus.Fields{"peer": p.id}).WithError(err).Info("tcp: connection closed")
	}
	return time.Since(start)
}

func (e *TCPEndpoint) accept() {
	defer e.wg.Done()
	for {
		nc, err := e.ln.Accept()
		if err != nil {
			if e.closed.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			e.opts.Log.WithError(err).Warn("tcp: accept")
			select {
			case <-time.After(50 * time.Millisecond):
			case <-e.stop:
				return
			}
			continue
		}
		if !e.admit(nc) {
			_ = nc.Close()
			e.refused(refusedPerSource, remoteIP(nc))
			continue
		}
		select {
		case e.hsSlots <- struct{}{}:
		default: // every slot taken: the oldest handshake of unknown standing gives way
			e.evictOldestHandshake()
			select {
			case e.hsSlots <- struct{}{}:
			case <-time.After(e.opts.HandshakeTimeout):
				e.release(nc)
				_ = nc.Close()
				continue
			case <-e.stop:
				e.release(nc)
				_ = nc.Close()
				return
			}
		}
		if !e.tookSlot(nc) {
			<-e.hsSlots
		}
		if e.closed.Load() { // Close ran between Accept and admit
			_ = nc.Close()
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			c, from, err := handshakeAccept(nc, e.opts.Self, e.opts.Signer, e.opts.Verifier, e.opts.HandshakeTimeout,
				func(from types.NodeID) error { return e.vouch(nc, from) })
			evicted := e.release(nc)
			if err != nil {
				_ = nc.Close()
				if !evicted {
					e.refused(refusedHandshake, nc.RemoteAddr().String()+": "+err.Error())
				}
				return
			}
			e.peers[from].serve(c)
		}()
	}
}

// read delivers frames from c until an error; any malformed frame ends the connection. Data
// that finds its peer's inbound queue full is dropped; consensus messages wait for room, which
// holds up only this peer's connection.
func (e *TCPEndpoint) read(p *peer, c *secureConn) error {
	var hdr [frameHeaderSize]byte
	for {
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			return err
		}
		size := int(binary.BigEndian.Uint32(hdr[:]))
		if size < sealOverhead+1 || size > e.opts.MaxFrame+sealOverhead {
			e.refused(refusedFrame, "")
			return fmt.Errorf("tcp: frame of %d bytes from node %d (limit %d)", size, p.id, e.opts.MaxFrame+sealOverhead)
		}
		buf := make([]byte, 0, min(size, readChunk))
		for len(buf) < size {
			chunk := min(size-len(buf), readChunk)
			buf = slices.Grow(buf, chunk)
			if _, err := io.ReadFull(c.r, buf[len(buf):len(buf)+chunk]); err != nil {
				return err
			}
			buf = buf[:len(buf)+chunk]
		}
		plain, err := c.open(buf)
		if err != nil {
			e.refused(refusedFrame, "")
			return fmt.Errorf("tcp: frame from node %d: %w", p.id, err)
		}
		m, err := types.Decode(plain)
		if err != nil {
			e.refused(refusedFrame, fmt.Sprintf("node %d: %v", p.id, err))
			return fmt.Errorf("tcp: frame from node %d: %w", p.id, err)
		}
		env := Envelope{From: p.id, Msg: m, Size: frameHeaderSize + size}
		k, lane := m.Kind(), m.Kind().Lane()
		e.countRecv(k, env.Size)
		il := e.in[lane]
		for !il.push(p.idx, env, e.opts.Buffer, e.opts.InboxBytes) {
			if lane == types.LaneData {
				e.dropped.Add(1)
				break
			}
			select {
			case <-il.q[p.idx].space:
			case <-c.done:
				return errors.New("connection replaced or closed")
			case <-e.stop:
				return errors.New("endpoint closed")
			}
		}
	}
}

// inLane holds what peers sent on one lane, in a bounded queue per peer, and hands it to the
// replica round robin over the peers, so one peer's flood neither crowds out the others nor
// holds more than its own queue's worth of memory.
type inLane struct {
	mu    sync.Mutex
	q     []*inQueue // by peer index
	next  int        // the peer served next
	count int        // messages queued over all peers
	wake  chan struct{}
	out   chan Envelope
}

type inQueue struct {
	msgs  fifo.Queue[Envelope]
	bytes int
	space chan struct{} // signalled when a message leaves
}

func newInLane(peers int) *inLane {
	il := &inLane{q: make([]*inQueue, peers), wake: make(chan struct{}, 1), out: make(chan Envelope, inboxHandoff)}
	for i := range il.q {
		il.q[i] = &inQueue{space: make(chan struct{}, 1)}
	}
	return il
}

// push queues env from peer i unless its queue holds maxMsgs messages or would exceed maxBytes
// (an empty queue takes one message of any size).
func (il *inLane) push(i int, env Envelope, maxMsgs, maxBytes int) bool {
	il.mu.Lock()
	q := il.q[i]
	if n := q.msgs.Len(); n > 0 && (n >= maxMsgs || q.bytes+env.Size > maxBytes) {
		il.mu.Unlock()
		return false
	}
	q.msgs.Push(env)
	q.bytes += env.Size
	il.count++
	il.mu.Unlock()
	select {
	case il.wake <- struct{}{}:
	default:
	}
	return true
}

// pop takes the next message round robin over the peers.
func (il *inLane) pop() (Envelope, bool) {
	il.mu.Lock()
	defer il.mu.Unlock()
	if il.count == 0 {
		return Envelope{}, false
	}
	for k := range il.q {
		i := (il.next + k) % len(il.q)
		q := il.q[i]
		env, ok := q.msgs.Pop() // an emptied queue gives a burst's backing array back
		if !ok {
			continue
		}
		q.bytes -= env.Size
		il.count--
		il.next = i + 1
		select {
		case q.space <- struct{}{}:
		default:
		}
		return env, true
	}
	return Envelope{}, false
}

// pump feeds a lane's inbox.
func (e *TCPEndpoint) pump(il *inLane) {
	defer e.wg.Done()
	for {
		env, ok := il.pop()
		if !ok {
			select {
			case <-il.wake:
				continue
			case <-e.stop:
				return
			}
		}
		select {
		case il.out <- env:
		case <-e.stop:
			return
		}
	}
}

// secureConn is an authenticated connection with its sealing state.
type secureConn struct {
	c          net.Conn
	r          *bufio.Reader
	done       chan struct{} // closed with the connection
	closeOnce  sync.Once
	send, recv cipher.AEAD
	sendSeq    uint64 // owned by the peer's writer
	recvSeq    uint64 // owned by the reader
}

// close closes the connection and wakes whatever waits on it.
func (c *secureConn) close() {
	c.closeOnce.Do(func() {
		_ = c.c.Close()
		close(c.done)
	})
}

func (c *secureConn) seal(dst, plain []byte) []byte {
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[4:], c.sendSeq)
	c.sendSeq++
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = c.send.Seal(dst, nonce[:], plain, nil)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-frameHeaderSize))
	return dst
}

func (c *secureConn) open(sealed []byte) ([]byte, error) {
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[4:], c.recvSeq)
	c.recvSeq++
	plain, err := c.recv.Open(sealed[:0], nonce[:], sealed, nil)
	if err != nil {
		return nil, errors.New("frame fails authentication (tampered, replayed or out of order)")
	}
	return plain, nil
}

// write writes buf, failing when no byte moves for timeout.
func (c *secureConn) write(buf []byte, timeout time.Duration) error {
	for len(buf) > 0 {
		chunk := min(len(buf), 64<<10)
		if err := c.c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
		n, err := c.c.Write(buf[:chunk])
		if err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

// handshakeSig is the size of a node signature in the handshake: the cluster's scheme's.
func handshakeSig(v crypto.Verifier) int {
	if _, ok := crypto.AggregatorOf(v); ok {
		return types.BLSSigSize
	}
	return types.SigSize
}

func transcript(from, to types.NodeID, ephDialer, ephListener []byte) types.Hash {
	var ids [8]byte
	binary.BigEndian.PutUint32(ids[:4], uint32(from))
	binary.BigEndian.PutUint32(ids[4:], uint32(to))
	return types.Keccak([]byte("stratus/tcp/v1"), ids[:], ephDialer, ephListener)
}

func roleDigest(role string, h types.Hash) types.Hash {
	return types.Keccak([]byte("stratus/tcp/v1/"+role), h[:])
}

func newSession(nc net.Conn, r *bufio.Reader, secret []byte, h types.Hash, dialer bool) (*secureConn, error) {
	key := func(info string) (cipher.AEAD, error) {
		k, err := hkdf.Key(sha256.New, secret, h[:], info, 32)
		if err != nil {
			return nil, err
		}
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	d2l, err := key("dialer to listener")
	if err != nil {
		return nil, err
	}
	l2d, err := key("listener to dialer")
	if err != nil {
		return nil, err
	}
	c := &secureConn{c: nc, r: r, done: make(chan struct{})}
	if dialer {
		c.send, c.recv = d2l, l2d
	} else {
		c.send, c.recv = l2d, d2l
	}
	return c, nil
}

// handshakeDial authenticates a dialled connection to node `to`.
func handshakeDial(nc net.Conn, self, to types.NodeID, signer crypto.Signer, verifier crypto.Verifier, timeout time.Duration) (*secureConn, error) {
	if err := nc.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	hello := make([]byte, 0, hello1Size)
	hello = append(hello, tcpMagic...)
	hello = binary.BigEndian.AppendUint32(hello, uint32(self))
	hello = binary.BigEndian.AppendUint32(hello, uint32(to))
	hello = append(hello, eph.PublicKey().Bytes()...)
	if _, err := nc.Write(hello); err != nil {
		return nil, fmt.Errorf("handshake with node %d: %w", to, err)
	}
	r := bufio.NewReaderSize(nc, 64<<10)
	reply := make([]byte, 32+handshakeSig(verifier))
	if _, err := io.ReadFull(r, reply); err != nil {
		return nil, fmt.Errorf("handshake with node %d: no answer: %w", to, err)
	}
	peerEph, err := ecdh.X25519().NewPublicKey(reply[:32])
	if err != nil {
		return nil, fmt.Errorf("handshake with node %d: bad ephemeral key", to)
	}
	h := transcript(self, to, eph.PublicKey().Bytes(), reply[:32])
	if !verifier.Verify(to, roleDigest("listener", h), reply[32:]) {
		return nil, fmt.Errorf("handshake: the peer at %s does not hold node %d's key", nc.RemoteAddr(), to)
	}
	secret, err := eph.ECDH(peerEph)
	if err != nil {
		return nil, fmt.Errorf("handshake with node %d: %w", to, err)
	}
	if _, err := nc.Write(signer.Sign(roleDigest("dialer", h))); err != nil {
		return nil, fmt.Errorf("handshake with node %d: %w", to, err)
	}
	var ok [1]byte
	if _, err := io.ReadFull(r, ok[:]); err != nil || ok[0] != helloAccepted {
		return nil, fmt.Errorf("handshake: node %d refused this node's key (is pubkeys.txt the same on every host?)", to)
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return newSession(nc, r, secret, h, true)
}

// handshakeAccept authenticates an inbound connection and returns the peer's node ID.
//
// onHello, when set, is called with the node the hello names once it passed its checks and before
// this node signs: an error refuses the connection.
func handshakeAccept(nc net.Conn, self types.NodeID, signer crypto.Signer, verifier crypto.Verifier, timeout time.Duration,
	onHello func(from types.NodeID) error) (*secureConn, types.NodeID, error) {
	if err := nc.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, 0, err
	}
	r := bufio.NewReaderSize(nc, 64<<10)
	var hello [hello1Size]byte
	if _, err := io.ReadFull(r, hello[:]); err != nil {
		return nil, 0, fmt.Errorf("no hello: %w", err)
	}
	if string(hello[:len(tcpMagic)]) != tcpMagic {
		return nil, 0, errors.New("not a Stratus peer (bad magic)")
	}
	from := types.NodeID(binary.BigEndian.Uint32(hello[8:12]))
	to := types.NodeID(binary.BigEndian.Uint32(hello[12:16]))
	n := verifier.N()
	switch {
	case to != self:
		return nil, 0, fmt.Errorf("hello addressed to node %d, this is node %d (wrong address in ips.txt?)", to, self)
	case from < 1 || int(from) > n:
		return nil, 0, fmt.Errorf("hello from node %d, not in 1..%d", from, n)
	case from >= self:
		return nil, 0, fmt.Errorf("hello from node %d: only lower node IDs dial node %d", from, self)
	}
	peerEph, err := ecdh.X25519().NewPublicKey(hello[16:48])
	if err != nil {
		return nil, 0, fmt.Errorf("node %d: bad ephemeral key", from)
	}
	if onHello != nil {
		if err := onHello(from); err != nil {
			return nil, 0, fmt.Errorf("node %d: %w", from, err)
		}
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, 0, err
	}
	h := transcript(from, self, hello[16:48], eph.PublicKey().Bytes())
	reply := append(eph.PublicKey().Bytes(), signer.Sign(roleDigest("listener", h))...)
	if _, err := nc.Write(reply); err != nil {
		return nil, 0, fmt.Errorf("node %d: %w", from, err)
	}
	sig := make([]byte, handshakeSig(verifier))
	if _, err := io.ReadFull(r, sig); err != nil {
		return nil, 0, fmt.Errorf("node %d: no signature: %w", from, err)
	}
	if !verifier.Verify(from, roleDigest("dialer", h), sig) {
		return nil, 0, fmt.Errorf("the peer at %s claims to be node %d but does not hold its key", nc.RemoteAddr(), from)
	}
	secret, err := eph.ECDH(peerEph)
	if err != nil {
		return nil, 0, fmt.Errorf("node %d: %w", from, err)
	}
	if _, err := nc.Write([]byte{helloAccepted}); err != nil {
		return nil, 0, fmt.Errorf("node %d: %w", from, err)
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, 0, err
	}
	c, err := newSession(nc, r, secret, h, false)
	return c, from, err
}
