package simnet

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

// linkSim is a 3-replica simulation with the given links whose replicas never start, so only the
// messages a test puts on the links travel; it records when each reaches its receiver's Core.
func linkSim(t *testing.T, l Links, latency time.Duration) (*Sim, *[]arrival) {
	t.Helper()
	s, err := New(Options{N: 3, Spec: spec("hotstuff"), Seed: 1, Latency: latency, Links: l, Absent: nil})
	require.NoError(t, err)
	s.queue = nil // no Start events: the cores stay idle
	var got []arrival
	s.tap = func(from, to *Node, m types.Message) {
		got = append(got, arrival{from: from.ID, to: to.ID, kind: m.Kind(), at: s.Now()})
	}
	return s, &got
}

type arrival struct {
	from, to types.NodeID
	kind     types.Kind
	at       time.Duration
}

func microblock(size int) (*types.MicroBlock, int) {
	mb := types.NewMicroBlock(1, 1, []types.Tx{types.NewCompactTx([]byte("mb-test-tag-0001"), size/100, 100)})
	mb.Sig = make([]byte, types.SigSize)
	return mb, types.WireSize(mb)
}

func vote() (*types.Vote, int) {
	v := &types.Vote{View: 1, Voter: 1, Sig: make([]byte, types.SigSize)}
	return v, types.WireSize(v)
}

// TestUplinkSerialization: a message occupies the sender's uplink for size ÷ rate, copies queue
// one after the other, then travel the latency.
func TestUplinkSerialization(t *testing.T) {
	s, got := linkSim(t, Links{Uplink: 8e6}, 10*time.Millisecond) // 1 MB/s
	mb, size := microblock(100_000)
	require.InDelta(t, 100_000, size, 3_000, "a compact transaction costs the bytes it stands for")
	s.enqueueUp(s.Node(1), s.Node(2), mb, size)
	s.enqueueUp(s.Node(1), s.Node(3), mb, size)
	s.Run(time.Second)
	require.Len(t, *got, 2)
	tx := Serialization(size, 8e6)
	require.Equal(t, tx+10*time.Millisecond, (*got)[0].at)
	require.Equal(t, 2*tx+10*time.Millisecond, (*got)[1].at, "the second copy waits for the first")
	up, down := s.Queued(1)
	require.Zero(t, up+down)
}

// TestConsensusOvertakesData: a vote queued behind microblocks leaves right after the copy on
// the wire, before the queued ones.
func TestConsensusOvertakesData(t *testing.T) {
	s, got := linkSim(t, Links{Uplink: 8e6}, time.Millisecond)
	mb, size := microblock(50_000)
	v, vsize := vote()
	for i := 0; i < 3; i++ {
		s.enqueueUp(s.Node(1), s.Node(2), mb, size)
	}
	s.enqueueUp(s.Node(1), s.Node(2), v, vsize)
	s.Run(time.Second)
	require.Len(t, *got, 4)
	tx := Serialization(size, 8e6)
	require.Equal(t, types.KindMicroBlock, (*got)[0].kind)
	require.Equal(t, types.KindVote, (*got)[1].kind, "the vote goes right after the copy in progress")
	require.Equal(t, tx+Serialization(vsize, 8e6)+time.Millisecond, (*got)[1].at)
	require.Equal(t, types.KindMicroBlock, (*got)[3].kind)
}

// TestDownlinkQueue: two senders with unlimited uplinks share the receiver's downlink.
func TestDownlinkQueue(t *testing.T) {
	s, got := linkSim(t, Links{Downlink: 8e6}, 5*time.Millisecond)
	mb, size := microblock(100_000)
	s.enqueueUp(s.Node(1), s.Node(3), mb, size)
	s.enqueueUp(s.Node(2), s.Node(3), mb, size)
	s.Run(time.Second)
	require.Len(t, *got, 2)
	tx := Serialization(size, 8e6)
	require.Equal(t, 5*time.Millisecond+tx, (*got)[0].at)
	require.Equal(t, 5*time.Millisecond+2*tx, (*got)[1].at)
}

// TestLatencyMatrixAndAsyncWindow: the matrix gives each link its latency; inside a window every
// message gets the extra delay within its jitter.
func TestLatencyMatrixAndAsyncWindow(t *testing.T) {
	m := [][]time.Duration{{0, 10 * time.Millisecond, 70 * time.Millisecond}, {10 * time.Millisecond, 0, 5 * time.Millisecond}, {70 * time.Millisecond, 5 * time.Millisecond, 0}}
	s, got := linkSim(t, Links{Matrix: m, Async: []AsyncWindow{{From: 100 * time.Millisecond, To: 200 * time.Millisecond, Delay: 200 * time.Millisecond, Jitter: 100 * time.Millisecond}}}, time.Millisecond)
	v, size := vote()
	s.enqueueUp(s.Node(1), s.Node(2), v, size)
	s.enqueueUp(s.Node(1), s.Node(3), v, size)
	s.At(150*time.Millisecond, func() { s.enqueueUp(s.Node(2), s.Node(3), v, size) })
	s.Run(time.Second)
	require.Len(t, *got, 3)
	require.Equal(t, 10*time.Millisecond, (*got)[0].at)
	require.Equal(t, 70*time.Millisecond, (*got)[1].at)
	d := (*got)[2].at - 150*time.Millisecond - 5*time.Millisecond
	require.GreaterOrEqual(t, d, 100*time.Millisecond)
	require.LessOrEqual(t, d, 300*time.Millisecond)

	_, err := New(Options{N: 3, Spec: spec("hotstuff"), Links: Links{Matrix: m[:2]}})
	require.ErrorContains(t, err, "2 rows for 3 replicas")
}

// TestCrashEmptiesLinks: a replica that crashes loses what waits on its links, and after its
// restart its uplink carries new messages at once.
func TestCrashEmptiesLinks(t *testing.T) {
	s, got := linkSim(t, Links{Uplink: 8e6}, time.Millisecond)
	s.opts.Crash = map[types.NodeID]CrashPlan{1: {At: 50 * time.Millisecond, Down: 50 * time.Millisecond}}
	mb, size := microblock(100_000)
	for i := 0; i < 3; i++ {
		s.enqueueUp(s.Node(1), s.Node(2), mb, size)
	}
	s.At(50*time.Millisecond, func() { s.Node(1).crash() })
	s.At(100*time.Millisecond, func() {
		n := s.Node(1)
		n.Down = false // back, without starting a core: only the link matters here
		n.gen++
		v, vsize := vote()
		s.enqueueUp(n, s.Node(2), v, vsize)
	})
	s.Run(time.Second)
	require.Len(t, *got, 1, "the queued copies died with the crash")
	require.Equal(t, types.KindVote, (*got)[0].kind)
	require.Equal(t, 100*time.Millisecond+Serialization(int(types.WireSize(&types.Vote{View: 1, Voter: 1, Sig: make([]byte, types.SigSize)})), 8e6)+time.Millisecond, (*got)[0].at,
		"the restarted replica's uplink is free at once")
}
