package transport

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/stratusbft/stratus/types"
)

// Fault kinds reported by Active.
const (
	FaultSlow    = "slow"
	FaultFlaky   = "flaky"
	FaultDrop    = "drop"
	FaultIsolate = "isolate"
)

// FaultState is one active fault of a Shaper.
type FaultState struct {
	Fault string        // FaultSlow, FaultFlaky, FaultDrop or FaultIsolate
	To    types.NodeID  // drop: the peer nothing reaches
	Extra time.Duration // slow: delay added to every message
	P     float64       // flaky: share of messages dropped
	Until time.Time     // when the fault ends by itself
}

// MarshalJSON writes {"fault":"slow","ms":200,"until":"..."}, with only the fields of the kind.
func (f FaultState) MarshalJSON() ([]byte, error) {
	out := map[string]any{"fault": f.Fault, "until": f.Until.UTC().Format(time.RFC3339Nano)}
	switch f.Fault {
	case FaultSlow:
		out["ms"] = float64(f.Extra) / float64(time.Millisecond)
	case FaultFlaky:
		out["p"] = f.P
	case FaultDrop:
		out["to"] = f.To
	}
	return json.Marshal(out)
}

// Slow adds extra delay to every outgoing message for d and returns when that ends. A new call
// replaces the previous one; d <= 0 or extra <= 0 ends it now (and returns the zero time).
func (s *Shaper) Slow(extra, d time.Duration) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if extra <= 0 || d <= 0 {
		s.slow.extra, s.slow.until = 0, time.Time{}
		return time.Time{}
	}
	s.slow.extra, s.slow.until = extra, time.Now().Add(d)
	s.detour.Store(true)
	return s.slow.until
}

// Flaky drops share p of outgoing messages (p is clamped to [0, 1]) for d and returns when that
// ends. A new call replaces the previous one; d <= 0 or p <= 0 ends it now.
func (s *Shaper) Flaky(p float64, d time.Duration) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !(p > 0) || d <= 0 {
		s.flaky.p, s.flaky.until = 0, time.Time{}
		return time.Time{}
	}
	s.flaky.p, s.flaky.until = min(p, 1), time.Now().Add(d)
	s.detour.Store(true)
	return s.flaky.until
}

// Drop drops everything sent to peer to for d, including what is already under way, and returns
// when that ends. Each peer has its own end; a new call for the same peer replaces it, and d <= 0
// ends it now. A peer that is not one of the others (0, self, above N) is ignored.
func (s *Shaper) Drop(to types.NodeID, d time.Duration) time.Time {
	if !s.peer(to) {
		return time.Time{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.drops, to)
		return time.Time{}
	}
	until := time.Now().Add(d)
	s.drops[to] = until
	s.detour.Store(true)
	return until
}

// Isolate cuts the replica off for d: nothing leaves (what is under way is lost too) and whatever
// arrives is discarded. A new call replaces the previous one; d <= 0 ends it now.
func (s *Shaper) Isolate(d time.Duration) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		s.isolate = time.Time{}
		s.isoUntil.Store(0)
		return time.Time{}
	}
	s.isolate = time.Now().Add(d)
	s.isoUntil.Store(s.isolate.UnixNano())
	s.detour.Store(true)
	return s.isolate
}

// Active lists the faults in force now, by kind and then peer.
func (s *Shaper) Active() []FaultState {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now)
	var out []FaultState
	if !s.slow.until.IsZero() {
		out = append(out, FaultState{Fault: FaultSlow, Extra: s.slow.extra, Until: s.slow.until})
	}
	if !s.flaky.until.IsZero() {
		out = append(out, FaultState{Fault: FaultFlaky, P: s.flaky.p, Until: s.flaky.until})
	}
	peers := make([]types.NodeID, 0, len(s.drops))
	for to := range s.drops {
		peers = append(peers, to)
	}
	slices.Sort(peers)
	for _, to := range peers {
		out = append(out, FaultState{Fault: FaultDrop, To: to, Until: s.drops[to]})
	}
	if !s.isolate.IsZero() {
		out = append(out, FaultState{Fault: FaultIsolate, Until: s.isolate})
	}
	return out
}

// prune forgets the faults that have ended, and lets sends take the direct path again once none
// is left and nothing is under way. Caller holds mu.
func (s *Shaper) prune(now time.Time) {
	if !now.Before(s.slow.until) {
		s.slow.extra, s.slow.until = 0, time.Time{}
	}
	if !now.Before(s.flaky.until) {
		s.flaky.p, s.flaky.until = 0, time.Time{}
	}
	for to, until := range s.drops {
		if !now.Before(until) {
			delete(s.drops, to)
		}
	}
	if !now.Before(s.isolate) {
		s.isolate = time.Time{}
		s.isoUntil.Store(0)
	}
	active := !s.slow.until.IsZero() || !s.flaky.until.IsZero() || len(s.drops) > 0 || !s.isolate.IsZero()
	// Copies still under way keep later sends behind them, so that a destination receives in order.
	underWay := s.onWire || len(s.prop) > 0 || s.delivering || s.laneBytes[types.LaneConsensus] > 0 || s.laneBytes[types.LaneData] > 0
	s.detour.Store(active || underWay)
}
