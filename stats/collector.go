package stats

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// windowSeconds is the span of the sliding throughput and latency windows.
const windowSeconds = 10

// Info names what a node runs.
type Info struct {
	Node      types.NodeID
	N         int
	Algorithm string
	Engine    string
	MemType   string
	Byzantine string // the node's Byzantine strategy, "" when honest
}

// Gauges are sizes sampled from the replica's event loop.
type Gauges struct {
	MempoolTxs      int
	MempoolBytes    int
	InFlightTxs     int
	DeliveryBacklog int // committed blocks waiting for data
	LocalWaiting    int // client transactions received here and not yet delivered
	Microblocks     int // shared mempools: microblocks known
	PeerBytes       int // shared mempools: bytes of other replicas' microblocks held
	RetainedBytes   int // shared mempools: bytes of committed microblocks kept for fetches
	Fetching        int // shared mempools: microblocks being fetched
	Banned          int // load balancing: banned proxies
	// Load balancing: the busy state and the current load estimate (the stable-time percentile),
	// sampled like the sizes so that the load is live even when the busy state never flips.
	Busy bool
	Load time.Duration
	// The replica's store: "pebble" (on disk, StoreBytes its size there) or "memory".
	StoreKind  string
	StoreBytes int64
}

// Traffic counts one message kind's messages and bytes, as totals since the start.
type Traffic struct {
	SentMsgs, SentBytes, RecvMsgs, RecvBytes uint64
}

// trafficSample is a reading of the transport counters.
type trafficSample struct {
	at     time.Time
	byKind [types.NumKinds]Traffic
}

// Collector accumulates a node's statistics. Its methods are safe for concurrent use: the event loop
// writes, HTTP handlers read. Reading never resets anything.
type Collector struct {
	mu    sync.Mutex
	info  Info
	now   func() time.Time
	start time.Time

	view, highQC     types.View
	leader           types.NodeID
	viewChanges      uint64
	timeouts         uint64
	proposed, voted  uint64
	proposedItems    uint64
	committedBlocks  uint64
	committedHeight  uint64
	countedHeight    uint64 // the highest height counted (a restarted replica delivers again)
	chainDigest      types.Hash
	syncs            uint64
	skippedBlocks    uint64
	skippedTx        uint64
	restarts         uint64
	committedTx      uint64
	duplicateTx      uint64
	latency          Histogram
	window           *Window
	rejected         map[string]uint64
	gauges           Gauges
	submittedTx      uint64
	submittedDupTx   uint64
	submitted        *Window // transactions submitted (accepted or duplicates), for the duplicate share
	submittedDups    *Window
	dupReported      time.Time // the last DuplicateReport that was due
	refusedSubmits   uint64
	transportDropped uint64
	connRefused      map[string]uint64 // inbound peer connections the transport refused, by reason
	viewChangesByTCs uint64

	mb         mbCounters
	stable     Histogram // stable times of the microblocks this replica pushed
	busy       bool
	load       time.Duration
	traffic    trafficSample // latest reading
	prevSample trafficSample // a reading at least a second older, for rates
	rates      [types.NumKinds]TrafficRate
}

type mbCounters struct {
	created, createdTxs, createdBytes  uint64
	received, receivedBytes, redundant uint64
	missing, fetched, dropped          uint64
	proofsOK, proofsBad, proofsAsked   uint64
	forwarded, proxied                 uint64
}

// New returns a collector whose clock is now.
func New(info Info, now func() time.Time) *Collector {
	return &Collector{info: info, now: now, start: now(), window: NewWindow(windowSeconds),
		submitted: NewCountWindow(windowSeconds), submittedDups: NewCountWindow(windowSeconds), rejected: make(map[string]uint64)}
}

