package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jsonKeys lists the top-level config.json keys of Config, read from the struct tags.
func jsonKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	rt := reflect.TypeOf(Config{})
	for i := 0; i < rt.NumField(); i++ {
		tag := rt.Field(i).Tag.Get("json")
		if tag == "" || tag == "-" {
			continue
		}
		keys = append(keys, strings.Split(tag, ",")[0])
	}
	require.NotEmpty(t, keys)
	return keys
}

func TestParseEmptyObjectKeepsDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`{}`))
	require.NoError(t, err)
	want := Default()
	cfg.set, want.set = nil, nil
	assert.Equal(t, want, cfg)
	for _, k := range jsonKeys(t) {
		assert.False(t, cfg.IsSet(k), "IsSet(%q) on an empty file", k)
	}
}

func TestParseKeepsDefaultsForMissingKeys(t *testing.T) {
	cfg, err := Parse([]byte(`{"timeout": 2500, "mem_type": "stratus", "gossip": true, "benchmark": {"T": 5}}`))
	require.NoError(t, err)

	assert.Equal(t, 2500, cfg.Timeout)
	assert.Equal(t, "stratus", cfg.MemType)
	assert.True(t, cfg.Gossip)
	assert.Equal(t, 5, cfg.Benchmark.T)

	d := Default()
	// Everything else keeps its documented default, including the rest of the benchmark section.
	assert.Equal(t, d.ProposeTimeout, cfg.ProposeTimeout)
	assert.Equal(t, d.BSize, cfg.BSize)
	assert.Equal(t, d.MSize, cfg.MSize)
	assert.Equal(t, d.ZipfianS, cfg.ZipfianS)
	assert.Equal(t, d.Signer, cfg.Signer)
	assert.Equal(t, d.Benchmark.Concurrency, cfg.Benchmark.Concurrency)
	assert.Equal(t, d.Benchmark.Distribution, cfg.Benchmark.Distribution)
	assert.Equal(t, d.Benchmark.Batch, cfg.Benchmark.Batch)

	for _, k := range []string{"timeout", "mem_type", "gossip", "benchmark"} {
		assert.True(t, cfg.IsSet(k), "IsSet(%q)", k)
	}
	for _, k := range []string{"bsize", "propose_timeout", "q", "T", "benchmark.T", "master", ""} {
		assert.False(t, cfg.IsSet(k), "IsSet(%q)", k)
	}
}

func TestParseIsSetEvenWhenValueEqualsDefault(t *testing.T) {
	cfg, err := Parse([]byte(`{"mem_type": "native", "q": 0, "gossip": false}`))
	require.NoError(t, err)
	assert.True(t, cfg.IsSet("mem_type"))
	assert.True(t, cfg.IsSet("q"))
	assert.True(t, cfg.IsSet("gossip"))
	assert.False(t, cfg.IsSet("timeout"))
}

func TestParseDefaultIsNotSet(t *testing.T) {
	assert.False(t, Default().IsSet("timeout"))
	assert.False(t, Config{}.IsSet("mem_type"))
}

func TestParseEveryKeyRoundTrips(t *testing.T) {
	// Marshalling a full config and parsing it back must accept every key the struct declares and
	// mark each one as set.
	c := Default()
	c.Addrs = map[string]string{"1": "a:1"}
	c.HTTPAddrs = map[string]string{"1": "a:2"}
	data, err := json.Marshal(c)
	require.NoError(t, err)
	got, err := Parse(data)
	require.NoError(t, err)
	for _, k := range jsonKeys(t) {
		assert.True(t, got.IsSet(k), "IsSet(%q)", k)
	}
	got.set, c.set = nil, nil
	assert.Equal(t, c, got)
}

func TestParseUnknownKeyNamesIt(t *testing.T) {
	for _, in := range []struct{ doc, key string }{
		{`{"timeout": 10, "tiemout": 5}`, "tiemout"},
		{`{"benchmark": {"T": 1, "Durationn": 5}}`, "benchmark.Durationn"},
		{`{"K": 5}`, "K"}, // a dead benchmark key at the top level is simply unknown
		{`{"foo_bar": {"x": 1}}`, "foo_bar"},
	} {
		_, err := Parse([]byte(in.doc))
		require.Error(t, err, in.doc)
		assert.Contains(t, err.Error(), `"`+in.key+`"`, in.doc)
		assert.Contains(t, err.Error(), "unknown key", in.doc)
	}
}

