package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/stratusbft/stratus/api"
	"github.com/stratusbft/stratus/byzantine"
	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/replica"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/transport"
	"github.com/stratusbft/stratus/types"
)

// simNode is one replica this process runs, with its statistics and HTTP server.
type simNode struct {
	id   types.NodeID
	rep  *replica.Replica
	col  *stats.Collector
	http *http.Server
	ln   net.Listener
}

// cluster is the replicas this process runs: all of them (-sim) or one (-id).
type cluster struct {
	closers []func() // transports, closed after the replicas stop
	nodes   []*simNode
	done    chan error
	faults  []*time.Timer // scheduled crashes
}

// runSpec is what every replica of a run shares.
type runSpec struct {
	cfg       config.Config
	algorithm string
	engine    string
	nodes     []config.Node
	dataDir   string
	log       *logrus.Logger
}

// listenHTTP binds the HTTP ports of ids, so a busy port fails the start before anything runs.
func listenHTTP(nodes []config.Node, ids []types.NodeID) ([]*simNode, error) {
	var out []*simNode
	for _, id := range ids {
		nd := nodes[id-1]
		ln, err := net.Listen("tcp", nd.HTTPAddr)
		if err != nil {
			for _, s := range out {
				_ = s.ln.Close()
			}
			return nil, fmt.Errorf("node %d: HTTP: %w (is another server running? bin/stop.sh stops what the bin/ scripts started)", id, err)
		}
		out = append(out, &simNode{id: id, ln: ln})
	}
	return out, nil
}

func startSim(run runSpec) (*cluster, error) {
	n := len(run.nodes)
	ids := make([]types.NodeID, n)
	for i := range ids {
		ids[i] = types.NodeID(i + 1)
	}
	nodes, err := listenHTTP(run.nodes, ids)
	if err != nil {
		return nil, err
	}
	c := &cluster{done: make(chan error, n), nodes: nodes}
	signers, keys, err := crypto.SimKeysFor(run.cfg.Signer, run.cfg.Seed, n)
	if err != nil {
		c.abort()
		return nil, err
	}
	verifier := crypto.NewCache(keys)
	hub := transport.NewHub(n, transport.HubOptions{Buffer: run.cfg.ChanBufferSize})
	c.closers = append(c.closers, hub.Close)
	workers := max(2, min(4, 8/n+1))
	for i, s := range c.nodes {
		if err := c.build(run, s, signers[i], verifier, hub.Endpoint(s.id), workers); err != nil {
			c.abort()
			return nil, err
		}
	}
	c.start(run)
	return c, nil
}

// startNode runs node id alone, over TCP.
func startNode(run runSpec, id types.NodeID, signer crypto.Signer, keys crypto.Verifier) (*cluster, error) {
	nodes, err := listenHTTP(run.nodes, []types.NodeID{id})
	if err != nil {
		return nil, err
	}
	c := &cluster{done: make(chan error, 1), nodes: nodes}
	peers := make(map[types.NodeID]string, len(run.nodes))
	for _, nd := range run.nodes {
		peers[types.NodeID(nd.ID)] = nd.PeerAddr
	}
	ep, err := transport.ListenTCP(transport.TCPOptions{
		Self:     id,
		Peers:    peers,
		Signer:   signer,
		Verifier: keys,
		Buffer:   run.cfg.ChanBufferSize,
		Log:      run.log.WithField("node", id),
	})
	if err != nil {
		c.abort()
		return nil, fmt.Errorf("%w (is another server running on this address?)", err)
	}
	c.closers = append(c.closers, func() { _ = ep.Close() })
	if err := c.build(run, c.nodes[0], signer, crypto.NewCache(keys), ep, 0); err != nil {
		c.abort()
		return nil, err
	}
	c.start(run)
	return c, nil
}

// abort releases what a failed start bound.
func (c *cluster) abort() {
	for _, s := range c.nodes {
		_ = s.ln.Close()
	}
	for _, f := range c.closers {
		f()
	}
}

