package virtual

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime/debug"
	"sort"
	"time"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/simnet"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/types"
)

// NetPreset is a named network: access link rates and one-way latency.
type NetPreset struct {
	Name      string
	Uplink    float64 // bit/s
	Downlink  float64 // bit/s
	Latency   time.Duration
	Jitter    time.Duration
	Described string
}

// NetPresets are the networks of the paper's evaluation: a data-center LAN (1 Gbit/s, RTT about
// 1 ms) and its emulated WAN (100 Mbit/s, 100 ms RTT).
var NetPresets = map[string]NetPreset{
	"lan": {Name: "lan", Uplink: 1e9, Downlink: 1e9, Latency: 500 * time.Microsecond, Jitter: 100 * time.Microsecond, Described: "1 Gbit/s up and down per replica, 0.5 ms ± 0.1 ms one way"},
	"wan": {Name: "wan", Uplink: 100e6, Downlink: 100e6, Latency: 50 * time.Millisecond, Jitter: time.Millisecond, Described: "100 Mbit/s up and down per replica, 50 ms + up to 1 ms one way (100 ms RTT)"},
}

// Zipf skews client load across replicas: the replica of rank k (0 first) gets a share
// proportional to (V+k)^-S, as Go's rand.Zipf draws.
type Zipf struct {
	S, V float64
}

// Config is one run of the virtual-time simulator at scale.
type Config struct {
	Algorithm string // the protocol's preset name, for the output
	Spec      core.Spec
	N         int
	Net       string // preset name, or "custom"
	Links     simnet.Links
	Latency   time.Duration // one-way
	Jitter    time.Duration
	Loss      float64
	// Partitions cut some replicas off from the others for a while.
	Partitions []simnet.Partition
	Duration   time.Duration
	Warmup     time.Duration // measured from here to Duration
	Rate       float64       // offered load, transactions per second over all replicas
	TxSize     int           // bytes per transaction
	Zipf       *Zipf         // nil: uniform load
	Byzantine  map[types.NodeID]string
	Strategy   string // for the output
	CPU        *simnet.CPU
	// Tick is how often each replica takes in what its clients sent: one compact transaction of
	// count × TxSize bytes per tick (or several, if that exceeds a sixteenth of a microblock or
	// block). 0 picks N/2 ms, between 1 ms and 200 ms.
	Tick          time.Duration
	ClientLatency time.Duration // one way between a client and its replica, for the end-to-end latency
	// Fit sizes the protocol to the network, as the paper tuned each protocol: the view timeout
	// grows to at least four times what the leader's uplink takes to send a small proposal (its
	// QC and four items) to N-1 replicas; the block size (Spec.BSize, when it is 0) becomes what
	// the leader's uplink can send to N-1 replicas in a quarter of the view timeout (transactions for a native mempool, microblock references with their
	// proofs for a shared one), and the push and fetch timeouts become at least three times the time a
	// creator's uplink takes to send a full microblock to every replica. Without it, at large N a
	// leader proposes blocks that take longer to send than the timeout allows, and replicas
	// re-push and fetch microblocks that are still on their way, until the links collapse.
	// With load balancing, busy_threshold, lb_timeout and forward_timeout grow to what an idle
	// replica sees on the network (3 × (RTT + q microblock copies), 3 × RTT).
	Fit bool
	// RealSignatures signs with the scheme's real keys instead of the simulator's keyed-hash
	// signatures.
	RealSignatures bool
	// Scheme is the signature scheme (default secp256k1); bls12-381 makes every certificate one
	// aggregate signature, and simulated signatures take its sizes.
	Scheme string
	Seed   int64
	// Progress, when set, is called every virtual second.
	Progress func(p Progress)
}

// Progress is what a run reports as it goes.
type Progress struct {
	Virtual  time.Duration
	Wall     time.Duration
	TPS      float64 // delivered at the reference replica during the last virtual second
	Height   uint64
	QueuedUp int // bytes waiting on the busiest uplink
}

