package config

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFaultsAndQuorum(t *testing.T) {
	want := []struct{ n, f, q int }{
		{1, 0, 1}, {2, 0, 2}, {3, 0, 3}, {4, 1, 3}, {5, 1, 4},
		{6, 1, 5}, {7, 2, 5}, {8, 2, 6}, {9, 2, 7}, {10, 3, 7},
	}
	for _, w := range want {
		assert.Equal(t, w.f, Faults(w.n), "Faults(%d)", w.n)
		assert.Equal(t, w.q, Quorum(w.n), "Quorum(%d)", w.n)
	}
	assert.Equal(t, 0, Faults(0))
	assert.Equal(t, 0, Faults(-3))
}

func TestQuorumProperties(t *testing.T) {
	for n := 1; n <= 300; n++ {
		f, q := Faults(n), Quorum(n)
		assert.LessOrEqual(t, 3*f+1, n, "n=%d", n)
		assert.Greater(t, 3*(f+1)+1, n, "n=%d: f is the largest", n)
		if n == 3*f+1 {
			assert.Equal(t, 2*f+1, q, "n=%d", n)
		}
		// Two quorums intersect in at least f+1 replicas, hence in an honest one.
		assert.GreaterOrEqual(t, 2*q-n, f+1, "n=%d", n)
		// A quorum is reachable with f replicas silent.
		assert.LessOrEqual(t, q, n-f, "n=%d", n)
	}
}

func TestProofThreshold(t *testing.T) {
	c := Default()
	assert.Equal(t, 2, c.ProofThreshold(4))
	assert.Equal(t, 1, c.ProofThreshold(1))
	assert.Equal(t, 4, c.ProofThreshold(10))
	c.Q = 3
	assert.Equal(t, 3, c.ProofThreshold(4))
}

func TestMasterID(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "1": 1, "17": 17, "": -1, "x": -1, "-2": -2, " 1": -1} {
		c := Default()
		c.Master = in
		assert.Equal(t, want, c.MasterID(), "master %q", in)
	}
}

func TestDefaultsValidate(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7, 10, 100, MaxNodes} {
		assert.NoError(t, Default().Validate(n), "n=%d", n)
	}
}

func TestValidateReplicaCount(t *testing.T) {
	for _, n := range []int{0, -1, MaxNodes + 1} {
		err := Default().Validate(n)
		require.Error(t, err, "n=%d", n)
		assert.Contains(t, err.Error(), "ips:")
		assert.Contains(t, err.Error(), "between 1 and 1024")
	}
}

