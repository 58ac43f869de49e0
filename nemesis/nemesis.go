package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configure a run.
type Options struct {
	N         int           // replicas (4..7)
	Seed      int64         // the schedule's seed
	Duration  time.Duration // how long the workload and the faults last
	Algorithm string        // server -algorithm
	BinDir    string        // where server and client are
	Dir       string        // work directory (config, keys, stores, logs); created if missing
	Out       io.Writer     // the schedule, the faults as they happen and the verdict
	// Cuts chooses how links are cut besides a replica's own /drop fault: CutsTC runs the cluster
	// in a network namespace of its own and also cuts links in the kernel with tc (root, iproute2);
	// CutsAuto (the default) does so where it can and says why not where it cannot; CutsOff never.
	Cuts string
}

// Link cut modes (Options.Cuts).
const (
	CutsAuto = "auto"
	CutsTC   = "tc"
	CutsOff  = "off"
)

// Fault kinds.
const (
	Kill      = "kill"      // SIGKILL the process; start it again after Dur
	Pause     = "pause"     // SIGSTOP the process; SIGCONT after Dur
	Drop      = "drop"      // the node's messages to Peer are lost for Dur
	Slow      = "slow"      // Param ms added to the node's messages for Dur
	Flaky     = "flaky"     // share Param of the node's messages lost for Dur
	Cut       = "cut"       // every packet between the node and Peer lost in the kernel (tc) for Dur
	PowerCut  = "power-cut" // SIGKILL every process; start them all again after Dur
	faultHeal = "heal"
)

// Fault is one entry of the schedule.
type Fault struct {
	At    time.Duration
	Kind  string
	Node  int
	Peer  int
	Param float64
	Dur   time.Duration
}

func (f Fault) String() string {
	switch f.Kind {
	case Drop:
		return fmt.Sprintf("t=%5.1fs %-9s node %d -> %d for %.1fs", f.At.Seconds(), f.Kind, f.Node, f.Peer, f.Dur.Seconds())
	case Cut:
		return fmt.Sprintf("t=%5.1fs %-9s node %d <-> %d in the kernel for %.1fs", f.At.Seconds(), f.Kind, f.Node, f.Peer, f.Dur.Seconds())
	case Slow:
		return fmt.Sprintf("t=%5.1fs %-9s node %d +%.0f ms for %.1fs", f.At.Seconds(), f.Kind, f.Node, f.Param, f.Dur.Seconds())
	case Flaky:
		return fmt.Sprintf("t=%5.1fs %-9s node %d loses %.0f%% for %.1fs", f.At.Seconds(), f.Kind, f.Node, 100*f.Param, f.Dur.Seconds())
	case PowerCut:
		return fmt.Sprintf("t=%5.1fs %-9s every node, back after %.1fs", f.At.Seconds(), f.Kind, f.Dur.Seconds())
	}
	return fmt.Sprintf("t=%5.1fs %-9s node %d for %.1fs", f.At.Seconds(), f.Kind, f.Node, f.Dur.Seconds())
}

// Schedule draws the faults of a run from its seed: one every 2–5 s, never more than f replicas
// killed or paused at a time, the whole cluster's power cut once, half-way, and nothing in the last
// 10 s (the cluster heals before the workload ends). With tcCuts, half the link cuts are made in
// the kernel (Cut) rather than by the node (Drop).
func Schedule(seed int64, n int, d time.Duration, tcCuts bool) []Fault {
	rng := rand.New(rand.NewSource(seed))
	f := (n - 1) / 3
	end := d - 10*time.Second
	cut := d / 2
	var out []Fault
	var impaired []Fault // kills and pauses, to keep at most f at a time
	cutDone := false
	for t := 3 * time.Second; t < end; t += time.Duration(2000+rng.Intn(3000)) * time.Millisecond {
		if !cutDone && t >= cut {
			cutDone = true
			pc := Fault{At: t, Kind: PowerCut, Dur: time.Duration(500+rng.Intn(1500)) * time.Millisecond}
			out = append(out, pc)
			impaired = append(impaired, Fault{At: t, Kind: PowerCut, Dur: pc.Dur + 3*time.Second})
			continue
		}
		busy := map[int]bool{}
		cluster := false
		for _, x := range impaired {
			if x.At+x.Dur+time.Second > t { // a second to come back
				busy[x.Node] = true
				cluster = cluster || x.Kind == PowerCut
			}
		}
		if cluster {
			continue
		}
		node := 1 + rng.Intn(n)
		dur := time.Duration(1000+rng.Intn(3000)) * time.Millisecond
		switch k := rng.Intn(5); {
		case k <= 1 && len(busy) < f && !busy[node]:
			kind := Kill
			if k == 1 {
				kind = Pause
			}
			x := Fault{At: t, Kind: kind, Node: node, Dur: dur}
			out = append(out, x)
			impaired = append(impaired, x)
		case k == 2:
			peer := 1 + rng.Intn(n-1)
			if peer >= node {
				peer++
			}
			kind := Drop
			if tcCuts && rng.Intn(2) == 0 {
				kind = Cut
			}
			out = append(out, Fault{At: t, Kind: kind, Node: node, Peer: peer, Dur: dur})
		case k == 3:
			out = append(out, Fault{At: t, Kind: Slow, Node: node, Param: float64(50 + rng.Intn(250)), Dur: dur})
		default:
			out = append(out, Fault{At: t, Kind: Flaky, Node: node, Param: 0.1 + 0.3*rng.Float64(), Dur: dur})
		}
	}
	return out
}