// Result is the JSON a virtual run writes.
type Result struct {
	Config            ResultConfig         `json:"config"`
	Seed              int64                `json:"seed"`
	Version           string               `json:"version"`
	ThroughputTPS     float64              `json:"throughput_tps"`
	OfferedTPS        float64              `json:"offered_tps"`
	LimitTPS          float64              `json:"bandwidth_limit_tps"`
	ShareOfLimit      float64              `json:"share_of_limit"`
	Latency           stats.Latency        `json:"latency_ms"`
	EndToEnd          stats.Latency        `json:"end_to_end_ms"`
	Series            []SecondRow          `json:"series"`
	Bandwidth         map[string]RoleBytes `json:"bandwidth_mbps"`
	ViewChanges       int                  `json:"view_changes"`
	TimedOutViews     int                  `json:"timed_out_views"`
	Height            uint64               `json:"height"`
	SubmittedTxs      uint64               `json:"submitted_txs"`
	RefusedTxs        uint64               `json:"refused_txs"`
	DeliveredTxs      uint64               `json:"delivered_txs"`
	CPUUtilisation    *CPUUse              `json:"cpu_utilisation,omitempty"`
	Violations        []string             `json:"invariant_violations"`
	Events            uint64               `json:"events"`
	TraceHash         string               `json:"trace_hash"`
	WallClockSeconds  float64              `json:"wall_clock_s"`
	SimSecondsPerWall float64              `json:"sim_seconds_per_wall_second"`
}

// ResultConfig is the configuration a result was measured with.
type ResultConfig struct {
	Algorithm      string   `json:"algorithm"`
	Engine         string   `json:"engine"`
	Mempool        string   `json:"mempool"`
	N              int      `json:"n"`
	F              int      `json:"f"`
	Net            string   `json:"net"`
	UplinkMbps     float64  `json:"uplink_mbps"`
	DownlinkMbps   float64  `json:"downlink_mbps"`
	LatencyMs      float64  `json:"latency_ms"`
	JitterMs       float64  `json:"jitter_ms"`
	LatencyMatrix  bool     `json:"latency_matrix"`
	UplinkQueue    string   `json:"uplink_queue"`
	Async          []string `json:"async,omitempty"`
	Loss           float64  `json:"loss"`
	Partitions     []string `json:"partitions,omitempty"`
	DurationS      float64  `json:"duration_s"`
	WarmupS        float64  `json:"warmup_s"`
	RateTPS        float64  `json:"rate_tps"`
	TxSize         int      `json:"tx_size"`
	MSize          int      `json:"msize"`
	BSize          int      `json:"bsize"`
	Q              int      `json:"q"`
	TimeoutMs      float64  `json:"timeout_ms"`
	Fitted         bool     `json:"fitted"`
	PushTimeoutMs  float64  `json:"push_timeout_ms,omitempty"`
	FetchTimeoutMs float64  `json:"fetch_timeout_ms,omitempty"`
	BatchTimeoutMs float64  `json:"batch_timeout_ms,omitempty"`
	BusyThreshMs   float64  `json:"busy_threshold_ms,omitempty"`
	LBTimeoutMs    float64  `json:"lb_timeout_ms,omitempty"`
	LoadBalance    bool     `json:"load_balance"`
	D              int      `json:"d,omitempty"`
	Gossip         bool     `json:"gossip"`
	Zipf           *Zipf    `json:"zipf,omitempty"`
	Byzantine      []int    `json:"byzantine,omitempty"`
	Strategy       string   `json:"strategy,omitempty"`
	CPUModel       string   `json:"cpu_model"`
	Signatures     string   `json:"signatures"`
	Proofs         string   `json:"proofs,omitempty"`
	TickMs         float64  `json:"tick_ms"`
	ClientLatMs    float64  `json:"client_latency_ms"`
	TxModel        string   `json:"tx_model"`
}

// SecondRow is one virtual second at the reference replica.
type SecondRow struct {
	T             int     `json:"t"`
	TPS           float64 `json:"tps"`
	LatencyMeanMs float64 `json:"latency_mean_ms"`
}

// RoleBytes is a role's outbound bandwidth: per replica of that role, in Mbit/s.
type RoleBytes struct {
	Total  float64            `json:"total"`
	ByType map[string]float64 `json:"by_type"`
}

// CPUUse is the share of the run each replica's CPU was busy, under the CPU model.
type CPUUse struct {
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
}

