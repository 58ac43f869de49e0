package api

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/types"
)

// faultCall is one call on a FaultTarget.
type faultCall struct {
	Kind  string
	D     time.Duration
	Extra time.Duration
	P     float64
	To    types.NodeID
}

// fakeTarget records calls and answers like a shaper: the end time, or zero when the call ends the
// fault.
type fakeTarget struct {
	mu    sync.Mutex
	calls []faultCall
}

func (f *fakeTarget) record(c faultCall, active bool) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	if !active || c.D <= 0 {
		return time.Time{}
	}
	return time.Now().Add(c.D)
}

func (f *fakeTarget) Crash(d time.Duration) time.Time {
	return f.record(faultCall{Kind: "crash", D: d}, true)
}

func (f *fakeTarget) Slow(extra, d time.Duration) time.Time {
	return f.record(faultCall{Kind: "slow", D: d, Extra: extra}, extra > 0)
}

func (f *fakeTarget) Flaky(p float64, d time.Duration) time.Time {
	return f.record(faultCall{Kind: "flaky", D: d, P: p}, p > 0)
}

func (f *fakeTarget) Drop(to types.NodeID, d time.Duration) time.Time {
	return f.record(faultCall{Kind: "drop", D: d, To: to}, true)
}

func (f *fakeTarget) got() []faultCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]faultCall(nil), f.calls...)
}

// newFaultServer serves node 1 of 4 with fault injection on target (nil: disabled).
func newFaultServer(node *fakeNode, target FaultTarget, n int) *Server {
	col := stats.New(stats.Info{Node: 1, N: n, Algorithm: "hotstuff", Engine: "hotstuff", MemType: "native"}, time.Now)
	return New(node, col, Options{MaxTxSize: 256, Faults: target, N: n})
}

var validFaultRequests = []string{"/crash?t=5", "/slow?ms=200&t=10", "/flaky?p=0.5&t=1", "/drop?to=2&t=1"}

func TestFaultRoutesDisabled(t *testing.T) {
	node := &fakeNode{}
	s := newFaultServer(node, nil, 4)
	for _, target := range append(validFaultRequests, "/crash", "/slow", "/flaky", "/drop") {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			rec := do(t, s, m, target, []byte("x"))
			require.Equal(t, http.StatusNotFound, rec.Code, "%s %s: %s", m, target, rec.Body.String())
			e := decodeErr(t, rec)
			assert.Equal(t, "not_found", e.Reason)
			assert.Contains(t, e.Error, "no route")
			assert.NotContains(t, e.Error, "/crash?", "a node without fault injection does not advertise it")
		}
	}
	assert.Empty(t, node.submissions(), "a fault path is never stored as a key")

	// The same answer as any unknown path.
	unknown := decodeErr(t, do(t, s, http.MethodGet, "/a/b", nil))
	crash := decodeErr(t, do(t, s, http.MethodGet, "/crash", nil))
	assert.Equal(t, unknown.Reason, crash.Reason)
	assert.Equal(t, "no route GET /crash; routes: POST /txs, PUT|POST /{key}, GET|HEAD /{key}[?consistency=linearizable], GET /query[?format=json], GET /stats, GET / (dashboard), GET /cluster.json, GET /metrics", crash.Error)
}

