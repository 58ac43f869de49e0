package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
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
	algorithm := flag.String("algorithm", config.AlgHotStuff, "protocol: "+strings.Join(config.PresetNames(), ", "))
	logLevel := flag.String("log_level", "info", "debug, info, warn or error")
	var sets setFlags
	flag.Var(&sets, "set", "override a config key, e.g. -set byzNo=2 -set strategy=fork (repeatable; the value is JSON, or else a string)")
	dataDir := flag.String("data_dir", "", "directory for each replica's store (store.<id>, Pebble): voting state, certified blocks, delivered state, key-value store and microblocks, synced before a vote, ack or commit answer leaves, so a restarted replica continues where it was; empty: kept in memory with -sim, \"data\" with -id")
	keygen := flag.Bool("keygen", false, "write a private key file per node of the ips file and the public key list into the -keys directory, then exit")
	keysDir := flag.String("keys", "keys", "key directory: node<i>.key (mode 0600) and pubkeys.txt")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof reads it)")
	memProfile := flag.String("memprofile", "", "with -sim or -id: write a heap profile to this file when the server is told to stop, before it stops (go tool pprof reads it)")
	pprofAddr := flag.String("pprof", "", "with -sim or -id: serve net/http/pprof on this address (e.g. 127.0.0.1:6060), apart from the API; off by default")
	checkConfig := flag.Bool("check-config", false, "check -config (with -set) for the nodes of -ips and -algorithm, print every problem or a one-line summary, and exit: 0 valid, 2 not; binds no port and writes no log")
	migrate := flag.String("migrate-config", "", "read a config.json of the original prototype and write the equivalent config of this version to stdout (or to -out), each change and its reason on stderr, then exit")
	outPath := flag.String("out", "", "with -migrate-config: write the migrated config to this new file instead of stdout (an existing file is never overwritten); with -virtual: write the JSON result there (replacing the file) instead of stdout")
	vf := registerVirtualFlags()
	flag.Usage = func() { printUsage(flag.CommandLine.Output(), flag.CommandLine) }
	flag.Parse()
	// Signals are caught from the start, so that one arriving during start-up (or right after the
	// ready line) still stops the server cleanly.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
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
	if *vf.on {
		if *sim || *id != 0 || *keygen || *checkConfig || *migrate != "" {
			fmt.Fprintln(os.Stderr, "server: -virtual runs alone: not with -sim, -id, -keygen, -check-config or -migrate-config")
			return 2
		}
		if flagGiven("pprof") || flagGiven("memprofile") {
			fmt.Fprintln(os.Stderr, "server: -pprof and -memprofile go with -sim or -id; -virtual takes -cpuprofile")
			return 2
		}
		signal.Stop(sigs) // nothing to shut down cleanly: Ctrl-C and SIGTERM end the simulation
		return runVirtual(vf, *cfgPath, sets, *algorithm, *outPath, *cpuProfile)
	}
	if given := virtualOnlyFlags(); given != "" {
		fmt.Fprintf(os.Stderr, "server: -%s goes with -virtual\n", given)
		return 2
	}
	if *migrate != "" {
		if *sim || *id != 0 || *keygen || *checkConfig || len(sets) > 0 {
			fmt.Fprintln(os.Stderr, "server: -migrate-config takes only -ips and -out")
			return 2
		}
		return migrateConfig(*migrate, *ipsPath, flagGiven("ips"), *outPath)
	}
	if *outPath != "" {
		fmt.Fprintln(os.Stderr, "server: -out goes with -migrate-config")
		return 2
	}
	modes := 0
	for _, on := range []bool{*sim, *id != 0, *keygen} {
		if on {
			modes++
		}
	}
	switch {
	case *checkConfig && *keygen:
		fmt.Fprintln(os.Stderr, "server: -check-config checks a run's config: give it alone, or with -sim or -id")
		return 2
	case modes > 1:
		fmt.Fprintln(os.Stderr, "server: give one of -sim, -id or -keygen")
		return 2
	case modes == 0 && !*checkConfig:
		fmt.Fprintln(os.Stderr, "server: give -sim (every node in this process), -id I (one node over TCP), -keygen, -check-config or -migrate-config")
		flag.Usage()
		return 2
	case *id < 0:
		fmt.Fprintf(os.Stderr, "server: -id %d: node IDs start at 1\n", *id)
		return 2
	}
	if *keygen {
		hosts, err := config.ReadIPs(*ipsPath)
		if err != nil {
			fmt.Fprintf(os.Stderr, "server: %v\n", err)
			return 2
		}
		// The scheme is the config's signer, when there is a config (given, or config.json here).
		scheme := crypto.SchemeSecp256k1
		if _, statErr := os.Stat(*cfgPath); flagGiven("config") || statErr == nil {
			cfg, err := config.LoadWith(*cfgPath, sets)
			if err != nil {
				fmt.Fprintf(os.Stderr, "server: %v\n", err)
				return 2
			}
			scheme = cfg.Signer
		}
		if err := crypto.GenerateKeys(*keysDir, len(hosts), scheme); err != nil {
			fmt.Fprintf(os.Stderr, "server: %v\n", err)
			return 1
		}
		fmt.Printf("stratus: %s keys of %d nodes in %s (node<i>.key: give each host only its own; %s: every host)\n", scheme, len(hosts), *keysDir, crypto.PubKeysFile)
		return 0
	}
	if *id != 0 {
		// A process that restarts must find its state again, or it could vote twice in a view or
		// forget a notarized chain: -id always keeps a store, under an absolute path.
		if !flagGiven("data_dir") {
			*dataDir = "data"
		}
		if *dataDir == "" {
			fmt.Fprintln(os.Stderr, "server: -id needs a -data_dir: the replica's state must survive a restart of the process")
			return 2
		}
		abs, err := filepath.Abs(*dataDir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "server: -data_dir: %v\n", err)
			return 2
		}
		*dataDir = abs
	}

	data, err := config.ReadWith(*cfgPath, sets)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 2
	}
	hosts, err := config.ReadIPs(*ipsPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 2
	}
	// Every problem of the file is reported at once: keys, types, the algorithm and values.
	cfg, engine, nodes, err := config.CheckRun(data, hosts, *algorithm)
	if err != nil && config.OnlyFlags(err) {
		fmt.Fprintf(os.Stderr, "server: %v\n", err) // the file is fine: a flag is wrong
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %s: invalid configuration:\n  %s\n", config.Label(*cfgPath, sets), strings.ReplaceAll(err.Error(), "\n", "\n  "))
		if strings.Contains(err.Error(), "is no longer used") {
			fmt.Fprintf(os.Stderr, "server: a config of the original prototype? server -migrate-config %s converts it\n", *cfgPath)
		}
		return 2
	}
	if *id > len(nodes) {
		fmt.Fprintf(os.Stderr, "server: -id %d: %s lists %d nodes\n", *id, *ipsPath, len(nodes))
		return 2
	}
	warnings := cfg.AddressWarnings(hosts)
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "server: warning: %s\n", w)
	}
	if *checkConfig {
		f := config.Faults(len(nodes))
		verdict := "ok"
		if len(warnings) > 0 {
			verdict = fmt.Sprintf("ok, with %d warning(s) on standard error", len(warnings))
		}
		fmt.Printf("%s: %s is valid for %d replicas (%s, f=%d, quorum %d) running %s (engine %s, mempool %s)\n",
			verdict, config.Label(*cfgPath, sets), len(nodes), *ipsPath, f, config.Quorum(len(nodes)), *algorithm, engine, cfg.MemType)
		return 0
	}
	var signer crypto.PubSigner
	var keys crypto.Verifier
	if *id != 0 {
		if signer, keys, err = crypto.LoadKeys(*keysDir, types.NodeID(*id), len(nodes), cfg.Signer); err != nil {
			fmt.Fprintf(os.Stderr, "server: %v\n", err)
			return 2
		}
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
	for _, w := range warnings {
		log.Warn(w)
	}

	stop, err := startProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: -cpuprofile: %v\n", err)
		return 1
	}
	defer stop()
	if *pprofAddr != "" {
		srv, err := servePprof(*pprofAddr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "server: -pprof %s: %v\n", *pprofAddr, err)
			return 1
		}
		defer srv.Close()
		log.WithField("addr", srv.Addr).Info("pprof serving")
		fmt.Fprintf(os.Stderr, "server: profiles at http://%s/debug/pprof/\n", srv.Addr)
	}
	run := runSpec{cfg: cfg, algorithm: *algorithm, engine: engine, nodes: nodes, dataDir: *dataDir, log: log}
	var c *cluster
	if *id != 0 {
		c, err = startNode(run, types.NodeID(*id), signer, keys)
	} else {
		c, err = startSim(run)
	}
	if err != nil {
		log.WithError(err).Error("start failed")
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 1
	}
	if *id != 0 {
		nd := nodes[*id-1]
		fmt.Printf("stratus: node %d of %d, %s (engine %s, mempool %s); peers %s, HTTP %s; store %s; log %s\n",
			*id, len(nodes), *algorithm, engine, cfg.MemType, nd.PeerAddr, nd.HTTPAddr, replica.StorePath(*dataDir, types.NodeID(*id)), logPath)
	} else {
		fmt.Printf("stratus: %d replicas of %s (engine %s, mempool %s) in one process; HTTP %s..%s; log %s\n",
			len(nodes), *algorithm, engine, cfg.MemType, nodes[0].HTTPAddr, nodes[len(nodes)-1].HTTPAddr, logPath)
	}

	sig := <-sigs
	if *memProfile != "" { // the heap of the running cluster, before it stops
		if err := writeHeapProfile(*memProfile); err != nil {
			fmt.Fprintf(os.Stderr, "server: -memprofile: %v\n", err)
		}
	}
	log.WithField("signal", sig.String()).Info("shutting down")
	c.stop(log)
	fmt.Println("stratus: stopped")
	return 0
}