// A misspelt key names the key it probably meant: a transposition, a missing or extra letter,
// another case; a key far from every other gets no guess.
func TestParseUnknownKeySuggestsTheNearest(t *testing.T) {
	for _, in := range []struct{ doc, want string }{
		{`{"timout": 300}`, `did you mean "timeout"?`},
		{`{"tiemout": 300}`, `did you mean "timeout"?`},
		{`{"Timeout": 300}`, `did you mean "timeout"?`},
		{`{"bsize_": 10}`, `did you mean "bsize"?`},
		{`{"benchmark": {"Concurency": 5}}`, `did you mean "benchmark.Concurrency"?`},
	} {
		_, err := Parse([]byte(in.doc))
		require.Error(t, err, in.doc)
		assert.Contains(t, err.Error(), in.want, in.doc)
	}
	_, err := Parse([]byte(`{"foo_bar": 1}`))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "did you mean")
}

func TestParseDeadKeysRefusedWithHint(t *testing.T) {
	require.NotEmpty(t, deadKeys)
	for key, hint := range deadKeys {
		require.NotEmpty(t, hint, key)
		_, err := Parse([]byte(`{"timeout": 1000, "` + key + `": 1}`))
		require.Error(t, err, key)
		assert.Contains(t, err.Error(), `"`+key+`"`)
		assert.Contains(t, err.Error(), "no longer used")
		assert.Contains(t, err.Error(), hint)
	}
}

func TestParseDeadBenchmarkKeysRefusedWithHint(t *testing.T) {
	require.NotEmpty(t, deadBenchmarkKeys)
	for key, hint := range deadBenchmarkKeys {
		require.NotEmpty(t, hint, key)
		_, err := Parse([]byte(`{"benchmark": {"T": 5, "` + key + `": 1}}`))
		require.Error(t, err, key)
		assert.Contains(t, err.Error(), `"benchmark.`+key+`"`)
		assert.Contains(t, err.Error(), "no longer used")
		assert.Contains(t, err.Error(), hint)
	}
}

func TestParseDeadKeyOfOriginalSample(t *testing.T) {
	// A fragment in the style of the original prototype's config.json.
	doc := `{
  "master": "0",
  "policy": "majority",
  "threshold": 3,
  "benchmark": {"T": 60, "K": 1000, "W": 0.5}
}`
	_, err := Parse([]byte(doc))
	require.Error(t, err)
	// Keys are checked in sorted order, so the first dead key reported is "policy".
	assert.Contains(t, err.Error(), `"policy"`)
	assert.Contains(t, err.Error(), "use master")
}

