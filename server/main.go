package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/golang/glog"
	"github.com/sirupsen/logrus"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/replica"
	"github.com/stratusbft/stratus/types"
)

func main() {
	code := run()
	glog.Flush()
	os.Exit(code)
}

// commandLine is what a server was told on its command line.
type commandLine struct {
	sim, keygen, checkConfig              *bool
	id                                    *int
	cfgPath, ipsPath, algorithm, logLevel *string
	dataDir, keysDir                      *string
	cpuProfile, memProfile, pprofAddr     *string
	migrate, outPath                      *string
	sets                                  setFlags
	vf                                    *virtualFlags
}

func registerFlags() *commandLine {
	f := &commandLine{
		sim:         flag.Bool("sim", false, "run every node of the ips file in this process, in real time with real signatures and timers (the name is the original prototype's; the simulator is -virtual)"),
		id:          flag.Int("id", 0, "run only this node (one process per replica)"),
		cfgPath:     flag.String("config", "config.json", "configuration file"),
		ipsPath:     flag.String("ips", "ips.txt", "replica hosts, one per line"),
		algorithm:   flag.String("algorithm", config.AlgHotStuff, "protocol: "+strings.Join(config.PresetNames(), ", ")),
		logLevel:    flag.String("log_level", "info", "debug, info, warn or error"),
		dataDir:     flag.String("data_dir", "", "directory for each replica's store (store.<id>, Pebble): voting state, certified blocks, delivered state, key-value store and microblocks, synced before a vote, ack or commit answer leaves, so a restarted replica continues where it was; empty: kept in memory with -sim, \"data\" with -id"),
		keygen:      flag.Bool("keygen", false, "write a private key file per node of the ips file and the public key list into the -keys directory, then exit"),
		keysDir:     flag.String("keys", "keys", "key directory: node<i>.key (mode 0600) and pubkeys.txt"),
		cpuProfile:  flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof reads it); {id} in it becomes the node's ID"),
		memProfile:  flag.String("memprofile", "", "with -sim or -id: write a heap profile to this file when the server is told to stop, before it stops (go tool pprof reads it); {id} in it becomes the node's ID"),
		pprofAddr:   flag.String("pprof", "", "with -sim or -id: serve net/http/pprof on this address (e.g. 127.0.0.1:6060), apart from the API; off by default"),
		checkConfig: flag.Bool("check-config", false, "check -config (with -set) for the nodes of -ips and -algorithm, print every problem or a one-line summary, and exit: 0 valid, 2 not; binds no port and writes no log"),
		migrate:     flag.String("migrate-config", "", "read a config.json of the original prototype and write the equivalent config of this version to stdout (or to -out), each change and its reason on stderr, then exit"),
		outPath:     flag.String("out", "", "with -migrate-config: write the migrated config to this new file instead of stdout (an existing file is never overwritten); with -virtual: write the JSON result there (replacing the file) instead of stdout"),
	}
	flag.Var(&f.sets, "set", "override a config key, e.g. -set byzNo=2 -set strategy=fork (repeatable; the value is JSON, or else a string)")
	f.vf = registerVirtualFlags()
	return f
}

// The modes of a server: each runs from its own function.
const (
	modeVirtual = "virtual" // runVirtual
	modeMigrate = "migrate" // migrateConfig
	modeKeygen  = "keygen"  // runKeygen
	modeCheck   = "check"   // loadRun, then the summary
	modeSim     = "sim"     // serve: every node in this process
	modeNode    = "node"    // serve: one node over TCP
)