// TestValidateOneBadValue sets one bad value at a time on the defaults (n = 4, f = 1) and checks
// that Validate names the key and the allowed range, and reports nothing else.
func TestValidateOneBadValue(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		key  string
		want []string // substrings of the error besides the key
		more int      // problems that follow from the bad value (reported after it)
	}{
		{"timeout low", func(c *Config) { c.Timeout = 5; c.ProposeTimeout = 1 }, "timeout:", []string{"5 is outside [10, 600000]"}, 0},
		{"timeout high", func(c *Config) { c.Timeout = 600_001 }, "timeout:", []string{"[10, 600000]"}, 0},
		{"propose_timeout zero", func(c *Config) { c.ProposeTimeout = 0 }, "propose_timeout:", []string{"0 is outside [1, 600000]"}, 0},
		{"propose_timeout equal", func(c *Config) { c.ProposeTimeout = c.Timeout }, "propose_timeout:", []string{"1000 ms must be below timeout (1000 ms)"}, 0},
		{"propose_timeout above", func(c *Config) { c.ProposeTimeout = 1500 }, "propose_timeout:", []string{"must be below timeout"}, 0},
		{"bsize zero", func(c *Config) { c.BSize = 0 }, "bsize:", []string{"0 is outside [1, 1000000]"}, 0},
		{"bsize negative", func(c *Config) { c.BSize = -3 }, "bsize:", []string{"-3 is outside [1, 1000000]"}, 0},
		{"mem_type unknown", func(c *Config) { c.MemType = "fancy" }, "mem_type:", []string{`"fancy"`, "native, smp, stratus"}, 0},
		{"mem_type empty", func(c *Config) { c.MemType = "" }, "mem_type:", []string{"native, smp, stratus"}, 0},
		{"q = 1 < f+1", func(c *Config) { c.Q = 1 }, "q:", []string{"1 is outside [2, 3]"}, 0},
		{"q = 4 > 2f+1", func(c *Config) { c.Q = 4 }, "q:", []string{"4 is outside [2, 3]"}, 0},
		{"q negative", func(c *Config) { c.Q = -1 }, "q:", []string{"[2, 3]"}, 0},
		{"zipfian_s = 1", func(c *Config) { c.ZipfianS = 1 }, "zipfian_s:", []string{"must be greater than 1"}, 0},
		{"zipfian_s < 1", func(c *Config) { c.ZipfianS = 0.5 }, "zipfian_s:", []string{"0.5 must be greater than 1"}, 0},
		{"zipfian_v < 1", func(c *Config) { c.ZipfianV = 0.99 }, "zipfian_v:", []string{"0.99 must be at least 1"}, 0},
		{"gossip fanout 0", func(c *Config) { c.MemType = MemStratus; c.Gossip = true; c.Fanout = 0 }, "fanout:", []string{"0 is outside [1, 3]"}, 0},
		{"gossip fanout n", func(c *Config) { c.MemType = MemStratus; c.Gossip = true; c.Fanout = 4 }, "fanout:", []string{"4 is outside [1, 3]"}, 0},
		{"gossip r 0", func(c *Config) { c.MemType = MemStratus; c.Gossip = true; c.R = 0 }, "r:", []string{"0 is outside [1, 64]"}, 0},
		{"gossip r 65", func(c *Config) { c.MemType = MemStratus; c.Gossip = true; c.R = 65 }, "r:", []string{"65 is outside [1, 64]"}, 0},
		{"lb d 0", func(c *Config) { c.MemType = MemStratus; c.LoadBalance = true; c.D = 0 }, "d:", []string{"0 is outside [1, 3]"}, 0},
		{"lb d 4", func(c *Config) { c.MemType = MemStratus; c.LoadBalance = true; c.D = 4 }, "d:", []string{"4 is outside [1, 3]"}, 0},
		{"lb estimate_window", func(c *Config) { c.MemType = MemStratus; c.LoadBalance = true; c.EstimateWindow = 0 }, "estimate_window:", []string{"[1, 100000]"}, 0},
		{"lb percentile 0", func(c *Config) { c.MemType = MemStratus; c.LoadBalance = true; c.Percentile = 0 }, "percentile:", []string{"outside (0, 100]"}, 0},
		{"lb percentile 101", func(c *Config) { c.MemType = MemStratus; c.LoadBalance = true; c.Percentile = 100.5 }, "percentile:", []string{"100.5 is outside (0, 100]"}, 0},
		{"lb busy_threshold", func(c *Config) { c.MemType = MemStratus; c.LoadBalance = true; c.BusyThreshold = 0 }, "busy_threshold:", []string{"[1, 600000]"}, 0},
		{"lb lb_timeout", func(c *Config) { c.MemType = MemStratus; c.LoadBalance = true; c.LBTimeout = 0 }, "lb_timeout:", []string{"[1, 600000]"}, 0},
		{"lb forward_timeout", func(c *Config) { c.MemType = MemStratus; c.LoadBalance = true; c.ForwardTimeout = -1 }, "forward_timeout:", []string{"[1, 600000]"}, 0},
		{"byzNo > f", func(c *Config) { c.ByzNo = 2 }, "byzNo:", []string{"2 is outside [0, 1]"}, 0},
		{"byzNo negative", func(c *Config) { c.ByzNo = -1 }, "byzNo:", []string{"[0, 1]"}, 0},
		{"strategy", func(c *Config) { c.ByzNo = 1; c.Strategy = "forked" }, "strategy:", []string{`"forked" is not a strategy`, "equivocate"}, 0},
		{"strategy combination", func(c *Config) { c.Strategy = "missing+nope" }, "strategy:", []string{`"nope"`}, 0},
		{"crash combined", func(c *Config) { c.Strategy = "crash+slow" }, "strategy:", []string{"cannot be combined"}, 0},
		{"byzantine map key", func(c *Config) { c.Byzantine = map[string]string{"9": "fork"} }, "byzantine:", []string{`key "9"`, "[1, 4]"}, 0},
		{"byzantine map strategy", func(c *Config) { c.Byzantine = map[string]string{"2": "fork2"} }, "byzantine:", []string{"node 2", `"fork2"`}, 0},
		{"byzantine more than f", func(c *Config) { c.ByzNo = 1; c.Byzantine = map[string]string{"3": "fork"} }, "byzantine:", []string{"2 faulty replicas", "at most 1"}, 0},
		{"slow without slow", func(c *Config) { c.ByzNo = 1; c.Strategy = "slow" }, "slow:", []string{"at least 1"}, 0},
		{"slow negative", func(c *Config) { c.Slow = -1 }, "slow:", []string{"[0, 600000]"}, 0},
		{"crash without crash", func(c *Config) { c.Byzantine = map[string]string{"2": "crash"} }, "crash:", []string{"at least 1"}, 0},
		{"restart negative", func(c *Config) { c.Restart = -5 }, "restart:", []string{"-5"}, 0},
		{"derr > delay", func(c *Config) { c.Delay = 10; c.DErr = 11 }, "derr:", []string{"11 is outside [0, 10]"}, 0},
		{"derr without delay", func(c *Config) { c.DErr = 1 }, "derr:", []string{"1 is outside [0, 0]"}, 0},
		{"delay negative", func(c *Config) { c.Delay = -1 }, "delay:", []string{"-1 is outside [0, 60000]", "derr: 0 is outside [0, -1]"}, 1},
		{"delay high", func(c *Config) { c.Delay = 60_001 }, "delay:", []string{"[0, 60000]"}, 0},
		{"bandwidth negative", func(c *Config) { c.Bandwidth = -1 }, "bandwidth:", []string{"-1 is outside [0, 100000]"}, 0},
		{"bandwidth high", func(c *Config) { c.Bandwidth = 100_001 }, "bandwidth:", []string{"100001 is outside [0, 100000]"}, 0},
		{"loss 1", func(c *Config) { c.Loss = 1 }, "loss:", []string{"1 is outside [0, 1)"}, 0},
		{"loss negative", func(c *Config) { c.Loss = -0.1 }, "loss:", []string{"-0.1 is outside [0, 1)"}, 0},
		{"loss NaN", func(c *Config) { c.Loss = math.NaN() }, "loss:", []string{"NaN is outside [0, 1)"}, 0},
		{"loss Inf", func(c *Config) { c.Loss = math.Inf(1) }, "loss:", []string{"+Inf is outside [0, 1)"}, 0},
		{"chan_buffer_size", func(c *Config) { c.ChanBufferSize = 0 }, "chan_buffer_size:", []string{"0 is outside [1, 1048576]"}, 0},
		{"signer", func(c *Config) { c.Signer = "bls" }, "signer:", []string{`"bls"`, `"secp256k1"`}, 0},
		{"master n+1", func(c *Config) { c.Master = "5" }, "master:", []string{`"5"`, "[1, 4]"}, 0},
		{"master negative", func(c *Config) { c.Master = "-1" }, "master:", []string{"[1, 4]"}, 0},
		{"master non-numeric", func(c *Config) { c.Master = "leader" }, "master:", []string{`"leader"`, `"0"`}, 0},
		{"master empty", func(c *Config) { c.Master = "" }, "master:", []string{"[1, 4]"}, 0},
		{"max_tx_size", func(c *Config) { c.MaxTxSize = 0 }, "max_tx_size:", []string{"0 is outside [1, 1048576]", "payload_size: 128 is outside [16, 0]"}, 1},
		{"memsize below max_tx_size", func(c *Config) { c.MemSize = 1000 }, "memsize:", []string{"1000 is outside [65536, 17179869184]"}, 0},
		{"msize", func(c *Config) { c.MSize = 0 }, "msize:", []string{"[1, 67108864]"}, 0},
		{"batch_timeout", func(c *Config) { c.BatchTimeout = 0 }, "batch_timeout:", []string{"[1, 600000]"}, 0},
		{"payload_size small", func(c *Config) { c.PayloadSize = 15 }, "payload_size:", []string{"15 is outside [16, 65536]"}, 0},
		{"payload_size > max_tx_size", func(c *Config) { c.PayloadSize = 65537 }, "payload_size:", []string{"[16, 65536]"}, 0},
		{"fetch_timeout", func(c *Config) { c.FetchTimeout = 0 }, "fetch_timeout:", []string{"[1, 600000]"}, 0},
		{"fillInterval", func(c *Config) { c.FillInterval = -1 }, "fillInterval:", []string{"[0, 600000]"}, 0},
		{"capacity negative", func(c *Config) { c.Capacity = -1 }, "capacity:", []string{"[0, 1000000]"}, 0},
		{"capacity with fillInterval", func(c *Config) { c.FillInterval = 10 }, "capacity:", []string{"at least 1 when fillInterval"}, 0},
		{"benchmark.T", func(c *Config) { c.Benchmark.T = 0 }, "benchmark.T:", []string{"0 is outside [1, 604800]"}, 0},
		{"benchmark.N", func(c *Config) { c.Benchmark.N = -1 }, "benchmark.N:", []string{"-1 is outside [0, 1099511627776]"}, 0},
		{"benchmark.Throttle", func(c *Config) { c.Benchmark.Throttle = -5 }, "benchmark.Throttle:", []string{"[0, 100000000]"}, 0},
		{"benchmark.Concurrency", func(c *Config) { c.Benchmark.Concurrency = 0 }, "benchmark.Concurrency:", []string{"0 is outside [1, 100000]"}, 0},
		{"benchmark.Batch", func(c *Config) { c.Benchmark.Batch = 0 }, "benchmark.Batch:", []string{"0 is outside [1, 1000000]"}, 0},
		{"benchmark.Distribution", func(c *Config) { c.Benchmark.Distribution = "normal" }, "benchmark.Distribution:", []string{`"normal"`, "uniform, zipf"}, 0},
		{"address beyond ips.txt", func(c *Config) { c.Addrs = map[string]string{"1": "a:1", "5": "b:1"} }, "address:", []string{`key "5" is not a node ID in [1, 4]`, "ips.txt defines the nodes"}, 0},
		{"http_address not a node ID", func(c *Config) {
			c.HTTPAddrs = map[string]string{"1": "a:1", "01": "b:1"}
		}, "http_address:", []string{`key "01" is not a node ID in [1, 4]`}, 0},
		{"address empty value", func(c *Config) {
			c.Addrs = map[string]string{"1": "a:1", "2": ""}
		}, "address:", []string{`node 2: "" is not host:port`}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			err := c.Validate(4)
			require.Error(t, err)
			msg := err.Error()
			lines := strings.Split(msg, "\n")
			require.Len(t, lines, 1+tc.more, "problems reported: %q", msg)
			assert.True(t, strings.HasPrefix(msg, tc.key), "%q does not start with %q", msg, tc.key)
			for _, w := range tc.want {
				assert.Contains(t, msg, w)
			}
		})
	}
}

