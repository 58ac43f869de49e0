package transport

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/stratusbft/stratus/types"
)

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
