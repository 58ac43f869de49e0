package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

// tcpCluster is n TCP endpoints on loopback ports the kernel picked.
type tcpCluster struct {
	t       *testing.T
	signers []*crypto.KeySigner
	keys    *crypto.KeyVerifier
	addrs   map[types.NodeID]string
	eps     map[types.NodeID]*TCPEndpoint
	opts    TCPOptions
}

func newTCPCluster(t *testing.T, n int, opts TCPOptions, skip ...types.NodeID) *tcpCluster {
	t.Helper()
	signers, keys := crypto.SimKeys(7, n)
	c := &tcpCluster{t: t, signers: signers, keys: keys, addrs: map[types.NodeID]string{}, eps: map[types.NodeID]*TCPEndpoint{}, opts: opts}
	lns := map[types.NodeID]net.Listener{}
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns[types.NodeID(i)] = ln
		c.addrs[types.NodeID(i)] = ln.Addr().String()
	}
	for id, ln := range lns {
		if contains(skip, id) {
			_ = ln.Close() // the test plays this node itself
			continue
		}
		c.start(id, ln)
	}
	t.Cleanup(func() {
		for _, ep := range c.eps {
			_ = ep.Close()
		}
	})
	return c
}

func contains(ids []types.NodeID, id types.NodeID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (c *tcpCluster) start(id types.NodeID, ln net.Listener) *TCPEndpoint {
	c.t.Helper()
	o := c.opts
	o.Self, o.Peers, o.Signer, o.Verifier, o.Listener = id, c.addrs, c.signers[id-1], c.keys, ln
	if o.MinBackoff == 0 {
		o.MinBackoff, o.MaxBackoff = 10*time.Millisecond, 200*time.Millisecond
	}
	ep, err := ListenTCP(o)
	require.NoError(c.t, err)
	c.eps[id] = ep
	return ep
}

func signedVote(v types.View) *types.Vote {
	return &types.Vote{View: v, Voter: 1, Sig: make([]byte, types.SigSize)}
}

func bigForward(size int) *types.TxForward {
	return &types.TxForward{Txs: []types.Tx{types.NewTx(make([]byte, size))}}
}

func TestTCPDeliversInOrderPerLaneAndBroadcasts(t *testing.T) {
	c := newTCPCluster(t, 4, TCPOptions{})
	a, b := c.eps[1], c.eps[3]
	const votes, data = 2000, 200
	go func() {
		for i := 0; i < votes; i++ {
			a.Send(3, signedVote(types.View(i)))
			if i%10 == 0 {
				a.Send(3, &types.TxForward{Txs: []types.Tx{types.NewTx(binary.BigEndian.AppendUint32(nil, uint32(i/10)))}})
			}
		}
	}()
	for i := 0; i < votes; i++ {
		env := recv(t, b, types.LaneConsensus)
		require.Equal(t, types.NodeID(1), env.From)
		require.Equal(t, types.View(i), env.Msg.(*types.Vote).View, "consensus lane out of order")
	}
	for i := 0; i < data; i++ {
		env := recv(t, b, types.LaneData)
		got := binary.BigEndian.Uint32(env.Msg.(*types.TxForward).Txs[0].Data())
		require.Equal(t, uint32(i), got, "data lane out of order")
	}

	c.eps[4].Broadcast(signedVote(99))
	for _, id := range []types.NodeID{1, 2, 3} {
		env := recv(t, c.eps[id], types.LaneConsensus)
		assert.Equal(t, types.NodeID(4), env.From)
		assert.Equal(t, types.View(99), env.Msg.(*types.Vote).View)
	}
	assertEmpty(t, c.eps[4])

	ca := a.Counters()
	assert.EqualValues(t, votes, ca.ByKind[types.KindVote].SentMsgs)
	assert.EqualValues(t, data, ca.ByKind[types.KindTxForward].SentMsgs)
	assert.Greater(t, ca.ByKind[types.KindVote].SentBytes, uint64(votes*types.SigSize))
	cb := b.Counters()
	assert.EqualValues(t, votes+1, cb.ByKind[types.KindVote].RecvMsgs)
	assert.Equal(t, ca.ByKind[types.KindTxForward].SentBytes, cb.ByKind[types.KindTxForward].RecvBytes, "bytes counted alike on both ends")
}

func TestTCPReconnectsAfterPeerRestart(t *testing.T) {
	for _, restarted := range []types.NodeID{1, 2} { // the dialer, then the listener
		t.Run("node"+string(rune('0'+restarted)), func(t *testing.T) {
			c := newTCPCluster(t, 2, TCPOptions{})
			other := 3 - restarted
			c.eps[restarted].Send(other, signedVote(1))
			recv(t, c.eps[other], types.LaneConsensus)

			require.NoError(t, c.eps[restarted].Close())
			var ln net.Listener
			require.Eventually(t, func() bool { // the same port, as a restarted process would bind
				var err error
				ln, err = net.Listen("tcp", c.addrs[restarted])
				return err == nil
			}, 5*time.Second, 20*time.Millisecond)
			ep := c.start(restarted, ln)

			// Both directions work again. What was written to the old connection before its end
			// was noticed may be lost, as on any network: send until a message gets through.
			getsThrough(t, c.eps[other], restarted, ep)
			getsThrough(t, ep, other, c.eps[other])
			require.Eventually(t, func() bool { return len(c.eps[other].Connected()) == 1 }, 5*time.Second, 10*time.Millisecond)
		})
	}
}

// getsThrough sends votes from a to b until one arrives.
func getsThrough(t *testing.T, a *TCPEndpoint, to types.NodeID, b *TCPEndpoint) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for v := types.View(100); time.Now().Before(deadline); v++ {
		a.Send(to, signedVote(v))
		select {
		case env := <-b.Inbox(types.LaneConsensus):
			require.Equal(t, a.Self(), env.From)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("nothing from node %d reached node %d after the restart", a.Self(), to)
}

// fakeDialer completes a real handshake to node `to` as node `self` and returns the session, so a
// test can write whatever a Byzantine peer would.
func fakeDialer(t *testing.T, c *tcpCluster, self, to types.NodeID, signer crypto.Signer) (*secureConn, error) {
	t.Helper()
	nc, err := net.Dial("tcp", c.addrs[to])
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	return handshakeDial(nc, self, to, signer, c.keys, 5*time.Second)
}

// closedByPeer reports whether the endpoint closed sc's connection (rather than leaving it open
// until the read deadline).
func closedByPeer(t *testing.T, sc *secureConn) bool {
	t.Helper()
	require.NoError(t, sc.c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := sc.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestTCPBadFramesCloseTheConnection(t *testing.T) {
	c := newTCPCluster(t, 3, TCPOptions{MaxFrame: 1 << 20}, 1)
	ep := c.eps[3]
	attacks := map[string]func(sc *secureConn) []byte{
		"oversize length": func(sc *secureConn) []byte {
			return binary.BigEndian.AppendUint32(nil, 1<<30)
		},
		"too short": func(sc *secureConn) []byte {
			return binary.BigEndian.AppendUint32(nil, 3)
		},
		"garbage sealed bytes": func(sc *secureConn) []byte {
			return append(binary.BigEndian.AppendUint32(nil, 64), make([]byte, 64)...)
		},
		"tampered frame": func(sc *secureConn) []byte {
			wire, err := types.Encode(signedVote(1))
			require.NoError(t, err)
			f := sc.seal(nil, wire)
			f[len(f)-20] ^= 1
			return f
		},
		"replayed frame": func(sc *secureConn) []byte {
			wire, err := types.Encode(signedVote(1))
			require.NoError(t, err)
			f := sc.seal(nil, wire)
			return append(f, f...)
		},
		"unknown kind": func(sc *secureConn) []byte { return sc.seal(nil, []byte{200, 0xc0}) },
		"undecodable":  func(sc *secureConn) []byte { return sc.seal(nil, []byte{byte(types.KindVote), 0xff, 0xff}) },
		"invalid message": func(sc *secureConn) []byte {
			wire, err := types.Encode(&types.Vote{View: 1, Voter: 1, Sig: []byte{1}}) // short signature
			require.NoError(t, err)
			return sc.seal(nil, wire)
		},
	}
	for name, attack := range attacks {
		t.Run(name, func(t *testing.T) {
			sc, err := fakeDialer(t, c, 1, 3, c.signers[0])
			require.NoError(t, err)
			_, err = sc.c.Write(attack(sc))
			require.NoError(t, err)
			assert.True(t, closedByPeer(t, sc), "the connection stays open")
		})
	}
	// Each closed connection is counted, by reason (the sealed garbage, tampered and replayed
	// frames fail to open; the others fail to decode or are outside the size limits).
	assert.Equal(t, uint64(len(attacks)), ep.Refusals()["bad frame"])
	// "replayed frame" delivered its first copy; nothing else got through.
	env := recv(t, ep, types.LaneConsensus)
	assert.Equal(t, types.View(1), env.Msg.(*types.Vote).View)
	assertEmpty(t, ep)

	// The endpoint still serves an honest peer.
	sc, err := fakeDialer(t, c, 1, 3, c.signers[0])
	require.NoError(t, err)
	wire, err := types.Encode(signedVote(5))
	require.NoError(t, err)
	require.NoError(t, sc.write(sc.seal(nil, wire), time.Second))
	assert.Equal(t, types.View(5), recv(t, ep, types.LaneConsensus).Msg.(*types.Vote).View)
}

func TestTCPRefusesStrangersBeforeTheHandshake(t *testing.T) {
	c := newTCPCluster(t, 3, TCPOptions{HandshakeTimeout: 300 * time.Millisecond})
	hellos := map[string][]byte{
		"bad magic":         append([]byte("GET / HTTP/1.1\r\n"), make([]byte, 40)...),
		"addressed to 2":    hello(1, 2),
		"from unknown node": hello(9, 3),
		"from node 0":       hello(0, 3),
		"from a higher ID":  hello(3, 2),
		"from itself":       hello(3, 3),
		"silent":            nil, // sends nothing: the handshake deadline closes it
	}
	for name, h := range hellos {
		t.Run(name, func(t *testing.T) {
			to := types.NodeID(3)
			if name == "from a higher ID" {
				to = 2
			}
			nc, err := net.Dial("tcp", c.addrs[to])
			require.NoError(t, err)
			defer nc.Close()
			if h != nil {
				_, err = nc.Write(h)
				require.NoError(t, err)
			}
			require.NoError(t, nc.SetReadDeadline(time.Now().Add(5*time.Second)))
			n, err := io.ReadFull(bufio.NewReader(nc), make([]byte, hello2Size))
			assert.Error(t, err)
			assert.Zero(t, n, "the endpoint answered a bad hello")
		})
	}
	// The honest cluster is unaffected.
	c.eps[1].Send(3, signedVote(1))
	recv(t, c.eps[3], types.LaneConsensus)
}

func hello(from, to types.NodeID) []byte {
	h := []byte(tcpMagic)
	h = binary.BigEndian.AppendUint32(h, uint32(from))
	h = binary.BigEndian.AppendUint32(h, uint32(to))
	return append(h, make([]byte, 32)...) // X25519 accepts any 32 bytes as a public key... but not all-zero shares
}

func TestTCPRefusesAPeerWithTheWrongKey(t *testing.T) {
	c := newTCPCluster(t, 3, TCPOptions{}, 1)
	impostor := crypto.NewSigner(1, crypto.DeriveKey(99, 1))
	_, err := fakeDialer(t, c, 1, 3, impostor)
	require.Error(t, err, "node 3 accepted a dialer that does not hold node 1's key")
	assert.Contains(t, err.Error(), "refused")

	// A listener with the wrong key: node 1 dials "node 2" and must refuse it.
	c2 := newTCPCluster(t, 2, TCPOptions{}, 2)
	ln, err := net.Listen("tcp", c2.addrs[2])
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			accepted <- err
			return
		}
		defer nc.Close()
		_, _, err = handshakeAccept(nc, 2, crypto.NewSigner(2, crypto.DeriveKey(99, 2)), c2.keys, 5*time.Second, nil)
		accepted <- err
	}()
	select {
	case err := <-accepted:
		require.Error(t, err, "the dialer went on with an impostor listener")
	case <-time.After(10 * time.Second):
		t.Fatal("no connection attempt")
	}
	assert.Empty(t, c2.eps[1].Connected())
}

func TestTCPPeerThatStopsReadingDoesNotBlockOthers(t *testing.T) {
	// Node 2 is played by the test: it completes the handshake and then never reads.
	c := newTCPCluster(t, 3, TCPOptions{QueueBytes: 4 << 20, WriteTimeout: time.Hour}, 2)
	ln, err := net.Listen("tcp", c.addrs[2])
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { _ = nc.Close() })
		_, _, _ = handshakeAccept(nc, 2, c.signers[1], c.keys, 5*time.Second, nil)
	}()
	require.Eventually(t, func() bool { return contains(c.eps[1].Connected(), 2) }, 5*time.Second, 10*time.Millisecond)

	a := c.eps[1]
	noBlock(t, "sending to a peer that does not read", func() {
		for i := 0; i < 200; i++ { // 200 MB: far beyond socket buffers and the queue bound
			a.Send(2, bigForward(1<<20))
		}
	})
	assert.Positive(t, a.Counters().Dropped, "the bounded queue dropped nothing")
	for i := 0; i < 100; i++ {
		a.Send(3, signedVote(types.View(i)))
	}
	for i := 0; i < 100; i++ {
		assert.Equal(t, types.View(i), recv(t, c.eps[3], types.LaneConsensus).Msg.(*types.Vote).View)
	}
}