func TestParseBenchmarkMustBeObject(t *testing.T) {
	_, err := Parse([]byte(`{"benchmark": 5}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "benchmark")
}

func TestParseTypeErrorsNameTheKey(t *testing.T) {
	for _, in := range []struct{ doc, key string }{
		{`{"timeout": "1000"}`, "timeout"},
		{`{"timeout": 1.5}`, "timeout"},
		{`{"bsize": true}`, "bsize"},
		{`{"gossip": 1}`, "gossip"},
		{`{"master": 0}`, "master"},
		{`{"zipfian_s": "2"}`, "zipfian_s"},
		{`{"seed": "x"}`, "seed"},
		{`{"address": ["a"]}`, "address"},
		{`{"http_address": {"1": 5}}`, "http_address"},
		{`{"benchmark": {"T": "x"}}`, "benchmark.T"},
		{`{"benchmark": {"Distribution": 3}}`, "benchmark.Distribution"},
		{`{"bandwidth": 1.5}`, "bandwidth"},
		{`{"loss": "0.1"}`, "loss"},
		{`{"faults_http": 1}`, "faults_http"},
	} {
		_, err := Parse([]byte(in.doc))
		require.Error(t, err, in.doc)
		assert.Contains(t, err.Error(), `key "`+in.key+`"`, in.doc)
		assert.Contains(t, err.Error(), "expected", in.doc)
	}
}

func TestParseSyntaxErrorsGiveLine(t *testing.T) {
	for _, in := range []struct {
		doc  string
		line string
	}{
		{"{\"a\": }", "line 1 "},
		{"{\n  \"timeout\": 5,\n  \"bsize\" 7\n}", "line 3 "},
		{"{\n\n\n\n  \"timeout\": 5,,\n}", "line 5 "},
		{"{\"timeout\": 5", "line 1 "},
		{"", "line 1 "},
	} {
		_, err := Parse([]byte(in.doc))
		require.Error(t, err, in.doc)
		assert.Contains(t, err.Error(), "invalid JSON", in.doc)
		assert.Contains(t, err.Error(), in.line, in.doc)
		assert.Contains(t, err.Error(), "column", in.doc)
	}
}

func TestParseSyntaxErrorColumn(t *testing.T) {
	for _, in := range []struct{ doc, where string }{
		{"{\"a\": }", "line 1 column 7:"},
		{"{\n  \"timeout\": 5,\n  \"bsize\" 7\n}", "line 3 column 11:"},
		{"{}x", "line 1 column 3:"},
	} {
		_, err := Parse([]byte(in.doc))
		require.Error(t, err, in.doc)
		assert.Contains(t, err.Error(), in.where, in.doc)
	}
}

func TestPosition(t *testing.T) {
	// position maps a byte offset to a 1-based line and the column after offset bytes.
	data := []byte("ab\ncd\n\nef")
	for _, c := range []struct {
		off       int64
		line, col int
	}{
		{0, 1, 1}, {2, 1, 3}, {3, 2, 1}, {5, 2, 3}, {6, 3, 1}, {7, 4, 1}, {9, 4, 3}, {100, 4, 3},
	} {
		l, col := position(data, c.off)
		assert.Equal(t, c.line, l, "offset %d line", c.off)
		assert.Equal(t, c.col, col, "offset %d column", c.off)
	}
}

func TestParseTrailingDataRefused(t *testing.T) {
	for _, doc := range []string{`{} {}`, `{"timeout": 100}x`, `{}]`, `{} null`, "{}\n{\"timeout\": 5}"} {
		_, err := Parse([]byte(doc))
		assert.Error(t, err, doc)
	}
	// Whitespace after the object is fine.
	cfg, err := Parse([]byte("{\"timeout\": 100}\n\n  \t\n"))
	require.NoError(t, err)
	assert.Equal(t, 100, cfg.Timeout)
}

func TestParseNonObjectRefused(t *testing.T) {
	for _, doc := range []string{`[1]`, `5`, `"x"`, `true`} {
		_, err := Parse([]byte(doc))
		assert.Error(t, err, doc)
	}
}

func TestParseCaseSensitiveKeys(t *testing.T) {
	for _, doc := range []string{`{"TIMEOUT": 5}`, `{"Mem_Type": "stratus"}`, `{"benchmark": {"t": 5}}`, `{"timeout": 5, "Timeout": 7}`} {
		_, err := Parse([]byte(doc))
		assert.Error(t, err, doc)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(good, []byte(`{"bsize": 7}`), 0o600))
	cfg, err := Load(good)
	require.NoError(t, err)
	assert.Equal(t, 7, cfg.BSize)
	assert.True(t, cfg.IsSet("bsize"))

	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"policy": 1}`), 0o600))
	_, err = Load(bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad, "error names the file")
	assert.Contains(t, err.Error(), `"policy"`)

	_, err = Load(filepath.Join(dir, "missing.json"))
	require.Error(t, err)
	assert.True(t, os.IsNotExist(errorsUnwrapAll(err)), "%v", err)
}

func errorsUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestShippedConfigParsesAndValidates(t *testing.T) {
	path := filepath.Join("..", "bin", "config.json")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no %s in this tree", path)
	}
	cfg, err := Load(path)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(4))
}

func TestResolveMemType(t *testing.T) {
	assert.Equal(t, MemSMP, ResolveMemType("naive"))
	assert.Equal(t, MemStratus, ResolveMemType("ack"))
	for _, s := range []string{MemNative, MemSMP, MemStratus, "other", ""} {
		assert.Equal(t, s, ResolveMemType(s))
	}
}

