package api

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stratusbft/stratus/types"
)

// FaultTarget is what the fault routes act on: the replica (crash) and its links (slow, flaky,
// drop). Each call starts a fault that ends by itself after d and returns when it ends; a new call
// of the same kind replaces the previous one.
type FaultTarget interface {
	// Crash stops the replica: it loses its state except its saved voting state, restarts after d
	// and catches up. d is always positive.
	Crash(d time.Duration) time.Time
	// Slow adds extra delay to every outgoing message; d 0 ends it now.
	Slow(extra, d time.Duration) time.Time
	// Flaky drops share p of outgoing messages; d 0 ends it now.
	Flaky(p float64, d time.Duration) time.Time
	// Drop drops everything sent to peer to; d 0 ends it now.
	Drop(to types.NodeID, d time.Duration) time.Time
}

// NetFaults is the network half of a FaultTarget; *transport.Shaper implements it.
type NetFaults interface {
	Slow(extra, d time.Duration) time.Time
	Flaky(p float64, d time.Duration) time.Time
	Drop(to types.NodeID, d time.Duration) time.Time
}

// FaultsOf joins a replica's crash (replica.(*Replica).Crash) and its shaped endpoint's network
// faults into a FaultTarget. A nil part makes its faults no-ops.
func FaultsOf(crash func(down time.Duration), net NetFaults) FaultTarget {
	return faultsOf{crash: crash, net: net}
}

type faultsOf struct {
	crash func(time.Duration)
	net   NetFaults
}

// Crash never passes 0 on: to the replica, 0 means staying down for good.
func (f faultsOf) Crash(d time.Duration) time.Time {
	if d <= 0 || f.crash == nil {
		return time.Time{}
	}
	until := time.Now().Add(d)
	f.crash(d)
	return until
}

func (f faultsOf) Slow(extra, d time.Duration) time.Time {
	if f.net == nil {
		return time.Time{}
	}
	return f.net.Slow(extra, d)
}

func (f faultsOf) Flaky(p float64, d time.Duration) time.Time {
	if f.net == nil {
		return time.Time{}
	}
	return f.net.Flaky(p, d)
}

func (f faultsOf) Drop(to types.NodeID, d time.Duration) time.Time {
	if f.net == nil {
		return time.Time{}
	}
	return f.net.Drop(to, d)
}

// Bounds of the fault parameters.
const (
	MaxFaultSeconds = 3600   // t: how long a fault lasts
	MaxSlowMs       = 60_000 // ms: delay the slow fault adds
)

// FaultResponse is the JSON answer to a fault request: what was done and when it ends.
type FaultResponse struct {
	Fault   string       `json:"fault"` // crash | slow | flaky | drop
	Node    types.NodeID `json:"node"`  // the replica that serves the request
	Ms      *float64     `json:"ms,omitempty"`
	P       *float64     `json:"p,omitempty"`
	To      types.NodeID `json:"to,omitempty"`
	Seconds float64      `json:"seconds"`
	Until   *time.Time   `json:"until,omitempty"`   // UTC; absent when the request ended the fault
	Cleared bool         `json:"cleared,omitempty"` // the request ended the fault (t=0)
}

// faultRoutes lists each fault path with the parameters it takes.
var faultRoutes = map[string][]string{
	"/crash": {"t"},
	"/slow":  {"ms", "t"},
	"/flaky": {"p", "t"},
	"/drop":  {"to", "t"},
}

func isFaultPath(path string) bool {
	_, ok := faultRoutes[path]
	return ok
}

// span is the allowed range of a numeric parameter.
type span struct {
	lo, hi float64
	openLo bool // lo itself is refused
	unit   string
}

func (s span) String() string {
	open := "["
	if s.openLo {
		open = "("
	}
	return fmt.Sprintf("%s%v, %v] (%s)", open, s.lo, s.hi, s.unit)
}

var (
	crashSeconds = span{0, MaxFaultSeconds, true, "seconds; a crash must end, so 0 is refused"}
	faultSeconds = span{0, MaxFaultSeconds, false, "seconds; 0 ends the fault now"}
	slowMs       = span{0, MaxSlowMs, false, "milliseconds added to every outgoing message"}
	flakyP       = span{0, 1, false, "share of outgoing messages dropped"}
)

