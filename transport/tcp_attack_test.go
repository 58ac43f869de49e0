package transport

// Adversarial tests of the TCP transport: strangers on the peer port, Byzantine peers holding
// valid node keys, and an on-path attacker. The first group failed on the transport's first
// version (each test says how); the fixes are in tcp.go. The others check attacks it resisted.
//
// Not tested (no deterministic trigger): a Close racing with install(); install now checks
// closed under the peer's lock, which Close also takes.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

// relisten binds addr again (a node the cluster skipped, started later by the test).
func relisten(t *testing.T, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	require.Eventually(t, func() bool {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	return ln
}

// hsCount is the number of inbound connections in handshake.
func hsCount(e *TCPEndpoint) int {
	e.hsMu.Lock()
	defer e.hsMu.Unlock()
	return len(e.hsConns)
}

// strangerDialer dials from another loopback address than the replicas when the host allows it,
// so that a per-source limit could tell the stranger from the peers.
func strangerDialer() *net.Dialer {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	if l, err := net.ListenTCP("tcp", local); err == nil {
		_ = l.Close()
		return &net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	}
	return &net.Dialer{Timeout: 5 * time.Second}
}

func smallForward() *types.TxForward {
	return &types.TxForward{Txs: []types.Tx{types.NewTx([]byte("x"))}}
}

func sealAll(t *testing.T, sc *secureConn, msgs ...types.Message) []byte {
	t.Helper()
	var out []byte
	for _, m := range msgs {
		wire, err := types.Encode(m)
		require.NoError(t, err)
		out = sc.seal(out, wire)
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// Weaknesses of the first version, now fixed.
// ---------------------------------------------------------------------------------------------

// A stranger without any key opens MaxHandshakes connections and sends nothing. The first version
// kept every slot taken for the whole HandshakeTimeout and closed every further connection at
// once, so a peer could not (re)connect while the stranger renewed its idle connections; now the
// oldest handshake gives way.
func TestTCPAttackIdleStrangersDoNotLockPeersOut(t *testing.T) {
	const slots = 4
	c := newTCPCluster(t, 2, TCPOptions{MaxHandshakes: slots, HandshakeTimeout: 4 * time.Second}, 1)
	ep := c.eps[2]
	d := strangerDialer()
	for i := 0; i < slots; i++ {
		nc, err := d.Dial("tcp", c.addrs[2])
		require.NoError(t, err)
		defer nc.Close()
	}
	// Let the endpoint take them into handshake (a fixed endpoint may refuse some: do not insist).
	deadline := time.Now().Add(time.Second)
	for hsCount(ep) < slots && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}

	c.start(1, relisten(t, c.addrs[1])) // node 1 (re)starts while the stranger holds the slots
	assert.Eventually(t, func() bool { return contains(ep.Connected(), 1) }, 2*time.Second, 10*time.Millisecond,
		"idle strangers holding the handshake slots kept node 1 out")
}

// One reader per connection delivers every lane. In the first version a full data inbox (a
// Byzantine peer floods it, or the mempool is slow) blocked an honest peer's reader on its next
// data message, and every consensus message behind it waited too. Now inbound queues are per peer
// and full data queues drop.
func TestTCPAttackFullDataLaneDoesNotStallConsensus(t *testing.T) {
	c := newTCPCluster(t, 3, TCPOptions{Buffer: 4}, 2)
	ep, honest := c.eps[3], c.eps[1]
	require.Eventually(t, func() bool { return contains(honest.Connected(), 3) }, 5*time.Second, 10*time.Millisecond)

	byz, err := fakeDialer(t, c, 2, 3, c.signers[1]) // Byzantine node 2 floods the data lane
	require.NoError(t, err)
	var flood []types.Message
	for i := 0; i < 20; i++ {
		flood = append(flood, smallForward())
	}
	require.NoError(t, byz.write(sealAll(t, byz, flood...), time.Second))
	require.Eventually(t, func() bool { return ep.Counters().ByKind[types.KindTxForward].RecvMsgs >= 4 }, // the lane is full
		5*time.Second, 5*time.Millisecond)

	honest.Send(3, smallForward())
	require.Eventually(t, func() bool { return honest.Counters().ByKind[types.KindTxForward].SentMsgs == 1 },
		5*time.Second, 5*time.Millisecond)
	honest.Send(3, signedVote(7))
	select {
	case env := <-ep.Inbox(types.LaneConsensus):
		assert.Equal(t, types.NodeID(1), env.From)
		assert.Equal(t, types.View(7), env.Msg.(*types.Vote).View)
	case <-time.After(2 * time.Second):
		t.Fatal("node 1's vote is stuck behind its data message while the data lane is full")
	}
}

// The first version bounded the inbox in messages only: a peer could park Buffer × MaxFrame
// (1024 × 64 MiB) per lane in the receiver's memory whenever the application fell behind. Now
// each peer's inbound queue has a byte budget (InboxBytes); the test sends 48 MiB of valid data
// messages against an 8 MiB budget.
func TestTCPAttackInboxBytesAreBounded(t *testing.T) {
	const budget = 8 << 20
	c := newTCPCluster(t, 2, TCPOptions{InboxBytes: budget}, 1)
	ep := c.eps[2]
	byz, err := fakeDialer(t, c, 1, 2, c.signers[0])
	require.NoError(t, err)
	big := bigForward(types.MaxTxSize - 64)
	for i := 0; i < 48; i++ {
		require.NoError(t, byz.write(sealAll(t, byz, big), 5*time.Second))
	}
	require.NoError(t, byz.write(sealAll(t, byz, signedVote(1)), time.Second))
	recv(t, ep, types.LaneConsensus) // the reader has handled every data frame before this vote

	held := 0
	for {
		select {
		case env := <-ep.Inbox(types.LaneData):
			held += env.Size
			continue
		default:
		}
		break
	}
	assert.LessOrEqual(t, held, 3*budget, "the data inbox held %d MiB from one peer", held>>20)
}

// parkedReaders counts the reader goroutines (of every endpoint in the process) that are not
// waiting for the network, i.e. that hold a decoded message they cannot deliver.
func parkedReaders() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	parked := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("(*TCPEndpoint).read(")) && !bytes.Contains(g, []byte("[IO wait")) {
			parked++
		}
	}
	return parked
}

