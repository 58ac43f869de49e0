package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Actions of a migration change.
const (
	Kept         = "kept"
	Renamed      = "renamed"
	Dropped      = "dropped"
	ValueChanged = "value changed"
)

// Change is what a migration did with one key of the original prototype's config.
type Change struct {
	Key    string // key of the original file; "benchmark.T" for the client's section
	Action string // Kept, Renamed, Dropped or ValueChanged
	Reason string
}

func (c Change) String() string {
	if c.Reason == "" {
		return c.Key + ": " + c.Action
	}
	if c.Action == Kept {
		return c.Key + ": kept (" + c.Reason + ")"
	}
	return c.Key + ": " + c.Action + ": " + c.Reason
}

// MigrateNodes is the replica count values that depend on N are checked for when the migration
// does not know the run's ips.txt.
const MigrateNodes = 4

// keptNotes explain kept keys whose meaning a user of the original could doubt.
var keptNotes = map[string]string{
	"timeout":          "view timeout in ms, as in the original; here it doubles after each consecutive timeout",
	"signer":           "secp256k1 or ECDSA_P256, as in the original; server -keygen makes keys of this scheme",
	"master":           `"0" rotates the leader, another value is the static leader's node ID`,
	"msize":            "microblock size in payload bytes",
	"bsize":            "native mempool: transactions per block; shared mempools: microblocks per proposal",
	"q":                "PAB acks that make a proof, in [f+1, N-f]",
	"slow":             "ms the slow strategy adds to every message",
	"crash":            "ms after the start at which the crash strategy stops a replica",
	"delay":            "ms added to every outgoing message",
	"derr":             "ms of uniform jitter around delay",
	"chan_buffer_size": "messages buffered per inbound lane",
	"fillInterval":     "token bucket refill interval for microblock sends, ms",
	"capacity":         "token bucket capacity, microblocks",
	"estimate_window":  "own microblocks in the stable-time window",
	"d":                "peers sampled per busy microblock",
}

// addressMaps are the original's per-node address maps. The original overwrote them with ips.txt
// when it loaded its config, so they never placed a node there; here they override ips.txt, and a
// map kept from the original (every one of its configs points nodes at 127.0.0.1) would pin those
// nodes to loopback in a multi-host deployment. The migration drops them.
var addressMaps = map[string]string{"address": "peer", "http_address": "HTTP"}

// droppedAddressMap is the reason a migration gives for dropping one of the addressMaps.
func droppedAddressMap(key string, raw json.RawMessage) string {
	var m map[string]string
	_ = json.Unmarshal(raw, &m)
	var entries []string
	for _, id := range sortedKeys(m) {
		entries = append(entries, fmt.Sprintf("node %s → %s", id, m[id]))
	}
	what := "an empty map"
	if len(entries) > 0 {
		what = strings.Join(entries, ", ")
	}
	port := "3734+i"
	if key == "http_address" {
		port = "8069+i"
	}
	return fmt.Sprintf("the original replaced this map with ips.txt when it loaded its config, so it never placed a node; "+
		"here it would override ips.txt and pin %s (node i takes the %s port %s of its ips.txt host instead; "+
		"add the map back only to override a node on purpose)", what, addressMaps[key], port)
}

// dropReasons explain dropped keys of the original better than the strict decoder's hints, which
// tell a user what to do with a file rather than what a key was.
var dropReasons = map[string]string{
	"pprof":    "profiling is the server's -cpuprofile flag here",
	"fixed":    "the setting has no counterpart here",
	"hasher":   "hashing is fixed here (SHA-256 for transaction and microblock IDs, Keccak-256 for signed digests)",
	"maxRound": "runs are bounded by the client's duration (benchmark.T)",
}

