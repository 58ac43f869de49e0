package consensus

import (
	"time"

	"github.com/stratusbft/stratus/types"
)

// ServeLimiter bounds what a replica sends a peer in answer to its requests (blocks for block
// sync, microblocks for fetches), so that a Byzantine peer asking for the largest item again and
// again gets a bounded rate, not amplification. Each peer has a token bucket of bytes refilled at
// Rate up to Burst. A request is served while the bucket is not empty (Ready, checked before the
// answer is built); its size is then taken (Charge), which may leave a debt, so an item larger
// than the bucket is still served, just not often.
type ServeLimiter struct {
	Rate  float64 // bytes per second
	Burst float64 // bytes
	peers map[types.NodeID]*serveBucket
}

type serveBucket struct {
	tokens float64
	at     time.Time
}

// Default serving limits per peer: honest block sync and fetches ask for one item per timeout,
// far below this; a replica further behind catches up by state transfer.
const (
	DefaultServeRate  = 4 << 20  // bytes per second
	DefaultServeBurst = 16 << 20 // bytes
)

// NewServeLimiter returns a limiter with the given rate (bytes/s) and burst (bytes).
func NewServeLimiter(rate, burst float64) *ServeLimiter {
	return &ServeLimiter{Rate: rate, Burst: burst, peers: make(map[types.NodeID]*serveBucket)}
}

// Ready reports whether peer may be served now, before the answer is built: a peer over its
// budget costs no work.
func (l *ServeLimiter) Ready(peer types.NodeID, now time.Time) bool {
	return l.bucket(peer, now).tokens > 0
}

// Charge takes the bytes of an answer sent to peer from its budget.
func (l *ServeLimiter) Charge(peer types.NodeID, bytes int, now time.Time) {
	l.bucket(peer, now).tokens -= float64(bytes)
}

func (l *ServeLimiter) bucket(peer types.NodeID, now time.Time) *serveBucket {
	b := l.peers[peer]
	if b == nil {
		b = &serveBucket{tokens: l.Burst, at: now}
		l.peers[peer] = b
	}
	if dt := now.Sub(b.at); dt > 0 {
		b.tokens = min(l.Burst, b.tokens+l.Rate*dt.Seconds())
		b.at = now
	}
	return b
}