// Event records a consensus event.
func (c *Collector) Event(e consensus.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e := e.(type) {
	case consensus.ViewChange:
		c.view, c.leader = e.View, e.Leader
		c.viewChanges++
		if e.Cause == "tc" {
			c.viewChangesByTCs++
		}
	case consensus.TimedOut:
		c.timeouts++
	case consensus.Proposed:
		c.proposed++
		c.proposedItems += uint64(e.Items)
	case consensus.Voted:
		c.voted++
	case consensus.Rejected:
		c.rejected[e.Kind.String()+"/"+e.Rule]++
	case consensus.MBCreated:
		c.mb.created++
		c.mb.createdTxs += uint64(e.Txs)
		c.mb.createdBytes += uint64(e.Bytes)
	case consensus.MBReceived:
		if e.Redundant {
			c.mb.redundant++
		} else {
			c.mb.received++
			c.mb.receivedBytes += uint64(e.Bytes)
		}
	case consensus.MBMissing:
		c.mb.missing++
	case consensus.ProofMissing:
		c.mb.proofsAsked += uint64(e.Count)
	case consensus.MBFetched:
		c.mb.fetched++
	case consensus.MBDropped:
		c.mb.dropped++
	case consensus.MBStable:
		c.stable.Record(e.StableTime)
		if e.Proxy {
			c.mb.proxied++
		}
	case consensus.ProofChecked:
		if e.OK {
			c.mb.proofsOK++
		} else {
			c.mb.proofsBad++
		}
	case consensus.MBForwarded:
		c.mb.forwarded++
	case consensus.LoadChanged:
		c.busy, c.load = e.Busy, e.Load
	case consensus.StateSynced:
		c.syncs++
		c.skippedBlocks += e.To - e.From
		c.skippedTx += e.SkippedTxs
		c.committedHeight, c.chainDigest = e.To, e.Digest
		c.countedHeight = max(c.countedHeight, e.To)
	}
}

// Recovered sets the delivered height and chain digest a node restarted from (its store), so
// that they show before it delivers again.
func (c *Collector) Recovered(height uint64, digest types.Hash) {
	c.mu.Lock()
	c.committedHeight, c.chainDigest = height, digest
	c.countedHeight = max(c.countedHeight, height)
	c.mu.Unlock()
}

// Restarted counts a restart of the node after a crash.
func (c *Collector) Restarted() {
	c.mu.Lock()
	c.restarts++
	c.mu.Unlock()
}

// Rejected counts a message dropped before it reached the core (decoding, structure, signatures).
func (c *Collector) Rejected(kind types.Kind, rule string) {
	c.mu.Lock()
	c.rejected[kind.String()+"/"+rule]++
	c.mu.Unlock()
}

// Delivered records a delivered block: its new transactions, dropped duplicates, the latencies of
// the transactions clients submitted to this node, and the chain digest after it.
func (c *Collector) Delivered(b *types.Block, txs, dups int, lat []time.Duration, digest types.Hash) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.committedHeight = b.Height
	c.chainDigest = digest
	if b.Height <= c.countedHeight {
		return // delivered again by a replica restarted without its state: counted once
	}
	c.countedHeight = b.Height
	c.committedBlocks++
	c.committedTx += uint64(txs)
	c.duplicateTx += uint64(dups)
	c.window.Add(now, uint64(txs))
	for _, d := range lat {
		c.latency.Record(d)
		c.window.Record(now, d)
	}
}

// Submitted counts the transactions of a client submission that were accepted (new here) and
// that were duplicates (answered, not added again), or a refused submission.
func (c *Collector) Submitted(accepted, duplicates int, refused bool) {
	now := c.now()
	c.mu.Lock()
	if refused {
		c.refusedSubmits++
	} else {
		c.submittedTx += uint64(accepted)
		c.submittedDupTx += uint64(duplicates)
		c.submitted.Add(now, uint64(accepted+duplicates))
		c.submittedDups.Add(now, uint64(duplicates))
	}
	c.mu.Unlock()
}

// SetConnRefused stores the transport's counts of refused inbound peer connections, by reason.
func (c *Collector) SetConnRefused(byReason map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connRefused = byReason
}

// SetGauges stores the latest sizes and transport readings; per-kind rates are computed over the
// last second or more.
func (c *Collector) SetGauges(g Gauges, highQC types.View, dropped uint64, traffic [types.NumKinds]Traffic) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gauges, c.highQC, c.transportDropped = g, highQC, dropped
	c.busy, c.load = g.Busy, g.Load // the current estimate, not the one of the last busy flip
	c.traffic = trafficSample{at: now, byKind: traffic}
	if c.prevSample.at.IsZero() {
		c.prevSample = c.traffic
		return
	}
	dt := now.Sub(c.prevSample.at).Seconds()
	if dt < 1 {
		return
	}
	rate := func(a, b uint64) float64 {
		if a < b {
			return 0
		}
		return round3(float64(a-b) / dt)
	}
	for k := range traffic {
		cur, old := traffic[k], c.prevSample.byKind[k]
		c.rates[k] = TrafficRate{
			SentMsgs: rate(cur.SentMsgs, old.SentMsgs), SentBytes: rate(cur.SentBytes, old.SentBytes),
			RecvMsgs: rate(cur.RecvMsgs, old.RecvMsgs), RecvBytes: rate(cur.RecvBytes, old.RecvBytes),
		}
	}
	c.prevSample = c.traffic
}