func TestTCPCloseEndsEverything(t *testing.T) {
	c := newTCPCluster(t, 3, TCPOptions{})
	c.eps[1].Broadcast(signedVote(1))
	recv(t, c.eps[2], types.LaneConsensus)
	// A stranger stuck in the handshake does not hold Close up.
	nc, err := net.Dial("tcp", c.addrs[3])
	require.NoError(t, err)
	defer nc.Close()
	for _, ep := range c.eps {
		noBlock(t, "Close", func() { require.NoError(t, ep.Close()) })
	}
	noBlock(t, "sending after Close", func() { c.eps[1].Broadcast(signedVote(2)) })
}

func TestTCPRefusesBadOptions(t *testing.T) {
	signers, keys := crypto.SimKeys(1, 2)
	_, err := ListenTCP(TCPOptions{Self: 1, Peers: map[types.NodeID]string{1: "127.0.0.1:0"}, Signer: signers[0], Verifier: keys})
	assert.ErrorContains(t, err, "no address for node 2")
	_, err = ListenTCP(TCPOptions{Self: 2, Peers: map[types.NodeID]string{1: "x:1", 2: "127.0.0.1:0"}, Signer: signers[0], Verifier: keys})
	assert.ErrorContains(t, err, "signer is node 1's")
	_, err = ListenTCP(TCPOptions{Self: 1, Peers: map[types.NodeID]string{1: "256.0.0.1:1", 2: "x:1"}, Signer: signers[0], Verifier: keys})
	assert.ErrorContains(t, err, "listen on 256.0.0.1:1")
}