// In the first version a reader blocked on a full inbox did not notice that its connection was
// replaced: a Byzantine peer that kept a lane full and reconnected over and over parked one
// goroutine and one message per reconnect (unbounded memory), each one more turn for it ahead of
// honest peers. Now a replaced connection's reader ends.
func TestTCPAttackReconnectsDoNotParkReaders(t *testing.T) {
	const buffer, storms = 4, 10
	c := newTCPCluster(t, 3, TCPOptions{Buffer: buffer}, 2)
	ep, honest := c.eps[3], c.eps[1]
	require.Eventually(t, func() bool { return contains(honest.Connected(), 3) }, 5*time.Second, 10*time.Millisecond)

	byz, err := fakeDialer(t, c, 2, 3, c.signers[1]) // Byzantine node 2 fills the consensus lane
	require.NoError(t, err)
	var votes []types.Message
	for i := 0; i < buffer+inboxHandoff+2; i++ { // more than the lane holds, however it queues
		votes = append(votes, &types.Vote{View: types.View(i), Voter: 2, Sig: make([]byte, types.SigSize)})
	}
	require.NoError(t, byz.write(sealAll(t, byz, votes...), time.Second))
	require.Eventually(t, func() bool { return parkedReaders() == 1 }, 5*time.Second, 5*time.Millisecond)
	base := runtime.NumGoroutine()

	wait := true
	for i := 0; i < storms; i++ {
		byz, err = fakeDialer(t, c, 2, 3, c.signers[1])
		require.NoError(t, err)
		require.NoError(t, byz.write(sealAll(t, byz, &types.Vote{View: types.View(100 + i), Voter: 2, Sig: make([]byte, types.SigSize)}), time.Second))
		if wait { // let the reader take the frame (only matters while readers pile up)
			deadline := time.Now().Add(200 * time.Millisecond)
			for parkedReaders() < i+2 && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
			wait = parkedReaders() >= i+2
		}
	}
	assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= base+3 }, 2*time.Second, 20*time.Millisecond,
		"readers of replaced connections stay parked: %d goroutines, %d before the reconnects", runtime.NumGoroutine(), base)

	honest.Send(3, signedVote(777))
	require.Eventually(t, func() bool { return honest.Counters().ByKind[types.KindVote].SentMsgs == 1 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 4*buffer+inboxHandoff+storms+2; i++ {
		if env := recv(t, ep, types.LaneConsensus); env.From == 1 {
			assert.LessOrEqual(t, i, inboxHandoff+2, "the honest vote waited behind %d messages of the reconnecting peer", i)
			return
		}
	}
	t.Fatal("the reconnecting peer starved node 1")
}

// Close cuts handshakes short in both directions: a listener that accepts the TCP connection and
// never answers held the dialer's Close for the whole HandshakeTimeout in the first version.
func TestTCPAttackStalledListenerDoesNotDelayClose(t *testing.T) {
	c := newTCPCluster(t, 2, TCPOptions{HandshakeTimeout: 3 * time.Second}, 2)
	ln := relisten(t, c.addrs[2]) // Byzantine node 2: accepts, reads the hello, says nothing
	defer ln.Close()
	got := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.ReadFull(nc, make([]byte, hello1Size))
		got <- nc
	}()
	select {
	case nc := <-got:
		defer nc.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("node 1 did not dial")
	}
	start := time.Now()
	require.NoError(t, c.eps[1].Close())
	assert.Less(t, time.Since(start), time.Second, "Close waited for a stalled outbound handshake")
}

