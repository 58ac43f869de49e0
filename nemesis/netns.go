package nemesis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// netns is a network namespace of the run's own, where each replica listens on its own loopback
// address (127.0.1.i) and dials from it, so that tc can cut the link between two replicas in the
// kernel: packets are silently lost in both directions, TCP sees no reset, and only the
// transport's own timeouts and the protocol's can tell. The loopback device's root qdisc is an
// htb with a default class that passes everything and a class whose pfifo holds no packet; a cut
// is a pair of u32 filters (A→B and B→A) into that class.
type netns struct {
	name   string
	ip, tc string
	mu     sync.Mutex
	prio   int
}

// replicaIP is replica i's address inside the namespace.
func replicaIP(i int) string { return fmt.Sprintf("127.0.1.%d", i) }

// openNetns creates the namespace and its qdiscs, or says why it cannot.
func openNetns(name string) (*netns, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("not running as root")
	}
	ns := &netns{name: name}
	var err error
	if ns.ip, err = exec.LookPath("ip"); err != nil {
		return nil, errors.New("no ip command (iproute2)")
	}
	if ns.tc, err = exec.LookPath("tc"); err != nil {
		return nil, errors.New("no tc command (iproute2)")
	}
	if out, err := exec.Command(ns.ip, "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	for _, step := range [][]string{
		{ns.ip, "link", "set", "lo", "up"},
		{ns.tc, "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "1", "r2q", "100000"},
		{ns.tc, "class", "add", "dev", "lo", "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit"},
		{ns.tc, "class", "add", "dev", "lo", "parent", "1:", "classid", "1:2", "htb", "rate", "10gbit"},
		{ns.tc, "qdisc", "add", "dev", "lo", "parent", "1:2", "handle", "2:", "pfifo", "limit", "0"},
	} {
		if err := ns.run(step...); err != nil {
			ns.close()
			return nil, err
		}
	}
	return ns, nil
}

// run runs a command inside the namespace.
func (ns *netns) run(args ...string) error {
	out, err := exec.Command(ns.ip, append([]string{"netns", "exec", ns.name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s (in namespace %s): %v: %s", strings.Join(args, " "), ns.name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// wrap makes cmd run inside the namespace. ip netns exec enters it and executes the command in
// its own process, so the PID is the command's.
func (ns *netns) wrap(cmd *exec.Cmd) {
	cmd.Args = append([]string{"ip", "netns", "exec", ns.name, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = ns.ip
}

// dial opens a connection from inside the namespace: a goroutine locked to its thread enters it
// and dials; the thread is never unlocked, so it ends with the goroutine and no other goroutine
// runs in the namespace by accident.
func (ns *netns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return ns.dialFrom(ctx, nil, network, addr)
}

// reachable reports whether replica a can open a connection to replica b's peer port within
// 300 ms: the check that a cut holds and that a healed link carries again.
func (ns *netns) reachable(a, b int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c, err := ns.dialFrom(ctx, &net.TCPAddr{IP: net.ParseIP(replicaIP(a))}, "tcp", replicaIP(b)+":7000")
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (ns *netns) dialFrom(ctx context.Context, local net.Addr, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns.name)
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
		if err != nil {
			ch <- result{nil, fmt.Errorf("entering namespace %s: %w", ns.name, err)}
			return
		}
		d := net.Dialer{LocalAddr: local}
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// cut loses every packet between replicas a and b, and returns the filters' priorities for uncut.
func (ns *netns) cut(a, b int) ([]int, error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var prios []int
	for _, p := range [][2]int{{a, b}, {b, a}} {
		ns.prio++
		prio := 100 + ns.prio
		if err := ns.run(ns.tc, "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", fmt.Sprint(prio),
			"u32", "match", "ip", "src", replicaIP(p[0])+"/32", "match", "ip", "dst", replicaIP(p[1])+"/32", "flowid", "1:2"); err != nil {
			ns.uncutLocked(prios)
			return nil, err
		}
		prios = append(prios, prio)
	}
	return prios, nil
}

// uncut removes the filters of a cut.
func (ns *netns) uncut(prios []int) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.uncutLocked(prios)
}

func (ns *netns) uncutLocked(prios []int) error {
	var errs []error
	for _, p := range prios {
		errs = append(errs, ns.run(ns.tc, "filter", "del", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", fmt.Sprint(p)))
	}
	return errors.Join(errs...)
}

// close removes the namespace (its qdiscs and filters go with it).
func (ns *netns) close() {
	_ = exec.Command(ns.ip, "netns", "delete", ns.name).Run()
}
