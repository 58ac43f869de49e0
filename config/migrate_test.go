package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func migrateFixture(t *testing.T, n int) (Config, []Change, string) {
	t.Helper()
	return migrateFile(t, "original-default.json", n)
}

func migrateFile(t *testing.T, name string, n int) (Config, []Change, string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	_, err = Parse(data)
	require.Error(t, err, "the original file itself is refused")
	out, changes, err := Migrate(data, n)
	require.NoError(t, err)
	cfg, err := Parse(out)
	require.NoError(t, err, "%s", out)
	var report []string
	for _, c := range changes {
		report = append(report, c.String())
	}
	return cfg, changes, strings.Join(report, "\n")
}

func TestMigrateOriginalDefault(t *testing.T) {
	cfg, changes, report := migrateFixture(t, 4)
	hosts := []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"}
	nodes := cfg.Nodes(hosts)
	require.Len(t, nodes, 4)
	require.NoError(t, cfg.Validate(len(nodes)))
	assert.Empty(t, cfg.Addrs, "the original's address map placed no node there, so it is dropped")
	assert.Empty(t, cfg.HTTPAddrs)
	assert.Equal(t, "127.0.0.1:3735", nodes[0].PeerAddr)
	assert.Equal(t, "127.0.0.1:8070", nodes[0].HTTPAddr)
	assert.Equal(t, "127.0.0.1:8073", nodes[3].HTTPAddr)
	full, err := json.Marshal(cfg)
	require.NoError(t, err)
	_, engine, _, err := CheckRun(full, hosts, "hotstuff")
	require.NoError(t, err)
	assert.Equal(t, EngineHotStuff, engine)

	// Kept keys keep their meaning and value.
	assert.Equal(t, 100000, cfg.Timeout)
	assert.Equal(t, "1", cfg.Master)
	assert.Equal(t, 10240, cfg.MSize)
	assert.Equal(t, 400, cfg.BSize)
	assert.Equal(t, 3, cfg.Q)
	assert.Equal(t, 1.01, cfg.ZipfianS)
	assert.Equal(t, 1024, cfg.ChanBufferSize)
	assert.Equal(t, 60, cfg.Benchmark.T)
	assert.Equal(t, 10, cfg.Benchmark.Concurrency)
	// Changed values.
	assert.Equal(t, "ECDSA_P256", cfg.Signer, "the original's scheme is kept")
	assert.Equal(t, MemStratus, cfg.MemType)
	assert.Equal(t, 128, cfg.PayloadSize)
	assert.Equal(t, 10000*128, cfg.MemSize)

	byKey := map[string]Change{}
	for _, c := range changes {
		byKey[c.Key] = c
	}
	for k, action := range map[string]string{
		"signer": Kept, "payload_size": ValueChanged, "memsize": ValueChanged, "mem_type": ValueChanged,
		"timeout": Kept, "address": Dropped, "http_address": Dropped, "q": Kept, "master": Kept, "byzNo": Kept,
		"policy": Dropped, "hasher": Dropped, "slow_no": Dropped, "forward_p": Dropped, "estimate_num": Dropped,
		"benchmark.T": Kept, "benchmark.Distribution": Kept, "benchmark.K": Dropped, "benchmark.Zipfian_s": Dropped,
	} {
		if assert.Contains(t, byKey, k, report) {
			assert.Equal(t, action, byKey[k].Action, k)
		}
	}
	assert.Contains(t, report, "signer: kept (secp256k1 or ECDSA_P256, as in the original")
	assert.Contains(t, report, "address: dropped: the original replaced this map with ips.txt when it loaded its config, so it never placed a node; here it would override ips.txt and pin node 1 → tcp://127.0.0.1:3735")
	assert.Contains(t, report, "hasher: dropped: hashing is fixed here (SHA-256 for transaction and microblock IDs")
	// Every key of the original is accounted for, once.
	var orig map[string]json.RawMessage
	data, err := os.ReadFile(filepath.Join("testdata", "original-default.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &orig))
	var origBench map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(orig["benchmark"], &origBench))
	assert.Len(t, changes, len(orig)-1+len(origBench), report)
}

// The original's 4-node deploy config points every node at 127.0.0.1 in both maps. Migrated, a
// cluster on four hosts places each node on its ips.txt host, and -check-config (AddressWarnings)
// warns about a map that is added back.
func TestMigrateDeployConfigPlacesNodesByIPs(t *testing.T) {
	cfg, changes, report := migrateFile(t, "original-deploy-4.json", 4)
	hosts := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}
	nodes := cfg.Nodes(hosts)
	for i, n := range nodes {
		assert.Equal(t, fmt.Sprintf("10.0.0.%d:%d", i+1, PeerPortBase+i+1), n.PeerAddr)
		assert.Equal(t, fmt.Sprintf("10.0.0.%d:%d", i+1, HTTPPortBase+i+1), n.HTTPAddr)
	}
	assert.Empty(t, cfg.AddressWarnings(hosts), "nothing to warn about once the maps are gone")
	byKey := map[string]Change{}
	for _, c := range changes {
		byKey[c.Key] = c
	}
	assert.Equal(t, Dropped, byKey["address"].Action)
	assert.Equal(t, Dropped, byKey["http_address"].Action)
	assert.Contains(t, report, "pin node 1 → tcp://127.0.0.1:3735, node 2 → tcp://127.0.0.1:3736, node 3 → tcp://127.0.0.1:3737, node 4 → tcp://127.0.0.1:3738")
	assert.Contains(t, report, "node i takes the HTTP port 8069+i of its ips.txt host instead")

	// What the unmigrated maps would have done: node 1 on loopback, the others remote.
	cfg.Addrs = map[string]string{"1": "tcp://127.0.0.1:3735"}
	cfg.HTTPAddrs = map[string]string{"1": "http://10.0.0.9:8070", "2": "10.0.0.2:9000"}
	warnings := cfg.AddressWarnings(hosts)
	require.Len(t, warnings, 2, "%q", warnings)
	assert.Equal(t, "address: node 1 peer address tcp://127.0.0.1:3735 overrides ips.txt, but its host in ips.txt is 10.0.0.1, "+
		"and it is a loopback address while node(s) 2, 3, 4 are remote, which cannot reach it (remove the entry to use ips.txt)", warnings[0])
	assert.Contains(t, warnings[1], "http_address: node 1 HTTP address http://10.0.0.9:8070 overrides ips.txt, but its host in ips.txt is 10.0.0.1")
	// On one machine overrides of ports are what a test cluster does: no warning.
	local := []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"}
	cfg.HTTPAddrs = map[string]string{"1": "127.0.0.1:9001", "10": "127.0.0.1:9010"}
	assert.Empty(t, cfg.AddressWarnings(local))
}

