package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
)

// MaxBandwidth bounds bandwidth, in Mbit/s (100 Gbit/s).
const MaxBandwidth = 100_000

// Faults returns f, the number of Byzantine replicas n replicas tolerate: the largest f with 3f+1 <= n.
func Faults(n int) int {
	if n < 1 {
		return 0
	}
	return (n - 1) / 3
}

// Quorum returns the number of distinct signers a certificate needs among n replicas: n-f, which is
// 2f+1 when n = 3f+1 and keeps any two quorums intersecting in an honest replica for every n.
func Quorum(n int) int {
	return n - Faults(n)
}

// ProofThreshold returns q, the acks that make a PAB proof: the configured value or f+1.
func (c Config) ProofThreshold(n int) int {
	if c.Q == 0 {
		return Faults(n) + 1
	}
	return c.Q
}

// MasterID returns the static leader, or 0 when leaders rotate.
func (c Config) MasterID() int {
	id, err := strconv.Atoi(c.Master)
	if err != nil {
		return -1
	}
	return id
}

// Validate checks every key against the n replicas of the run and returns all problems at once,
// each naming the key and the allowed range.
func (c Config) Validate(n int) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	intIn := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(key, "%d is outside [%d, %d]", v, lo, hi)
		}
	}
	f := Faults(n)

	if n < 1 || n > MaxNodes {
		errs = append(errs, fmt.Errorf("ips: %d replicas; need between 1 and %d", n, MaxNodes))
	}
	if m := c.MasterID(); m < 0 || m > n {
		bad("master", "%q must be \"0\" (rotating leader) or a node ID in [1, %d]", c.Master, n)
	}
	intIn("timeout", c.Timeout, 10, 600_000)
	intIn("propose_timeout", c.ProposeTimeout, 1, 600_000)
	if c.ProposeTimeout >= c.Timeout {
		bad("propose_timeout", "%d ms must be below timeout (%d ms), or idle views would time out", c.ProposeTimeout, c.Timeout)
	}
	intIn("bsize", c.BSize, 1, 1_000_000)

	switch ResolveMemType(c.MemType) {
	case MemNative, MemSMP, MemStratus:
	default:
		bad("mem_type", "%q is not one of native, smp, stratus (aliases naive, ack)", c.MemType)
	}
	intIn("max_tx_size", c.MaxTxSize, 1, 1<<20)
	intIn("memsize", c.MemSize, c.MaxTxSize, 1<<34)
	intIn("msize", c.MSize, 1, 64<<20)
	intIn("batch_timeout", c.BatchTimeout, 1, 600_000)
	intIn("payload_size", c.PayloadSize, 16, c.MaxTxSize)
	if c.Q != 0 {
		intIn("q", c.Q, f+1, Quorum(n))
	}
	intIn("fetch_timeout", c.FetchTimeout, 1, 600_000)
	intIn("push_timeout", c.PushTimeout, 1, 600_000)
	intIn("max_backlog", c.MaxBacklog, 0, 600_000)
	if c.Proofs != ProofsReference && c.Proofs != ProofsInline {
		bad("proofs", "%q is not a way to carry proofs: want %q (proposals name microblocks; proofs travel in the creators' broadcasts) or %q (every reference carries its proof, the paper's design)", c.Proofs, ProofsReference, ProofsInline)
	}

	native := ResolveMemType(c.MemType) == MemNative
	if c.Gossip && native {
		bad("gossip", "gossip disseminates microblocks: set mem_type to smp or stratus (or use -algorithm s-hs-g)")
	}
	if c.LoadBalance && native {
		bad("load_balance", "load balancing forwards microblocks: set mem_type to smp or stratus")
	}
	if c.Gossip {
		intIn("fanout", c.Fanout, 1, max(1, n-1))
		intIn("r", c.R, 1, 64)
	}
	intIn("fillInterval", c.FillInterval, 0, 600_000)
	intIn("capacity", c.Capacity, 0, 1_000_000)
	if c.FillInterval > 0 && c.Capacity < 1 {
		bad("capacity", "must be at least 1 when fillInterval is set")
	}
	if c.LoadBalance {
		intIn("d", c.D, 1, max(1, n-1))
		intIn("estimate_window", c.EstimateWindow, 1, 100_000)
		if !(c.Percentile > 0 && c.Percentile <= 100) {
			bad("percentile", "%v is outside (0, 100]", c.Percentile)
		}
		intIn("busy_threshold", c.BusyThreshold, 1, 600_000)
		intIn("lb_timeout", c.LBTimeout, 1, 600_000)
		intIn("forward_timeout", c.ForwardTimeout, 1, 600_000)
	}

	intIn("byzNo", c.ByzNo, 0, f)
	if err := CheckStrategy(c.Strategy); err != nil {
		bad("strategy", "%v", err)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Byzantine)) {
		id, err := strconv.Atoi(k)
		if err != nil || id < 1 || id > n {
			bad("byzantine", "key %q is not a node ID in [1, %d]", k, n)
		}
		if err := CheckStrategy(c.Byzantine[k]); err != nil {
			bad("byzantine", "node %s: %v", k, err)
		}
	}
	byz := c.ByzantineNodes(n)
	if len(byz) > f && c.ByzNo <= f {
		bad("byzantine", "%d faulty replicas (byzNo and the byzantine map together), but %d replicas tolerate at most %d", len(byz), n, f)
	}
	uses := func(name string) bool {
		for _, st := range byz {
			for _, part := range strings.Split(st, "+") {
				if part == name {
					return true
				}
			}
		}
		return false
	}
	intIn("slow", c.Slow, 0, 600_000)
	if uses(StrategySlow) && c.Slow < 1 {
		bad("slow", "a replica runs the slow strategy: set slow to the ms it adds to every message (at least 1)")
	}
	intIn("crash", c.Crash, 0, 7*24*3600*1000)
	intIn("restart", c.Restart, 0, 7*24*3600*1000)
	if uses(StrategyCrash) && c.Crash < 1 {
		bad("crash", "a replica runs the crash strategy: set crash to the ms after the start at which it stops (at least 1)")
	}

	intIn("delay", c.Delay, 0, 60_000)
	intIn("derr", c.DErr, 0, c.Delay)
	intIn("bandwidth", c.Bandwidth, 0, MaxBandwidth)
	if !(c.Loss >= 0 && c.Loss < 1) {
		bad("loss", "%v is outside [0, 1)", c.Loss)
	}
	intIn("chan_buffer_size", c.ChanBufferSize, 1, 1<<20)

	if !(c.ZipfianS > 1) {
		bad("zipfian_s", "%v must be greater than 1", c.ZipfianS)
	}
	if !(c.ZipfianV >= 1) {
		bad("zipfian_v", "%v must be at least 1", c.ZipfianV)
	}
	if c.Signer != "secp256k1" && c.Signer != "ECDSA_P256" && c.Signer != "bls12-381" {
		bad("signer", "%q is not supported; use \"secp256k1\", \"ECDSA_P256\" or \"bls12-381\" (aggregate certificates)", c.Signer)
	}
	if err := c.Benchmark.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.checkAddrs(n); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// CheckStrategy checks a strategy name, or names joined by "+" (crash stands alone).
