package api

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stratusbft/stratus/stats"
)

// metricsHandler serves GET /metrics in the Prometheus text format. Every number comes from the
// same stats.Collector snapshot as /query, read once per scrape, and from the HTTP server's
// refusals (refused); the node's own registry also carries the Go runtime and process metrics.
func metricsHandler(col *stats.Collector, refused func() HTTPRefusals) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&snapshotCollector{col: col, refused: refused},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// metricDef is one metric of a snapshot: its descriptor, type and how to read it.
type metricDef struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	get  func(s *stats.Snapshot) float64
}

var nodeLabels = []string{"node", "protocol"}

func newDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc("stratus_"+name, help, append(append([]string(nil), nodeLabels...), extra...), nil)
}

func counter(name, help string, get func(s *stats.Snapshot) uint64) metricDef {
	return metricDef{newDesc(name, help), prometheus.CounterValue, func(s *stats.Snapshot) float64 { return float64(get(s)) }}
}

func gauge(name, help string, get func(s *stats.Snapshot) float64) metricDef {
	return metricDef{newDesc(name, help), prometheus.GaugeValue, get}
}

const msPerS = 1000.0

// scalarMetrics are the snapshot's numbers without labels of their own.
var scalarMetrics = []metricDef{
	gauge("uptime_seconds", "Time since the node started.", func(s *stats.Snapshot) float64 { return s.UptimeS }),
	gauge("view", "Current view.", func(s *stats.Snapshot) float64 { return float64(s.View) }),
	gauge("leader", "Leader of the current view (node ID).", func(s *stats.Snapshot) float64 { return float64(s.Leader) }),
	gauge("high_qc_view", "View of the highest quorum certificate known.", func(s *stats.Snapshot) float64 { return float64(s.HighQCView) }),
	counter("view_changes_total", "View changes.", func(s *stats.Snapshot) uint64 { return s.ViewChanges }),
	counter("view_changes_by_tc_total", "View changes caused by a timeout certificate.", func(s *stats.Snapshot) uint64 { return s.ViewChangesByTC }),
	counter("timeouts_total", "View timeouts of this node.", func(s *stats.Snapshot) uint64 { return s.Timeouts }),
	counter("proposed_blocks_total", "Blocks this node proposed.", func(s *stats.Snapshot) uint64 { return s.ProposedBlocks }),
	counter("votes_total", "Votes this node cast.", func(s *stats.Snapshot) uint64 { return s.Votes }),
	counter("committed_blocks_total", "Blocks delivered.", func(s *stats.Snapshot) uint64 { return s.CommittedBlocks }),
	gauge("committed_height", "Height of the last delivered block.", func(s *stats.Snapshot) float64 { return float64(s.CommittedHeight) }),
	counter("committed_transactions_total", "Transactions delivered.", func(s *stats.Snapshot) uint64 { return s.CommittedTx }),
	counter("duplicate_transactions_total", "Transactions ordered twice and dropped at delivery.", func(s *stats.Snapshot) uint64 { return s.DuplicateTx }),
	gauge("throughput_transactions_per_second", "Delivered transactions per second over the last 10 s.", func(s *stats.Snapshot) float64 { return s.ThroughputTPS }),
	counter("submitted_transactions_total", "Client transactions accepted (new at this node).", func(s *stats.Snapshot) uint64 { return s.SubmittedTx }),
	counter("submitted_duplicate_transactions_total", "Client transactions answered as duplicates.", func(s *stats.Snapshot) uint64 { return s.SubmittedDupTx }),
	gauge("submitted_duplicate_share", "Share of the client transactions submitted in the last 10 s that were duplicates (0 to 1).", func(s *stats.Snapshot) float64 { return s.SubmittedDupShare }),
	counter("refused_submissions_total", "Client submissions refused.", func(s *stats.Snapshot) uint64 { return s.RefusedSubmissions }),
	gauge("mempool_pending_transactions", "Own transactions waiting to be proposed or batched.", func(s *stats.Snapshot) float64 { return float64(s.Mempool.PendingTx) }),
	gauge("mempool_pending_bytes", "Bytes of own transactions held.", func(s *stats.Snapshot) float64 { return float64(s.Mempool.PendingBytes) }),
	gauge("mempool_in_flight_transactions", "Own transactions on their way to commit.", func(s *stats.Snapshot) float64 { return float64(s.Mempool.InFlightTx) }),
	gauge("delivery_backlog_blocks", "Committed blocks waiting for their data.", func(s *stats.Snapshot) float64 { return float64(s.Mempool.DeliveryBacklog) }),
	gauge("local_waiting_transactions", "Client transactions received here and not yet delivered.", func(s *stats.Snapshot) float64 { return float64(s.Mempool.LocalWaiting) }),
	counter("transport_dropped_messages_total", "Messages the transport dropped.", func(s *stats.Snapshot) uint64 { return s.TransportDropped }),
	counter("state_syncs_total", "State transfer snapshots applied.", func(s *stats.Snapshot) uint64 { return s.StateTransfer.Syncs }),
	counter("state_skipped_blocks_total", "Blocks skipped by state transfer.", func(s *stats.Snapshot) uint64 { return s.StateTransfer.SkippedBlocks }),
	counter("state_skipped_transactions_total", "Transactions skipped by state transfer.", func(s *stats.Snapshot) uint64 { return s.StateTransfer.SkippedTx }),
	counter("restarts_total", "Restarts after a crash.", func(s *stats.Snapshot) uint64 { return s.Restarts }),
	gauge("store_bytes", "Bytes the replica's store takes on disk (0 for a memory store).", func(s *stats.Snapshot) float64 { return float64(s.Store.Bytes) }),
	counter("microblocks_created_total", "Microblocks this node created.", func(s *stats.Snapshot) uint64 { return s.Microblocks.Created }),
	counter("microblocks_received_total", "Microblocks received from peers.", func(s *stats.Snapshot) uint64 { return s.Microblocks.Received }),
	counter("microblocks_redundant_total", "Microblocks received again.", func(s *stats.Snapshot) uint64 { return s.Microblocks.Redundant }),
	counter("microblocks_missing_total", "Microblocks referenced before they arrived.", func(s *stats.Snapshot) uint64 { return s.Microblocks.Missing }),
	counter("microblocks_fetched_total", "Missing microblocks fetched.", func(s *stats.Snapshot) uint64 { return s.Microblocks.Fetched }),
	counter("microblocks_dropped_total", "Microblocks dropped.", func(s *stats.Snapshot) uint64 { return s.Microblocks.Dropped }),
	counter("proofs_verified_total", "Availability proofs verified.", func(s *stats.Snapshot) uint64 { return s.Microblocks.ProofsVerified }),
	counter("proofs_rejected_total", "Availability proofs rejected.", func(s *stats.Snapshot) uint64 { return s.Microblocks.ProofsRejected }),
	counter("microblocks_forwarded_total", "Own microblocks forwarded to a proxy (load balancing).", func(s *stats.Snapshot) uint64 { return s.Microblocks.Forwarded }),
	counter("microblocks_pushed_as_proxy_total", "Microblocks pushed for another replica (load balancing).", func(s *stats.Snapshot) uint64 { return s.Microblocks.PushedAsProxy }),
	gauge("load_balancing_busy", "1 while this replica is busy and forwards its microblocks.", func(s *stats.Snapshot) float64 {
		if s.Microblocks.Busy {
			return 1
		}
		return 0
	}),
	gauge("load_balancing_load_seconds", "Current load estimate: the configured percentile of recent stable times.", func(s *stats.Snapshot) float64 { return s.Microblocks.LoadMs / msPerS }),
	gauge("load_balancing_banned_proxies", "Proxies banned.", func(s *stats.Snapshot) float64 { return float64(s.Microblocks.BannedProxies) }),
	gauge("microblocks_known", "Microblocks known (held or referenced).", func(s *stats.Snapshot) float64 { return float64(s.Microblocks.Known) }),
	gauge("microblocks_peer_bytes", "Bytes of other replicas' microblocks held.", func(s *stats.Snapshot) float64 { return float64(s.Microblocks.PeerBytes) }),
	gauge("microblocks_retained_bytes", "Bytes of committed microblocks kept for fetches.", func(s *stats.Snapshot) float64 { return float64(s.Microblocks.RetainedBytes) }),
	gauge("microblocks_being_fetched", "Microblocks being fetched.", func(s *stats.Snapshot) float64 { return float64(s.Microblocks.BeingFetched) }),
	gauge("sent_bytes_per_second", "Bytes sent per second, all message types, over the last second or more.", func(s *stats.Snapshot) float64 {
		var v float64
		for _, tr := range s.Traffic {
			v += tr.SentBytes
		}
		return v
	}),
	gauge("received_bytes_per_second", "Bytes received per second, all message types, over the last second or more.", func(s *stats.Snapshot) float64 {
		var v float64
		for _, tr := range s.Traffic {
			v += tr.RecvBytes
		}
		return v
	}),
}

