package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseIPs(t *testing.T) {
	in := "# replicas\n" +
		"127.0.0.1\n" +
		"\n" +
		"   \n" +
		"  10.0.0.2   # second, indented\n" +
		"\t# a whole-line comment\n" +
		"node3.example.org\n" +
		"::1\n" +
		"fe80::1234:5678\n"
	hosts, err := ParseIPs(strings.NewReader(in))
	require.NoError(t, err)
	assert.Equal(t, []string{"127.0.0.1", "10.0.0.2", "node3.example.org", "::1", "fe80::1234:5678"}, hosts)
}

func TestParseIPsCRLF(t *testing.T) {
	hosts, err := ParseIPs(strings.NewReader("127.0.0.1\r\n# c\r\n\r\n127.0.0.2\r\n2001:db8::1\r\n127.0.0.4"))
	require.NoError(t, err)
	assert.Equal(t, []string{"127.0.0.1", "127.0.0.2", "2001:db8::1", "127.0.0.4"}, hosts)
}

func TestParseIPsRefusesPortsAndJunk(t *testing.T) {
	for _, in := range []struct{ text, want string }{
		{"127.0.0.1\n127.0.0.1:3735\n", "line 2"},
		{"host.example:80\n", "give the host only"},
		{"[::1]:3735\n", "line 1"},
		{"10.0.0.1 10.0.0.2\n", "not a host name"},
		{"10.0.0.1\tx\n", "not a host name"},
		{"tcp://10.0.0.1\n", "not a host name"},
		{"a\nb\n\n# c\nd e\n", "line 5"},
	} {
		_, err := ParseIPs(strings.NewReader(in.text))
		require.Error(t, err, "%q", in.text)
		assert.Contains(t, err.Error(), in.want, "%q", in.text)
	}
}

func TestParseIPsEmpty(t *testing.T) {
	for _, in := range []string{"", "\n\n", "# only a comment\n   \n\t\n", "\r\n#x\r\n"} {
		hosts, err := ParseIPs(strings.NewReader(in))
		require.Error(t, err, "%q", in)
		assert.Nil(t, hosts)
		assert.Contains(t, err.Error(), "no hosts")
	}
}

func TestParseIPsTooMany(t *testing.T) {
	var b strings.Builder
	for i := 0; i < MaxNodes; i++ {
		b.WriteString("127.0.0.1\n")
	}
	hosts, err := ParseIPs(strings.NewReader(b.String()))
	require.NoError(t, err)
	assert.Len(t, hosts, MaxNodes)

	b.WriteString("127.0.0.1\n")
	_, err = ParseIPs(strings.NewReader(b.String()))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1025 hosts")
}

func TestReadIPs(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ips.txt")
	require.NoError(t, os.WriteFile(p, []byte("127.0.0.1\n127.0.0.1\n"), 0o600))
	hosts, err := ReadIPs(p)
	require.NoError(t, err)
	assert.Equal(t, []string{"127.0.0.1", "127.0.0.1"}, hosts)

	bad := filepath.Join(dir, "bad.txt")
	require.NoError(t, os.WriteFile(bad, []byte("1.2.3.4:5\n"), 0o600))
	_, err = ReadIPs(bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad)

	_, err = ReadIPs(filepath.Join(dir, "nope.txt"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ips:")
}

func TestShippedIPsFile(t *testing.T) {
	p := filepath.Join("..", "bin", "ips.txt")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no %s in this tree", p)
	}
	hosts, err := ReadIPs(p)
	require.NoError(t, err)
	assert.Len(t, hosts, 4)
}

func TestNodesFromHosts(t *testing.T) {
	nodes := Default().Nodes([]string{"127.0.0.1", "10.0.0.2", "h3", "::1"})
	require.Len(t, nodes, 4)
	assert.Equal(t, Node{ID: 1, Host: "127.0.0.1", PeerAddr: "127.0.0.1:3735", HTTPAddr: "127.0.0.1:8070"}, nodes[0])
	assert.Equal(t, Node{ID: 2, Host: "10.0.0.2", PeerAddr: "10.0.0.2:3736", HTTPAddr: "10.0.0.2:8071"}, nodes[1])
	assert.Equal(t, Node{ID: 3, Host: "h3", PeerAddr: "h3:3737", HTTPAddr: "h3:8072"}, nodes[2])
	assert.Equal(t, Node{ID: 4, Host: "::1", PeerAddr: "[::1]:3738", HTTPAddr: "[::1]:8073"}, nodes[3])
	for i, n := range nodes {
		assert.Equal(t, i+1, n.ID)
	}
}

func TestNodesPortsForManyNodes(t *testing.T) {
	hosts := make([]string, 100)
	for i := range hosts {
		hosts[i] = "127.0.0.1"
	}
	nodes := Default().Nodes(hosts)
	require.Len(t, nodes, 100)
	seen := map[string]bool{}
	for i, n := range nodes {
		id := i + 1
		assert.Equal(t, id, n.ID)
		assert.Equal(t, "127.0.0.1:"+strconv.Itoa(PeerPortBase+id), n.PeerAddr)
		assert.Equal(t, "127.0.0.1:"+strconv.Itoa(HTTPPortBase+id), n.HTTPAddr)
		assert.False(t, seen[n.PeerAddr] || seen[n.HTTPAddr], "port reused at node %d", id)
		seen[n.PeerAddr], seen[n.HTTPAddr] = true, true
	}
}

func TestNodesExplicitAddressesOverride(t *testing.T) {
	c := Default()
	c.Addrs = map[string]string{"1": "tcp://10.1.0.1:9001", "2": "10.1.0.2:9002", "3": "[fd00::3]:9003"}
	c.HTTPAddrs = map[string]string{"1": "http://10.1.0.1:80", "2": "10.1.0.2:81", "3": "https://web3:443"}
	nodes := c.Nodes([]string{"127.0.0.1", "127.0.0.1", "127.0.0.1"})
	require.Len(t, nodes, 3)
	assert.Equal(t, Node{ID: 1, Host: "127.0.0.1", PeerAddr: "10.1.0.1:9001", HTTPAddr: "10.1.0.1:80"}, nodes[0])
	assert.Equal(t, Node{ID: 2, Host: "127.0.0.1", PeerAddr: "10.1.0.2:9002", HTTPAddr: "10.1.0.2:81"}, nodes[1])
	assert.Equal(t, Node{ID: 3, Host: "127.0.0.1", PeerAddr: "[fd00::3]:9003", HTTPAddr: "web3:443"}, nodes[2])
}

func TestNodesAddressMapsDoNotAddNodes(t *testing.T) {
	// ips.txt defines the nodes: maps with more entries, or without hosts, add none.
	c := Default()
	c.Addrs = map[string]string{"1": "tcp://10.1.0.1:9001", "2": "10.1.0.2:9002", "3": "c:1"}
	assert.Empty(t, c.Nodes(nil))
	nodes := c.Nodes([]string{"a", "b"})
	require.Len(t, nodes, 2)
	assert.Equal(t, Node{ID: 1, Host: "a", PeerAddr: "10.1.0.1:9001", HTTPAddr: "a:8070"}, nodes[0])
	assert.Equal(t, Node{ID: 2, Host: "b", PeerAddr: "10.1.0.2:9002", HTTPAddr: "b:8071"}, nodes[1])
	err := c.Validate(len(nodes))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `address: key "3" is not a node ID in [1, 2]`)
}