func TestMigrateWithoutKnownN(t *testing.T) {
	cfg, _, _ := migrateFixture(t, 0)
	require.NoError(t, cfg.Validate(MigrateNodes))
}

func TestMigrateFixesValuesForN(t *testing.T) {
	// q = 3 is outside [f+1, N-f] = [1, 1] for one replica: it falls back to the default, f+1.
	cfg, changes, report := migrateFixture(t, 1)
	require.NoError(t, cfg.Validate(1))
	assert.Equal(t, 0, cfg.Q)
	assert.Contains(t, report, "q: value changed: 3 is outside [1, 1] here; the default 0 instead")
	assert.NotEmpty(t, changes)
}

func TestMigrateOddValues(t *testing.T) {
	doc := `{"strategy": "forking", "byzNo": 1, "timeout": 50, "master": 1, "bogus": 1,
	  "benchmark": {"Distribution": "order", "T": 5}}`
	out, changes, err := Migrate([]byte(doc), 4)
	require.NoError(t, err)
	cfg, err := Parse(out)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(4))
	var report []string
	for _, c := range changes {
		report = append(report, c.String())
	}
	text := strings.Join(report, "\n")
	assert.Contains(t, text, `strategy: value changed: "forking" is not a strategy`)
	assert.Contains(t, text, "propose_timeout: value changed:")
	assert.Contains(t, text, `master: dropped: key "master": expected string, got JSON number; the default applies`)
	assert.Contains(t, text, "bogus: dropped: not a key")
	assert.Contains(t, text, `benchmark.Distribution: value changed: "order" is not one of uniform, zipf here; the default "uniform" instead`)
	assert.Equal(t, 25, cfg.ProposeTimeout)

	_, _, err = Migrate([]byte(`[1]`), 4)
	require.Error(t, err)
	_, _, err = Migrate([]byte(`{"a": }`), 4)
	require.ErrorContains(t, err, "line 1")
}