var (
	infoDesc = prometheus.NewDesc("stratus_node_info", "What the node runs (value 1).",
		append(append([]string(nil), nodeLabels...), "engine", "mem_type", "n", "byzantine"), nil)
	latencyDesc = newDesc("latency_seconds",
		"Server-side latency of the transactions clients submitted to this node: receipt to delivery, since the start.")
	latencyWindowDesc = newDesc("latency_window_seconds",
		"Server-side latency percentiles over the last 10 s.", "percentile")
	stableDesc = newDesc("microblock_stable_time_seconds",
		"Stable time of the microblocks this node pushed (PAB: push to availability proof), since the start.")
	sentMsgsDesc    = newDesc("messages_sent_total", "Messages sent, by message type.", "msg_type")
	sentBytesDesc   = newDesc("sent_bytes_total", "Bytes sent, by message type.", "msg_type")
	recvMsgsDesc    = newDesc("messages_received_total", "Messages received, by message type.", "msg_type")
	recvBytesDesc   = newDesc("received_bytes_total", "Bytes received, by message type.", "msg_type")
	rejectedDesc    = newDesc("rejected_messages_total", "Messages rejected, by message type and rule.", "msg_type", "rule")
	httpRefusedDesc = newDesc("http_refused_total",
		"Requests and connections the HTTP API refused, by reason: body_too_large (413), body_timeout (408), header_timeout, too_many_connections (503), bodies_in_flight (503).", "reason")
	peerRefusedDesc = newDesc("peer_connections_refused_total",
		"Inbound peer connections the transport refused before they carried a message, by reason: per_source_cap, evicted (in handshake, to make room), handshake_failed, bad_frame (a peer's connection closed for a frame too large, forged or undecodable).", "reason")
)