// Validate names what is wrong with c.
func (c *Config) Validate() error {
	switch {
	case c.N < 1 || c.N > 1000:
		return fmt.Errorf("-n %d: want 1..1000 replicas", c.N)
	case c.Duration <= 0:
		return fmt.Errorf("-duration %v: want a positive duration", c.Duration)
	case c.Warmup < 0 || c.Warmup >= c.Duration:
		return fmt.Errorf("-warmup %v: want 0 <= warmup < duration (%v)", c.Warmup, c.Duration)
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("-rate %v: want a non-negative number of transactions per second", c.Rate)
	case c.TxSize < 1 || c.TxSize > types.MaxTxSize:
		return fmt.Errorf("-tx_size %d: want 1..%d bytes", c.TxSize, types.MaxTxSize)
	case c.Tick < 0:
		return fmt.Errorf("-tick %v: want a positive duration (or 0 for the default)", c.Tick)
	case c.Latency < 0 || c.Jitter < 0 || c.ClientLatency < 0:
		return fmt.Errorf("latencies must not be negative")
	case c.Loss < 0 || c.Loss >= 1:
		return fmt.Errorf("loss %v: want 0 <= loss < 1", c.Loss)
	}
	if z := c.Zipf; z != nil && (z.S <= 1 || z.V < 1) {
		return fmt.Errorf("-zipf %v,%v: want s > 1 and v >= 1 (as Go's rand.Zipf)", z.S, z.V)
	}
	for i, p := range c.Partitions {
		if p.To <= p.From || len(p.Side) == 0 {
			return fmt.Errorf("partition %d: want from < to and at least one replica", i+1)
		}
		for _, id := range p.Side {
			if id < 1 || int(id) > c.N {
				return fmt.Errorf("partition %d: replica %d is not one of 1..%d", i+1, id, c.N)
			}
		}
	}
	if len(c.Byzantine) > config.Faults(c.N) {
		return fmt.Errorf("-byz %d: at most f = %d of %d replicas may be Byzantine", len(c.Byzantine), config.Faults(c.N), c.N)
	}
	return c.Links.Validate(c.N)
}

// tick is the load interval.
func (c *Config) tick() time.Duration {
	if c.Tick > 0 {
		return c.Tick
	}
	return min(max(time.Duration(c.N)*time.Millisecond/2, time.Millisecond), 200*time.Millisecond)
}