// mode is the mode the flags ask for, or the message that says what is wrong with them.
func (f *commandLine) mode() (string, error) {
	if *f.vf.on {
		if *f.sim || *f.id != 0 || *f.keygen || *f.checkConfig || *f.migrate != "" {
			return "", errors.New("-virtual runs alone: not with -sim, -id, -keygen, -check-config or -migrate-config")
		}
		if flagGiven("pprof") || flagGiven("memprofile") {
			return "", errors.New("-pprof and -memprofile go with -sim or -id; -virtual takes -cpuprofile")
		}
		return modeVirtual, nil
	}
	if given := virtualOnlyFlags(); given != "" {
		return "", fmt.Errorf("-%s goes with -virtual", given)
	}
	if *f.migrate != "" {
		if *f.sim || *f.id != 0 || *f.keygen || *f.checkConfig || len(f.sets) > 0 {
			return "", errors.New("-migrate-config takes only -ips and -out")
		}
		return modeMigrate, nil
	}
	if *f.outPath != "" {
		return "", errors.New("-out goes with -migrate-config")
	}
	modes := 0
	for _, on := range []bool{*f.sim, *f.id != 0, *f.keygen} {
		if on {
			modes++
		}
	}
	switch {
	case *f.checkConfig && *f.keygen:
		return "", errors.New("-check-config checks a run's config: give it alone, or with -sim or -id")
	case modes > 1:
		return "", errors.New("give one of -sim, -id or -keygen")
	case modes == 0 && !*f.checkConfig:
		return "", errNoMode
	case *f.id < 0:
		return "", fmt.Errorf("-id %d: node IDs start at 1", *f.id)
	case *f.keygen:
		return modeKeygen, nil
	case *f.checkConfig:
		return modeCheck, nil
	case *f.id != 0:
		return modeNode, nil
	}
	return modeSim, nil
}

var errNoMode = errors.New("give -sim (every node in this process), -id I (one node over TCP), -keygen, -check-config or -migrate-config")

func run() int {
	f := registerFlags()
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
	level, err := logrus.ParseLevel(*f.logLevel)
	if err != nil || level > logrus.DebugLevel {
		fmt.Fprintf(os.Stderr, "server: -log_level %q: want debug, info, warn or error\n", *f.logLevel)
		return 2
	}
	mode, err := f.mode()
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		if errors.Is(err, errNoMode) {
			flag.Usage()
		}
		return 2
	}
	switch mode {
	case modeVirtual:
		signal.Stop(sigs) // nothing to shut down cleanly: Ctrl-C and SIGTERM end the simulation
		return runVirtual(f.vf, *f.cfgPath, f.sets, *f.algorithm, *f.outPath, *f.cpuProfile)
	case modeMigrate:
		return migrateConfig(*f.migrate, *f.ipsPath, flagGiven("ips"), *f.outPath)
	case modeKeygen:
		return runKeygen(f)
	}
	if mode == modeNode {
		// A process that restarts must find its state again, or it could vote twice in a view or
		// forget a notarized chain: -id always keeps a store, under an absolute path.
		if !flagGiven("data_dir") {
			*f.dataDir = "data"
		}
		if *f.dataDir == "" {
			fmt.Fprintln(os.Stderr, "server: -id needs a -data_dir: the replica's state must survive a restart of the process")
			return 2
		}
		abs, err := filepath.Abs(*f.dataDir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "server: -data_dir: %v\n", err)
			return 2
		}
		*f.dataDir = abs
	}
	setup, code := loadRun(f)
	if setup == nil {
		return code
	}
	if *f.checkConfig {
		n := len(setup.nodes)
		verdict := "ok"
		if len(setup.warnings) > 0 {
			verdict = fmt.Sprintf("ok, with %d warning(s) on standard error", len(setup.warnings))
		}
		fmt.Printf("%s: %s is valid for %d replicas (%s, f=%d, quorum %d) running %s (engine %s, mempool %s)\n",
			verdict, config.Label(*f.cfgPath, f.sets), n, *f.ipsPath, config.Faults(n), config.Quorum(n), *f.algorithm, setup.engine, setup.cfg.MemType)
		return 0
	}
	return serve(f, setup, level, logDir, sigs)
}

// runKeygen writes the key files of -keygen.
func runKeygen(f *commandLine) int {
	hosts, err := config.ReadIPs(*f.ipsPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 2
	}
	// The scheme is the config's signer, when there is a config (given, or config.json here).
	scheme := crypto.SchemeSecp256k1
	if _, statErr := os.Stat(*f.cfgPath); flagGiven("config") || statErr == nil {
		cfg, err := config.LoadWith(*f.cfgPath, f.sets)
		if err != nil {
			fmt.Fprintf(os.Stderr, "server: %v\n", err)
			return 2
		}
		scheme = cfg.Signer
	}
	if err := crypto.GenerateKeys(*f.keysDir, len(hosts), scheme); err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 1
	}
	fmt.Printf("stratus: %s keys of %d nodes in %s (node<i>.key: give each host only its own; %s: every host)\n", scheme, len(hosts), *f.keysDir, crypto.PubKeysFile)
	return 0
}

// runSetup is a checked configuration of a run: what -check-config reports and serve starts.
type runSetup struct {
	cfg      config.Config
	engine   string
	nodes    []config.Node
	warnings []string
}