// snapshotCollector exposes a stats.Collector's snapshot as Prometheus metrics.
type snapshotCollector struct {
	col     *stats.Collector
	refused func() HTTPRefusals
}

// Describe implements prometheus.Collector.
func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range scalarMetrics {
		ch <- m.desc
	}
	for _, d := range []*prometheus.Desc{infoDesc, latencyDesc, latencyWindowDesc, stableDesc,
		sentMsgsDesc, sentBytesDesc, recvMsgsDesc, recvBytesDesc, rejectedDesc, httpRefusedDesc, peerRefusedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one snapshot per scrape.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.col.Snapshot()
	node := strconv.Itoa(int(s.Node))
	lv := []string{node, s.Algorithm}
	for _, m := range scalarMetrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.get(&s), lv...)
	}
	ch <- prometheus.MustNewConstMetric(infoDesc, prometheus.GaugeValue, 1,
		node, s.Algorithm, s.Engine, s.MemType, strconv.Itoa(s.N), s.Byzantine)
	ch <- prometheus.MustNewConstSummary(latencyDesc, s.LatencySamples, s.Latency.Mean*float64(s.LatencySamples)/msPerS,
		map[float64]float64{0.5: s.Latency.P50 / msPerS, 0.95: s.Latency.P95 / msPerS, 0.99: s.Latency.P99 / msPerS}, lv...)
	for _, p := range []struct {
		name string
		v    float64
	}{{"50", s.LatencyWindow.P50}, {"95", s.LatencyWindow.P95}, {"99", s.LatencyWindow.P99}} {
		ch <- prometheus.MustNewConstMetric(latencyWindowDesc, prometheus.GaugeValue, p.v/msPerS, node, s.Algorithm, p.name)
	}
	st := s.Microblocks.StableTimeMs
	ch <- prometheus.MustNewConstSummary(stableDesc, s.Microblocks.StableSamples, st.Mean*float64(s.Microblocks.StableSamples)/msPerS,
		map[float64]float64{0.5: st.P50 / msPerS, 0.95: st.P95 / msPerS, 0.99: st.P99 / msPerS}, lv...)
	for _, k := range slices.Sorted(maps.Keys(s.Traffic)) {
		tr := s.Traffic[k]
		ch <- prometheus.MustNewConstMetric(sentMsgsDesc, prometheus.CounterValue, float64(tr.SentMsgsTotal), node, s.Algorithm, k)
		ch <- prometheus.MustNewConstMetric(sentBytesDesc, prometheus.CounterValue, float64(tr.SentBytesTotal), node, s.Algorithm, k)
		ch <- prometheus.MustNewConstMetric(recvMsgsDesc, prometheus.CounterValue, float64(tr.RecvMsgsTotal), node, s.Algorithm, k)
		ch <- prometheus.MustNewConstMetric(recvBytesDesc, prometheus.CounterValue, float64(tr.RecvBytesTotal), node, s.Algorithm, k)
	}
	for key, v := range s.Rejected {
		kind, rule, _ := strings.Cut(key, "/")
		ch <- prometheus.MustNewConstMetric(rejectedDesc, prometheus.CounterValue, float64(v), node, s.Algorithm, kind, rule)
	}
	for _, reason := range slices.Sorted(maps.Keys(s.PeerConnRefused)) {
		label := strings.ReplaceAll(reason, " ", "_")
		label = strings.ReplaceAll(label, "-", "_")
		ch <- prometheus.MustNewConstMetric(peerRefusedDesc, prometheus.CounterValue, float64(s.PeerConnRefused[reason]), node, s.Algorithm, label)
	}
	if c.refused != nil {
		r := c.refused()
		for _, p := range []struct {
			reason string
			v      uint64
		}{{"body_too_large", r.BodyTooLarge}, {"body_timeout", r.BodyTimeout}, {"header_timeout", r.HeaderTimeout}, {"too_many_connections", r.TooManyConnections}, {"bodies_in_flight", r.BodiesInFlight}} {
			ch <- prometheus.MustNewConstMetric(httpRefusedDesc, prometheus.CounterValue, float64(p.v), node, s.Algorithm, p.reason)
		}
	}
}