// TrafficRate is one message kind's traffic per second.
type TrafficRate struct {
	SentMsgs  float64 `json:"sent_msgs_per_s"`
	SentBytes float64 `json:"sent_bytes_per_s"`
	RecvMsgs  float64 `json:"recv_msgs_per_s"`
	RecvBytes float64 `json:"recv_bytes_per_s"`
}

// KindTraffic is a message kind's rates and totals in a snapshot.
type KindTraffic struct {
	TrafficRate
	SentMsgsTotal  uint64 `json:"sent_msgs"`
	SentBytesTotal uint64 `json:"sent_bytes"`
	RecvMsgsTotal  uint64 `json:"recv_msgs"`
	RecvBytesTotal uint64 `json:"recv_bytes"`
}

// MicroblockStats are a shared mempool's numbers in a snapshot.
type MicroblockStats struct {
	Created        uint64  `json:"created"`
	Received       uint64  `json:"received"`
	Redundant      uint64  `json:"redundant"`
	Missing        uint64  `json:"missing"`
	Fetched        uint64  `json:"fetched"`
	Dropped        uint64  `json:"dropped"`
	AveSizeBytes   float64 `json:"ave_size_bytes"`
	AveSizeTxs     float64 `json:"ave_size_txs"`
	StableTimeMs   Latency `json:"stable_time_ms"`
	StableSamples  uint64  `json:"stable_samples"`
	ProofsVerified uint64  `json:"proofs_verified"`
	ProofsRejected uint64  `json:"proofs_rejected"`
	ProofsAsked    uint64  `json:"proofs_asked"` // proofs by reference a vote waited for and asked the proposer for
	Forwarded      uint64  `json:"forwarded"`
	PushedAsProxy  uint64  `json:"pushed_as_proxy"`
	Busy           bool    `json:"busy"`
	LoadMs         float64 `json:"load_ms"`
	BannedProxies  int     `json:"banned_proxies"`
	Known          int     `json:"known"`
	PeerBytes      int     `json:"peer_bytes"`
	RetainedBytes  int     `json:"retained_bytes"`
	BeingFetched   int     `json:"being_fetched"`
}

// Snapshot is a node's statistics at one instant. Every number is finite.
type Snapshot struct {
	Node               types.NodeID `json:"node"`
	N                  int          `json:"n"`
	Algorithm          string       `json:"algorithm"`
	Engine             string       `json:"engine"`
	MemType            string       `json:"mem_type"`
	Byzantine          string       `json:"byzantine,omitempty"`
	UptimeS            float64      `json:"uptime_s"`
	View               types.View   `json:"view"`
	Leader             types.NodeID `json:"leader"`
	HighQCView         types.View   `json:"high_qc_view"`
	ViewChanges        uint64       `json:"view_changes"`
	ViewChangesByTC    uint64       `json:"view_changes_by_tc"`
	Timeouts           uint64       `json:"timeouts"`
	AveViewTimeMs      float64      `json:"ave_view_time_ms"`
	ProposedBlocks     uint64       `json:"proposed_blocks"`
	AveProposalSize    float64      `json:"ave_proposal_size"`
	Votes              uint64       `json:"votes"`
	CommittedBlocks    uint64       `json:"committed_blocks"`
	CommittedHeight    uint64       `json:"committed_height"`
	ChainDigest        string       `json:"chain_digest"`
	CommittedTx        uint64       `json:"committed_tx"`
	DuplicateTx        uint64       `json:"duplicate_tx"`
	AveBlockSizeTx     float64      `json:"ave_block_size_tx"`
	ThroughputTPS      float64      `json:"throughput_tps"`
	ThroughputTotalTPS float64      `json:"throughput_total_tps"`
	Latency            Latency      `json:"latency_ms"`
	LatencyWindow      Latency      `json:"latency_window_ms"`
	LatencySamples     uint64       `json:"latency_samples"`
	SubmittedTx        uint64       `json:"submitted_tx"`           // accepted: new at this node
	SubmittedDupTx     uint64       `json:"submitted_duplicate_tx"` // answered as duplicates, not added again
	// SubmittedDupShare is the share of duplicates among the transactions submitted in the last
	// 10 s (0 when none were).
	SubmittedDupShare  float64           `json:"submitted_duplicate_share"`
	RefusedSubmissions uint64            `json:"refused_submissions"`
	Mempool            MempoolStats      `json:"mempool"`
	Rejected           map[string]uint64 `json:"rejected"`
	TransportDropped   uint64            `json:"transport_dropped"`
	// PeerConnRefused counts inbound peer connections refused before they carried a message:
	// "per-source cap", "evicted" (in handshake, to make room), "handshake failed", and "bad
	// frame" (a peer's connection closed for a frame too large, forged or undecodable).
	PeerConnRefused map[string]uint64 `json:"peer_connections_refused,omitempty"`
	Microblocks     MicroblockStats   `json:"microblocks"`
	StateTransfer   StateTransfer     `json:"state_transfer"`
	Restarts        uint64            `json:"restarts"`
	Store           StoreStats        `json:"store"`
	// Traffic per message kind: rates over the last second or more, and totals.
	Traffic map[string]KindTraffic `json:"traffic"`
	// SendMbps and RecvMbps are all kinds together, in Mbit/s.
	SendMbps float64 `json:"send_mbps"`
	RecvMbps float64 `json:"recv_mbps"`
}

