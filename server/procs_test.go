package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/config"
)

func nodesOn(hosts ...string) []config.Node {
	return config.Config{}.Nodes(hosts)
}

func TestReplicasHere(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []config.Node
		id    int
		want  int
	}{
		{"one machine, one loopback address", nodesOn("127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"), 2, 4},
		{"one machine, loopback addresses of their own", nodesOn("127.0.0.1", "127.0.0.2", "127.0.0.3", "localhost"), 1, 4},
		{"a host each", nodesOn("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"), 3, 1},
		{"two hosts, two replicas each", nodesOn("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"), 4, 2},
		// A remote replica is not on this machine, whatever its neighbours' loopback addresses.
		{"a remote replica among loopback ones", nodesOn("127.0.0.1", "127.0.0.1", "10.0.0.9"), 3, 1},
		{"no such replica", nodesOn("127.0.0.1"), 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, replicasHere(tc.nodes, tc.id))
		})
	}
	// The address it binds decides, not the ips.txt host: a run on one machine may give every
	// node a loopback port of its own over ips.txt's hosts.
	c := config.Config{Addrs: map[string]string{"1": "127.0.0.1:4001", "2": "127.0.0.1:4002"}}
	require.Equal(t, 2, replicasHere(c.Nodes([]string{"10.0.0.1", "10.0.0.2"}), 1))
}

func TestSharedProcs(t *testing.T) {
	four := nodesOn("127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1")
	sixteen := make([]string, 16)
	for i := range sixteen {
		sixteen[i] = "127.0.0.1"
	}
	for _, tc := range []struct {
		name                string
		nodes               []config.Node
		cores               int
		env                 string
		wantProcs, wantHere int
	}{
		{"four replicas on two cores", four, 2, "", 1, 4},
		{"sixteen on two cores", nodesOn(sixteen...), 2, "", 1, 16},
		{"four on sixteen cores", four, 16, "", 4, 4},
		{"four on six cores: the share rounds down", four, 6, "", 1, 4},
		{"GOMAXPROCS set by the user", four, 2, "2", 0, 4},
		{"alone on its machine", nodesOn("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"), 2, "", 0, 1},
		{"one core: nothing to share", four, 1, "", 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			procs, here := sharedProcs(tc.nodes, 1, tc.cores, tc.env)
			require.Equal(t, tc.wantProcs, procs, "procs")
			require.Equal(t, tc.wantHere, here, "replicas here")
		})
	}
}