func TestNodesOneEntryMapsKeepEveryHost(t *testing.T) {
	// The original prototype's default file overrides node 1 only: the run keeps every host.
	c := Default()
	c.Addrs = map[string]string{"1": "tcp://127.0.0.1:3735"}
	c.HTTPAddrs = map[string]string{"1": "http://127.0.0.1:8070"}
	nodes := c.Nodes([]string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"})
	require.Len(t, nodes, 4)
	assert.Equal(t, Node{ID: 1, Host: "127.0.0.1", PeerAddr: "127.0.0.1:3735", HTTPAddr: "127.0.0.1:8070"}, nodes[0])
	assert.Equal(t, Node{ID: 4, Host: "127.0.0.1", PeerAddr: "127.0.0.1:3738", HTTPAddr: "127.0.0.1:8073"}, nodes[3])
	require.NoError(t, c.Validate(4))
}

func TestNodesPartialOverride(t *testing.T) {
	// Only node 2's HTTP address is given: the others keep the derived ones.
	c := Default()
	c.HTTPAddrs = map[string]string{"2": "http://api:9999"}
	nodes := c.Nodes([]string{"a", "b", "c"})
	require.Len(t, nodes, 3)
	assert.Equal(t, "a:8070", nodes[0].HTTPAddr)
	assert.Equal(t, "api:9999", nodes[1].HTTPAddr)
	assert.Equal(t, "b:3736", nodes[1].PeerAddr)
	assert.Equal(t, "c:8072", nodes[2].HTTPAddr)
	require.NoError(t, c.Validate(3))
}

func TestValidateRefusesBadAddressOverrides(t *testing.T) {
	full := map[string]string{"1": "a:1", "2": "b:1", "3": "c:1", "4": "d:1"}
	for name, m := range map[string]map[string]string{
		"beyond ips.txt": {"1": "a:1", "2": "b:1", "3": "c:1", "4": "d:1", "5": "e:1"},
		"node 0":         {"0": "a:1", "1": "b:1"},
		"non-numeric":    {"1": "a:1", "four": "d:1"},
		"empty string":   {"1": "a:1", "4": ""},
		"no port":        {"2": "tcp://b"},
	} {
		c := Default()
		c.Addrs = m
		err := c.Validate(4)
		if assert.Error(t, err, "address %s", name) {
			assert.Contains(t, err.Error(), "address:", name)
		}
		c = Default()
		c.Addrs = full
		c.HTTPAddrs = m
		err = c.Validate(4)
		if assert.Error(t, err, "http_address %s", name) {
			assert.Contains(t, err.Error(), "http_address:", name)
			assert.NotContains(t, strings.ReplaceAll(err.Error(), "http_address", ""), "address:", name)
		}
	}
	c := Default()
	c.Addrs = full
	c.HTTPAddrs = full
	assert.NoError(t, c.Validate(4))
	c.Addrs = map[string]string{"3": "c:1"}
	assert.NoError(t, c.Validate(4), "a partial map overrides single nodes")
}

func TestStripScheme(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://h:1":     "h:1",
		"http://h:2":    "h:2",
		"https://h:3":   "h:3",
		"h:4":           "h:4",
		"[::1]:5":       "[::1]:5",
		"tcp://[::1]:6": "[::1]:6",
	} {
		assert.Equal(t, want, stripScheme(in), in)
	}
}

func TestParseIPsRefusesControlCharacters(t *testing.T) {
	for _, in := range []string{"127.0.0.1\r127.0.0.2\r", "0\r0\n", "a\x00b\n", "host\x1b[31m\n"} {
		_, err := ParseIPs(strings.NewReader(in))
		assert.Error(t, err, "%q", in)
	}
}