func TestFaultRoutesCallTarget(t *testing.T) {
	cases := []struct {
		target string
		want   faultCall
		resp   map[string]any // fields of the answer besides fault, node, until
	}{
		{"/crash?t=5", faultCall{Kind: "crash", D: 5 * time.Second}, map[string]any{"seconds": 5.0}},
		{"/crash?t=0.5", faultCall{Kind: "crash", D: 500 * time.Millisecond}, map[string]any{"seconds": 0.5}},
		{"/slow?ms=200&t=10", faultCall{Kind: "slow", D: 10 * time.Second, Extra: 200 * time.Millisecond}, map[string]any{"ms": 200.0, "seconds": 10.0}},
		{"/slow?t=0.25&ms=1.5", faultCall{Kind: "slow", D: 250 * time.Millisecond, Extra: 1500 * time.Microsecond}, map[string]any{"ms": 1.5, "seconds": 0.25}},
		{"/slow?ms=60000&t=3600", faultCall{Kind: "slow", D: time.Hour, Extra: time.Minute}, map[string]any{"ms": 60000.0, "seconds": 3600.0}},
		{"/flaky?p=0.3&t=2.5", faultCall{Kind: "flaky", D: 2500 * time.Millisecond, P: 0.3}, map[string]any{"p": 0.3, "seconds": 2.5}},
		{"/flaky?p=1&t=1", faultCall{Kind: "flaky", D: time.Second, P: 1}, map[string]any{"p": 1.0, "seconds": 1.0}},
		{"/drop?to=4&t=30", faultCall{Kind: "drop", D: 30 * time.Second, To: 4}, map[string]any{"to": 4.0, "seconds": 30.0}},
		{"/drop?to=2&t=1e-3", faultCall{Kind: "drop", D: time.Millisecond, To: 2}, map[string]any{"to": 2.0, "seconds": 0.001}},
	}
	for _, tc := range cases {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			target := &fakeTarget{}
			node := &fakeNode{}
			s := newFaultServer(node, target, 4)
			before := time.Now()
			rec := do(t, s, m, tc.target, nil)
			require.Equal(t, http.StatusOK, rec.Code, "%s %s: %s", m, tc.target, rec.Body.String())
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			assert.Equal(t, []faultCall{tc.want}, target.got(), "%s %s", m, tc.target)
			assert.Empty(t, node.submissions())

			var resp map[string]any
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
			want := map[string]any{"fault": tc.want.Kind, "node": 1.0}
			for k, v := range tc.resp {
				want[k] = v
			}
			until, err := time.Parse(time.RFC3339Nano, resp["until"].(string))
			require.NoError(t, err, "until: %v", resp["until"])
			assert.WithinDuration(t, before.Add(tc.want.D), until, time.Second, tc.target)
			assert.Equal(t, time.UTC, until.Location())
			delete(resp, "until")
			assert.Equal(t, want, resp, "%s %s", m, tc.target)
		}
	}
}

// t=0 ends a network fault; the answer says so and has no end time.
func TestFaultRoutesClear(t *testing.T) {
	for _, tc := range []struct {
		target string
		want   faultCall
	}{
		{"/slow?ms=200&t=0", faultCall{Kind: "slow", Extra: 200 * time.Millisecond}},
		{"/slow?ms=0&t=10", faultCall{Kind: "slow", D: 10 * time.Second}},
		{"/flaky?p=0.2&t=0", faultCall{Kind: "flaky", P: 0.2}},
		{"/flaky?p=0&t=5", faultCall{Kind: "flaky", D: 5 * time.Second}},
		{"/drop?to=3&t=0", faultCall{Kind: "drop", To: 3}},
	} {
		target := &fakeTarget{}
		rec := do(t, newFaultServer(&fakeNode{}, target, 4), http.MethodPost, tc.target, nil)
		require.Equal(t, http.StatusOK, rec.Code, "%s: %s", tc.target, rec.Body.String())
		assert.Equal(t, []faultCall{tc.want}, target.got(), tc.target)
		var resp FaultResponse
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
		assert.True(t, resp.Cleared, tc.target)
		assert.Nil(t, resp.Until, tc.target)
		assert.NotContains(t, rec.Body.String(), "until")
	}
}