// ---------------------------------------------------------------------------------------------
// Attacks the endpoint resists.
// ---------------------------------------------------------------------------------------------

// A Byzantine peer that keeps the consensus inbox full does not starve an honest one: blocked
// readers are served in turn, so the honest vote comes within about one buffer's worth.
func TestTCPAttackInboxFloodLeavesHonestPeersATurn(t *testing.T) {
	const buffer = 8
	c := newTCPCluster(t, 3, TCPOptions{Buffer: buffer}, 2)
	ep, honest := c.eps[3], c.eps[1]
	require.Eventually(t, func() bool { return contains(honest.Connected(), 3) }, 5*time.Second, 10*time.Millisecond)

	byz, err := fakeDialer(t, c, 2, 3, c.signers[1])
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { // floods until its connection is closed
		defer close(done)
		for v := types.View(1); ; v += 100 {
			var buf []byte
			for i := types.View(0); i < 100; i++ {
				wire, _ := types.Encode(&types.Vote{View: v + i, Voter: 2, Sig: make([]byte, types.SigSize)})
				buf = byz.seal(buf, wire)
			}
			if byz.write(buf, 5*time.Second) != nil {
				return
			}
		}
	}()
	defer func() { _ = byz.c.Close(); <-done }()
	require.Eventually(t, func() bool { return ep.Counters().Received >= buffer }, 5*time.Second, 5*time.Millisecond) // full

	honest.Send(3, signedVote(777))
	require.Eventually(t, func() bool { return honest.Counters().ByKind[types.KindVote].SentMsgs == 1 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // the frame crosses loopback and its reader queues up

	for i := 0; i < 4*buffer+inboxHandoff; i++ {
		env := recv(t, ep, types.LaneConsensus)
		if env.From == 1 {
			assert.Equal(t, types.View(777), env.Msg.(*types.Vote).View)
			assert.LessOrEqual(t, i, inboxHandoff+2, "the honest vote waited behind %d flooded ones", i)
			return
		}
	}
	t.Fatal("the Byzantine flood starved node 1")
}

// installedAs reports whether ep's connection to peer id is the far end of sc.
func installedAs(ep *TCPEndpoint, id types.NodeID, sc *secureConn) bool {
	p := ep.peers[id]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn != nil && p.conn.c.RemoteAddr().String() == sc.c.LocalAddr().String()
}

// peerClosed reports, without waiting, whether the endpoint has closed sc's connection.
func peerClosed(sc *secureConn) bool {
	_ = sc.c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := sc.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// An authenticated Byzantine peer reconnecting over and over, one after the other or many at
// once, only ever replaces its own connection: exactly one stays open, the others are closed,
// their goroutines end, and other peers are not disturbed.
func TestTCPAttackReconnectStormByByzantinePeer(t *testing.T) {
	c := newTCPCluster(t, 3, TCPOptions{}, 1)
	ep := c.eps[3]
	first, err := fakeDialer(t, c, 1, 3, c.signers[0])
	require.NoError(t, err)
	require.Eventually(t, func() bool { return installedAs(ep, 1, first) }, 5*time.Second, 5*time.Millisecond)
	base := runtime.NumGoroutine()

	prev := first
	for i := 0; i < 20; i++ { // one after the other
		sc, err := fakeDialer(t, c, 1, 3, c.signers[0])
		require.NoError(t, err)
		require.Eventually(t, func() bool { return installedAs(ep, 1, sc) }, 5*time.Second, 5*time.Millisecond)
		assert.True(t, closedByPeer(t, prev), "a replaced connection stays open")
		prev = sc
	}

	const burst = 20 // many at once: the handshakes finish in any order
	sessions := make([]*secureConn, burst)
	var wg sync.WaitGroup
	for i := range sessions {
		nc, err := net.Dial("tcp", c.addrs[3])
		require.NoError(t, err)
		t.Cleanup(func() { _ = nc.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			sessions[i], _ = handshakeDial(nc, 1, 3, c.signers[0], c.keys, 5*time.Second)
		}()
	}
	wg.Wait()
	// A peer holds at most two vouched handshakes and its address a bounded number more: some of
	// the burst may be refused, never all.
	var done []*secureConn
	for _, sc := range sessions {
		if sc != nil {
			done = append(done, sc)
		}
	}
	require.NotEmpty(t, done)
	t.Logf("%d of %d handshakes of the burst completed", len(done), burst)
	var winner *secureConn
	require.Eventually(t, func() bool {
		winner = nil
		closed := 0
		for _, sc := range append(done, prev) {
			if peerClosed(sc) {
				closed++
			} else if installedAs(ep, 1, sc) {
				winner = sc
			}
		}
		return closed == len(done) && winner != nil
	}, 5*time.Second, 20*time.Millisecond, "not exactly one connection left open")
	require.NoError(t, winner.c.SetReadDeadline(time.Time{}))
	require.NoError(t, winner.write(sealAll(t, winner, signedVote(3)), time.Second))
	env := recv(t, ep, types.LaneConsensus)
	assert.Equal(t, types.NodeID(1), env.From)
	assert.Equal(t, types.View(3), env.Msg.(*types.Vote).View)

	c.eps[2].Send(3, signedVote(4))
	assert.Equal(t, types.NodeID(2), recv(t, ep, types.LaneConsensus).From)
	assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= base+5 && hsCount(ep) == 0 }, 5*time.Second, 20*time.Millisecond,
		"goroutines leaked by replaced connections")
}

// recConn records what a handshake writes.
type recConn struct {
	net.Conn
	mu      sync.Mutex
	written []byte
}

func (r *recConn) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.written = append(r.written, b...)
	r.mu.Unlock()
	return r.Conn.Write(b)
}

// An on-path attacker records node 1's whole handshake (hello and signature) and replays it on a
// new connection: the listener's fresh ephemeral key makes the old signature worthless, and the
// honest session survives.
func TestTCPAttackReplayedHandshakeIsRefused(t *testing.T) {
	c := newTCPCluster(t, 3, TCPOptions{}, 1)
	ep := c.eps[3]
	nc, err := net.Dial("tcp", c.addrs[3])
	require.NoError(t, err)
	defer nc.Close()
	rec := &recConn{Conn: nc}
	sc, err := handshakeDial(rec, 1, 3, c.signers[0], c.keys, 5*time.Second)
	require.NoError(t, err)
	captured := append([]byte(nil), rec.written...)
	require.Len(t, captured, hello1Size+hello3Size)

	replay, err := net.Dial("tcp", c.addrs[3])
	require.NoError(t, err)
	defer replay.Close()
	_, err = replay.Write(captured)
	require.NoError(t, err)
	require.NoError(t, replay.SetReadDeadline(time.Now().Add(5*time.Second)))
	answer, err := io.ReadAll(replay)
	require.NoError(t, err, "the listener should close the replayed handshake")
	assert.Len(t, answer, hello2Size, "the replayed handshake was accepted")

	require.NoError(t, sc.write(sealAll(t, sc, signedVote(9)), time.Second))
	assert.Equal(t, types.View(9), recv(t, ep, types.LaneConsensus).Msg.(*types.Vote).View)
	assert.Contains(t, ep.Connected(), types.NodeID(1), "the replay displaced the honest session")
}

// mitm relays connections to target, recording what the dialer sends; with swapEph it replaces
// the dialer's ephemeral key by its own.
type mitm struct {
	ln      net.Listener
	swapEph bool
	target  string
	conns   atomic.Int32
	mu      sync.Mutex
	seen    []byte
	open    []net.Conn
	wg      sync.WaitGroup
}

func startMITM(t *testing.T, target string, swapEph bool) *mitm {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m := &mitm{ln: ln, swapEph: swapEph, target: target}
	m.wg.Add(1)
	go m.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		m.mu.Lock()
		for _, c := range m.open {
			_ = c.Close()
		}
		m.mu.Unlock()
		m.wg.Wait()
	})
	return m
}