func TestDeadKeysAreNotLiveKeys(t *testing.T) {
	live := map[string]bool{}
	for _, k := range jsonKeys(t) {
		live[k] = true
	}
	for k := range deadKeys {
		assert.False(t, live[k], "dead key %q is also a live key", k)
	}
	rt := reflect.TypeOf(Benchmark{})
	var bench []string
	for i := 0; i < rt.NumField(); i++ {
		bench = append(bench, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
	}
	sort.Strings(bench)
	for k := range deadBenchmarkKeys {
		assert.NotContains(t, bench, k)
	}
}

func TestLoadWithOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"timeout": 500, "strategy": "silence"}`), 0o644))
	cfg, err := LoadWith(path, []string{"byzNo=1", "strategy=fork", "byzantine={\"3\": \"slow\"}", "slow=20"})
	require.NoError(t, err)
	require.Equal(t, 500, cfg.Timeout)
	require.Equal(t, 1, cfg.ByzNo)
	require.Equal(t, "fork", cfg.Strategy, "a value that is not JSON is a string")
	require.Equal(t, map[string]string{"3": "slow"}, cfg.Byzantine)
	require.Equal(t, 20, cfg.Slow)
	_, err = LoadWith(path, []string{"nope=1"})
	require.ErrorContains(t, err, `unknown key "nope"`)
	_, err = LoadWith(path, []string{"timeout"})
	require.ErrorContains(t, err, "want key=value")
	_, err = LoadWith(path, []string{"timeout=\"x\""})
	require.ErrorContains(t, err, `key "timeout"`)
}

func TestParseNetworkEmulationKeys(t *testing.T) {
	cfg, err := Parse([]byte(`{"delay": 20, "derr": 5, "bandwidth": 100, "loss": 0.01, "faults_http": true}`))
	require.NoError(t, err)
	assert.Equal(t, 20, cfg.Delay)
	assert.Equal(t, 5, cfg.DErr)
	assert.Equal(t, 100, cfg.Bandwidth)
	assert.Equal(t, 0.01, cfg.Loss)
	assert.True(t, cfg.FaultsHTTP)
	for _, k := range []string{"bandwidth", "loss", "faults_http"} {
		assert.True(t, cfg.IsSet(k), k)
	}
	require.NoError(t, cfg.Validate(4))
}

func TestParseReportsEveryKeyProblemAtOnce(t *testing.T) {
	doc := `{
  "tiemout": 5,
  "policy": "majority",
  "hasher": "sha3_256",
  "bsize": "big",
  "gossip": 1,
  "Timeout": 7,
  "benchmark": {"T": "x", "K": 1000, "Durationn": 5, "Concurrency": 2}
}`
	_, err := Parse([]byte(doc))
	require.Error(t, err)
	want := []string{
		`unknown key "Timeout"`,
		`key "benchmark.Concurrency"`, // not a problem: must not appear
		`unknown key "benchmark.Durationn"`,
		`key "benchmark.K" is no longer used`,
		`key "benchmark.T": expected int`,
		`key "bsize": expected int`,
		`key "gossip": expected bool`,
		`key "hasher" is no longer used`,
		`key "policy" is no longer used`,
		`unknown key "tiemout"`,
	}
	lines := strings.Split(err.Error(), "\n")
	assert.Len(t, lines, len(want)-1, err.Error())
	for _, w := range want {
		if strings.Contains(w, "Concurrency") {
			assert.NotContains(t, err.Error(), w)
			continue
		}
		assert.Contains(t, err.Error(), w)
	}
}

func TestCheckRunReportsAllProblemsInOneError(t *testing.T) {
	// Unknown keys, removed keys, type errors and invalid values of one file: one error, one
	// line per problem, each naming its key.
	doc := `{
  "tiemout": 5,
  "thrifty": true,
  "bsize": "big",
  "master": 0,
  "timeout": 5,
  "zipfian_s": 1,
  "address": {"9": "a:1"},
  "benchmark": {"T": 0, "W": 0.5, "Concurrency": "many"}
}`
	hosts := []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"}
	_, _, _, err := CheckRun([]byte(doc), hosts, "hotstuff")
	require.Error(t, err)
	msg := err.Error()
	want := []string{
		`unknown key "tiemout"`,
		`key "thrifty" is no longer used: every message goes to every replica`,
		`key "bsize": expected int, got JSON string`,
		`key "master": expected string, got JSON number`,
		`key "benchmark.W" is no longer used`,
		`key "benchmark.Concurrency": expected int, got JSON string`,
		`timeout: 5 is outside [10, 600000]`,
		`propose_timeout: 100 ms must be below timeout (5 ms)`,
		`zipfian_s: 1 must be greater than 1`,
		`benchmark.T: 0 is outside [1, 604800]`,
		`address: key "9" is not a node ID in [1, 4]`,
	}
	for _, w := range want {
		assert.Contains(t, msg, w)
	}
	assert.Len(t, strings.Split(msg, "\n"), len(want), msg)
	// Keys with a type problem keep their default and are not reported twice.
	assert.NotContains(t, msg, "bsize: ")
	assert.NotContains(t, msg, "master: ")

	_, _, _, err = CheckRun([]byte(`{"gossip": true}`), hosts, "nope")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `-algorithm: algorithm "nope" is not one of`)
	assert.Contains(t, err.Error(), "gossip: gossip disseminates microblocks")
	assert.False(t, OnlyFlags(err), "the file has a problem too")
	_, _, _, err = CheckRun([]byte(`{}`), hosts, "nope")
	require.Error(t, err)
	assert.True(t, OnlyFlags(err), "only the flag is wrong: the server says so, not that config.json is invalid")

	cfg, engine, nodes, err := CheckRun([]byte(`{"mem_type": "ack"}`), hosts, "s-hs")
	require.NoError(t, err)
	assert.Equal(t, EngineHotStuff, engine)
	assert.Len(t, nodes, 4)
	assert.Equal(t, MemStratus, cfg.MemType)
}