// Link shaping over TCP: a 1 MB message on a 10 Mbit/s uplink takes about 0.8 s, and a vote sent
// after queued microblocks overtakes them.
func TestTCPShapedUplink(t *testing.T) {
	c := newTCPCluster(t, 2, TCPOptions{})
	const bps = 10e6
	s := Shape(c.eps[1], ShapeOptions{N: 2, Bandwidth: bps})
	defer s.Close()
	getsThrough(t, c.eps[2], 1, c.eps[1]) // connected

	big := bigForward(1 << 20)
	start := time.Now()
	s.Send(2, big)
	env := recv(t, c.eps[2], types.LaneData)
	took := time.Since(start)
	assert.Equal(t, types.WireSize(big), types.WireSize(env.Msg))
	assert.GreaterOrEqual(t, took, 650*time.Millisecond)
	assert.LessOrEqual(t, took, 1500*time.Millisecond)

	// Four 256 KB data messages (~0.2 s each on the wire), then a vote: the vote arrives after the
	// first of them, not after all four.
	start = time.Now()
	for i := 0; i < 4; i++ {
		s.Send(2, bigForward(256<<10))
	}
	s.Send(2, signedVote(42))
	env = recv(t, c.eps[2], types.LaneConsensus)
	assert.Equal(t, types.View(42), env.Msg.(*types.Vote).View)
	assert.Less(t, time.Since(start), 600*time.Millisecond, "the vote waited for the queued data")
	for i := 0; i < 4; i++ {
		recv(t, c.eps[2], types.LaneData)
	}
	assert.GreaterOrEqual(t, time.Since(start), 650*time.Millisecond, "4 × 256 KB at 10 Mbit/s")
}