func (m *mitm) Write(b []byte) (int, error) { // records the dialer → listener stream
	m.mu.Lock()
	m.seen = append(m.seen, b...)
	m.mu.Unlock()
	return len(b), nil
}

func (m *mitm) serve() {
	defer m.wg.Done()
	for {
		client, err := m.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", m.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		m.mu.Lock()
		m.open = append(m.open, client, server)
		m.mu.Unlock()
		m.conns.Add(1)
		m.wg.Add(2)
		go func() {
			defer m.wg.Done()
			defer server.Close()
			if m.swapEph {
				hello := make([]byte, hello1Size)
				if _, err := io.ReadFull(client, hello); err != nil {
					return
				}
				k, _ := ecdh.X25519().GenerateKey(rand.Reader)
				copy(hello[16:48], k.PublicKey().Bytes())
				if _, err := server.Write(hello); err != nil {
					return
				}
			}
			_, _ = io.Copy(io.MultiWriter(server, m), client)
		}()
		go func() {
			defer m.wg.Done()
			defer client.Close()
			_, _ = io.Copy(client, server)
		}()
	}
}

// startVia starts node id with its address of node `to` pointing at addr.
func (c *tcpCluster) startVia(id, to types.NodeID, addr string) *TCPEndpoint {
	c.t.Helper()
	peers := map[types.NodeID]string{}
	for k, v := range c.addrs {
		peers[k] = v
	}
	peers[to] = addr
	o := c.opts
	o.Self, o.Peers, o.Signer, o.Verifier, o.Listener = id, peers, c.signers[id-1], c.keys, relisten(c.t, c.addrs[id])
	o.MinBackoff, o.MaxBackoff = 10*time.Millisecond, 200*time.Millisecond
	ep, err := ListenTCP(o)
	require.NoError(c.t, err)
	c.eps[id] = ep
	return ep
}

