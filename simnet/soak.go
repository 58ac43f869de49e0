package simnet

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"time"

	"github.com/stratusbft/stratus/byzantine"
	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/mempool"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/types"
)

// A soak run is a random scenario drawn from a seed: N from 4 to 13, an engine, a mempool, gossip
// and load balancing or not, up to f faulty replicas (each following a random strategy, or
// crashing and restarting), random latency and jitter, message loss and partitions until GST.
// It checks safety all along and, after GST, liveness: every transaction submitted to an honest
// replica is delivered by every honest replica within LivenessBound.

// LivenessBound is how long after GST every honest transaction must be delivered everywhere.
const LivenessBound = 90 * time.Second

// Scenario is what a soak seed draws.
type Scenario struct {
	Seed      int64
	N         int
	Engine    string
	MemType   string
	Gossip    bool
	LB        bool
	Latency   time.Duration
	Jitter    time.Duration
	Loss      float64
	GST       time.Duration
	Faulty    map[types.NodeID]string // strategy per faulty replica ("crash": crashes and restarts)
	Crash     map[types.NodeID]CrashPlan
	Partition *Partition
	Txs       int
	// Restarts names the restarts of honest replicas from their stores: "" (none), "rolling"
	// (each in turn, one at a time) or "cluster" (all at once).
	Restarts string
	// Inline (stratus): proposals carry their proofs (the paper's design) instead of naming
	// microblocks by reference (the default).
	Inline bool
	// BLS: certificates are one aggregate signature (simulated BLS12-381 signatures; a real
	// pairing per check would make a soak run take minutes).
	BLS bool
}

// NewScenario draws the scenario of a seed.
func NewScenario(seed int64) Scenario {
	r := rand.New(rand.NewSource(seed))
	sc := Scenario{Seed: seed, N: 4 + r.Intn(10)}
	sc.Engine = []string{config.EngineHotStuff, config.EngineStreamlet}[r.Intn(2)]
	sc.MemType = []string{config.MemNative, config.MemSMP, config.MemStratus}[r.Intn(3)]
	if sc.MemType != config.MemNative {
		sc.Gossip = r.Intn(3) == 0
		sc.LB = r.Intn(3) == 0
	}
	sc.Latency = time.Duration(500+r.Intn(10_000)) * time.Microsecond
	sc.Jitter = time.Duration(r.Int63n(int64(3*sc.Latency) + 1))
	sc.GST = time.Duration(500+r.Intn(2500)) * time.Millisecond
	if r.Intn(2) == 0 {
		sc.Loss = r.Float64() * 0.1
	}
	f := config.Faults(sc.N)
	ids := r.Perm(sc.N)
	strategies := byzantine.Strategies()
	sc.Faulty = make(map[types.NodeID]string)
	sc.Crash = make(map[types.NodeID]CrashPlan)
	for _, i := range ids[:r.Intn(f+1)] {
		id := types.NodeID(i + 1)
		st := strategies[r.Intn(len(strategies))]
		sc.Faulty[id] = st
		if st == byzantine.Crash {
			at := time.Duration(r.Int63n(int64(sc.GST)))
			sc.Crash[id] = CrashPlan{At: at, Down: time.Duration(200+r.Intn(3000)) * time.Millisecond}
		}
	}
	if r.Intn(2) == 0 {
		side := ids[:1+r.Intn(sc.N-1)]
		p := &Partition{From: time.Duration(r.Int63n(int64(sc.GST))), To: sc.GST}
		for _, i := range side {
			p.Side = append(p.Side, types.NodeID(i+1))
		}
		sort.Slice(p.Side, func(i, j int) bool { return p.Side[i] < p.Side[j] })
		sc.Partition = p
	}
	sc.Txs = 200 + r.Intn(800)
	// Drawn last, so that the earlier draws (and the scenarios of seeds recorded before) stay.
	switch r.Intn(8) {
	case 0, 1:
		sc.Restarts = "rolling"
		at := time.Duration(r.Int63n(int64(sc.GST)))
		for id := types.NodeID(1); int(id) <= sc.N; id++ {
			if _, faulty := sc.Faulty[id]; faulty {
				continue
			}
			down := time.Duration(200+r.Intn(400)) * time.Millisecond
			sc.Crash[id] = CrashPlan{At: at, Down: down}
			at += down + time.Duration(100+r.Intn(300))*time.Millisecond
		}
	case 2:
		sc.Restarts = "cluster"
		at, down := time.Duration(r.Int63n(int64(sc.GST))), time.Duration(200+r.Intn(800))*time.Millisecond
		for id := types.NodeID(1); int(id) <= sc.N; id++ {
			if _, faulty := sc.Faulty[id]; !faulty {
				sc.Crash[id] = CrashPlan{At: at, Down: down}
			}
		}
	}
	sc.Inline = sc.MemType == config.MemStratus && r.Intn(3) == 0 // drawn after every earlier draw, as Restarts
	sc.BLS = r.Intn(3) == 0
	return sc
}