// StoreStats describes where a node keeps what survives a crash: "pebble" (Bytes on disk) or
// "memory" (in the process: it survives a crash of the replica, not of the process).
type StoreStats struct {
	Kind  string `json:"kind"`
	Bytes int64  `json:"bytes"`
}

// StateTransfer says what a node skipped by state transfer: snapshots applied, and the blocks and
// transactions the others delivered meanwhile.
type StateTransfer struct {
	Syncs         uint64 `json:"syncs"`
	SkippedBlocks uint64 `json:"skipped_blocks"`
	SkippedTx     uint64 `json:"skipped_tx"`
}

// MempoolStats are the mempool sizes in a snapshot.
type MempoolStats struct {
	PendingTx       int `json:"pending_tx"`
	PendingBytes    int `json:"pending_bytes"`
	InFlightTx      int `json:"in_flight_tx"`
	DeliveryBacklog int `json:"delivery_backlog_blocks"`
	LocalWaiting    int `json:"local_waiting_tx"`
}

// Snapshot returns the current statistics.
func (c *Collector) Snapshot() Snapshot {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	up := now.Sub(c.start)
	s := Snapshot{
		Node:               c.info.Node,
		N:                  c.info.N,
		Algorithm:          c.info.Algorithm,
		Engine:             c.info.Engine,
		MemType:            c.info.MemType,
		Byzantine:          c.info.Byzantine,
		UptimeS:            round3(up.Seconds()),
		View:               c.view,
		Leader:             c.leader,
		HighQCView:         c.highQC,
		ViewChanges:        c.viewChanges,
		ViewChangesByTC:    c.viewChangesByTCs,
		Timeouts:           c.timeouts,
		ProposedBlocks:     c.proposed,
		Votes:              c.voted,
		CommittedBlocks:    c.committedBlocks,
		CommittedHeight:    c.committedHeight,
		ChainDigest:        c.chainDigest.Hex(),
		StateTransfer:      StateTransfer{Syncs: c.syncs, SkippedBlocks: c.skippedBlocks, SkippedTx: c.skippedTx},
		Restarts:           c.restarts,
		CommittedTx:        c.committedTx,
		DuplicateTx:        c.duplicateTx,
		ThroughputTPS:      round3(c.window.Rate(now, up)),
		Latency:            c.latency.Summary(),
		LatencyWindow:      c.window.Latency(now),
		LatencySamples:     c.latency.Count(),
		SubmittedTx:        c.submittedTx,
		SubmittedDupTx:     c.submittedDupTx,
		SubmittedDupShare:  c.duplicateShare(now),
		RefusedSubmissions: c.refusedSubmits,
		Mempool: MempoolStats{
			PendingTx:       c.gauges.MempoolTxs,
			PendingBytes:    c.gauges.MempoolBytes,
			InFlightTx:      c.gauges.InFlightTxs,
			DeliveryBacklog: c.gauges.DeliveryBacklog,
			LocalWaiting:    c.gauges.LocalWaiting,
		},
		Rejected:         make(map[string]uint64, len(c.rejected)),
		TransportDropped: c.transportDropped,
	}
	if len(c.connRefused) > 0 {
		s.PeerConnRefused = make(map[string]uint64, len(c.connRefused))
		for k, v := range c.connRefused {
			s.PeerConnRefused[k] = v
		}
	}
	if c.view > 0 {
		s.AveViewTimeMs = round3(float64(up.Milliseconds()) / float64(c.view))
	}
	if c.proposed > 0 {
		s.AveProposalSize = round3(float64(c.proposedItems) / float64(c.proposed))
	}
	if c.committedBlocks > 0 {
		s.AveBlockSizeTx = round3(float64(c.committedTx) / float64(c.committedBlocks))
	}
	if up > 0 {
		s.ThroughputTotalTPS = round3(float64(c.committedTx) / up.Seconds())
	}
	for k, v := range c.rejected {
		s.Rejected[k] = v
	}
	s.Store = StoreStats{Kind: c.gauges.StoreKind, Bytes: c.gauges.StoreBytes}
	m := c.mb
	s.Microblocks = MicroblockStats{
		Created: m.created, Received: m.received, Redundant: m.redundant, Missing: m.missing,
		Fetched: m.fetched, Dropped: m.dropped, StableTimeMs: c.stable.Summary(),
		StableSamples:  c.stable.Count(),
		ProofsVerified: m.proofsOK, ProofsRejected: m.proofsBad, ProofsAsked: m.proofsAsked, Forwarded: m.forwarded, PushedAsProxy: m.proxied,
		Busy: c.busy, LoadMs: round3(float64(c.load) / float64(time.Millisecond)), BannedProxies: c.gauges.Banned,
		Known: c.gauges.Microblocks, PeerBytes: c.gauges.PeerBytes, RetainedBytes: c.gauges.RetainedBytes,
		BeingFetched: c.gauges.Fetching,
	}
	if n := m.created + m.received; n > 0 {
		s.Microblocks.AveSizeBytes = round3(float64(m.createdBytes+m.receivedBytes) / float64(n))
	}
	if m.created > 0 {
		s.Microblocks.AveSizeTxs = round3(float64(m.createdTxs) / float64(m.created))
	}
	s.Traffic = make(map[string]KindTraffic)
	var sendBps, recvBps float64
	for k, tot := range c.traffic.byKind {
		if tot == (Traffic{}) {
			continue
		}
		r := c.rates[k]
		s.Traffic[types.Kind(k).String()] = KindTraffic{TrafficRate: r,
			SentMsgsTotal: tot.SentMsgs, SentBytesTotal: tot.SentBytes, RecvMsgsTotal: tot.RecvMsgs, RecvBytesTotal: tot.RecvBytes}
		sendBps += r.SentBytes
		recvBps += r.RecvBytes
	}
	s.SendMbps, s.RecvMbps = round3(sendBps*8/1e6), round3(recvBps*8/1e6)
	return s
}