// Nodes on one machine, each on its own loopback address, dial from that address: a packet names
// its sender, so a link between two of them can be cut in the kernel (the nemesis does, with tc).
func TestTCPDialsFromItsOwnLoopbackAddress(t *testing.T) {
	signers, keys := crypto.SimKeys(7, 2)
	ln2, err := net.Listen("tcp", "127.0.3.2:0")
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	defer ln2.Close()
	ln1, err := net.Listen("tcp", "127.0.3.1:0")
	require.NoError(t, err)
	peers := map[types.NodeID]string{1: ln1.Addr().String(), 2: ln2.Addr().String()}
	ep, err := ListenTCP(TCPOptions{Self: 1, Peers: peers, Listener: ln1, Signer: signers[0], Verifier: keys})
	require.NoError(t, err)
	defer ep.Close()
	require.NoError(t, ln2.(*net.TCPListener).SetDeadline(time.Now().Add(5*time.Second)))
	nc, err := ln2.Accept()
	require.NoError(t, err, "node 1 did not dial node 2")
	defer nc.Close()
	assert.Equal(t, "127.0.3.1", nc.RemoteAddr().(*net.TCPAddr).IP.String())

	assert.Nil(t, loopbackSource("127.0.0.1:1", "127.0.0.1:2"), "one address for all: the kernel's choice")
	assert.Nil(t, loopbackSource("10.0.0.1:1", "10.0.0.2:2"), "remote hosts: the kernel's choice")
	assert.Nil(t, loopbackSource("127.0.0.2:1", "10.0.0.2:2"), "a loopback source cannot reach a remote peer")
	assert.Nil(t, loopbackSource("localhost:1", "127.0.0.2:2"), "names are not resolved")
	assert.Equal(t, "127.0.0.2:0", loopbackSource("127.0.0.2:1", "127.0.0.3:2").String())
}