// up reports whether replica id is up around t: no transaction goes to a replica in the 300 ms
// before its crash (what it holds when it crashes is lost, never acknowledged) nor while down.
func (sc Scenario) up(id types.NodeID, t time.Duration) bool {
	c, ok := sc.Crash[id]
	return !ok || t < c.At-300*time.Millisecond || t > c.At+c.Down+50*time.Millisecond
}

// String is a one-line description.
func (sc Scenario) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "N=%d %s/%s", sc.N, sc.Engine, sc.MemType)
	if sc.Gossip {
		b.WriteString("+gossip")
	}
	if sc.Inline {
		b.WriteString("+inline")
	}
	if sc.BLS {
		b.WriteString("+bls")
	}
	if sc.LB {
		b.WriteString("+lb")
	}
	fmt.Fprintf(&b, " latency %v±%v loss %.3f GST %v", sc.Latency, sc.Jitter, sc.Loss, sc.GST)
	var faulty []string
	for id, st := range sc.Faulty {
		faulty = append(faulty, fmt.Sprintf("%d:%s", id, st))
	}
	sort.Strings(faulty)
	fmt.Fprintf(&b, " faulty [%s]", strings.Join(faulty, " "))
	if p := sc.Partition; p != nil {
		fmt.Fprintf(&b, " partition %v..%v of %v", p.From, p.To, p.Side)
	}
	if sc.Restarts != "" {
		fmt.Fprintf(&b, " restarts %s", sc.Restarts)
	}
	fmt.Fprintf(&b, " txs %d", sc.Txs)
	return b.String()
}

// Spec is the protocol the scenario runs.
func (sc Scenario) Spec() core.Spec {
	sp := ScenarioSpec(sc.Engine, sc.MemType, sc.N, sc.Gossip, sc.LB)
	sp.Shared.ProofsByRef = !sc.Inline
	return sp
}

// ScenarioSpec is the protocol the simulations run: small blocks and microblocks (ten 32-byte
// transactions) and short timeouts, so that a few virtual seconds exercise every mechanism; with
// load balancing every replica is busy at these latencies, so DLB runs all the time.
func ScenarioSpec(engine, memType string, n int, gossip, lb bool) core.Spec {
	sp := core.Spec{
		Engine:         engine,
		MemType:        memType,
		Timeout:        200 * time.Millisecond,
		ProposeTimeout: 20 * time.Millisecond,
		BSize:          50,
		MemSize:        1 << 24,
		DedupWindow:    1 << 16,
	}
	if memType == config.MemNative {
		return sp
	}
	sp.BSize = 20
	sp.Shared = mempool.SharedConfig{
		MSize:          10 * 32,
		BatchTimeout:   5 * time.Millisecond,
		Q:              config.Faults(n) + 1,
		FetchTimeout:   40 * time.Millisecond,
		PushTimeout:    60 * time.Millisecond,
		Gossip:         gossip,
		Fanout:         2,
		R:              3,
		LoadBalance:    lb,
		D:              2,
		EstimateWindow: 20,
		Percentile:     95,
		BusyThreshold:  3 * time.Millisecond,
		LBTimeout:      20 * time.Millisecond,
		ForwardTimeout: 100 * time.Millisecond,
		ProofsByRef:    true, // the default (config proofs: reference); a soak scenario may draw inline
	}
	return sp
}