// Recovery is how long a restart took: until the process answered, and until it (for a power
// cut: every replica) had caught up with the height the cluster had reached before.
type Recovery struct {
	Kind     string
	Node     int // 0: every node (power cut)
	Answered time.Duration
	CaughtUp time.Duration // 0 when it did not within a minute
}

// Result is what a run found.
type Result struct {
	Recoveries   []Recovery
	Faults       int
	Ops          int64 // client operations answered
	Pending      int   // client writes of unknown outcome
	Sentinels    int   // acknowledged sentinel writes checked on every replica
	Height       uint64
	Incarnations int // server processes started
	KernelCuts   int // links cut in the kernel (tc)
	Problems     []string
}

// OK reports whether every check passed.
func (r *Result) OK() bool { return len(r.Problems) == 0 }

type node struct {
	id      int
	http    string
	cmd     *exec.Cmd
	done    chan struct{}
	paused  bool
	started []int // PIDs of every incarnation
}

type cluster struct {
	o     Options
	nodes []*node
	log   io.Writer
	start time.Time
	mu    sync.Mutex
	// clientPID is the client's process (group), for an interrupt.
	clientPID atomic.Int64
	// recoveries are measured in the background while the run goes on.
	recMu      sync.Mutex
	recoveries []Recovery
	recWG      sync.WaitGroup
	target     map[int]uint64 // the height to catch up with, per node killed (0: the whole cluster)
	// ns is the run's network namespace (nil: the host's, without kernel link cuts); tr dials
	// into it; cuts are the tc filters of the cuts in force.
	ns   *netns
	tr   http.RoundTripper
	cuts map[Fault][]int
	// problems are failed checks found during the run (under mu).
	problems   []string
	kernelCuts int
}

// hc is an HTTP client that reaches the replicas.
func (c *cluster) hc(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: c.tr}
}

// command is a command of the run, inside its namespace if it has one.
func (c *cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.o.BinDir, name), args...)
	cmd.Dir = c.o.Dir
	if c.ns != nil {
		c.ns.wrap(cmd)
	}
	return cmd
}

// problem records a failed check found while the run goes on.
func (c *cluster) problem(format string, args ...any) {
	c.printf("PROBLEM: "+format, args...)
	c.mu.Lock()
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
	c.mu.Unlock()
}

func (c *cluster) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.log, "nemesis: [%5.1fs] "+format+"\n", append([]any{time.Since(c.start).Seconds()}, args...)...)
}

