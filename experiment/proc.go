package experiment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stratusbft/stratus/benchmark"
	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/simnet/virtual"
)

// procRun is the state of one point on the sim or tcp backend: the processes it started, which it
// alone stops (each in its own process group).
type procRun struct {
	dir     string
	bin     string
	started []*proc
}

// proc is a started server process.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when it exited (and was reaped)
}

// runProcs runs a point as real processes: server -sim (every replica in one process) or one
// server -id i per replica over authenticated TCP, as bin/run.sh starts them, and client processes
// as bin/sweep.sh runs them. The network preset becomes the config's shaping (bandwidth, delay,
// derr, loss); the offered rate is split over the clients. Warm-up: clients run for the warm-up
// first and their results are dropped; the measured clients then run for duration - warm-up.
func (s *Spec) runProcs(ctx context.Context, p Point, row *Row, opts Options) error {
	pr := &procRun{dir: filepath.Join(opts.Out, s.Name, "runs", p.Key), bin: opts.Bin}
	defer func() {
		pr.stop()
		// The replicas' stores and the run's keys go; configs, outputs and summaries stay.
		_ = os.RemoveAll(filepath.Join(pr.dir, "data"))
		_ = os.RemoveAll(filepath.Join(pr.dir, "keys"))
	}()
	if err := os.RemoveAll(pr.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(pr.dir, 0o755); err != nil {
		return err
	}
	cfgPath, cfgJSON, addrs, err := s.writeProcConfig(p, pr.dir)
	if err != nil {
		return err
	}
	ips := filepath.Join(pr.dir, "ips.txt")
	if err := os.WriteFile(ips, []byte(strings.Repeat("127.0.0.1\n", p.N)), 0o644); err != nil {
		return err
	}
	keys := filepath.Join(pr.dir, "keys")
	if out, err := exec.CommandContext(ctx, filepath.Join(pr.bin, "server"), "-keygen", "-config", cfgPath, "-ips", ips, "-keys", keys).CombinedOutput(); err != nil {
		return fmt.Errorf("server -keygen: %v: %s", err, out)
	}
	common := []string{"-algorithm", p.Algorithm, "-config", cfgPath, "-ips", ips, "-keys", keys, "-log_dir", pr.dir, "-log_level", "warn"}
	common = append(common, s.TCP.Flags...)
	if p.Backend == "sim" {
		if err := pr.start(ctx, "server.out", append([]string{"-sim"}, common...)...); err != nil {
			return err
		}
	} else {
		for i := 1; i <= p.N; i++ {
			args := append([]string{"-id", strconv.Itoa(i), "-data_dir", filepath.Join(pr.dir, "data")}, common...)
			if err := pr.start(ctx, fmt.Sprintf("server.%d.out", i), args...); err != nil {
				return err
			}
		}
	}
	if err := pr.waitReady(ctx, 60*time.Second); err != nil {
		return err
	}
	clients := s.TCP.Clients
	if clients == 0 {
		clients = 4
	}
	clientArgs := append([]string{"-config", cfgPath, "-ips", ips, "-log_dir", pr.dir, "-log_level", "warn"},
		s.clientFlags(p, clients)...)
	if w := p.Warmup.D(); w >= time.Second {
		if _, err := pr.clients(ctx, "warmup", clients, w, clientArgs); err != nil {
			return fmt.Errorf("warm-up clients: %w", err)
		}
	}
	measured := p.Duration.D() - p.Warmup.D()
	sum, err := pr.clients(ctx, "client", clients, measured, clientArgs)
	if err != nil {
		return err
	}
	replicas := map[string]json.RawMessage{}
	for id, a := range addrs {
		if q, err := query(ctx, a); err == nil {
			replicas[id] = q
		}
	}
	row.Config = map[string]any{"config": json.RawMessage(cfgJSON), "server_flags": common, "client_flags": clientArgs, "clients": clients}
	return s.clientRow(p, row, sum, replicas, measured)
}

// clientFlags are the flags of the point's clients, clients of them sharing its offered rate,
// beyond where they find the config and the replicas.
func (s *Spec) clientFlags(p Point, clients int) []string {
	var out []string
	if p.Rate > 0 { // else closed-loop: each client as fast as its requests in flight commit
		out = append(out, "-rate", strconv.Itoa(int(math.Ceil(p.Rate/float64(clients)))))
	}
	if s.TCP.Concurrency > 0 {
		out = append(out, "-concurrency", strconv.Itoa(s.TCP.Concurrency))
	}
	if s.TCP.Batch > 0 {
		out = append(out, "-batch", strconv.Itoa(s.TCP.Batch))
	}
	if p.Zipf != "" {
		out = append(out, "-zipf")
	}
	return append(out, s.TCP.ClientFlags...)
}

// clientRow fills the row of a point run on real processes from the clients' merged summary
// (measured over measured after the warm-up) and the replicas' /query.
func (s *Spec) clientRow(p Point, row *Row, sum *benchmark.Result, replicas map[string]json.RawMessage, measured time.Duration) error {
	row.Result = map[string]any{"clients": sum, "replicas": replicas}
	row.Measure = fmt.Sprintf("client side, submit → commit notice, over %v after a %v warm-up whose clients' results are dropped", measured, p.Warmup.D())
	row.Metrics = map[string]float64{
		"throughput_tps":  sum.ThroughputTPS,
		"throughput_ktps": sum.ThroughputTPS / 1000,
		"committed_tx":    float64(sum.CommittedTx),
		"latency_mean_ms": sum.Latency.Mean,
		"p50_ms":          sum.Latency.P50,
		"p95_ms":          sum.Latency.P95,
		"p99_ms":          sum.Latency.P99,
		"errors":          float64(sum.ErrorsTotal),
	}
	if p.Rate > 0 {
		row.Metrics["offered_ktps"] = p.Rate / 1000
		row.Metrics["saturated"] = saturated(sum.ThroughputTPS, p.Rate)
	}
	if sum.SentTx > 0 {
		// Requests the replicas refused (backpressure: mempool_full) carried a batch each.
		row.Metrics["refused_share"] = float64(sum.Errors["mempool_full"]*int64(sum.Batch)) / float64(sum.SentTx)
	}
	if lim, err := s.limit(p.Algorithm, p); err == nil {
		row.Metrics["limit_ktps"] = lim / 1000
		row.Metrics["share_of_limit"] = sum.ThroughputTPS / lim
	}
	if sum.CommittedTx == 0 {
		return fmt.Errorf("nothing committed (first errors: %v)", sum.FirstErrors)
	}
	return nil
}

// writeProcConfig writes the point's config file (pointConfig) with free loopback ports for every
// replica.
func (s *Spec) writeProcConfig(p Point, dir string) (string, []byte, map[string]string, error) {
	cfg, err := s.pointConfig(p)
	if err != nil {
		return "", nil, nil, err
	}
	addrs := map[string]string{}
	cfg.Addrs, cfg.HTTPAddrs = map[string]string{}, map[string]string{}
	ports, err := freePorts(2 * p.N)
	if err != nil {
		return "", nil, nil, err
	}
	for i := 1; i <= p.N; i++ {
		id := strconv.Itoa(i)
		cfg.Addrs[id] = fmt.Sprintf("127.0.0.1:%d", ports[2*i-2])
		cfg.HTTPAddrs[id] = fmt.Sprintf("127.0.0.1:%d", ports[2*i-1])
		addrs[id] = cfg.HTTPAddrs[id]
	}
	path, data, err := writeConfig(cfg, dir)
	return path, data, addrs, err
}

// writeConfig writes cfg as dir/config.json.
func writeConfig(cfg config.Config, dir string) (string, []byte, error) {
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(dir, "config.json")
	return path, data, os.WriteFile(path, data, 0o644)
}

// pointConfig is the point's configuration for real processes: the spec's config and sets, the
// point's knobs, and the network as the config's shaping.
func (s *Spec) pointConfig(p Point) (config.Config, error) {
	sets := append([]string{}, p.Sets...)
	v := p.Params
	add := func(k string, val any) { sets = append(sets, fmt.Sprintf("%s=%v", k, val)) }
	if v.MSize > 0 {
		add("msize", v.MSize)
	}
	if v.BSize > 0 {
		add("bsize", v.BSize)
	}
	if v.Q > 0 {
		add("q", v.Q)
	}
	if v.Proofs != "" {
		add("proofs", v.Proofs)
	}
	if v.TimeoutMs > 0 {
		add("timeout", v.TimeoutMs)
	}
	if v.D > 0 {
		add("d", v.D)
		add("load_balance", true)
	}
	if v.TxSize > 0 {
		add("payload_size", v.TxSize)
	}
	if p.Rate > 0 {
		// Microblocks fill up to msize as in the simulator (server -virtual's -batch_timeout).
		// Closed-loop clients keep the config's: with a few requests in flight a microblock
		// that waits to fill would hold them for seconds.
		add("batch_timeout", int(v.BatchTimeout/time.Millisecond))
	}
	if v.Byz > 0 {
		add("byzNo", v.Byz)
		add("strategy", v.Strategy)
	}
	if v.Zipf != "" {
		z, _ := virtual.ParseZipf(v.Zipf)
		add("zipfian_s", z.S)
		add("zipfian_v", z.V)
	}
	up, lat, jit := 100.0, 50*time.Millisecond, time.Millisecond
	if pre, ok := virtual.NetPresets[v.Net]; ok {
		up, lat, jit = pre.Uplink/1e6, pre.Latency, pre.Jitter
	}
	if v.Net != "config" {
		if v.Uplink >= 0 {
			up = v.Uplink
		}
		if v.Latency >= 0 {
			lat = v.Latency
		}
		if v.Jitter >= 0 {
			jit = v.Jitter
		}
		add("bandwidth", int(math.Round(up)))
		add("delay", int(lat/time.Millisecond))
		add("derr", int(jit/time.Millisecond))
		if v.Loss >= 0 {
			add("loss", v.Loss)
		}
	}
	return s.baseConfig(sets)
}

// freePorts finds k free loopback ports (the kernel's choice; they are released at once, so
// another program could take one before the servers bind it, which fails the run loudly).
func freePorts(k int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func (pr *procRun) start(ctx context.Context, logName string, args ...string) error {
	out, err := os.Create(filepath.Join(pr.dir, logName))
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(pr.bin, "server"), args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return err
	}
	out.Close()
	pc := &proc{cmd: cmd, log: out.Name(), done: make(chan struct{})}
	pr.started = append(pr.started, pc)
	go func() { _ = cmd.Wait(); close(pc.done) }()
	return ctx.Err()
}

// waitReady waits for every started server's "stratus:" line.
func (pr *procRun) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ready := 0
		for _, c := range pr.started {
			data, _ := os.ReadFile(c.log)
			if strings.HasPrefix(string(data), "stratus:") || strings.Contains(string(data), "\nstratus:") {
				ready++
				continue
			}
			select {
			case <-c.done:
				return fmt.Errorf("%s exited during start-up: %s", filepath.Base(c.log), tail(data))
			default:
			}
		}
		if ready == len(pr.started) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d servers reported ready within %v (logs in %s)", ready, len(pr.started), limit, pr.dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}

// clients runs k client processes for d and merges their summaries.
func (pr *procRun) clients(ctx context.Context, name string, k int, d time.Duration, args []string) (*benchmark.Result, error) {
	var cmds []*exec.Cmd
	var files []string
	for i := 1; i <= k; i++ {
		f := filepath.Join(pr.dir, fmt.Sprintf("%s.%d.json", name, i))
		files = append(files, f)
		a := append(append([]string{}, args...), "-duration", d.String(), "-out", f)
		cmd := exec.Command(filepath.Join(pr.bin, "client"), a...)
		log, err := os.Create(filepath.Join(pr.dir, fmt.Sprintf("%s.%d.out", name, i)))
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			log.Close()
			return nil, err
		}
		log.Close()
		cmds = append(cmds, cmd)
	}
	done := make(chan struct{})
	go func() {
		for _, c := range cmds {
			_ = c.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range cmds {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		}
		<-done
		return nil, ctx.Err()
	}
	merged := filepath.Join(pr.dir, name+"s.json")
	args2 := append([]string{"-out", merged, "-merge"}, files...)
	if out, err := exec.CommandContext(ctx, filepath.Join(pr.bin, "client"), args2...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("client -merge: %v: %s", err, tail(out))
	}
	data, err := os.ReadFile(merged)
	if err != nil {
		return nil, err
	}
	var r benchmark.Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %v", merged, err)
	}
	return &r, nil
}

// query fetches a replica's /query figures.
func query(ctx context.Context, addr string) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/query?format=json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if !json.Valid(data) {
		return nil, errors.New("/query did not answer JSON")
	}
	return data, nil
}

// stop ends the processes pr started, by process group: SIGTERM, 10 s, then SIGKILL.
func (pr *procRun) stop() {
	for _, c := range pr.started {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range pr.started {
		select {
		case <-c.done:
		case <-time.After(time.Until(deadline)):
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
	}
	pr.started = nil
}