// Options are the simulation's options.
func (sc Scenario) Options() Options {
	opts := Options{N: sc.N, Spec: sc.Spec(), Seed: sc.Seed, Latency: sc.Latency, Jitter: sc.Jitter, Slow: 50 * time.Millisecond,
		Loss: sc.Loss, GST: sc.GST, Byzantine: make(map[types.NodeID]string), Crash: sc.Crash}
	if sc.BLS {
		opts.Scheme, opts.SimulatedSignatures = crypto.SchemeBLS, true
	}
	for id, st := range sc.Faulty {
		if st != byzantine.Crash {
			opts.Byzantine[id] = st
		}
	}
	if sc.Partition != nil {
		opts.Partitions = []Partition{*sc.Partition}
	}
	return opts
}

// SoakResult is the outcome of one soak run.
type SoakResult struct {
	Scenario   Scenario
	Violations []string
	Live       bool // every honest transaction delivered by every honest replica in time
	Missing    string
	Trace      string // TraceHash at the end
	Virtual    time.Duration
	Steps      uint64
}

// Failed reports whether the run broke safety or liveness.
func (r SoakResult) Failed() bool { return len(r.Violations) > 0 || !r.Live }

// Soak runs the scenario of a seed.
func Soak(seed int64) SoakResult {
	sc := NewScenario(seed)
	res := SoakResult{Scenario: sc}
	s, err := New(sc.Options())
	if err != nil {
		res.Violations = []string{err.Error()}
		return res
	}
	// Load: batches of 20 to the replicas that stay honest, spread over the time before GST and a
	// second after it.
	var targets []types.NodeID
	for _, n := range s.Nodes() {
		if _, faulty := sc.Faulty[n.ID]; !faulty {
			targets = append(targets, n.ID)
		}
	}
	var tag [8]byte
	binary.BigEndian.PutUint64(tag[:], uint64(seed))
	txs := makeSoakTxs(tag[:], sc.Txs)
	span := sc.GST + time.Second
	batches := (len(txs) + 19) / 20
	for k := 0; k < batches; k++ {
		at := span * time.Duration(k) / time.Duration(batches)
		var up []types.NodeID
		for ; len(up) == 0; at += 100 * time.Millisecond {
			up = up[:0]
			for _, id := range targets {
				if sc.up(id, at) {
					up = append(up, id)
				}
			}
		}
		to, batch := up[k%len(up)], txs[k*20:min(k*20+20, len(txs))]
		s.Submit(at, to, batch)
		// What a replica holds when it crashes is lost; its client, told so, sends it again
		// once the replica is back (a duplicate if it was delivered meanwhile).
		if c, ok := sc.Crash[to]; ok && c.Down > 0 && at < c.At+c.Down {
			s.Submit(c.At+c.Down+20*time.Millisecond, to, batch)
		}
	}
	res.Live = s.RunUntil(span+LivenessBound, func() bool { return s.AllDelivered(txs) })
	if !res.Live {
		res.Missing = s.describeMissing(txs)
	}
	res.Violations = s.Violations()
	res.Trace = s.TraceHash()
	res.Virtual = s.Now()
	res.Steps = s.Steps()
	return res
}

// describeMissing says which honest replicas miss how many transactions.
func (s *Sim) describeMissing(txs []types.Tx) string {
	var parts []string
	for _, n := range s.Honest() {
		missing := 0
		for _, t := range txs {
			if !s.check.DeliveredBy(n.ID, t.ID()) {
				missing++
			}
		}
		if missing > 0 {
			parts = append(parts, fmt.Sprintf("replica %d misses %d of %d (height %d, view %d)", n.ID, missing, len(txs), s.check.Height(n.ID), n.Core.Status().View))
		}
	}
	return strings.Join(parts, "; ")
}

func makeSoakTxs(tag []byte, n int) []types.Tx {
	txs := make([]types.Tx, n)
	for i := range txs {
		b := make([]byte, 32)
		copy(b, "soak")
		copy(b[8:16], tag)
		binary.BigEndian.PutUint64(b[24:], uint64(i))
		txs[i] = types.NewTx(b)
	}
	return txs
}