// build creates node s's replica, statistics and HTTP server on endpoint ep.
func (c *cluster) build(run runSpec, s *simNode, signer crypto.Signer, verifier crypto.Verifier, ep transport.Endpoint, workers int) error {
	cfg, n := run.cfg, len(run.nodes)
	spec := core.SpecFromConfig(cfg, run.engine, n)
	strategy := cfg.ByzantineNodes(n)[int(s.id)]
	var adv *byzantine.Adversary
	if strategy != "" {
		var err error
		adv, err = byzantine.New(strategy, byzantine.Params{
			Self: s.id, N: n, Leaders: consensus.NewLeaderElection(cfg.MasterID(), n), MemType: spec.MemType,
			Q: spec.Shared.Q, Slow: time.Duration(cfg.Slow) * time.Millisecond, Seed: cfg.Seed,
		})
		if err != nil {
			return err
		}
	}
	s.col = stats.New(stats.Info{Node: s.id, N: n, Algorithm: run.algorithm, Engine: run.engine, MemType: cfg.MemType, Byzantine: strategy}, time.Now)
	opts := replica.Options{
		ID:       s.id,
		N:        n,
		Spec:     spec,
		Signer:   signer,
		Verifier: verifier,
		Workers:  workers,
		Seed:     cfg.Seed,
		Log:      run.log.WithField("node", s.id),
		Stats:    s.col,
		DataDir:  run.dataDir,
	}
	if adv != nil {
		opts.Adversary = adv
	}
	// Link emulation and network faults sit between the replica and its transport; without them
	// the replica talks to the transport directly.
	var shaper *transport.Shaper
	if cfg.Delay > 0 || cfg.DErr > 0 || cfg.Bandwidth > 0 || cfg.Loss > 0 || cfg.FaultsHTTP {
		shaper = transport.Shape(ep, transport.ShapeOptions{
			N:         n,
			Delay:     time.Duration(cfg.Delay) * time.Millisecond,
			Jitter:    time.Duration(cfg.DErr) * time.Millisecond,
			Bandwidth: float64(cfg.Bandwidth) * 1e6,
			Loss:      cfg.Loss,
			Seed:      cfg.Seed + int64(s.id),
		})
		ep = shaper
	}
	rep, err := replica.New(opts, ep)
	if err != nil {
		return err
	}
	s.rep = rep
	apiOpts := api.Options{MaxTxSize: cfg.MaxTxSize, N: n, Peers: httpPeers(run.nodes),
		// A load client keeps up to benchmark.Concurrency connections to a replica and the
		// bundled scripts run four on a host: the cap per client address leaves twice that room.
		MaxConnsPerAddr: max(api.DefaultMaxConnsPerAddr, 8*cfg.Benchmark.Concurrency)}
	if cfg.FaultsHTTP {
		apiOpts.Faults = api.FaultsOf(rep.Crash, shaper)
	}
	// The API's server bounds headers, bodies, idle connections and connections per client
	// address (api.Options); its listener refuses the connections above that cap.
	h := api.New(rep, s.col, apiOpts)
	s.http = h.HTTPServer()
	s.ln = h.Listener(s.ln)
	fields := logrus.Fields{"node": s.id, "http": run.nodes[s.id-1].HTTPAddr}
	if strategy != "" {
		fields["byzantine"] = strategy
	}
	run.log.WithFields(fields).Info("replica starting")
	if strategy == config.StrategyCrash {
		down := time.Duration(cfg.Restart) * time.Millisecond
		c.faults = append(c.faults, time.AfterFunc(time.Duration(cfg.Crash)*time.Millisecond, func() { rep.Crash(down) }))
	}
	return nil
}

// httpPeers maps every node to the address its HTTP API answers on, for the dashboard's cluster
// view; a wildcard listen address (":8069", "0.0.0.0:8069") is asked on loopback.
func httpPeers(nodes []config.Node) map[types.NodeID]string {
	out := make(map[types.NodeID]string, len(nodes))
	for _, nd := range nodes {
		addr := nd.HTTPAddr
		if host, port, err := net.SplitHostPort(addr); err == nil {
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
		}
		out[types.NodeID(nd.ID)] = addr
	}
	return out
}

func (c *cluster) start(run runSpec) {
	for _, s := range c.nodes {
		s.rep.Start()
		go func(s *simNode) { c.done <- s.http.Serve(s.ln) }(s)
	}
	run.log.WithFields(logrus.Fields{"n": len(run.nodes), "local": len(c.nodes), "algorithm": run.algorithm, "engine": run.engine, "mem_type": run.cfg.MemType}).Info("running")
}

// stop shuts HTTP down first (no new work), then the replicas, and logs each node's final numbers.
func (c *cluster) stop(log *logrus.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, t := range c.faults {
		t.Stop()
	}
	for _, s := range c.nodes {
		_ = s.http.Shutdown(ctx)
	}
	for _, s := range c.nodes {
		s.rep.Stop()
	}
	for _, f := range c.closers {
		f()
	}
	for _, s := range c.nodes {
		snap := s.col.Snapshot()
		b, _ := json.Marshal(snap)
		log.WithField("node", s.id).Infof("final statistics %s", b)
		fmt.Printf("node %d: committed %d tx in %d blocks, %.1f tx/s since start, latency p50 %.1f ms p99 %.1f ms\n",
			s.id, snap.CommittedTx, snap.CommittedBlocks, snap.ThroughputTotalTPS, snap.Latency.P50, snap.Latency.P99)
	}
	for range c.nodes {
		if err := <-c.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Warn("http server")
		}
	}
}
