package config

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// Node is where one replica lives.
type Node struct {
	ID       int
	Host     string
	PeerAddr string // host:port for replica-to-replica traffic
	HTTPAddr string // host:port of the HTTP API
}

// ReadIPs reads an ips.txt file: one host per line, blank lines and '#' comments ignored.
func ReadIPs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ips: %w", err)
	}
	defer f.Close()
	hosts, err := ParseIPs(f)
	if err != nil {
		return nil, fmt.Errorf("ips: %s: %w", path, err)
	}
	return hosts, nil
}

// ParseIPs parses the contents of an ips.txt file.
func ParseIPs(r io.Reader) ([]string, error) {
	var hosts []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if strings.IndexFunc(text, func(r rune) bool { return r < 0x21 || r == 0x7f }) >= 0 {
			return nil, fmt.Errorf("line %d: %q is not a host name or IP address (white space or a control character; one host per line)", line, text)
		}
		if strings.ContainsAny(text, "/") {
			return nil, fmt.Errorf("line %d: %q is not a host name or IP address", line, text)
		}
		if strings.Contains(text, ":") && net.ParseIP(text) == nil {
			return nil, fmt.Errorf("line %d: %q: give the host only; ports are 3734+i and 8069+i", line, text)
		}
		hosts = append(hosts, text)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("no hosts (one host per line; blank lines and # comments are ignored)")
	}
	if len(hosts) > MaxNodes {
		return nil, fmt.Errorf("%d hosts; at most %d are supported", len(hosts), MaxNodes)
	}
	return hosts, nil
}

// Nodes returns the N nodes of a run, one per host of ips.txt: node i on hosts[i-1] with peer
// port 3734+i and HTTP port 8069+i, unless the address or http_address map overrides that node's
// address. The maps never add nodes: Validate refuses an entry for a node ips.txt does not list.
func (c Config) Nodes(hosts []string) []Node {
	nodes := make([]Node, len(hosts))
	for i := 1; i <= len(hosts); i++ {
		node := Node{ID: i, Host: hosts[i-1]}
		node.PeerAddr = net.JoinHostPort(node.Host, strconv.Itoa(PeerPortBase+i))
		node.HTTPAddr = net.JoinHostPort(node.Host, strconv.Itoa(HTTPPortBase+i))
		if a := c.Addrs[strconv.Itoa(i)]; a != "" {
			node.PeerAddr = stripScheme(a)
		}
		if a := c.HTTPAddrs[strconv.Itoa(i)]; a != "" {
			node.HTTPAddr = stripScheme(a)
		}
		nodes[i-1] = node
	}
	return nodes
}

func stripScheme(a string) string {
	if i := strings.Index(a, "://"); i >= 0 {
		return a[i+3:]
	}
	return a
}