// Migrate converts a config.json of the original prototype into this version's: keys that still
// mean the same are kept, the others are dropped, and values that are invalid here are changed to
// valid ones. n is the replica count of the run (ips.txt), or 0 when unknown: values that depend
// on it are then checked for MigrateNodes replicas. It returns the new file (indented JSON that
// Parse accepts and Validate passes for n) and one Change per key of the original, in key order.
func Migrate(data []byte, n int) ([]byte, []Change, error) {
	if n <= 0 {
		n = MigrateNodes
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, nil, describeJSONError(data, err)
	}
	if top == nil {
		return nil, nil, errors.New("the configuration must be a JSON object, not null")
	}
	out := map[string]json.RawMessage{}
	bench := map[string]json.RawMessage{}
	changes := map[string]Change{}
	var order []string
	note := func(c Change) {
		if _, ok := changes[c.Key]; !ok {
			order = append(order, c.Key)
		}
		changes[c.Key] = c
	}
	keep := func(prefix, k string, raw json.RawMessage, v reflect.Value, dead map[string]string, dst map[string]json.RawMessage) {
		key := prefix + k
		if _, ok := addressMaps[key]; ok {
			note(Change{key, Dropped, droppedAddressMap(key, raw)})
			return
		}
		if hint, ok := dead[k]; ok {
			if r, ok := dropReasons[key]; ok {
				hint = r
			}
			hint = strings.TrimSuffix(hint, "; remove the key")
			if hint == "remove the key" {
				hint = "the setting has no counterpart here"
			}
			note(Change{key, Dropped, hint})
			return
		}
		if _, ok := fieldIndex(v.Type(), k); !ok {
			note(Change{key, Dropped, "not a key of the original prototype's config nor of this version's"})
			return
		}
		if err := decodeKey(prefix, k, raw, v, nil); err != nil {
			note(Change{key, Dropped, fmt.Sprintf("%v; the default applies", err)})
			return
		}
		dst[k] = raw
		note(Change{key, Kept, keptNotes[key]})
	}
	scratch := Default()
	for _, k := range sortedKeys(top) {
		if k == "benchmark" {
			var b map[string]json.RawMessage
			if err := json.Unmarshal(top[k], &b); err != nil || b == nil {
				note(Change{k, Dropped, "not a JSON object; the client's defaults apply"})
				continue
			}
			for _, bk := range sortedKeys(b) {
				keep("benchmark.", bk, b[bk], reflect.ValueOf(&scratch.Benchmark).Elem(), deadBenchmarkKeys, bench)
			}
			continue
		}
		keep("", k, top[k], reflect.ValueOf(&scratch).Elem(), deadKeys, out)
	}

	// Values whose meaning or range differs from the original's.
	cfg := scratch
	set := func(key string, v any, reason string) {
		b, _ := json.Marshal(v)
		if k, ok := strings.CutPrefix(key, "benchmark."); ok {
			bench[k] = b
		} else {
			out[key] = b
		}
		note(Change{key, ValueChanged, reason})
	}
	if _, ok := out["mem_type"]; ok {
		if r := ResolveMemType(cfg.MemType); r != cfg.MemType {
			set("mem_type", r, fmt.Sprintf("%q is the original's name of the %s mempool; written under its name here (both are accepted)", cfg.MemType, r))
			cfg.MemType = r
		}
	}
	if _, ok := out["payload_size"]; ok && cfg.PayloadSize < 16 {
		was := cfg.PayloadSize
		cfg.PayloadSize = Default().PayloadSize
		set("payload_size", cfg.PayloadSize, fmt.Sprintf("%d is below the minimum of 16: every transaction here carries payload_size bytes (a unique ID among them); %d is the default", was, cfg.PayloadSize))
	}
	if _, ok := out["memsize"]; ok {
		// The original counted transactions; here memsize is bytes of held transactions.
		was := cfg.MemSize
		cfg.MemSize = min(max(was*cfg.PayloadSize, cfg.MaxTxSize), 1<<34)
		set("memsize", cfg.MemSize, fmt.Sprintf("the original counted transactions, here memsize is bytes of transactions a replica holds: %d transactions × %d bytes (payload_size), at least max_tx_size (%d)", was, cfg.PayloadSize, cfg.MaxTxSize))
	}

	// Whatever Validate still refuses falls back to the default, or fails the migration when
	// that does not help.
	reset := map[string]bool{}
	for round := 0; ; round++ {
		doc := map[string]json.RawMessage{}
		for k, v := range out {
			doc[k] = v
		}
		if len(bench) > 0 {
			b, _ := json.Marshal(bench)
			doc["benchmark"] = b
		}
		text, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return nil, nil, err
		}
		parsed, err := Parse(text)
		if err != nil {
			return nil, nil, fmt.Errorf("the migrated config does not parse: %w", err)
		}
		verr := parsed.Validate(n)
		if verr == nil {
			list := make([]Change, 0, len(order))
			for _, k := range sortedChangeKeys(order) {
				list = append(list, changes[k])
			}
			return append(text, '\n'), list, nil
		}
		var unfixable []string
		for _, line := range strings.Split(verr.Error(), "\n") {
			key, msg, _ := strings.Cut(line, ": ")
			_, inTop := out[key]
			bk, isBench := strings.CutPrefix(key, "benchmark.")
			_, inBench := bench[bk]
			if reset[key] || !(inTop || isBench && inBench) {
				if key == "propose_timeout" && !reset[key] && parsed.Timeout >= 20 {
					reset[key] = true
					set(key, parsed.Timeout/2, fmt.Sprintf("%s; half of timeout instead", msg))
					continue
				}
				unfixable = append(unfixable, line)
				continue
			}
			reset[key] = true
			def := Default()
			var v any
			if isBench {
				i, _ := fieldIndex(reflect.TypeOf(def.Benchmark), bk)
				v = reflect.ValueOf(def.Benchmark).Field(i).Interface()
			} else {
				i, _ := fieldIndex(reflect.TypeOf(def), key)
				v = reflect.ValueOf(def).Field(i).Interface()
			}
			b, _ := json.Marshal(v)
			set(key, v, fmt.Sprintf("%s here; the default %s instead", msg, b))
		}
		if len(unfixable) > 0 || round > 8 {
			return nil, nil, fmt.Errorf("the migrated config is still invalid:\n%s", strings.Join(unfixable, "\n"))
		}
	}
}

// sortedChangeKeys orders changes by key, the client's section after the top-level keys.
func sortedChangeKeys(keys []string) []string {
	out := append([]string(nil), keys...)
	less := func(a, b string) bool {
		ab, bb := strings.HasPrefix(a, "benchmark."), strings.HasPrefix(b, "benchmark.")
		if ab != bb {
			return bb
		}
		return a < b
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && less(out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