// A cluster with BLS12-381 keys authenticates over TCP: the handshake carries the scheme's 96-byte
// signatures, and a node holding another key is refused.
func TestTCPWithBLSKeys(t *testing.T) {
	signers, keys, err := crypto.SimKeysFor(crypto.SchemeBLS, 7, 2)
	require.NoError(t, err)
	lns := make([]net.Listener, 2)
	peers := map[types.NodeID]string{}
	for i := range lns {
		lns[i], err = net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		peers[types.NodeID(i+1)] = lns[i].Addr().String()
	}
	var eps []*TCPEndpoint
	for i := range lns {
		ep, err := ListenTCP(TCPOptions{Self: types.NodeID(i + 1), Peers: peers, Listener: lns[i], Signer: signers[i], Verifier: keys,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
		require.NoError(t, err)
		eps = append(eps, ep)
		defer ep.Close()
	}
	v := &types.Vote{View: 1, Voter: 1, Sig: signers[0].Sign(types.VoteDigest(1, types.Hash{}))}
	eps[0].Send(2, v)
	got := recv(t, eps[1], types.LaneConsensus)
	require.Equal(t, types.NodeID(1), got.From)
	require.Len(t, got.Msg.(*types.Vote).Sig, types.BLSSigSize)

	// Node 1's ID with another BLS key: refused by node 2.
	others, _, err := crypto.SimKeysFor(crypto.SchemeBLS, 8, 2)
	require.NoError(t, err)
	nc, err := net.Dial("tcp", peers[2])
	require.NoError(t, err)
	defer nc.Close()
	_, err = handshakeDial(nc, 1, 2, others[0], keys, 2*time.Second)
	require.Error(t, err, "a node with another key got through")
}
