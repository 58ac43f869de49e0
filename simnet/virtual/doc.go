// Package virtual runs the simulator at scale, the way server -virtual and the experiment layer
// measure a protocol: compact transactions (one value standing for a batch, so that N=400 does
// not hash every transaction at every replica), open-loop client load per replica, timeouts and
// block and microblock sizes fitted to the network, and the measurement of throughput, latency,
// bandwidth by role and CPU use (virtual.go); the run that a config file and server's flags
// describe (build.go). The paper's experiments are specs run by package experiment.
//
// It sits on package simnet, whose Sim, links, CPU model and checker it drives, and below server
// and experiment. See docs/design.md §6.6.
package virtual