// A man in the middle without keys: relaying reads nothing, and swapping the ephemeral key is
// caught by both ends.
func TestTCPAttackMITMWithoutKeys(t *testing.T) {
	t.Run("relay reads nothing", func(t *testing.T) {
		c := newTCPCluster(t, 3, TCPOptions{}, 1)
		m := startMITM(t, c.addrs[3], false)
		a := c.startVia(1, 3, m.ln.Addr().String())
		marker := bytes.Repeat([]byte{0xA5, 0x5A, 0xC3}, 21)
		a.Send(3, &types.Vote{View: 42, Voter: 1, Sig: append(marker, 1, 2)})
		env := recv(t, c.eps[3], types.LaneConsensus)
		require.Equal(t, types.NodeID(1), env.From)
		require.Equal(t, types.View(42), env.Msg.(*types.Vote).View)
		m.mu.Lock()
		defer m.mu.Unlock()
		assert.NotEmpty(t, m.seen)
		assert.False(t, bytes.Contains(m.seen, marker[:16]), "plaintext visible on the wire")
	})
	t.Run("key swap refused", func(t *testing.T) {
		c := newTCPCluster(t, 3, TCPOptions{}, 1)
		m := startMITM(t, c.addrs[3], true)
		a := c.startVia(1, 3, m.ln.Addr().String())
		a.Send(3, signedVote(1))
		require.Eventually(t, func() bool { return m.conns.Load() >= 3 }, 5*time.Second, 10*time.Millisecond)
		assert.NotContains(t, a.Connected(), types.NodeID(3))
		assert.NotContains(t, c.eps[3].Connected(), types.NodeID(1))
		select {
		case env := <-c.eps[3].Inbox(types.LaneConsensus):
			t.Fatalf("message from %d got through a tampered handshake", env.From)
		default:
		}
	})
}

