// Command server runs Stratus replicas.
//
//	server -sim [-algorithm hotstuff] [-config config.json] [-ips ips.txt] [-log_dir .] [-log_level info] [-data_dir DIR]
//
// With -sim every node listed in ips.txt runs in this process: replicas are goroutines that talk over
// Go channels (optionally with emulated delay), and each serves its HTTP API on port 8069+i. The
// config's byzNo/strategy/byzantine keys make some of them Byzantine.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/golang/glog"
	"github.com/sirupsen/logrus"

	"github.com/stratusbft/stratus/api"
	"github.com/stratusbft/stratus/byzantine"
	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/replica"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/transport"
	"github.com/stratusbft/stratus/types"
)

func main() {
	code := run()
	glog.Flush()
	os.Exit(code)
}

func run() int {
	sim := flag.Bool("sim", false, "run every node of the ips file in this process")
	id := flag.Int("id", 0, "run only this node (one process per replica)")
	cfgPath := flag.String("config", "config.json", "configuration file")
	ipsPath := flag.String("ips", "ips.txt", "replica hosts, one per line")
	algorithm := flag.String("algorithm", "hotstuff", "protocol: "+strings.Join(config.PresetNames(), ", "))
	logLevel := flag.String("log_level", "info", "debug, info, warn or error")
	var sets setFlags
	flag.Var(&sets, "set", "override a config key, e.g. -set byzNo=2 -set strategy=fork (repeatable; the value is JSON, or else a string)")
	dataDir := flag.String("data_dir", "", "directory for each replica's voting state (vote.<id>), written before every vote so that a restarted replica never votes twice; empty: kept in memory")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: server -sim [flags]\n\nflags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "server: unexpected arguments %q\n", flag.Args())
		return 2
	}
	// -log_dir is glog's flag; it also places our application log.
	logDir := flag.Lookup("log_dir").Value.String()
	if logDir == "" {
		logDir = "."
		_ = flag.Set("log_dir", logDir)
	}

	level, err := logrus.ParseLevel(*logLevel)
	if err != nil || level > logrus.DebugLevel {
		fmt.Fprintf(os.Stderr, "server: -log_level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	switch {
	case *sim && *id != 0:
		fmt.Fprintln(os.Stderr, "server: give either -sim or -id, not both")
		return 2
	case !*sim && *id == 0:
		fmt.Fprintln(os.Stderr, "server: give -sim to run every node of the ips file in this process")
		flag.Usage()
		return 2
	case *id != 0:
		fmt.Fprintln(os.Stderr, "server: -id (one process per replica over TCP) is not available yet; use -sim")
		return 2
	}

	cfg, err := config.LoadWith(*cfgPath, sets)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 2
	}
	hosts, err := config.ReadIPs(*ipsPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 2
	}
	engine, err := cfg.ApplyAlgorithm(*algorithm)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: -algorithm: %v\n", err)
		return 2
	}
	nodes := cfg.Nodes(hosts)
	if err := cfg.Validate(len(nodes)); err != nil {
		fmt.Fprintf(os.Stderr, "server: %s: invalid configuration:\n  %s\n", *cfgPath, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}

	if err := os.MkdirAll(logDir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "server: log directory: %v\n", err)
		return 1
	}
	logPath := filepath.Join(logDir, fmt.Sprintf("server.%d.log", os.Getpid()))
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 1
	}
	defer logFile.Close()
	log := logrus.New()
	log.SetOutput(logFile)
	log.SetLevel(level)
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano})

	c, err := startSim(cfg, *algorithm, engine, nodes, *dataDir, log)
	if err != nil {
		log.WithError(err).Error("start failed")
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 1
	}
	fmt.Printf("stratus: %d replicas of %s (engine %s, mempool %s) in one process; HTTP %s..%s; log %s\n",
		len(nodes), *algorithm, engine, cfg.MemType, nodes[0].HTTPAddr, nodes[len(nodes)-1].HTTPAddr, logPath)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	sig := <-sigs
	log.WithField("signal", sig.String()).Info("shutting down")
	c.stop(log)
	fmt.Println("stratus: stopped")
	return 0
}