// weights is each replica's share of the load (index ID-1): uniform, or Zipf over the replicas in
// ID order, leaving out a static leader (the paper's load arrays have N-1 entries).
func (c *Config) weights() []float64 {
	w := make([]float64, c.N)
	if c.Zipf == nil {
		for i := range w {
			w[i] = 1 / float64(c.N)
		}
		return w
	}
	sum, k := 0.0, 0
	for i := range w {
		if c.N > 1 && types.NodeID(i+1) == c.Spec.Master {
			continue
		}
		w[i] = math.Pow(c.Zipf.V+float64(k), -c.Zipf.S)
		sum += w[i]
		k++
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}

// fit is what Fit sets: the view timeout and the block size.
func fit(c Config) (time.Duration, int) {
	if c.Links.Uplink <= 0 || c.N < 2 {
		return c.Spec.Timeout, max(c.Spec.BSize, 1000)
	}
	perCopy := func(bytes float64) time.Duration { return simnet.Serialization(int(bytes)*(c.N-1), c.Links.Uplink) }
	// A proposal carries a QC of 2f+1 signatures (one aggregate under BLS), and its payload:
	// transactions, or microblock references, with a proof of q signatures each unless by
	// reference.
	qc := float64(certBytes(c.scheme(), config.Quorum(c.N)) + c.N/8 + 64)
	per := float64(c.TxSize + 3)
	least := 64.0
	if c.Spec.MemType != config.MemNative {
		per = 36
		if c.Spec.MemType == config.MemStratus && !c.Spec.Shared.ProofsByRef {
			per += float64(certBytes(c.scheme(), c.Spec.Shared.Q) + c.N/8 + 48)
		}
		least = 4
	}
	// The timeout leaves room for four broadcasts of a proposal of at least `least` items ...
	timeout := max(c.Spec.Timeout, 4*perCopy(qc+least*per))
	// ... and a block is what the leader sends to every replica in a quarter of it.
	budget := c.Links.Uplink / 8 * timeout.Seconds() / 4 / float64(c.N-1)
	return timeout, max(1, int((budget-qc)/per))
}

// certBytes is the size of k signatures in a certificate of scheme.
func certBytes(scheme string, k int) int {
	if scheme == crypto.SchemeBLS {
		return types.BLSSigSize + 1
	}
	return k * (types.SigSize + 1)
}

func (c Config) scheme() string {
	if c.Scheme == "" {
		return crypto.SchemeSecp256k1
	}
	return c.Scheme
}

// FittedBSize is the block size Fit sets.
func FittedBSize(c Config) int {
	_, b := fit(c)
	return b
}

// MSizeSendBudget is how long Fit lets a creator's uplink take to send one microblock to the N-1
// others: beyond it, dissemination dominates latency (a 128 KB microblock takes 4.1 s to leave a
// 100 Mbit/s uplink for 399 peers, and S-HS's p50 at N=400 was 5.5–8.5 s; with 64 KB, 2.1 s and
// 3.9–4.6 s).
const MSizeSendBudget = 2500 * time.Millisecond

// minFittedMSize is the smallest microblock FittedMSize picks.
const minFittedMSize = 16 << 10

// FittedMSize is the microblock size for c with Fit: Spec.Shared.MSize, halved until a creator's
// uplink sends one to the N-1 others within MSizeSendBudget (not below 16 KB). Only where a
// microblock costs a proposal the same few bytes whatever its size: a shared mempool without
// inline proofs (with them, smaller microblocks mean more proofs in every proposal).
func FittedMSize(c Config) int {
	m := c.Spec.Shared.MSize
	if c.N < 2 || c.Spec.MemType == config.MemNative ||
		(c.Spec.MemType == config.MemStratus && !c.Spec.Shared.ProofsByRef) {
		return m
	}
	for m/2 >= minFittedMSize && disseminationTime(c, m) > MSizeSendBudget {
		m /= 2
	}
	return m
}

// disseminationTime is how long a creator's uplink takes to send a full microblock of msize bytes
// (and its ~200 bytes of header and signature) to the N-1 others (0 without an uplink limit).
func disseminationTime(c Config, msize int) time.Duration {
	if c.Links.Uplink <= 0 {
		return 0
	}
	return simnet.Serialization((msize+200)*(c.N-1), c.Links.Uplink)
}

// compact is what the run knows of a compact transaction it submitted.
type compact struct {
	origin types.NodeID
	stamp  time.Duration // mean arrival time of the transactions it stands for
	count  int
}

// submission is one batch a load generator submitted: its answer (set when the replica took or
// refused it) and the transactions it stands for.
type submission struct {
	err *error
	txs int
}

// virtualRun is the measurement state of one run.
type virtualRun struct {
	cfg       *Config
	sim       *simnet.Sim
	txs       map[types.Hash]compact
	ref       types.NodeID // the replica whose deliveries are the throughput
	lat, e2e  stats.Histogram
	perSecond []uint64
	perSecLat []stats.Histogram
	delivered uint64 // at the reference replica, inside the measurement window
	submitted uint64
	refused   uint64
	refusals  []submission // every submission and its answer
}

// Run runs c and returns its result.
func Run(c Config) (*Result, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	wallStart := time.Now()
	if c.Fit {
		timeout, bsize := fit(c)
		c.Spec.Timeout = timeout
		if c.Spec.BSize <= 0 {
			c.Spec.BSize = bsize
		}
		if d := disseminationTime(c, c.Spec.Shared.MSize); d > 0 {
			c.Spec.Shared.PushTimeout = max(c.Spec.Shared.PushTimeout, 3*d)
			c.Spec.Shared.FetchTimeout = max(c.Spec.Shared.FetchTimeout, 3*d)
		}
		if c.Spec.Shared.LoadBalance {
			// Load balancing compares stable times with busy_threshold and waits lb_timeout for
			// the sampled replicas' answers: both must exceed what an idle replica sees on this
			// network (a round trip, plus q copies of a microblock on its uplink), or every
			// replica looks busy and every query times out.
			rtt := 2 * (c.Latency + c.Jitter)
			for _, row := range c.Links.Matrix {
				for _, l := range row {
					rtt = max(rtt, 2*(l+c.Jitter))
				}
			}
			idle := rtt
			if c.Links.Uplink > 0 {
				idle += simnet.Serialization((c.Spec.Shared.MSize+200)*c.Spec.Shared.Q, c.Links.Uplink)
			}
			c.Spec.Shared.BusyThreshold = max(c.Spec.Shared.BusyThreshold, 3*idle)
			c.Spec.Shared.LBTimeout = max(c.Spec.Shared.LBTimeout, 3*rtt)
			c.Spec.Shared.ForwardTimeout = max(c.Spec.Shared.ForwardTimeout, 2*c.Spec.Shared.BusyThreshold+rtt)
		}
	}
	opts := simnet.Options{
		N: c.N, Spec: c.Spec, Seed: c.Seed, Latency: c.Latency, Jitter: c.Jitter, Loss: c.Loss,
		Byzantine: c.Byzantine, Links: c.Links, Partitions: c.Partitions, CPU: c.CPU, Light: true, SimulatedSignatures: !c.RealSignatures, Scheme: c.Scheme,
	}
	if opts.Latency <= 0 {
		opts.Latency = time.Nanosecond // New's 1 ms default is for the small tests
	}
	r := &virtualRun{cfg: &c, txs: make(map[types.Hash]compact)}
	opts.Observe = r.observe
	s, err := simnet.New(opts)
	if err != nil {
		return nil, err
	}
	r.sim = s
	for _, n := range s.Nodes() {
		if !n.Faulty() {
			r.ref = n.ID
			break
		}
	}
	secs := int(math.Ceil(c.Duration.Seconds()))
	r.perSecond = make([]uint64, secs)
	r.perSecLat = make([]stats.Histogram, secs)
	r.startLoad()

	for t := 1; t <= secs; t++ {
		until := min(time.Duration(t)*time.Second, c.Duration)
		s.Run(until)
		if c.Progress != nil {
			p := Progress{Virtual: until, Wall: time.Since(wallStart), Height: s.Checker().Height(r.ref)}
			p.TPS = float64(r.perSecond[t-1])
			for _, n := range s.Nodes() {
				p.QueuedUp = max(p.QueuedUp, n.QueuedUp())
			}
			c.Progress(p)
		}
	}
	for _, e := range r.refusals {
		if *e.err != nil {
			r.refused += uint64(e.txs) // transactions, as submitted counts them
		}
	}
	wall := time.Since(wallStart)
	return r.result(wall), nil
}

// startLoad starts one open-loop load generator per replica: every tick the replica receives
// what its clients sent during the tick, as compact transactions stamped with the middle of the
// tick. The phase of each replica's ticks is spread over the tick.
func (r *virtualRun) startLoad() {
	c := r.cfg
	if c.Rate <= 0 {
		return
	}
	tick := c.tick()
	w := c.weights()
	limit := r.maxCount()
	for i, n := range r.sim.Nodes() {
		if n.Absent || w[i] == 0 {
			continue
		}
		node, rate := n, c.Rate*w[i]
		phase := tick * time.Duration(i) / time.Duration(c.N)
		acc, seq := 0.0, uint64(0)
		var gen func()
		gen = func() {
			now := r.sim.Now()
			if now >= c.Duration {
				return
			}
			acc += rate * tick.Seconds()
			count := int(acc)
			acc -= float64(count)
			stamp := now - tick/2 + c.ClientLatency // their mean arrival at the replica
			var batch []types.Tx
			txs := 0
			for count > 0 {
				k := min(count, limit)
				count -= k
				seq++
				tag := make([]byte, 16)
				binary.BigEndian.PutUint32(tag, uint32(node.ID))
				binary.BigEndian.PutUint64(tag[4:], seq)
				binary.BigEndian.PutUint32(tag[12:], uint32(r.cfg.Seed))
				tx := types.NewCompactTx(tag, k, c.TxSize)
				r.txs[tx.ID()] = compact{origin: node.ID, stamp: stamp, count: k}
				r.submitted += uint64(k)
				txs += k
				batch = append(batch, tx)
			}
			if len(batch) > 0 {
				r.refusals = append(r.refusals, submission{r.sim.Submit(c.ClientLatency, node.ID, batch), txs})
			}
			r.sim.At(tick, gen)
		}
		r.sim.At(phase+tick, gen)
	}
}

// maxCount is the most transactions one compact transaction stands for: a sixteenth of a
// microblock (shared mempools) or of a block (native), so that batches stay close to their size.
func (r *virtualRun) maxCount() int {
	c := r.cfg
	if c.Spec.MemType == config.MemNative {
		return max(1, c.Spec.BSize/16)
	}
	return max(1, c.Spec.Shared.MSize/16/c.TxSize)
}

// observe measures deliveries: latency at the replica that received the transactions from its
// clients, throughput at the reference replica.
func (r *virtualRun) observe(n *simnet.Node, b *types.Block, txs []types.Tx) {
	now := r.sim.Now()
	if n.ID == r.ref {
		sec := int(now / time.Second)
		for _, t := range txs {
			if sec < len(r.perSecond) {
				r.perSecond[sec] += uint64(t.Count())
			}
			if now >= r.cfg.Warmup && now <= r.cfg.Duration {
				r.delivered += uint64(t.Count())
			}
		}
	}
	for _, t := range txs {
		tag := t.Data()
		if !t.Compact() || len(tag) < 4 || types.NodeID(binary.BigEndian.Uint32(tag)) != n.ID {
			continue
		}
		info, ok := r.txs[t.ID()]
		if !ok || info.origin != n.ID {
			continue
		}
		d := now - info.stamp
		if now >= r.cfg.Warmup {
			r.lat.RecordN(d, uint64(info.count))
			r.e2e.RecordN(d+2*r.cfg.ClientLatency, uint64(info.count))
		}
		if sec := int(now / time.Second); sec < len(r.perSecLat) {
			r.perSecLat[sec].RecordN(d, uint64(info.count))
		}
	}
}

// limitTPS is what the network allows at most, with every link at full rate: a shared mempool
// sends each transaction to N-1 peers from its replica's uplink and every replica receives all
// the others' (about link ÷ tx size in total); a native mempool sends each to N-1 peers from the
// leader's uplink (leader uplink ÷ ((N-1) × tx size); with rotating HotStuff leaders 1.5 times
// that, since the next leader starts once 2f of the N-1 copies have left).
func (c *Config) limitTPS() float64 {
	up, down := c.Links.Uplink, c.Links.Downlink
	if up <= 0 && down <= 0 || c.N < 2 {
		return math.Inf(1)
	}
	if up <= 0 {
		up = math.Inf(1)
	}
	if down <= 0 {
		down = math.Inf(1)
	}
	bytes := float64(c.TxSize)
	n := float64(c.N)
	if c.Spec.MemType == config.MemNative {
		lim := up / 8 / ((n - 1) * bytes)
		if c.Spec.Engine == config.EngineHotStuff && c.Spec.Master == 0 {
			// Rotating leaders overlap: the next leader sends its block once 2f replicas have
			// the previous one, so up to (N-1)/2f = 1.5 blocks are on leaders' uplinks at once.
			lim *= (n - 1) / float64(2*config.Faults(c.N))
		}
		return lim
	}
	return math.Min(up, down) / 8 / bytes * n / (n - 1)
}

func (r *virtualRun) result(wall time.Duration) *Result {
	c, s := r.cfg, r.sim
	window := (c.Duration - c.Warmup).Seconds()
	res := &Result{
		Config:        r.resultConfig(),
		Seed:          c.Seed,
		Version:       version(),
		ThroughputTPS: round(float64(r.delivered) / window),
		OfferedTPS:    c.Rate,
		Latency:       r.lat.Summary(),
		EndToEnd:      r.e2e.Summary(),
		ViewChanges:   s.ViewChanges(),
		TimedOutViews: s.TimedOutViews(),
		Height:        s.Checker().Height(r.ref),
		SubmittedTxs:  r.submitted,
		RefusedTxs:    r.refused,
		DeliveredTxs:  r.delivered,
		Violations:    append([]string{}, s.Violations()...),
		Events:        s.Steps(),
		TraceHash:     s.TraceHash(),
	}
	if lim := c.limitTPS(); !math.IsInf(lim, 0) {
		res.LimitTPS = round(lim)
		res.ShareOfLimit = math.Round(res.ThroughputTPS/lim*10000) / 10000
	}
	for i, k := range r.perSecond {
		res.Series = append(res.Series, SecondRow{T: i + 1, TPS: float64(k), LatencyMeanMs: r.perSecLat[i].Summary().Mean})
	}
	res.Bandwidth = r.bandwidth()
	if c.CPU != nil {
		tr := s.Traffic()
		use := &CPUUse{}
		for _, b := range tr.CPUBusy {
			f := math.Min(1, b.Seconds()/c.Duration.Seconds()) // work queued past the end counts as busy
			use.Mean += f / float64(c.N)
			use.Max = math.Max(use.Max, f)
		}
		use.Mean, use.Max = round(use.Mean*1000)/1000, round(use.Max*1000)/1000
		res.CPUUtilisation = use
	}
	res.WallClockSeconds = math.Round(wall.Seconds()*100) / 100
	if wall > 0 {
		res.SimSecondsPerWall = math.Round(c.Duration.Seconds()/wall.Seconds()*1000) / 1000
	}
	return res
}

// bandwidth turns the bytes that left the uplinks into Mbit/s per replica of each role: the
// leader (a replica while it leads the view it is in) and the others. Bytes count for the role
// their sender had when it queued them, over the spans in which the copies of each role epoch
// left (from the epoch's start to its end or its last departure, whichever is later), so that no
// figure exceeds the link's rate: a leader's copies that leave in the next views extend its
// epoch instead of crediting the leader role with more than one uplink carries.
func (r *virtualRun) bandwidth() map[string]RoleBytes {
	tr := r.sim.Traffic()
	out := map[string]RoleBytes{}
	for role, name := range []string{"leader", "others"} {
		rb := RoleBytes{ByType: map[string]float64{}}
		secs := tr.RoleTime[role].Seconds()
		for k, b := range tr.LinkBytes[role] {
			if b == 0 || secs <= 0 {
				continue
			}
			mbps := float64(b) * 8 / secs / 1e6
			rb.ByType[types.Kind(k).String()] = round(mbps*1000) / 1000
			rb.Total += mbps
		}
		rb.Total = round(rb.Total*1000) / 1000
		out[name] = rb
	}
	return out
}

func (r *virtualRun) resultConfig() ResultConfig {
	c := r.cfg
	rc := ResultConfig{
		Algorithm: c.Algorithm, Engine: c.Spec.Engine, Mempool: c.Spec.MemType, N: c.N, F: config.Faults(c.N),
		Net: c.Net, UplinkMbps: c.Links.Uplink / 1e6, DownlinkMbps: c.Links.Downlink / 1e6,
		LatencyMs: ms(c.Latency), JitterMs: ms(c.Jitter), LatencyMatrix: c.Links.Matrix != nil, Loss: c.Loss,
		DurationS: c.Duration.Seconds(), WarmupS: c.Warmup.Seconds(), RateTPS: c.Rate, TxSize: c.TxSize,
		MSize: c.Spec.Shared.MSize, BSize: c.Spec.BSize, Q: c.Spec.Shared.Q, TimeoutMs: ms(c.Spec.Timeout), Fitted: c.Fit,
		PushTimeoutMs: ms(c.Spec.Shared.PushTimeout), FetchTimeoutMs: ms(c.Spec.Shared.FetchTimeout), BatchTimeoutMs: ms(c.Spec.Shared.BatchTimeout),
		LoadBalance: c.Spec.Shared.LoadBalance, Gossip: c.Spec.Shared.Gossip, Zipf: c.Zipf,
		Strategy: c.Strategy, CPUModel: c.CPU.String(), Signatures: crypto.SchemeSimulated, TickMs: ms(c.tick()), ClientLatMs: ms(c.ClientLatency),
		TxModel: fmt.Sprintf("compact: each replica takes in its clients' transactions every %v as batches of count x %d B (at most %d per batch), stamped with the middle of the tick; wire sizes as if materialised", c.tick(), c.TxSize, r.maxCount()),
	}
	if c.RealSignatures {
		rc.Signatures = c.scheme()
	} else {
		rc.Signatures = fmt.Sprintf("%s with %s sizes", crypto.SchemeSimulated, c.scheme())
	}
	rc.Proofs = config.ProofsInline
	if c.Spec.Shared.ProofsByRef {
		rc.Proofs = config.ProofsReference
	}
	if c.Spec.MemType == config.MemNative {
		rc.MSize, rc.Q = 0, 0
	}
	if c.Spec.Shared.LoadBalance {
		rc.D = c.Spec.Shared.D
		rc.BusyThreshMs, rc.LBTimeoutMs = ms(c.Spec.Shared.BusyThreshold), ms(c.Spec.Shared.LBTimeout)
	}
	rc.UplinkQueue = "priority"
	if c.Links.FIFOUplink {
		rc.UplinkQueue = "fifo"
	}
	for _, w := range c.Links.Async {
		rc.Async = append(rc.Async, fmt.Sprintf("%v-%v:%v±%v", w.From, w.To, w.Delay, w.Jitter))
	}
	for _, p := range c.Partitions {
		rc.Partitions = append(rc.Partitions, fmt.Sprintf("%v-%v:%v", p.From, p.To, p.Side))
	}
	for id := range c.Byzantine {
		rc.Byzantine = append(rc.Byzantine, int(id))
	}
	sort.Ints(rc.Byzantine)
	return rc
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(v float64) float64 { return math.Round(v*10) / 10 }

// version is the module version or VCS revision this binary was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return bi.Main.Version
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