// Frames from another session (same counter value) or the listener's own frames reflected back to
// it do not open: each session and each direction has its own key.
func TestTCPAttackCrossSessionAndReflectedFrames(t *testing.T) {
	c := newTCPCluster(t, 3, TCPOptions{}, 1)
	ep := c.eps[3]
	wire, err := types.Encode(signedVote(1))
	require.NoError(t, err)

	old, err := fakeDialer(t, c, 1, 3, c.signers[0])
	require.NoError(t, err)
	fromOld := old.seal(nil, wire)
	sc, err := fakeDialer(t, c, 1, 3, c.signers[0])
	require.NoError(t, err)
	_, err = sc.c.Write(fromOld)
	require.NoError(t, err)
	assert.True(t, closedByPeer(t, sc), "a frame of another session was accepted")

	sc, err = fakeDialer(t, c, 1, 3, c.signers[0])
	require.NoError(t, err)
	reflected := (&secureConn{send: sc.recv}).seal(nil, wire) // what node 3 itself sends first
	_, err = sc.c.Write(reflected)
	require.NoError(t, err)
	assert.True(t, closedByPeer(t, sc), "a reflected frame was accepted")
	assertEmpty(t, ep)
}

// A Byzantine peer declaring a maximal frame and trickling it costs the receiver the bytes that
// arrived, not the declared length, and holds up no other peer.
func TestTCPAttackHugeDeclaredFrameCostsOnlyArrivedBytes(t *testing.T) {
	c := newTCPCluster(t, 3, TCPOptions{}, 1)
	ep := c.eps[3]
	byz, err := fakeDialer(t, c, 1, 3, c.signers[0])
	require.NoError(t, err)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	hdr := binary.BigEndian.AppendUint32(nil, uint32(types.MaxFrame+sealOverhead))
	require.NoError(t, byz.write(append(hdr, make([]byte, 1000)...), time.Second))
	c.eps[2].Send(3, signedVote(5)) // and the honest peer is served meanwhile
	assert.Equal(t, types.NodeID(2), recv(t, ep, types.LaneConsensus).From)
	time.Sleep(50 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&after)
	assert.Less(t, int64(after.HeapAlloc)-int64(before.HeapAlloc), int64(16<<20), "memory follows the declared length")
	assert.Contains(t, ep.Connected(), types.NodeID(1))
}