func TestFaultRouteValidation(t *testing.T) {
	cases := []struct {
		target string
		want   []string // substrings of the error
	}{
		{"/crash", []string{"t is missing", "(0, 3600]"}},
		{"/crash?t=0", []string{"t=0 is outside (0, 3600]", "a crash must end"}},
		{"/crash?t=-1", []string{"t=-1 is outside (0, 3600]"}},
		{"/crash?t=3601", []string{"t=3601 is outside (0, 3600]"}},
		{"/crash?t=abc", []string{`t="abc" is not a number`, "(0, 3600]"}},
		{"/crash?t=", []string{`t="" is not a number`}},
		{"/crash?t=NaN", []string{"t=NaN is not a finite number", "(0, 3600]"}},
		{"/crash?t=Inf", []string{"t=Inf is not a finite number"}},
		{"/crash?t=-Inf", []string{"t=-Inf is not a finite number"}},
		{"/crash?t=1&t=2", []string{"t is given 2 times"}},
		{"/crash?t=1&seconds=2", []string{`unknown parameter "seconds"`, "/crash takes t"}},
		{"/slow?t=10", []string{"ms is missing", "[0, 60000]", "milliseconds"}},
		{"/slow?ms=200", []string{"t is missing", "[0, 3600]"}},
		{"/slow?ms=-1&t=1", []string{"ms=-1 is outside [0, 60000]"}},
		{"/slow?ms=60001&t=1", []string{"ms=60001 is outside [0, 60000]"}},
		{"/slow?ms=NaN&t=1", []string{"ms=NaN is not a finite number"}},
		{"/slow?ms=10&t=-0.5", []string{"t=-0.5 is outside [0, 3600]"}},
		{"/slow?ms=10&t=1e9", []string{"t=1e9 is outside [0, 3600]"}},
		{"/slow?delay=10&t=1", []string{"ms is missing", `unknown parameter "delay"`, "/slow takes ms and t"}},
		{"/slow?ms=x&t=y", []string{`ms="x" is not a number`, `t="y" is not a number`}},
		{"/flaky?t=1", []string{"p is missing", "[0, 1]"}},
		{"/flaky?p=1.5&t=1", []string{"p=1.5 is outside [0, 1]", "share of outgoing messages"}},
		{"/flaky?p=-0.1&t=1", []string{"p=-0.1 is outside [0, 1]"}},
		{"/flaky?p=half&t=1", []string{`p="half" is not a number`}},
		{"/flaky?p=NaN&t=1", []string{"p=NaN is not a finite number"}},
		{"/flaky?p=0.5", []string{"t is missing"}},
		{"/drop?t=1", []string{"to is missing", "[1, 4] other than 1 (this node)"}},
		{"/drop?to=0&t=1", []string{"to=0 is outside [1, 4]"}},
		{"/drop?to=5&t=1", []string{"to=5 is outside [1, 4]"}},
		{"/drop?to=1&t=1", []string{"to=1 is this node", "[1, 4]"}},
		{"/drop?to=-1&t=1", []string{`to="-1" is not a node ID`}},
		{"/drop?to=2.5&t=1", []string{`to="2.5" is not a node ID`}},
		{"/drop?to=abc&t=1", []string{`to="abc" is not a node ID`}},
		{"/drop?to=99999999999&t=1", []string{`to="99999999999" is not a node ID`}},
		{"/drop?to=2&t=4000", []string{"t=4000 is outside [0, 3600]"}},
		{"/drop?to=2&to=3&t=1", []string{"to is given 2 times"}},
		{"/drop?to=2&t=1;x", []string{"query"}},
	}
	for _, tc := range cases {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			target := &fakeTarget{}
			rec := do(t, newFaultServer(&fakeNode{}, target, 4), m, tc.target, nil)
			require.Equal(t, http.StatusBadRequest, rec.Code, "%s %s: %s", m, tc.target, rec.Body.String())
			e := decodeErr(t, rec)
			assert.Equal(t, "bad_request", e.Reason, tc.target)
			for _, w := range tc.want {
				assert.Contains(t, e.Error, w, "%s %s", m, tc.target)
			}
			assert.Empty(t, target.got(), "%s: a refused request does nothing", tc.target)
		}
	}
}

func TestFaultDropWithoutPeers(t *testing.T) {
	target := &fakeTarget{}
	rec := do(t, newFaultServer(&fakeNode{}, target, 1), http.MethodGet, "/drop?to=1&t=1", nil)
	require.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Contains(t, decodeErr(t, rec).Error, "this run has 1")
	assert.Empty(t, target.got())
}

