package nemesis

import (
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// listenIn opens a listener inside the namespace.
func listenIn(t *testing.T, ns *netns, addr string) net.Listener {
	t.Helper()
	ch := make(chan any, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends in the namespace
		f, err := os.Open("/var/run/netns/" + ns.name)
		require.NoError(t, err)
		require.NoError(t, unix.Setns(int(f.Fd()), unix.CLONE_NEWNET))
		f.Close()
		l, err := net.Listen("tcp", addr)
		if err != nil {
			ch <- err
			return
		}
		ch <- l
	}()
	switch v := (<-ch).(type) {
	case net.Listener:
		t.Cleanup(func() { v.Close() })
		go func() {
			for {
				c, err := v.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return v
	default:
		t.Fatalf("listen %s in the namespace: %v", addr, v)
		return nil
	}
}

// A kernel cut loses the packets of both directions between two replicas and nothing else, and
// ends when it is removed. Without root or iproute2 the nemesis says why and cuts links with
// /drop only; so does this test.
func TestKernelCutHoldsAndHeals(t *testing.T) {
	ns, err := openNetns("stratus-nemesis-test-" + time.Now().Format("150405.000000"))
	if err != nil {
		t.Skipf("no kernel link cuts here: %v", err)
	}
	defer ns.close()
	for i := 1; i <= 3; i++ {
		listenIn(t, ns, replicaIP(i)+":7000")
	}
	require.True(t, ns.reachable(1, 2))
	prios, err := ns.cut(1, 2)
	require.NoError(t, err)
	require.False(t, ns.reachable(1, 2), "1 -> 2 went through the cut")
	require.False(t, ns.reachable(2, 1), "2 -> 1 went through the cut")
	require.True(t, ns.reachable(1, 3), "the cut between 1 and 2 stopped 1 -> 3")
	require.True(t, ns.reachable(3, 2), "the cut between 1 and 2 stopped 3 -> 2")
	require.NoError(t, ns.uncut(prios))
	require.True(t, ns.reachable(1, 2), "the link stayed cut after uncut")
	require.True(t, ns.reachable(2, 1), "the link stayed cut after uncut")
}

// With kernel cuts, the schedule has some; without, none; the same seed gives the same schedule.
func TestScheduleKernelCuts(t *testing.T) {
	count := func(tc bool) int {
		k := 0
		for s := int64(1); s <= 20; s++ {
			for _, f := range Schedule(s, 4, 2*time.Minute, tc) {
				if f.Kind == Cut {
					k++
					require.NotEqual(t, f.Node, f.Peer)
				}
			}
		}
		return k
	}
	require.Zero(t, count(false))
	require.Positive(t, count(true))
	require.Equal(t, Schedule(5, 5, time.Minute, true), Schedule(5, 5, time.Minute, true))
}