// Run runs one nemesis test and returns what it found; an error means the run itself could not
// be carried out (no binaries, no ports).
func Run(o Options) (*Result, error) {
	if o.N < 4 || o.N > 7 {
		return nil, fmt.Errorf("nemesis: N = %d, want 4..7", o.N)
	}
	if o.Duration < 30*time.Second {
		return nil, fmt.Errorf("nemesis: duration %v, want at least 30s", o.Duration)
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	for _, b := range []string{"server", "client"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("nemesis: %s not found in %s (make build)", b, o.BinDir)
		}
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	c := &cluster{o: o, log: o.Out, target: map[int]uint64{}, tr: http.DefaultTransport, cuts: map[Fault][]int{}}
	cutsHow := "links cut by the replicas (/drop) only"
	switch o.Cuts {
	case "", CutsAuto, CutsTC:
		ns, err := openNetns(fmt.Sprintf("stratus-nemesis-%d-%d", os.Getpid(), o.Seed))
		if err != nil {
			if o.Cuts == CutsTC {
				return nil, fmt.Errorf("nemesis: kernel link cuts (-cuts tc): %w", err)
			}
			cutsHow += fmt.Sprintf(" (no kernel link cuts: %v)", err)
			break
		}
		defer ns.close()
		c.ns, c.tr = ns, &http.Transport{DialContext: ns.dial}
		cutsHow = fmt.Sprintf("links cut by the replicas (/drop) and in the kernel (tc in network namespace %s, replica i at 127.0.1.i)", ns.name)
	case CutsOff:
	default:
		return nil, fmt.Errorf("nemesis: cuts %q, want %s, %s or %s", o.Cuts, CutsAuto, CutsTC, CutsOff)
	}
	urls, err := writeConfig(o.Dir, o.N, c.ns != nil)
	if err != nil {
		return nil, err
	}
	for i, u := range urls {
		c.nodes = append(c.nodes, &node{id: i + 1, http: u})
	}
	kg := exec.Command(filepath.Join(o.BinDir, "server"), "-keygen", "-config", "config.json", "-ips", "ips.txt", "-keys", "keys")
	kg.Dir = o.Dir
	if out, err := kg.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nemesis: key generation: %v: %s", err, out)
	}
	sched := Schedule(o.Seed, o.N, o.Duration, c.ns != nil)
	fmt.Fprintf(o.Out, "nemesis: seed %d, %d replicas of %s, %v, work directory %s; %s; schedule:\n", o.Seed, o.N, o.Algorithm, o.Duration, o.Dir, cutsHow)
	for _, f := range sched {
		fmt.Fprintf(o.Out, "  %v\n", f)
	}
	res := &Result{Faults: len(sched)}
	c.start = time.Now()
	defer c.killAll()
	// Interrupted, it stops what it started before it goes.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			if p := c.clientPID.Load(); p > 0 {
				_ = syscall.Kill(-int(p), syscall.SIGKILL)
			}
			c.killAll()
			if c.ns != nil {
				c.ns.close()
			}
			os.Exit(130)
		}
	}()
	for _, n := range c.nodes {
		if err := c.startNode(n); err != nil {
			return nil, err
		}
	}
	if err := c.waitUp(c.nodes, 30*time.Second); err != nil {
		return nil, err
	}

	// The client's key-value workload, checked with porcupine at the end.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clientOut := filepath.Join(o.Dir, "kv.json")
	targets := make([]string, o.N)
	for i := range targets {
		targets[i] = fmt.Sprint(i + 1)
	}
	cl := c.command(ctx, "client", "-kv", "-check", "-keys", "40", "-writes", "0.5",
		"-concurrency", "8", "-duration", o.Duration.String(), "-timeout", "10s", "-targets", strings.Join(targets, ","),
		"-config", "config.json", "-ips", "ips.txt", "-out", clientOut, "-log_dir", "logs", "-check_timeout", "5m")
	cl.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var clientLog strings.Builder
	cl.Stdout, cl.Stderr = &clientLog, &clientLog
	if err := cl.Start(); err != nil {
		return nil, fmt.Errorf("nemesis: client: %w", err)
	}
	clientDone := make(chan error, 1)
	c.clientPID.Store(int64(cl.Process.Pid))
	go func() { clientDone <- cl.Wait() }()
	defer func() { _ = syscall.Kill(-cl.Process.Pid, syscall.SIGKILL) }()

	// Sentinels: writes whose acknowledgement the end checks on every replica.
	sentinels := c.writeSentinels(ctx, o.Duration)

	c.runSchedule(sched)
	c.heal()
	c.recWG.Wait()
	res.Recoveries, res.KernelCuts = c.recoveries, c.kernelCuts
	c.mu.Lock()
	res.Problems = append(res.Problems, c.problems...)
	c.mu.Unlock()
	if err := c.waitUp(c.nodes, 60*time.Second); err != nil {
		res.Problems = append(res.Problems, err.Error())
	}

	// The client's verdict.
	select {
	case err := <-clientDone:
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("client: %v: %s", err, lastLines(clientLog.String(), 8)))
		}
	case <-time.After(o.Duration + 6*time.Minute):
		res.Problems = append(res.Problems, "the client did not finish")
	}
	var sum struct {
		KV struct {
			Ops   int64 `json:"ops"`
			Check *struct {
				Result       string `json:"result"`
				Linearizable bool   `json:"linearizable"`
				Pending      int    `json:"pending_writes"`
				BadKey       string `json:"bad_key"`
			} `json:"check"`
		} `json:"kv"`
	}
	if b, err := os.ReadFile(clientOut); err != nil {
		res.Problems = append(res.Problems, fmt.Sprintf("client summary: %v", err))
	} else if err := json.Unmarshal(b, &sum); err != nil || sum.KV.Check == nil {
		res.Problems = append(res.Problems, fmt.Sprintf("client summary without a check: %v", err))
	} else {
		res.Ops, res.Pending = sum.KV.Ops, sum.KV.Check.Pending
		if !sum.KV.Check.Linearizable {
			res.Problems = append(res.Problems, fmt.Sprintf("the history is not linearizable (%s, key %q)", sum.KV.Check.Result, sum.KV.Check.BadKey))
		}
		if sum.KV.Ops == 0 {
			res.Problems = append(res.Problems, "the client completed no operation")
		}
	}

	// Every acknowledged sentinel, on every replica.
	acked := sentinels()
	res.Sentinels = len(acked)
	if len(acked) == 0 {
		res.Problems = append(res.Problems, "no sentinel write was acknowledged")
	}
	for _, n := range c.nodes {
		bad := 0
		for _, s := range acked {
			got, code, err := c.read(n.http, s.key)
			if err == nil && code == http.StatusOK && got == s.value {
				continue
			}
			if bad++; bad <= 3 {
				res.Problems = append(res.Problems, fmt.Sprintf("acknowledged write %s=%q: node %d answers %d %q %v", s.key, s.value, n.id, code, got, err))
			}
			if bad == 3 {
				break // three are enough to tell: no need to wait for every key
			}
		}
	}

	// Same height, same digest everywhere.
	h, err := c.converge(60 * time.Second)
	res.Height = h
	if err != nil {
		res.Problems = append(res.Problems, err.Error())
	}

	// Stop, and nothing is left.
	c.stopAll()
	for _, n := range c.nodes {
		res.Incarnations += len(n.started)
		for _, pid := range n.started {
			if alive(pid) {
				res.Problems = append(res.Problems, fmt.Sprintf("node %d: process %d is still running", n.id, pid))
			}
		}
	}
	verdict := "PASS"
	if !res.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(o.Out, "nemesis: %s: seed %d, %d faults (%d kernel link cuts), %d client operations (%d writes of unknown outcome), %d acknowledged sentinels on %d replicas, height %d, %d processes started\n",
		verdict, o.Seed, res.Faults, res.KernelCuts, res.Ops, res.Pending, res.Sentinels, o.N, res.Height, res.Incarnations)
	fmt.Fprintf(o.Out, "nemesis: recovery %s\n", summarize(res.Recoveries))
	for _, p := range res.Problems {
		fmt.Fprintf(o.Out, "nemesis:   %s\n", p)
	}
	if !res.OK() {
		cuts := CutsOff
		if c.ns != nil {
			cuts = CutsTC
		}
		fmt.Fprintf(o.Out, "nemesis: replay with -seed %d -n %d -duration %v -algorithm %s -cuts %s; logs in %s\n", o.Seed, o.N, o.Duration, o.Algorithm, cuts, o.Dir)
	}
	return res, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// writeConfig writes config.json and ips.txt for n local replicas on free ports (inNetns: each