func TestValidateGoodValues(t *testing.T) {
	cases := map[string]func(*Config){
		"q = 2":               func(c *Config) { c.Q = 2 },
		"q = 3":               func(c *Config) { c.Q = 3 },
		"q = 0 (default f+1)": func(c *Config) { c.Q = 0 },
		"master rotating":     func(c *Config) { c.Master = "0" },
		"master 1":            func(c *Config) { c.Master = "1" },
		"master n":            func(c *Config) { c.Master = "4" },
		"byzNo = f":           func(c *Config) { c.ByzNo = 1 },
		"derr = delay":        func(c *Config) { c.Delay = 10; c.DErr = 10 },
		"bandwidth 1":         func(c *Config) { c.Bandwidth = 1 },
		"bandwidth max":       func(c *Config) { c.Bandwidth = MaxBandwidth },
		"loss just below 1":   func(c *Config) { c.Loss = 0.999 },
		"loss and shaping": func(c *Config) {
			c.Delay, c.DErr, c.Bandwidth, c.Loss = 50, 10, 100, 0.01
		},
		"faults_http":            func(c *Config) { c.FaultsHTTP = true },
		"zipfian_v = 1":          func(c *Config) { c.ZipfianV = 1 },
		"zipfian_s just above 1": func(c *Config) { c.ZipfianS = 1.0001 },
		"fanout ignored without gossip": func(c *Config) {
			c.Fanout = 0
			c.R = 0
		},
		"gossip bounds":             func(c *Config) { c.MemType = MemStratus; c.Gossip = true; c.Fanout = 3; c.R = 64 },
		"d ignored without lb":      func(c *Config) { c.D = 0; c.Percentile = 0 },
		"lb bounds":                 func(c *Config) { c.MemType = MemStratus; c.LoadBalance = true; c.D = 3; c.Percentile = 100 },
		"fillInterval and capacity": func(c *Config) { c.FillInterval = 10; c.Capacity = 1 },
		"propose just below":        func(c *Config) { c.ProposeTimeout = 999 },
		"benchmark zipf":            func(c *Config) { c.Benchmark.Distribution = "zipf" },
		"one address overridden": func(c *Config) {
			c.Addrs = map[string]string{"1": "tcp://127.0.0.1:3735"}
			c.HTTPAddrs = map[string]string{"1": "http://127.0.0.1:8070"}
		},
		"full addresses": func(c *Config) {
			c.Addrs = map[string]string{"1": "a:1", "2": "b:1", "3": "c:1", "4": "d:1"}
			c.HTTPAddrs = map[string]string{"1": "http://a:2", "2": "b:2", "3": "c:2", "4": "d:2"}
		},
	}
	for name, mod := range cases {
		c := Default()
		mod(&c)
		assert.NoError(t, c.Validate(4), name)
	}
}