// A Byzantine listener that completes the handshake and hangs up at once is redialled with
// backoff, not in a tight loop.
func TestTCPAttackListenerHangingUpGetsBackoff(t *testing.T) {
	c := newTCPCluster(t, 2, TCPOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}, 2)
	ln := relisten(t, c.addrs[2])
	var handshakes atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			if _, _, err := handshakeAccept(nc, 2, c.signers[1], c.keys, 2*time.Second, nil); err == nil {
				handshakes.Add(1)
			}
			_ = nc.Close()
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	_ = ln.Close()
	<-done
	n := handshakes.Load()
	assert.GreaterOrEqual(t, n, int32(2), "node 1 gave up redialling")
	assert.Less(t, n, int32(30), "node 1 redials in a tight loop")
}

// Strangers flooding the port with garbage get their slots back as soon as they are refused;
// the endpoint then still takes a real peer.
func TestTCPAttackStrangerFloodReleasesHandshakeSlots(t *testing.T) {
	c := newTCPCluster(t, 2, TCPOptions{MaxHandshakes: 2, HandshakeTimeout: time.Second}, 1)
	ep := c.eps[2]
	base := runtime.NumGoroutine()
	d := strangerDialer()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			nc, err := d.Dial("tcp", c.addrs[2])
			if err != nil {
				return
			}
			defer nc.Close()
			junk := append([]byte("GET / HTTP/1.1\r\n"), make([]byte, 40)...)
			if i%2 == 1 {
				junk = hello(1, 2)
				junk[20] = 9 // a valid-looking hello whose sender then never signs
			}
			_, _ = nc.Write(junk)
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.Copy(io.Discard, nc)
		}(i)
	}
	wg.Wait()
	require.Eventually(t, func() bool { return hsCount(ep) == 0 && len(ep.hsSlots) == 0 }, 5*time.Second, 10*time.Millisecond)
	assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= base+3 }, 5*time.Second, 20*time.Millisecond)
	sc, err := fakeDialer(t, c, 1, 2, c.signers[0])
	require.NoError(t, err)
	require.NoError(t, sc.write(sealAll(t, sc, signedVote(2)), time.Second))
	assert.Equal(t, types.NodeID(1), recv(t, ep, types.LaneConsensus).From)
}

// Every kind byte maps to an existing lane and the counters ignore kinds they do not know, so no
// decoded (or locally built) message can index out of range.
func TestTCPAttackEveryKindHasALane(t *testing.T) {
	for k := 0; k < 256; k++ {
		assert.Less(t, types.Kind(k).Lane(), types.NumLanes, "kind %d", k)
	}
	var cs counters
	assert.NotPanics(t, func() {
		cs.countRecv(types.Kind(255), 10)
		cs.countSent(types.Kind(types.NumKinds), 10)
	})
}

// slowReplies delays every read by a fixed time, as a long link would delay the listener's answers.
type slowReplies struct {
	net.Conn
	delay time.Duration
}

func (c slowReplies) Read(b []byte) (int, error) {
	time.Sleep(c.delay)
	return c.Conn.Read(b)
}

