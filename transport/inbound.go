package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/stratusbft/stratus/internal/fifo"
	"github.com/stratusbft/stratus/types"
)

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
		env, ok := q.msgs.Pop()
		if !ok {
			continue
		}
		q.msgs.Trim() // an emptied queue gives a burst's backing array back
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