// setFlags collects repeated -set key=value flags.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, " ") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

type simNode struct {
	id   types.NodeID
	rep  *replica.Replica
	col  *stats.Collector
	http *http.Server
	ln   net.Listener
}

type cluster struct {
	hub    *transport.Hub
	nodes  []*simNode
	done   chan error
	faults []*time.Timer // scheduled crashes
}

func startSim(cfg config.Config, algorithm, engine string, nodes []config.Node, dataDir string, log *logrus.Logger) (*cluster, error) {
	n := len(nodes)
	c := &cluster{done: make(chan error, n)}
	// Bind every port first, so a busy port fails the start before anything runs.
	for _, nd := range nodes {
		ln, err := net.Listen("tcp", nd.HTTPAddr)
		if err != nil {
			for _, s := range c.nodes {
				_ = s.ln.Close()
			}
			return nil, fmt.Errorf("node %d: %w (is another server running? bin/stop.sh stops the one simulation.sh started)", nd.ID, err)
		}
		c.nodes = append(c.nodes, &simNode{id: types.NodeID(nd.ID), ln: ln})
	}
	signers, keys := crypto.SimKeys(cfg.Seed, n)
	verifier := crypto.NewCache(keys)
	c.hub = transport.NewHub(n, transport.HubOptions{
		Buffer: cfg.ChanBufferSize,
		Delay:  time.Duration(cfg.Delay) * time.Millisecond,
		Jitter: time.Duration(cfg.DErr) * time.Millisecond,
		Seed:   cfg.Seed,
	})
	spec := replica.SpecFromConfig(cfg, engine, n)
	workers := max(2, min(4, 8/n+1))
	byz := cfg.ByzantineNodes(n)
	for i, s := range c.nodes {
		strategy := byz[int(s.id)]
		var adv *byzantine.Adversary
		if strategy != "" {
			var err error
			adv, err = byzantine.New(strategy, byzantine.Params{
				Self: s.id, N: n, Leaders: consensus.NewLeaderElection(cfg.MasterID(), n), MemType: spec.MemType,
				Q: spec.Shared.Q, Slow: time.Duration(cfg.Slow) * time.Millisecond, Seed: cfg.Seed,
			})
			if err != nil {
				return nil, err
			}
		}
		s.col = stats.New(stats.Info{Node: s.id, N: n, Algorithm: algorithm, Engine: engine, MemType: cfg.MemType, Byzantine: strategy}, time.Now)
		opts := replica.Options{
			ID:       s.id,
			N:        n,
			Spec:     spec,
			Signer:   signers[i],
			Verifier: verifier,
			Workers:  workers,
			Seed:     cfg.Seed,
			Log:      log.WithField("node", s.id),
			Stats:    s.col,
			DataDir:  dataDir,
		}
		if adv != nil {
			opts.Adversary = adv
		}
		rep, err := replica.New(opts, c.hub.Endpoint(s.id))
		if err != nil {
			return nil, err
		}
		s.rep = rep
		s.http = &http.Server{
			Handler:           api.New(rep, s.col, api.Options{MaxTxSize: cfg.MaxTxSize}),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
		}
		fields := logrus.Fields{"node": s.id, "http": nodes[i].HTTPAddr}
		if strategy != "" {
			fields["byzantine"] = strategy
		}
		log.WithFields(fields).Info("replica starting")
		if strategy == config.StrategyCrash {
			rep, down := s.rep, time.Duration(cfg.Restart)*time.Millisecond
			c.faults = append(c.faults, time.AfterFunc(time.Duration(cfg.Crash)*time.Millisecond, func() { rep.Crash(down) }))
		}
	}
	for _, s := range c.nodes {
		s.rep.Start()
		go func(s *simNode) { c.done <- s.http.Serve(s.ln) }(s)
	}
	log.WithFields(logrus.Fields{"n": n, "algorithm": algorithm, "engine": engine, "mem_type": cfg.MemType}).Info("cluster running")
	return c, nil
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
	c.hub.Close()
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
