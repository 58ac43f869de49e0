// Command server runs Stratus replicas.
//
//	server -sim [-algorithm hotstuff] [-config config.json] [-ips ips.txt] [-log_dir .] [-log_level info] [-data_dir DIR]
//	server -id I [-keys keys] [-data_dir data] [same flags]
//	server -virtual [-algorithm hotstuff] [-n 16] [-net wan] [-duration 30s] [-out FILE]
//	server -virtual -scenario SPEC [-small] [-only_n N,...] [-results DIR] [-out FILE]
//	server -keygen [-config config.json] [-ips ips.txt] [-keys keys]
//	server -check-config [-config config.json] [-ips ips.txt] [-algorithm A] [-set k=v]
//	server -migrate-config old.json [-ips ips.txt] [-out new.json]
//
// With -sim every node listed in ips.txt runs in this process: replicas are goroutines that talk over
// Go channels, and each serves its HTTP API on port 8069+i. With -id the process runs node I only
// and talks to the others over authenticated TCP (peer port 3734+I), with its key from the -keys
// directory that -keygen fills. The config's byzNo/strategy/byzantine keys make some nodes Byzantine.
// -virtual simulates N replicas in virtual time over a modelled network (package simnet) and writes
// what it measured as JSON. -check-config reports every problem of a config for the run and exits;
// -migrate-config converts the original prototype's config.json.
//
// main.go wires each node: a replica.Replica on a transport endpoint (the in-process hub, or TCP),
// wrapped in a shaper when the config asks for link emulation or HTTP faults, its statistics, its
// Byzantine adversary if any, and its api.Server. docs/binaries.md lists the flags;
// docs/design.md §2.2 places the command among the packages.
package main