// faultParams reads a fault request's query and collects every problem.
type faultParams struct {
	q    url.Values
	errs []string
}

func (p *faultParams) bad(format string, args ...any) {
	p.errs = append(p.errs, fmt.Sprintf(format, args...))
}

// raw returns the one value of a parameter, or false after recording why there is none.
func (p *faultParams) raw(name, want string) (string, bool) {
	vs, ok := p.q[name]
	switch {
	case !ok:
		p.bad("%s is missing: want %s", name, want)
		return "", false
	case len(vs) > 1:
		p.bad("%s is given %d times: give it once", name, len(vs))
		return "", false
	}
	return vs[0], true
}

func (p *faultParams) number(name string, allowed span) float64 {
	s, ok := p.raw(name, allowed.String())
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	switch {
	case err != nil:
		p.bad("%s=%q is not a number: want %v", name, s, allowed)
	case math.IsNaN(v) || math.IsInf(v, 0):
		p.bad("%s=%s is not a finite number: want %v", name, s, allowed)
	case v < allowed.lo || v > allowed.hi || (allowed.openLo && v == allowed.lo):
		p.bad("%s=%s is outside %v", name, s, allowed)
	default:
		return v
	}
	return 0
}

func (p *faultParams) peer(name string, self types.NodeID, n int) types.NodeID {
	want := fmt.Sprintf("a replica in [1, %d] other than %d (this node)", n, self)
	if n < 2 {
		want = fmt.Sprintf("another replica, but this run has %d", n)
	}
	s, ok := p.raw(name, want)
	if !ok {
		return 0
	}
	id, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	switch {
	case err != nil:
		p.bad("%s=%q is not a node ID: want %s", name, s, want)
	case id < 1 || id > uint64(n):
		p.bad("%s=%s is outside [1, %d]: want %s", name, s, n, want)
	case types.NodeID(id) == self:
		p.bad("%s=%s is this node: want %s", name, s, want)
	default:
		return types.NodeID(id)
	}
	return 0
}

// unknown refuses parameters the route does not take, so that a typo is not silently ignored.
func (p *faultParams) unknown(path string) {
	takes := faultRoutes[path]
	var extra []string
	for k := range p.q {
		known := false
		for _, t := range takes {
			known = known || k == t
		}
		if !known {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		p.bad("unknown parameter %q: %s takes %s", k, path, strings.Join(takes, " and "))
	}
}

func seconds(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }

// fault serves GET|POST /crash, /slow, /flaky and /drop. Parameters come in the query string.
func (s *Server) fault(w http.ResponseWriter, r *http.Request) {
	target := s.opts.Faults
	if target == nil {
		s.notFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "use GET or POST", "method")
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "query: "+err.Error(), "bad_request")
		return
	}
	path := r.URL.Path
	p := &faultParams{q: q}
	p.unknown(path)
	self := s.node.ID()
	resp := FaultResponse{Fault: path[1:], Node: self}
	var t float64
	var do func() time.Time
	switch path {
	case "/crash":
		t = p.number("t", crashSeconds)
		do = func() time.Time { return target.Crash(seconds(t)) }
	case "/slow":
		ms := p.number("ms", slowMs)
		t = p.number("t", faultSeconds)
		resp.Ms = &ms
		do = func() time.Time { return target.Slow(time.Duration(ms*float64(time.Millisecond)), seconds(t)) }
	case "/flaky":
		pr := p.number("p", flakyP)
		t = p.number("t", faultSeconds)
		resp.P = &pr
		do = func() time.Time { return target.Flaky(pr, seconds(t)) }
	case "/drop":
		to := p.peer("to", self, s.opts.N)
		t = p.number("t", faultSeconds)
		resp.To = to
		do = func() time.Time { return target.Drop(to, seconds(t)) }
	}
	if len(p.errs) > 0 {
		writeError(w, http.StatusBadRequest, strings.Join(p.errs, "; "), "bad_request")
		return
	}
	resp.Seconds = t
	until := do()
	switch {
	case until.IsZero() && path == "/crash":
		writeError(w, http.StatusServiceUnavailable, "this node cannot be crashed on request", "unavailable")
		return
	case until.IsZero():
		resp.Cleared = true
	default:
		u := until.UTC()
		resp.Until = &u
	}
	writeJSON(w, http.StatusOK, resp)
}