// flagGiven reports whether a flag was set on the command line.
func flagGiven(name string) bool {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
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
	spec := replica.SpecFromConfig(cfg, run.engine, n)
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

// migrateConfig converts the original prototype's config file at path: the new config goes to
// stdout, or to outPath (never overwritten), and each change with its reason to stderr. ips.txt
// gives N for the values that depend on it when it was given or exists.
func migrateConfig(path, ipsPath string, ipsGiven bool, outPath string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: -migrate-config: %v\n", err)
		return 2
	}
	n := 0
	hosts, err := config.ReadIPs(ipsPath)
	switch {
	case err == nil:
		n = len(hosts)
	case ipsGiven || !errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 2
	}
	out, changes, err := config.Migrate(data, n)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: -migrate-config %s: %s\n", path, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	for _, c := range changes {
		fmt.Fprintf(os.Stderr, "%s\n", c)
	}
	if n == 0 {
		fmt.Fprintf(os.Stderr, "values that depend on the replica count were checked for %d replicas (%s not found); check again with server -check-config\n", config.MigrateNodes, ipsPath)
	} else {
		fmt.Fprintf(os.Stderr, "values that depend on the replica count were checked for the %d replicas of %s\n", n, ipsPath)
	}
	if outPath == "" {
		if _, err := os.Stdout.Write(out); err != nil {
			fmt.Fprintf(os.Stderr, "server: %v\n", err)
			return 1
		}
		return 0
	}
	f, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: -out: %v (an existing file is never overwritten)\n", err)
		return 2
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		fmt.Fprintf(os.Stderr, "server: -out: %v\n", err)
		return 1
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "server: -out: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", outPath)
	return 0
}

// writeHeapProfile writes the live heap, after a collection, to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// servePprof serves net/http/pprof's handlers on addr, on a listener of their own: the API's
// port never exposes them.
func servePprof(addr string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	srv := &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}

// startProfile starts a CPU profile into path ("" does nothing) and returns what stops it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
