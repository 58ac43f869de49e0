package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and an accepted config survives a marshal/parse round trip.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"timeout": 2500, "mem_type": "ack", "benchmark": {"T": 5, "Distribution": "zipf"}}`))
	f.Add([]byte(`{"address": {"1": "tcp://a:1"}, "http_address": {"1": "b:2"}, "zipfian_s": 1.5}`))
	f.Add([]byte(`{"policy": 1}`))
	f.Add([]byte(`{"benchmark": {"K": 1}}`))
	f.Add([]byte(`{"timeout": "x"}`))
	f.Add([]byte("{\n\"a\": }"))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal accepted config: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		back.set, cfg.set = nil, nil
		if len(back.Addrs) == 0 && len(cfg.Addrs) == 0 {
			back.Addrs, cfg.Addrs = nil, nil
		}
		if len(back.HTTPAddrs) == 0 && len(cfg.HTTPAddrs) == 0 {
			back.HTTPAddrs, cfg.HTTPAddrs = nil, nil
		}
		if !reflect.DeepEqual(cfg, back) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", cfg, back)
		}
		_ = cfg.Validate(4) // never panics
	})
}

// FuzzParseIPs: ParseIPs never panics, and accepted hosts are clean and parse back identically.
func FuzzParseIPs(f *testing.F) {
	f.Add("127.0.0.1\n127.0.0.1\n")
	f.Add("# c\n\n10.0.0.1 # x\r\n::1\n")
	f.Add("a:1\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		hosts, err := ParseIPs(strings.NewReader(text))
		if err != nil {
			return
		}
		if len(hosts) == 0 || len(hosts) > MaxNodes {
			t.Fatalf("%d hosts accepted", len(hosts))
		}
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, " \t\n#/") {
				t.Fatalf("host %q accepted", h)
			}
			if strings.IndexFunc(h, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
				t.Fatalf("host %q with a control character accepted", h)
			}
		}
		again, err := ParseIPs(strings.NewReader(strings.Join(hosts, "\n")))
		if err != nil || !reflect.DeepEqual(hosts, again) {
			t.Fatalf("hosts %q do not parse back: %q, %v", hosts, again, err)
		}
		nodes := Default().Nodes(hosts)
		if len(nodes) != len(hosts) {
			t.Fatalf("%d nodes for %d hosts", len(nodes), len(hosts))
		}
	})
}
