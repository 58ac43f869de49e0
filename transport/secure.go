package transport

import (
	"bufio"
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
	"sync"
	"time"

	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

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