// A stranger opens hundreds of idle connections a second from another address while node 1, over
// a link whose answers take 300 ms, handshakes. The first version evicted the oldest handshake
// whenever the slots were full, and a peer's handshake, a long round trip, was always the oldest:
// on a 100 ms link a stranger kept node 1 out for whole 4-s windows. Now a hello naming a lower-ID
// peer from that peer's own address is vouched for before this node signs anything, gives up its
// slot and cannot be evicted by strangers, and one source address holds at most
// MaxHandshakesPerSource handshakes of unknown standing. Both defences are tried alone: with the
// per-source cap out of the way (vouching alone), and with it.
func TestTCPAttackStrangerChurnDoesNotEvictPeers(t *testing.T) {
	d := strangerDialer()
	if d.LocalAddr == nil {
		t.Skip("this host cannot dial from 127.0.0.2: the stranger would share the peers' address")
	}
	for _, perSource := range []int{100000, 0} {
		t.Run(fmt.Sprintf("per-source cap %d", perSource), func(t *testing.T) {
			c := newTCPCluster(t, 2, TCPOptions{MaxHandshakes: 8, MaxHandshakesPerSource: perSource, HandshakeTimeout: 4 * time.Second}, 1)
			ep := c.eps[2]
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var opened atomic.Int64
			wg.Add(1)
			go func() { // ~1,000 idle connections a second, each held for a second
				defer wg.Done()
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					nc, err := d.Dial("tcp", c.addrs[2])
					if err != nil {
						continue
					}
					opened.Add(1)
					go func() {
						select {
						case <-time.After(time.Second):
						case <-stop:
						}
						_ = nc.Close()
					}()
				}
			}()
			defer func() { close(stop); wg.Wait() }()
			time.Sleep(200 * time.Millisecond) // the churn is on
			// Vouching alone protects a handshake once its hello is read: a connection whose
			// hello the listener has not read yet is of unknown standing, and under a loaded
			// machine (the race detector, other tests) the churn may evict it first, so node 1,
			// which redials as any peer does, gets three tries. With the per-source cap the
			// strangers cannot evict it at all: one try.
			tries := 1
			if perSource > 0 { // the cap out of the way: vouching alone
				tries = 3
			}
			for i := 0; i < 3; i++ {
				var err error
				for try := 0; try < tries; try++ {
					var nc net.Conn
					nc, err = net.Dial("tcp", c.addrs[2]) // from 127.0.0.1, node 1's configured address
					require.NoError(t, err)
					var sc *secureConn
					sc, err = handshakeDial(slowReplies{Conn: nc, delay: 300 * time.Millisecond}, 1, 2, c.signers[0], c.keys, 4*time.Second)
					if err == nil {
						sc.close()
						break
					}
					t.Logf("handshake %d, try %d: %v", i, try+1, err)
				}
				require.NoError(t, err, "node 1's handshake %d completed under the churn within %d tries (%d stranger connections so far)", i, tries, opened.Load())
			}
			r := ep.Refusals()
			t.Logf("%d stranger connections; refused: %v", opened.Load(), r)
			require.Positive(t, r["evicted"]+r["per-source cap"], "the strangers were evicted or capped")
		})
	}
}

// A stranger sends valid-looking hellos naming node 1, from another address, as fast as it can:
// 48 bytes each, no cryptography. The listener answered every one with an X25519 key and a
// signature (one source drove 2,655 a second under secp256k1, 985 under BLS). Hellos not from the
// named peer's configured address are now signed for at most unknownSignRate a second.
func TestTCPAttackStrangerHellosAreSignedWithinABudget(t *testing.T) {
	d := strangerDialer()
	if d.LocalAddr == nil {
		t.Skip("this host cannot dial from 127.0.0.2: the stranger would share the peers' address")
	}
	c := newTCPCluster(t, 2, TCPOptions{HandshakeTimeout: time.Second}, 1)
	h := hello(1, 2)
	h[len(h)-1] = 9 // a usable X25519 key
	signed, tried := 0, 0
	start := time.Now()
	for time.Since(start) < time.Second {
		nc, err := d.Dial("tcp", c.addrs[2])
		if err != nil {
			continue
		}
		tried++
		_, _ = nc.Write(h)
		_ = nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		reply := make([]byte, 32+types.SigSize)
		if _, err := io.ReadFull(nc, reply); err == nil {
			signed++
		}
		_ = nc.Close()
	}
	elapsed := time.Since(start).Seconds()
	t.Logf("%d hellos in %.1f s, %d answered with a signature", tried, elapsed, signed)
	budget := unknownSignBurst + unknownSignRate*elapsed + 5
	require.LessOrEqual(t, float64(signed), budget)
	if float64(tried) > budget {
		require.Less(t, signed, tried, "hellos beyond the budget went unanswered")
	}
}
