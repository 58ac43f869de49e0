package stats

import (
	"fmt"
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
}

// Gauges are sizes sampled from the replica's event loop.
type Gauges struct {
	MempoolTxs      int
	MempoolBytes    int
	InFlightTxs     int
	DeliveryBacklog int // committed blocks waiting for data
	LocalWaiting    int // client transactions received here and not yet delivered
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
	committedTx      uint64
	duplicateTx      uint64
	latency          Histogram
	window           *Window
	rejected         map[string]uint64
	gauges           Gauges
	submittedTx      uint64
	refusedSubmits   uint64
	transportDropped uint64
	viewChangesByTCs uint64
}

// New returns a collector whose clock is now.
func New(info Info, now func() time.Time) *Collector {
	return &Collector{info: info, now: now, start: now(), window: NewWindow(windowSeconds), rejected: make(map[string]uint64)}
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
	}
}

// Rejected counts a message dropped before it reached the core (decoding, structure, signatures).
func (c *Collector) Rejected(kind types.Kind, rule string) {
	c.mu.Lock()
	c.rejected[kind.String()+"/"+rule]++
	c.mu.Unlock()
}

// Delivered records a delivered block: its new transactions, dropped duplicates and the latencies of
// the transactions clients submitted to this node.
func (c *Collector) Delivered(b *types.Block, txs, dups int, lat []time.Duration) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.committedBlocks++
	c.committedHeight = b.Height
	c.committedTx += uint64(txs)
	c.duplicateTx += uint64(dups)
	c.window.Add(now, uint64(txs))
	for _, d := range lat {
		c.latency.Record(d)
		c.window.Record(now, d)
	}
}

// Submitted counts transactions accepted from clients, or a refused submission.
func (c *Collector) Submitted(n int, refused bool) {
	c.mu.Lock()
	if refused {
		c.refusedSubmits++
	} else {
		c.submittedTx += uint64(n)
	}
	c.mu.Unlock()
}

// SetGauges stores the latest sizes.
func (c *Collector) SetGauges(g Gauges, highQC types.View, dropped uint64) {
	c.mu.Lock()
	c.gauges, c.highQC, c.transportDropped = g, highQC, dropped
	c.mu.Unlock()
}

// Snapshot is a node's statistics at one instant. Every number is finite.
type Snapshot struct {
	Node               types.NodeID      `json:"node"`
	N                  int               `json:"n"`
	Algorithm          string            `json:"algorithm"`
	Engine             string            `json:"engine"`
	MemType            string            `json:"mem_type"`
	UptimeS            float64           `json:"uptime_s"`
	View               types.View        `json:"view"`
	Leader             types.NodeID      `json:"leader"`
	HighQCView         types.View        `json:"high_qc_view"`
	ViewChanges        uint64            `json:"view_changes"`
	ViewChangesByTC    uint64            `json:"view_changes_by_tc"`
	Timeouts           uint64            `json:"timeouts"`
	AveViewTimeMs      float64           `json:"ave_view_time_ms"`
	ProposedBlocks     uint64            `json:"proposed_blocks"`
	AveProposalSize    float64           `json:"ave_proposal_size"`
	Votes              uint64            `json:"votes"`
	CommittedBlocks    uint64            `json:"committed_blocks"`
	CommittedHeight    uint64            `json:"committed_height"`
	CommittedTx        uint64            `json:"committed_tx"`
	DuplicateTx        uint64            `json:"duplicate_tx"`
	AveBlockSizeTx     float64           `json:"ave_block_size_tx"`
	ThroughputTPS      float64           `json:"throughput_tps"`
	ThroughputTotalTPS float64           `json:"throughput_total_tps"`
	Latency            Latency           `json:"latency_ms"`
	LatencyWindow      Latency           `json:"latency_window_ms"`
	LatencySamples     uint64            `json:"latency_samples"`
	SubmittedTx        uint64            `json:"submitted_tx"`
	RefusedSubmissions uint64            `json:"refused_submissions"`
	Mempool            MempoolStats      `json:"mempool"`
	Rejected           map[string]uint64 `json:"rejected"`
	TransportDropped   uint64            `json:"transport_dropped"`
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
		CommittedTx:        c.committedTx,
		DuplicateTx:        c.duplicateTx,
		ThroughputTPS:      round3(c.window.Rate(now, up)),
		Latency:            c.latency.Summary(),
		LatencyWindow:      c.window.Latency(now),
		LatencySamples:     c.latency.Count(),
		SubmittedTx:        c.submittedTx,
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
	line("Committed txs", "%d", s.CommittedTx)
	line("Duplicate txs dropped", "%d", s.DuplicateTx)
	line("Ave. Block Size", "%.1f txs", s.AveBlockSizeTx)
	line("Throughput", "%.1f tx/s (last %d s)", s.ThroughputTPS, windowSeconds)
	line("Throughput since start", "%.1f tx/s", s.ThroughputTotalTPS)
	line("Latency", "mean %.3f ms, p50 %.3f ms, p95 %.3f ms, p99 %.3f ms, max %.3f ms (%d samples)",
		s.Latency.Mean, s.Latency.P50, s.Latency.P95, s.Latency.P99, s.Latency.Max, s.LatencySamples)
	line("Latency (last 10 s)", "mean %.3f ms, p50 %.3f ms, p95 %.3f ms, p99 %.3f ms",
		s.LatencyWindow.Mean, s.LatencyWindow.P50, s.LatencyWindow.P95, s.LatencyWindow.P99)
	line("Submitted txs", "%d", s.SubmittedTx)
	line("Refused submissions", "%d", s.RefusedSubmissions)
	line("Mempool", "%d txs pending, %d bytes held, %d txs in flight", s.Mempool.PendingTx, s.Mempool.PendingBytes, s.Mempool.InFlightTx)
	line("Delivery backlog", "%d blocks", s.Mempool.DeliveryBacklog)
	line("Client txs awaiting delivery", "%d", s.Mempool.LocalWaiting)
	line("Transport drops", "%d", s.TransportDropped)
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
