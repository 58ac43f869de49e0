package config

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// CheckRun decodes config JSON, applies an -algorithm value and validates the result for the nodes
// of hosts (ips.txt). The error lists every problem at once, one line each naming its key: unknown
// and removed keys, type errors, the algorithm and invalid values. A key with a key or type
// problem keeps its default while the others are validated, so it is reported once.
func CheckRun(data []byte, hosts []string, algorithm string) (cfg Config, engine string, nodes []Node, err error) {
	cfg, decodeErr := Decode(data)
	var errs []error
	if decodeErr != nil {
		errs = append(errs, decodeErr)
	}
	engine, algErr := cfg.ApplyAlgorithm(algorithm)
	if algErr != nil {
		errs = append(errs, &FlagError{Flag: "-algorithm", Err: algErr})
	}
	nodes = cfg.Nodes(hosts)
	if err := cfg.Validate(len(nodes)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, "", nil, err
	}
	return cfg, engine, nodes, nil
}

// FlagError is a problem with a command-line flag rather than with the configuration file.
type FlagError struct {
	Flag string
	Err  error
}

func (e *FlagError) Error() string { return e.Flag + ": " + e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// OnlyFlags reports whether every problem err joins is a FlagError: the file itself is fine.
func OnlyFlags(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !OnlyFlags(e) {
				return false
			}
		}
		return true
	}
	var fe *FlagError
	return errors.As(err, &fe)
}

// AddressWarnings names the address and http_address overrides that would misplace a node when
// the cluster spans hosts: an override whose host is not the node's ips.txt host, and an override
// that binds a loopback address while other nodes are remote (no other host can reach it). They
// are warnings, not errors: a cluster on one machine overrides ports on purpose.
func (c Config) AddressWarnings(hosts []string) []string {
	nodes := c.Nodes(hosts)
	var remote []string
	for i, h := range hosts {
		if !LoopbackHost(h) {
			remote = append(remote, strconv.Itoa(i+1))
		}
	}
	var out []string
	check := func(key, kind string, m map[string]string, addr func(Node) string) {
		for _, n := range nodes { // an entry for a node ips.txt does not list is Validate's to report
			k := strconv.Itoa(n.ID)
			if m[k] == "" {
				continue
			}
			host, _, err := net.SplitHostPort(addr(n))
			if err != nil {
				continue
			}
			var why []string
			if host != n.Host {
				why = append(why, fmt.Sprintf("its host in ips.txt is %s", n.Host))
			}
			if LoopbackHost(host) {
				others := slices.DeleteFunc(slices.Clone(remote), func(s string) bool { return s == k })
				if len(others) > 0 {
					why = append(why, fmt.Sprintf("it is a loopback address while node(s) %s are remote, which cannot reach it", strings.Join(others, ", ")))
				}
			}
			if len(why) > 0 {
				out = append(out, fmt.Sprintf("%s: node %d %s address %s overrides ips.txt, but %s (remove the entry to use ips.txt)",
					key, n.ID, kind, m[k], strings.Join(why, ", and ")))
			}
		}
	}
	check("address", "peer", c.Addrs, func(n Node) string { return n.PeerAddr })
	check("http_address", "HTTP", c.HTTPAddrs, func(n Node) string { return n.HTTPAddr })
	return out
}

// LoopbackHost reports whether host (an ips.txt host or an address's host part) is "localhost" or
// a loopback IP: this machine, whichever replica names it.
func LoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
