package main

import (
	"fmt"
	"net"

	"github.com/stratusbft/stratus/config"
)

// Processors for a replica that shares its machine with other replicas of the run.
//
// Go gives every process as many processors (Ps) as the machine has cores. When several replica
// processes share the machine — bin/run.sh, bin/sweep.sh -m tcp, the tests — that is several
// times more Ps than cores, and each process's runtime acts as if the cores were its own: a
// goroutine made runnable wakes a thread for an idle P, which finds little to do and sleeps
// again, and the operating system switches between many more threads than there are cores. A
// process per replica on the 2-core development machine switched context 33,000 times a second
// at N=4, about 8 µs of a core each by a system-wide profile (docs/performance.md), so a replica
// process that shares the machine runs with its share of the cores instead, unless GOMAXPROCS
// says otherwise.

// sharedProcs returns the number of Ps for replica id: cores, the Ps the runtime chose for this
// process (the machine's cores, or fewer under a CPU limit), divided among the replicas that
// run on its machine, at least one. procs is 0 when nothing changes: GOMAXPROCS is set in the
// environment (env, the user's choice), the replica is alone on its machine, or the share is all
// of cores. here is the number of replicas on its machine, itself included.
func sharedProcs(nodes []config.Node, id, cores int, env string) (procs, here int) {
	here = replicasHere(nodes, id)
	if env != "" || here < 2 {
		return 0, here
	}
	share := max(1, cores/here)
	if share >= cores {
		return 0, here
	}
	return share, here
}

// replicasHere counts the replicas that listen on replica id's machine, itself included: those
// whose peer address has its host, and when that host is a loopback address, every replica on
// a loopback address (the loopback addresses of a network namespace all belong to its machine).
func replicasHere(nodes []config.Node, id int) int {
	if id < 1 || id > len(nodes) {
		return 0
	}
	self := peerHost(nodes[id-1])
	n := 0
	for _, nd := range nodes {
		h := peerHost(nd)
		if h == self || (config.LoopbackHost(self) && config.LoopbackHost(h)) {
			n++
		}
	}
	return n
}

// peerHost is the host a node's peer address binds.
func peerHost(nd config.Node) string {
	if h, _, err := net.SplitHostPort(nd.PeerAddr); err == nil {
		return h
	}
	return nd.Host
}

// procsNote says how many Ps the process runs with and why, for the start line and the log.
func procsNote(procs, here, cores int) string {
	return fmt.Sprintf("GOMAXPROCS %d: %d replicas share %d cores (set GOMAXPROCS to choose)", procs, here, cores)
}