// loadRun reads and checks the config and ips files for the flags' run, printing every problem
// (and the warnings); nil and the exit code when they are not valid.
func loadRun(f *commandLine) (*runSetup, int) {
	data, err := config.ReadWith(*f.cfgPath, f.sets)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return nil, 2
	}
	hosts, err := config.ReadIPs(*f.ipsPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return nil, 2
	}
	// Every problem of the file is reported at once: keys, types, the algorithm and values.
	cfg, engine, nodes, err := config.CheckRun(data, hosts, *f.algorithm)
	if err != nil && config.OnlyFlags(err) {
		fmt.Fprintf(os.Stderr, "server: %v\n", err) // the file is fine: a flag is wrong
		return nil, 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %s: invalid configuration:\n  %s\n", config.Label(*f.cfgPath, f.sets), strings.ReplaceAll(err.Error(), "\n", "\n  "))
		if strings.Contains(err.Error(), "is no longer used") {
			fmt.Fprintf(os.Stderr, "server: a config of the original prototype? server -migrate-config %s converts it\n", *f.cfgPath)
		}
		return nil, 2
	}
	if *f.id > len(nodes) {
		fmt.Fprintf(os.Stderr, "server: -id %d: %s lists %d nodes\n", *f.id, *f.ipsPath, len(nodes))
		return nil, 2
	}
	warnings := cfg.AddressWarnings(hosts)
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "server: warning: %s\n", w)
	}
	return &runSetup{cfg: cfg, engine: engine, nodes: nodes, warnings: warnings}, 0
}

// serve runs the replicas of -sim or -id until a signal stops them.
func serve(f *commandLine, setup *runSetup, level logrus.Level, logDir string, sigs <-chan os.Signal) int {
	cfg, nodes, id := setup.cfg, setup.nodes, *f.id
	var signer crypto.PubSigner
	var keys crypto.Verifier
	if id != 0 {
		var err error
		if signer, keys, err = crypto.LoadKeys(*f.keysDir, types.NodeID(id), len(nodes), cfg.Signer); err != nil {
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
	for _, w := range setup.warnings {
		log.Warn(w)
	}

	stop, err := startProfile(nodePath(*f.cpuProfile, id))
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: -cpuprofile: %v\n", err)
		return 1
	}
	defer stop()
	if *f.pprofAddr != "" {
		srv, err := servePprof(*f.pprofAddr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "server: -pprof %s: %v\n", *f.pprofAddr, err)
			return 1
		}
		defer srv.Close()
		log.WithField("addr", srv.Addr).Info("pprof serving")
		fmt.Fprintf(os.Stderr, "server: profiles at http://%s/debug/pprof/\n", srv.Addr)
	}
	procs := ""
	if id != 0 {
		cores := runtime.GOMAXPROCS(0)
		if n, here := sharedProcs(nodes, id, cores, os.Getenv("GOMAXPROCS")); n > 0 {
			runtime.GOMAXPROCS(n)
			note := procsNote(n, here, cores)
			procs = "; " + note
			log.Info(note)
		}
	}
	run := runSpec{cfg: cfg, algorithm: *f.algorithm, engine: setup.engine, nodes: nodes, dataDir: *f.dataDir, log: log}
	var c *cluster
	if id != 0 {
		c, err = startNode(run, types.NodeID(id), signer, keys)
	} else {
		c, err = startSim(run)
	}
	if err != nil {
		log.WithError(err).Error("start failed")
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 1
	}
	if id != 0 {
		nd := nodes[id-1]
		fmt.Printf("stratus: node %d of %d, %s (engine %s, mempool %s); peers %s, HTTP %s; store %s; log %s%s\n",
			id, len(nodes), *f.algorithm, setup.engine, cfg.MemType, nd.PeerAddr, nd.HTTPAddr, replica.StorePath(*f.dataDir, types.NodeID(id)), logPath, procs)
	} else {
		fmt.Printf("stratus: %d replicas of %s (engine %s, mempool %s) in one process; HTTP %s..%s; log %s\n",
			len(nodes), *f.algorithm, setup.engine, cfg.MemType, nodes[0].HTTPAddr, nodes[len(nodes)-1].HTTPAddr, logPath)
	}

	sig := <-sigs
	if *f.memProfile != "" { // the heap of the running cluster, before it stops
		if err := writeHeapProfile(nodePath(*f.memProfile, id)); err != nil {
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