// on its own address of the run's namespace, where every port is free), with the fault routes on,
// and returns the HTTP base URLs.
func writeConfig(dir string, n int, inNetns bool) ([]string, error) {
	if inNetns {
		httpAddrs, peerAddrs := map[string]string{}, map[string]string{}
		var urls []string
		var ips strings.Builder
		for i := 1; i <= n; i++ {
			httpAddrs[fmt.Sprint(i)], peerAddrs[fmt.Sprint(i)] = replicaIP(i)+":8000", replicaIP(i)+":7000"
			urls = append(urls, "http://"+replicaIP(i)+":8000")
			ips.WriteString(replicaIP(i) + "\n")
		}
		return urls, writeFiles(dir, httpAddrs, peerAddrs, ips.String())
	}
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	httpAddrs, peerAddrs := map[string]string{}, map[string]string{}
	var urls []string
	for i := 0; i < 2*n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("nemesis: no free port: %w", err)
		}
		lns = append(lns, l)
	}
	for i := 0; i < n; i++ {
		h, p := lns[i].Addr().String(), lns[n+i].Addr().String()
		httpAddrs[fmt.Sprint(i+1)], peerAddrs[fmt.Sprint(i+1)] = h, p
		urls = append(urls, "http://"+h)
	}
	return urls, writeFiles(dir, httpAddrs, peerAddrs, strings.Repeat("127.0.0.1\n", n))
}