func TestFaultRouteMethods(t *testing.T) {
	target := &fakeTarget{}
	s := newFaultServer(&fakeNode{}, target, 4)
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
		rec := do(t, s, m, "/slow?ms=1&t=1", nil)
		require.Equal(t, http.StatusMethodNotAllowed, rec.Code, m)
		assert.Equal(t, "GET, POST", rec.Header().Get("Allow"))
		assert.Equal(t, "method", decodeErr(t, rec).Reason)
	}
	assert.Empty(t, target.got())

	// With fault injection on, a 404 lists the fault routes.
	e := decodeErr(t, do(t, s, http.MethodGet, "/a/b", nil))
	assert.Contains(t, e.Error, "/crash?t=S")
	assert.Contains(t, e.Error, "/drop?to=ID&t=S")
}

// The answer's JSON, field by field, as documented.
func TestFaultResponseJSON(t *testing.T) {
	until := time.Date(2026, 11, 27, 17, 0, 0, 0, time.UTC)
	ms := 200.0
	data, err := json.Marshal(FaultResponse{Fault: "slow", Node: 3, Ms: &ms, Seconds: 10, Until: &until})
	require.NoError(t, err)
	assert.JSONEq(t, `{"fault":"slow","node":3,"ms":200,"seconds":10,"until":"2026-11-27T17:00:00Z"}`, string(data))
	p := 0.0
	data, err = json.Marshal(FaultResponse{Fault: "flaky", Node: 2, P: &p, Seconds: 0, Cleared: true})
	require.NoError(t, err)
	assert.JSONEq(t, `{"fault":"flaky","node":2,"p":0,"seconds":0,"cleared":true}`, string(data))
}

// fakeNet records the network faults FaultsOf passes on.
type fakeNet struct{ fakeTarget }

func TestFaultsOf(t *testing.T) {
	var crashes []time.Duration
	net := &fakeNet{}
	f := FaultsOf(func(d time.Duration) { crashes = append(crashes, d) }, net)

	before := time.Now()
	until := f.Crash(2 * time.Second)
	assert.WithinDuration(t, before.Add(2*time.Second), until, time.Second)
	assert.Equal(t, []time.Duration{2 * time.Second}, crashes)
	// 0 would keep the replica down for good: it is never passed on.
	assert.True(t, f.Crash(0).IsZero())
	assert.True(t, f.Crash(-time.Second).IsZero())
	assert.Len(t, crashes, 1)

	assert.False(t, f.Slow(time.Millisecond, time.Second).IsZero())
	assert.False(t, f.Flaky(0.5, time.Second).IsZero())
	assert.False(t, f.Drop(3, time.Second).IsZero())
	assert.Equal(t, []faultCall{
		{Kind: "slow", D: time.Second, Extra: time.Millisecond},
		{Kind: "flaky", D: time.Second, P: 0.5},
		{Kind: "drop", D: time.Second, To: 3},
	}, net.got())

	// Missing parts are no-ops, not panics; the API answers 503 for a crash it cannot do.
	none := FaultsOf(nil, nil)
	assert.True(t, none.Crash(time.Second).IsZero())
	assert.True(t, none.Slow(time.Second, time.Second).IsZero())
	assert.True(t, none.Flaky(1, time.Second).IsZero())
	assert.True(t, none.Drop(2, time.Second).IsZero())
	rec := do(t, newFaultServer(&fakeNode{}, none, 4), http.MethodGet, "/crash?t=1", nil)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "unavailable", decodeErr(t, rec).Reason)
}

// The end to end path: the HTTP request reaches the replica's crash with the parsed duration.
func TestFaultCrashThroughFaultsOf(t *testing.T) {
	got := make(chan time.Duration, 1)
	s := newFaultServer(&fakeNode{}, FaultsOf(func(d time.Duration) { got <- d }, &fakeNet{}), 4)
	rec := do(t, s, http.MethodPost, "/crash?t=1.5", nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, 1500*time.Millisecond, <-got)
	var resp FaultResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
	assert.Equal(t, FaultResponse{Fault: "crash", Node: 1, Seconds: 1.5, Until: resp.Until}, resp)
	require.NotNil(t, resp.Until)
}