// Text renders the snapshot as "Label: value" lines.
func (s Snapshot) Text() string {
	var b strings.Builder
	line := func(label string, format string, args ...any) {
		fmt.Fprintf(&b, "%s: "+format+"\n", append([]any{label}, args...)...)
	}
	line("Node", "%d of %d", s.Node, s.N)
	line("Protocol", "%s (engine %s, mempool %s)", s.Algorithm, s.Engine, s.MemType)
	if s.Byzantine != "" {
		line("Byzantine", "%s", s.Byzantine)
	}
	line("Uptime", "%.1f s", s.UptimeS)
	line("View", "%d", s.View)
	line("Leader", "%d", s.Leader)
	line("High QC view", "%d", s.HighQCView)
	line("View changes", "%d (%d by TC)", s.ViewChanges, s.ViewChangesByTC)
	line("Timeouts", "%d", s.Timeouts)
	line("Ave. View Time", "%.3f ms", s.AveViewTimeMs)
	line("Proposed blocks", "%d", s.ProposedBlocks)
	line("Ave. Proposal Size", "%.1f items", s.AveProposalSize)
	line("Votes", "%d", s.Votes)
	line("Committed blocks", "%d", s.CommittedBlocks)
	line("Committed height", "%d", s.CommittedHeight)
	line("Chain digest", "%s", s.ChainDigest)
	line("Committed txs", "%d", s.CommittedTx)
	line("Duplicate txs dropped", "%d", s.DuplicateTx) // ordered twice (e.g. sent to two replicas)
	line("Ave. Block Size", "%.1f txs", s.AveBlockSizeTx)
	line("Throughput", "%.1f tx/s (last %d s)", s.ThroughputTPS, windowSeconds)
	line("Throughput since start", "%.1f tx/s", s.ThroughputTotalTPS)
	line("Latency", "mean %.3f ms, p50 %.3f ms, p95 %.3f ms, p99 %.3f ms, max %.3f ms (%d samples)",
		s.Latency.Mean, s.Latency.P50, s.Latency.P95, s.Latency.P99, s.Latency.Max, s.LatencySamples)
	line("Latency (last 10 s)", "mean %.3f ms, p50 %.3f ms, p95 %.3f ms, p99 %.3f ms",
		s.LatencyWindow.Mean, s.LatencyWindow.P50, s.LatencyWindow.P95, s.LatencyWindow.P99)
	line("Submitted txs", "%d", s.SubmittedTx)
	line("Duplicate txs answered", "%d", s.SubmittedDupTx)
	line("Duplicate share of submissions", "%.1f %% (last %d s)", 100*s.SubmittedDupShare, windowSeconds)
	line("Refused submissions", "%d", s.RefusedSubmissions)
	line("Mempool", "%d txs pending, %d bytes held, %d txs in flight", s.Mempool.PendingTx, s.Mempool.PendingBytes, s.Mempool.InFlightTx)
	line("Delivery backlog", "%d blocks", s.Mempool.DeliveryBacklog)
	line("Client txs awaiting delivery", "%d", s.Mempool.LocalWaiting)
	line("Transport drops", "%d", s.TransportDropped)
	if len(s.PeerConnRefused) > 0 {
		keys := slices.Sorted(maps.Keys(s.PeerConnRefused))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%d %s", s.PeerConnRefused[k], k)
		}
		line("Peer connections refused", "%s", strings.Join(parts, ", "))
	}
	line("State transfer", "%d snapshots applied, %d blocks and %d txs skipped", s.StateTransfer.Syncs, s.StateTransfer.SkippedBlocks, s.StateTransfer.SkippedTx)
	line("Restarts", "%d", s.Restarts)
	if s.Store.Kind != "" {
		line("Store", "%s, %d bytes on disk", s.Store.Kind, s.Store.Bytes)
	}
	line("Send Rate", "%.3f Mbps", s.SendMbps)
	line("Recv Rate", "%.3f Mbps", s.RecvMbps)
	if mb := s.Microblocks; mb.Created+mb.Received+uint64(mb.Known) > 0 {
		line("Total microblocks", "%d created, %d received, %d redundant, %d missing, %d fetched, %d dropped",
			mb.Created, mb.Received, mb.Redundant, mb.Missing, mb.Fetched, mb.Dropped)
		line("Ave. Microblock Size", "%.0f bytes, %.1f txs", mb.AveSizeBytes, mb.AveSizeTxs)
		line("Stable time", "p50 %.3f ms, p95 %.3f ms", mb.StableTimeMs.P50, mb.StableTimeMs.P95)
		line("Proofs", "%d verified, %d rejected, %d asked for by a waiting vote", mb.ProofsVerified, mb.ProofsRejected, mb.ProofsAsked)
		line("Load balancing", "busy %v, load %.3f ms, %d forwarded, %d pushed as proxy, %d banned proxies",
			mb.Busy, mb.LoadMs, mb.Forwarded, mb.PushedAsProxy, mb.BannedProxies)
		line("Microblocks held", "%d known, %d bytes of peers', %d bytes retained, %d being fetched",
			mb.Known, mb.PeerBytes, mb.RetainedBytes, mb.BeingFetched)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Traffic)) {
		tr := s.Traffic[k]
		line("Traffic "+k, "sent %.1f msg/s %.0f B/s, received %.1f msg/s %.0f B/s (totals %d / %d msgs)",
			tr.SentMsgs, tr.SentBytes, tr.RecvMsgs, tr.RecvBytes, tr.SentMsgsTotal, tr.RecvMsgsTotal)
	}
	keys := make([]string, 0, len(s.Rejected))
	for k := range s.Rejected {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		line("Rejected "+k, "%d", s.Rejected[k])
	}
	return b.String()
}