func CheckStrategy(name string) error {
	parts := strings.Split(name, "+")
	for _, p := range parts {
		known := false
		for _, s := range Strategies {
			known = known || p == s
		}
		if !known {
			return fmt.Errorf("%q is not a strategy (known: %s; combine with +)", p, strings.Join(Strategies, ", "))
		}
		if p == StrategyCrash && len(parts) > 1 {
			return fmt.Errorf("%q: crash cannot be combined with other strategies", name)
		}
	}
	return nil
}

// ByzantineNodes returns the strategy of every faulty node of n: nodes 1..byzNo follow strategy,
// and the byzantine map adds (or overrides) nodes. Keys that are not node IDs are left out.
func (c Config) ByzantineNodes(n int) map[int]string {
	out := make(map[int]string)
	for id := 1; id <= min(c.ByzNo, n); id++ {
		out[id] = c.Strategy
	}
	for k, st := range c.Byzantine {
		if id, err := strconv.Atoi(k); err == nil && id >= 1 && id <= n {
			out[id] = st
		}
	}
	return out
}

// Validate checks the client's section.
func (b Benchmark) Validate() error {
	var errs []error
	intIn := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			errs = append(errs, fmt.Errorf("benchmark.%s: %d is outside [%d, %d]", key, v, lo, hi))
		}
	}
	intIn("T", b.T, 1, 7*24*3600)
	intIn("N", b.N, 0, 1<<40)
	intIn("Throttle", b.Throttle, 0, 100_000_000)
	intIn("Concurrency", b.Concurrency, 1, 100_000)
	intIn("Batch", b.Batch, 1, 1_000_000)
	if b.Distribution != "uniform" && b.Distribution != "zipf" {
		errs = append(errs, fmt.Errorf("benchmark.Distribution: %q is not one of uniform, zipf", b.Distribution))
	}
	return errors.Join(errs...)
}

// checkAddrs checks the address overrides: every key is a node of ips.txt and every value is
// host:port (after an optional scheme).
func (c Config) checkAddrs(n int) error {
	var errs []error
	check := func(key string, m map[string]string) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			id, err := strconv.Atoi(k)
			if err != nil || id < 1 || id > n || strconv.Itoa(id) != k {
				errs = append(errs, fmt.Errorf("%s: key %q is not a node ID in [1, %d]: ips.txt defines the nodes and %s only overrides their addresses", key, k, n, key))
				continue
			}
			if _, _, err := net.SplitHostPort(stripScheme(m[k])); err != nil {
				errs = append(errs, fmt.Errorf("%s: node %s: %q is not host:port", key, k, m[k]))
			}
		}
	}
	check("address", c.Addrs)
	check("http_address", c.HTTPAddrs)
	return errors.Join(errs...)
}