func writeFiles(dir string, httpAddrs, peerAddrs map[string]string, ips string) error {
	cfg := map[string]any{
		"http_address": httpAddrs, "address": peerAddrs, "faults_http": true,
		"timeout": 500, "propose_timeout": 20, "bsize": 500,
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "ips.txt"), []byte(ips), 0o644)
}

func (c *cluster) startNode(n *node) error {
	out, err := os.OpenFile(filepath.Join(c.o.Dir, "logs", fmt.Sprintf("server.%d.out", n.id)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := c.command(context.Background(), "server", "-id", fmt.Sprint(n.id), "-algorithm", c.o.Algorithm,
		"-config", "config.json", "-ips", "ips.txt", "-keys", "keys", "-data_dir", "data", "-log_dir", "logs", "-log_level", "info")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("nemesis: start node %d: %w", n.id, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(done) }()
	n.cmd, n.done, n.paused = cmd, done, false
	n.started = append(n.started, cmd.Process.Pid)
	return nil
}

func (n *node) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

func (n *node) signal(sig syscall.Signal) {
	if n.cmd != nil {
		_ = syscall.Kill(-n.cmd.Process.Pid, sig)
	}
}

func (n *node) kill() {
	if !n.running() {
		return
	}
	n.signal(syscall.SIGCONT)
	n.signal(syscall.SIGKILL)
	<-n.done
}

func (c *cluster) killAll() {
	for _, n := range c.nodes {
		n.kill()
	}
}

// stopAll stops every process as an operator would (SIGTERM), SIGKILL after 10 s.
func (c *cluster) stopAll() {
	for _, n := range c.nodes {
		if n.running() {
			n.signal(syscall.SIGCONT)
			n.signal(syscall.SIGTERM)
		}
	}
	for _, n := range c.nodes {
		if n.cmd == nil {
			continue
		}
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			n.kill()
		}
	}
}

func (c *cluster) waitUp(nodes []*node, within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, n := range nodes {
		for {
			if _, ok := c.query(n.http); ok {
				break
			}
			if !n.running() {
				return fmt.Errorf("node %d exited (see logs/server.%d.out)", n.id, n.id)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %d did not answer within %v", n.id, within)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// runSchedule carries out the faults at their times, and ends each when its time is up.
func (c *cluster) runSchedule(sched []Fault) {
	type action struct {
		at time.Duration
		do func()
	}
	var acts []action
	for _, f := range sched {
		f := f
		acts = append(acts, action{f.At, func() { c.begin(f) }})
		switch f.Kind {
		case Kill, Pause, PowerCut, Cut:
			acts = append(acts, action{f.At + f.Dur, func() { c.end(f) }})
		}
	}
	// Stable order by time (insertion order for ties).
	for i := 1; i < len(acts); i++ {
		for j := i; j > 0 && acts[j].at < acts[j-1].at; j-- {
			acts[j], acts[j-1] = acts[j-1], acts[j]
		}
	}
	for _, a := range acts {
		if d := a.at - time.Since(c.start); d > 0 {
			time.Sleep(d)
		}
		a.do()
	}
	if d := c.o.Duration - 8*time.Second - time.Since(c.start); d > 0 {
		time.Sleep(d)
	}
}

func (c *cluster) begin(f Fault) {
	c.printf("%s", f)
	switch f.Kind {
	case Kill:
		c.target[f.Node] = c.maxHeight()
		c.nodes[f.Node-1].kill()
	case Pause:
		n := c.nodes[f.Node-1]
		if n.running() {
			n.signal(syscall.SIGSTOP)
			n.paused = true
		}
	case PowerCut:
		c.target[0] = c.maxHeight()
		c.killAll()
	case Drop:
		c.fault(f.Node, fmt.Sprintf("/drop?to=%d&t=%.1f", f.Peer, f.Dur.Seconds()))
	case Slow:
		c.fault(f.Node, fmt.Sprintf("/slow?ms=%.0f&t=%.1f", f.Param, f.Dur.Seconds()))
	case Flaky:
		c.fault(f.Node, fmt.Sprintf("/flaky?p=%.2f&t=%.1f", f.Param, f.Dur.Seconds()))
	case Cut:
		prios, err := c.ns.cut(f.Node, f.Peer)
		if err != nil {
			c.printf("  (link not cut: %v)", err)
			return
		}
		c.cuts[f] = prios
		c.kernelCuts++
		if c.ns.reachable(f.Node, f.Peer) || c.ns.reachable(f.Peer, f.Node) {
			c.problem("the kernel cut between node %d and node %d did not hold: a connection went through", f.Node, f.Peer)
		}
	}
}

func (c *cluster) end(f Fault) {
	switch f.Kind {
	case Cut:
		if prios, ok := c.cuts[f]; ok {
			c.printf("reconnect node %d <-> %d", f.Node, f.Peer)
			if err := c.ns.uncut(prios); err != nil {
				c.printf("  (%v)", err)
			}
			delete(c.cuts, f)
			if !c.ns.reachable(f.Node, f.Peer) && c.nodes[f.Peer-1].running() && !c.nodes[f.Peer-1].paused {
				c.problem("node %d cannot reach node %d after the cut ended", f.Node, f.Peer)
			}
		}
	case Kill:
		c.printf("restart   node %d", f.Node)
		if err := c.startNode(c.nodes[f.Node-1]); err != nil {
			c.printf("%v", err)
		}
		c.measure(Kill, []*node{c.nodes[f.Node-1]}, c.target[f.Node], f.Node)
	case Pause:
		c.printf("resume    node %d", f.Node)
		n := c.nodes[f.Node-1]
		n.signal(syscall.SIGCONT)
		n.paused = false
	case PowerCut:
		c.printf("power back: every node restarts from its store")
		for _, n := range c.nodes {
			if err := c.startNode(n); err != nil {
				c.printf("%v", err)
			}
		}
		c.measure(PowerCut, c.nodes, c.target[0], 0)
	}
}

// fault asks a node for a fault; a node that is down or paused just misses it.
func (c *cluster) fault(id int, route string) {
	resp, err := c.hc(2*time.Second).Post(c.nodes[id-1].http+route, "text/plain", nil)
	if err != nil {
		c.printf("  (node %d did not take the fault: %v)", id, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.printf("  (node %d refused the fault: %s)", id, resp.Status)
	}
}

// heal ends every fault: the paused continue, the killed start, links, delays and losses clear.
func (c *cluster) heal() {
	c.printf("heal: every fault ends")
	for f, prios := range c.cuts {
		if err := c.ns.uncut(prios); err != nil {
			c.printf("  (%v)", err)
		}
		delete(c.cuts, f)
	}
	for _, n := range c.nodes {
		switch {
		case n.paused:
			n.signal(syscall.SIGCONT)
			n.paused = false
		case !n.running():
			if err := c.startNode(n); err != nil {
				c.printf("%v", err)
			}
		}
	}
	_ = c.waitUp(c.nodes, 30*time.Second)
	for _, n := range c.nodes {
		c.fault(n.id, "/slow?ms=0&t=0")
		c.fault(n.id, "/flaky?p=0&t=0")
		for _, p := range c.nodes {
			if p.id != n.id {
				c.fault(n.id, fmt.Sprintf("/drop?to=%d&t=0", p.id))
			}
		}
	}
}

// maxHeight is the highest height a replica reports now.
func (c *cluster) maxHeight() uint64 {
	var h uint64
	for _, n := range c.nodes {
		if st, ok := c.query(n.http); ok {
			h = max(h, st.Height)
		}
	}
	return h
}

// measure follows restarted nodes in the background: how long until each answers, and until all
// reach target (the height the cluster had before the fault).
func (c *cluster) measure(kind string, nodes []*node, target uint64, id int) {
	start := time.Now()
	c.recWG.Add(1)
	go func() {
		defer c.recWG.Done()
		r := Recovery{Kind: kind, Node: id}
		answered := map[int]bool{}
		for time.Since(start) < time.Minute {
			caught := true
			for _, n := range nodes {
				st, ok := c.query(n.http)
				if ok && !answered[n.id] {
					answered[n.id] = true
				}
				caught = caught && ok && st.Height >= target
			}
			if r.Answered == 0 && len(answered) == len(nodes) {
				r.Answered = time.Since(start)
			}
			if caught {
				r.CaughtUp = time.Since(start)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.recMu.Lock()
		c.recoveries = append(c.recoveries, r)
		c.recMu.Unlock()
		who := fmt.Sprintf("node %d", id)
		if id == 0 {
			who = "every node"
		}
		c.printf("recovered %s after %s: answering in %.2fs, at height %d in %.2fs", who, kind, r.Answered.Seconds(), target, r.CaughtUp.Seconds())
	}()
}

type sentinel struct{ key, value string }

// writeSentinels writes a fresh key every 250 ms through a random replica with ?wait=commit until
// the workload's end; the returned function lists the acknowledged ones.
func (c *cluster) writeSentinels(ctx context.Context, d time.Duration) func() []sentinel {
	var mu sync.Mutex
	var acked []sentinel
	done := make(chan struct{})
	go func() {
		defer close(done)
		rng := rand.New(rand.NewSource(c.o.Seed))
		hc := c.hc(12 * time.Second)
		for i := 0; time.Since(c.start) < d-8*time.Second; i++ {
			n := c.nodes[rng.Intn(len(c.nodes))]
			k, v := fmt.Sprintf("nemesis-%d", i), fmt.Sprintf("seed %d write %d", c.o.Seed, i)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, n.http+"/"+k+"?wait=commit&timeout=10", strings.NewReader(v))
			if resp, err := hc.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					acked = append(acked, sentinel{k, v})
					mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	return func() []sentinel {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return append([]sentinel(nil), acked...)
	}
}

func (c *cluster) read(base, key string) (string, int, error) {
	resp, err := c.hc(8 * time.Second).Get(base + "/" + key + "?consistency=linearizable&timeout=5")
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

type state struct {
	Height uint64 `json:"committed_height"`
	Digest string `json:"chain_digest"`
}

func (c *cluster) query(base string) (state, bool) {
	var st state
	resp, err := c.hc(2 * time.Second).Get(base + "/query?format=json")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return st, false
	}
	return st, true
}

// converge waits until every replica reports the same height and the same chain digest; replicas
// at equal heights must never report different digests.
func (c *cluster) converge(within time.Duration) (uint64, error) {
	deadline := time.Now().Add(within)
	var last []state
	for time.Now().Before(deadline) {
		last = last[:0]
		byHeight := map[uint64]string{}
		for _, n := range c.nodes {
			st, ok := c.query(n.http)
			if !ok {
				break
			}
			if d, seen := byHeight[st.Height]; seen && d != st.Digest {
				return st.Height, fmt.Errorf("two replicas at height %d report chain digests %s and %s", st.Height, d, st.Digest)
			}
			byHeight[st.Height] = st.Digest
			last = append(last, st)
		}
		if len(last) == len(c.nodes) && len(byHeight) == 1 {
			return last[0].Height, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, fmt.Errorf("the replicas did not reach one height within %v: %v", within, last)
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return !errors.Is(err, syscall.ESRCH)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) < 3 || f[2] != "Z"
}

// summarize gives the median and the maximum catch-up time of each kind of restart.
func summarize(rs []Recovery) string {
	var parts []string
	for _, kind := range []string{Kill, PowerCut} {
		var ds []time.Duration
		missed := 0
		for _, r := range rs {
			if r.Kind != kind {
				continue
			}
			if r.CaughtUp == 0 {
				missed++
				continue
			}
			ds = append(ds, r.CaughtUp)
		}
		if len(ds) == 0 && missed == 0 {
			continue
		}
		slices.Sort(ds)
		p := fmt.Sprintf("after %s: %d caught up", kind, len(ds))
		if len(ds) > 0 {
			p += fmt.Sprintf(" (median %.2fs, max %.2fs)", ds[len(ds)/2].Seconds(), ds[len(ds)-1].Seconds())
		}
		if missed > 0 {
			p += fmt.Sprintf(", %d not within a minute", missed)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}
