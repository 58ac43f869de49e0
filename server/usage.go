package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// synopsis is the first part of server -h.
const synopsis = `usage: server -sim [flags]          every node of the ips file in this process, in real time
       server -id I [flags]         node I alone, over TCP
       server -keygen [flags]       create the keys of every node
       server -check-config [-config F] [-ips F] [-algorithm A] [-set k=v]
                                    check a config and exit
       server -migrate-config OLD.json [-ips F] [-out F]
                                    convert the original prototype's config
       server -virtual -algorithm P -n N -net lan|wan -duration 30s [-rate R] [-seed S] [-out F]
                                    simulate N replicas in virtual time
       server -virtual -scenario SPEC [-small] [-only_n N,...] [-results DIR] [-out F]
                                    an experiment spec by name or file, a JSON line per run
`

// usageFlag is how server -h shows one flag. Empty fields come from the registered flag: arg
// from flag.UnquoteUsage, help from its usage, def from its default (left out when zero or when
// the help states the default itself). They are set for glog's flags, whose own texts say
// nothing of this program, and for flags whose type alone says little.
type usageFlag struct {
	name, arg, help, def string
}

// usageGroup is a heading of server -h and its flags; trim is a prefix the heading makes
// redundant, left out of the flags' help.
type usageGroup struct {
	title string
	trim  string
	flags []usageFlag
}

// usageGroups are the flags of server -h by mode, logging last. Every registered flag is in
// exactly one group (server/usage_test.go checks it); one that is not still shows, under "other".
var usageGroups = []usageGroup{
	{title: "common to -sim and -id (-check-config, -keygen and -virtual read some of them too)", flags: []usageFlag{
		{name: "config"},
		{name: "ips"},
		{name: "algorithm"},
		{name: "set", arg: "KEY=VALUE"},
		{name: "data_dir"},
		{name: "log_level"},
		{name: "log_dir", help: "directory of server.<pid>.log and of glog's files", def: "."},
		{name: "cpuprofile"},
		{name: "memprofile"},
		{name: "pprof", arg: "ADDR"},
	}},
	{title: "-sim, every node in this process", flags: []usageFlag{
		{name: "sim"},
	}},
	{title: "-id I, one node over TCP", flags: []usageFlag{
		{name: "id", arg: "I"},
		{name: "keys"},
	}},
	{title: "-virtual, the virtual-time simulator", trim: "with -virtual: ", flags: []usageFlag{
		{name: "virtual"},
		{name: "scenario"},
		{name: "small"},
		{name: "only_n"},
		{name: "results"},
		{name: "n"},
		{name: "duration"},
		{name: "warmup"},
		{name: "seed"},
		{name: "quiet"},
		{name: "rate"},
		{name: "tx_size"},
		{name: "tick"},
		{name: "zipf"},
		{name: "client_latency"},
		{name: "net"},
		{name: "uplink"},
		{name: "downlink"},
		{name: "latency"},
		{name: "jitter"},
		{name: "loss"},
		{name: "latency_matrix"},
		{name: "uplink_fifo"},
		{name: "async"},
		{name: "partition"},
		{name: "cpu"},
		{name: "signatures"},
		{name: "byz"},
		{name: "strategy"},
		{name: "fit"},
		{name: "msize"},
		{name: "bsize"},
		{name: "proofs"},
		{name: "q"},
		{name: "timeout"},
		{name: "propose_timeout"},
		{name: "batch_timeout"},
		{name: "lb"},
		{name: "d"},
	}},
	{title: "tools", flags: []usageFlag{
		{name: "keygen"},
		{name: "check-config"},
		{name: "migrate-config", arg: "OLD.json"},
		{name: "out"},
	}},
	{title: "logging (glog, verbose protocol tracing)", flags: []usageFlag{
		{name: "v", arg: "N", help: "glog verbosity: 3 or more logs every message a replica receives"},
		{name: "vmodule", arg: "PATTERN=N,...", help: "glog verbosity per source file, e.g. replica=3"},
		{name: "logtostderr", help: "glog writes to standard error instead of files in -log_dir"},
		{name: "alsologtostderr", help: "glog writes to standard error as well as to files"},
		{name: "stderrthreshold", arg: "SEVERITY", help: "glog copies messages of this severity or above (INFO, WARNING, ERROR, FATAL) to standard error", def: "ERROR"},
		{name: "log_link", arg: "DIR", help: "glog adds symbolic links to its files in this directory"},
		{name: "logbuflevel", arg: "N", help: "glog buffers messages of this level or lower (-1: none, 0: INFO only, ...)"},
		{name: "log_backtrace_at", arg: "FILE:N", help: "glog prints a stack trace when logging hits line N of FILE"},
	}},
}

const (
	usageWidth  = 100 // columns of server -h
	usageColumn = 28  // where help starts, after a short enough flag
)

// printUsage writes server -h: the synopsis, then the flags of fs by group. A flag of fs that no
// group lists comes before the logging group, under "other"; a listed flag fs lacks is left out.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, synopsis)
	listed := map[string]bool{}
	for _, g := range usageGroups {
		for _, u := range g.flags {
			listed[u.name] = true
		}
	}
	var other []usageFlag
	fs.VisitAll(func(f *flag.Flag) {
		if !listed[f.Name] {
			other = append(other, usageFlag{name: f.Name})
		}
	})
	groups := usageGroups
	if len(other) > 0 {
		last := len(groups) - 1
		groups = append(append(groups[:last:last], usageGroup{title: "other", flags: other}), groups[last])
	}
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, u := range g.flags {
			if f := fs.Lookup(u.name); f != nil {
				printFlag(w, f, u, g.trim)
			}
		}
	}
}

// printFlag writes one flag: "  -name ARG", its help from usageColumn (on the next line when the
// name is too long) wrapped to usageWidth, and its default once.
func printFlag(w io.Writer, f *flag.Flag, u usageFlag, trim string) {
	arg, help := flag.UnquoteUsage(f)
	if u.arg != "" {
		arg = u.arg
	}
	if u.help != "" {
		help = u.help
	}
	help = strings.TrimPrefix(help, trim)
	def := u.def
	if def == "" && !strings.Contains(help, "(default") && !zeroDefault(f) {
		def = f.DefValue
		if g, ok := f.Value.(flag.Getter); ok {
			if _, isString := g.Get().(string); isString {
				def = fmt.Sprintf("%q", def)
			}
		}
	}
	if def != "" {
		help += " (default " + def + ")"
	}
	head := "  -" + f.Name
	if arg != "" {
		head += " " + arg
	}
	indent := strings.Repeat(" ", usageColumn)
	line := head
	if len(head)+2 > usageColumn {
		fmt.Fprintln(w, head)
		line = indent
	} else {
		line += strings.Repeat(" ", usageColumn-len(head))
	}
	for i, word := range strings.Fields(help) {
		if i > 0 && len(line)+1+len(word) > usageWidth {
			fmt.Fprintln(w, line)
			line = indent + word
			continue
		}
		if i > 0 {
			line += " "
		}
		line += word
	}
	fmt.Fprintln(w, line)
}

// zeroDefault reports whether f's default is its type's zero value: false, 0, "", 0s.
func zeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return true
	}
	return false
}