func TestValidateSharedMempools(t *testing.T) {
	for _, m := range []string{MemSMP, MemStratus, "naive", "ack"} {
		c := Default()
		c.MemType = m
		c.Gossip, c.LoadBalance = true, true
		require.NoError(t, c.Validate(4), m)
	}
	// Gossip and load balancing move microblocks: the native mempool has none.
	c := Default()
	c.Gossip, c.LoadBalance = true, true
	err := c.Validate(4)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "gossip: gossip disseminates microblocks")
	assert.Contains(t, err.Error(), "load_balance: load balancing forwards microblocks")
	c = Default()
	c.PushTimeout = 0
	assert.ErrorContains(t, c.Validate(4), "push_timeout: 0 is outside [1, 600000]")
}

func TestValidateReportsAllErrorsAtOnce(t *testing.T) {
	c := Default()
	c.Timeout = 0
	c.BSize = 0
	c.Q = 7
	c.ZipfianS = 1
	c.Signer = "none"
	c.Benchmark.T = 0
	c.Benchmark.Distribution = "x"
	c.Addrs = map[string]string{"9": "a:1"}
	err := c.Validate(4)
	require.Error(t, err)
	msg := err.Error()
	for _, key := range []string{"timeout:", "propose_timeout:", "bsize:", "q:", "zipfian_s:", "signer:", "benchmark.T:", "benchmark.Distribution:", "address:"} {
		assert.Contains(t, msg, key)
	}
	// One line per problem.
	assert.Len(t, strings.Split(msg, "\n"), 9, msg)
}

func TestValidateQBoundsAcrossN(t *testing.T) {
	for n := 1; n <= 10; n++ {
		f := Faults(n)
		for q := -1; q <= n+1; q++ {
			c := Default()
			c.Q = q
			err := c.Validate(n)
			ok := q == 0 || (q >= f+1 && q <= Quorum(n))
			if ok {
				assert.NoError(t, err, "n=%d q=%d", n, q)
			} else if assert.Error(t, err, "n=%d q=%d", n, q) {
				assert.Contains(t, err.Error(), "q:")
			}
		}
	}
}

func TestBenchmarkValidate(t *testing.T) {
	assert.NoError(t, Default().Benchmark.Validate())
	b := Default().Benchmark
	b.T, b.Concurrency = 0, 0
	err := b.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "benchmark.T:")
	assert.Contains(t, err.Error(), "benchmark.Concurrency:")
}

func TestNetworkEmulationDefaults(t *testing.T) {
	d := Default()
	assert.Equal(t, 0, d.Bandwidth, "unlimited")
	assert.Equal(t, 0.0, d.Loss)
	assert.False(t, d.FaultsHTTP, "fault injection is opt-in")
}
