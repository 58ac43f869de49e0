package mempool

// Backpressure: a replica whose uplink is behind makes no microblock, re-sends no push and
// refuses what would wait behind a full batch, instead of queueing more than the link can send.

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

func bpCfg() SharedConfig {
	c := byRefCfg()
	c.MaxBacklog = 100 * time.Millisecond
	return c
}

func TestBackpressureHoldsMicroblocksWhileTheUplinkIsBehind(t *testing.T) {
	r := newRig(t, 1, 4, bpCfg())
	r.m.SetView(1)
	r.env.Uplink.Backlog = 300 * time.Millisecond
	require.NoError(t, r.m.AddTxs(txs('x', 0, 10))) // a full microblock's worth
	require.Empty(t, pick[*types.MicroBlock](r.take()), "no microblock while the uplink is 300 ms behind")

	// Another full batch is refused at once, with the reason.
	err := r.m.AddTxs(txs('y', 0, 1))
	require.True(t, errors.Is(err, ErrFull), "%v", err)
	require.ErrorContains(t, err, "max_backlog 100ms")
	var fe *FullError
	require.True(t, errors.As(err, &fe))
	require.Equal(t, 300*time.Millisecond, fe.Backlog)

	// The uplink drains: the drain timer cuts the waiting microblock.
	r.env.Uplink.Backlog = 50 * time.Millisecond
	r.advance(250 * time.Millisecond)
	mbs := pick[*types.MicroBlock](r.take())
	require.Len(t, mbs, 1)
	require.Len(t, mbs[0].m.Txs, 10)
	require.NoError(t, r.m.AddTxs(txs('y', 0, 1)), "room again")
}

// What is left of the batch after the drain timer cut its full microblocks is cut by the batch
// timeout, as any batch: the drain's cut started a new batch, and the batch timer armed for the
// old one found nothing to cut. Without a timer for the rest, its transactions waited for the
// next submission, for good once the clients stopped (seen as pending transactions and waiting
// clients on one replica of a shaped run.sh N=4 after its load ended).
func TestBackpressureDrainLeavesNoTransactionBehind(t *testing.T) {
	cfg := bpCfg()
	cfg.BatchTimeout = time.Second // the drain timer (at 200 ms) comes first
	r := newRig(t, 1, 4, cfg)
	r.m.SetView(1)
	r.env.Uplink.Backlog = 300 * time.Millisecond
	require.NoError(t, r.m.AddTxs(txs('x', 0, 13))) // a full microblock's worth and 3 more
	require.Empty(t, pick[*types.MicroBlock](r.take()), "no microblock while the uplink is behind")
	r.env.Uplink.Backlog = 0
	r.advance(250 * time.Millisecond)
	require.Len(t, pick[*types.MicroBlock](r.take()), 1, "the full microblock, cut by the drain timer")
	r.advance(3 * cfg.BatchTimeout)
	mbs := pick[*types.MicroBlock](r.take())
	require.Len(t, mbs, 1, "the rest, cut at its batch timeout")
	require.Len(t, mbs[0].m.Txs, 3)
	require.Zero(t, r.m.Gauges().PendingTxs, "nothing left in the batch")
}

func TestBackpressureDefersRepushesOfQueuedCopies(t *testing.T) {
	cfg := bpCfg()
	cfg.PushTimeout = 200 * time.Millisecond
	r := newRig(t, 1, 4, cfg)
	r.m.SetView(1)
	require.NoError(t, r.m.AddTxs(txs('r', 0, 10)))
	require.Len(t, pick[*types.MicroBlock](r.take()), 1)
	r.env.Uplink.Backlog = time.Second // the broadcast still waits on the uplink
	r.advance(900 * time.Millisecond)
	require.Empty(t, pick[*types.MicroBlock](r.take()), "no re-push while the copies may still be queued")
	r.env.Uplink.Backlog = 0
	r.advance(time.Second)
	again := pick[*types.MicroBlock](r.take())
	require.NotEmpty(t, again, "re-pushed once the uplink drained")
}

// Without a backlog bound (max_backlog 0) nothing changes: the uplink's state is not asked.
func TestBackpressureOff(t *testing.T) {
	cfg := bpCfg()
	cfg.MaxBacklog = 0
	r := newRig(t, 1, 4, cfg)
	r.m.SetView(1)
	r.env.Uplink.Backlog = time.Hour
	require.NoError(t, r.m.AddTxs(txs('o', 0, 10)))
	require.Len(t, pick[*types.MicroBlock](r.take()), 1)
}

// Under backpressure a replica paces its microblocks to a share of its uplink (every downlink
// takes what the others send: all uplinks full means queues that only grow), and the pace does not
// hold back re-pushes.
func TestBackpressurePacesMicroblocks(t *testing.T) {
	r := newRig(t, 1, 4, bpCfg())
	r.m.SetView(1)
	r.env.Uplink.Rate = 10_000 // bytes per second
	require.NoError(t, r.m.AddTxs(txs('a', 0, 10)))
	first := pick[*types.MicroBlock](r.take())
	require.Len(t, first, 1)
	require.NoError(t, r.m.AddTxs(txs('b', 0, 10)))
	require.Empty(t, pick[*types.MicroBlock](r.take()), "the next microblock waits for its pace")
	// 3 copies of (160 + overhead) bytes at 10 kB/s, at 85 %.
	share := uplinkShare
	pace := time.Duration(float64(3*(160+MBOverhead)) / 10_000 / share * float64(time.Second))
	r.advance(pace - 10*time.Millisecond)
	require.Empty(t, pick[*types.MicroBlock](r.take()))
	r.advance(20 * time.Millisecond)
	require.Len(t, pick[*types.MicroBlock](r.take()), 1, "cut once the pace allows")
}

// A busy replica's microblock that goes to a proxy costs its uplink one copy, and is paced as one:
// paced as a push to every replica, the busy replica cut (and so accepted) no more than its own
// uplink could disseminate, and load balancing took none of its load (Figs 9-10, Zipf10). And a
// busy replica may run up to max_backlog ahead of that pace, as its uplink may queue that much:
// held to one forward at a time, the busiest replica under Zipf1 at N=400 refused most of the
// transactions that arrived with the first (Figs 9-10 at N=400).
func TestBackpressurePacesAForwardedMicroblockAsOneCopy(t *testing.T) {
	cfg := lbCfg()
	cfg.MaxBacklog = 100 * time.Millisecond
	r := busyRig(t, 7, cfg)
	r.env.Uplink.Rate = 10_000 // bytes per second
	out := r.pushOwn('a')
	require.NotEmpty(t, pick[*types.LBQuery](out), "busy: the microblock goes to a proxy")
	share := uplinkShare
	oneCopy := time.Duration(float64(160+MBOverhead) / 10_000 / share * float64(time.Second)) // 79 ms
	require.NoError(t, r.m.AddTxs(txs('b', 0, 10)))
	require.NotEmpty(t, pick[*types.LBQuery](r.take()), "one copy's pace owed, within max_backlog: cut at once")
	require.NoError(t, r.m.AddTxs(txs('c', 0, 10)))
	require.Empty(t, pick[*types.LBQuery](r.take()), "two copies' pace owed, past max_backlog: the next one waits")
	r.advance(2*oneCopy - cfg.MaxBacklog + time.Millisecond) // six copies each would take six times as long
	require.NotEmpty(t, pick[*types.LBQuery](r.take()), "cut once the pace owed is back within max_backlog")
}

// A replica whose backpressure refuses a submission is busy for a while, whatever its stable-time
// estimate says, and forwards its next microblocks. Backpressure keeps the queues of the busiest
// replicas of a skewed load short, so their estimate stayed below busy_threshold and, before this,
// they refused their clients' excess instead of forwarding it (Figs 9-10 under Zipf1: 25.0 KTx/s
// with any d).
func TestBackpressureRefusalMakesABalancingReplicaBusy(t *testing.T) {
	cfg := lbCfg()
	cfg.MaxBacklog = 100 * time.Millisecond
	r := newRig(t, 1, 7, cfg)
	r.m.SetView(1)
	require.False(t, r.m.Gauges().Busy, "no estimate yet")
	r.env.Uplink.Backlog = 300 * time.Millisecond
	require.NoError(t, r.m.AddTxs(txs('x', 0, 10))) // a full microblock waits for the uplink
	err := r.m.AddTxs(txs('y', 0, 1))
	require.True(t, errors.Is(err, ErrFull), "%v", err)
	require.True(t, r.m.Gauges().Busy, "refused for backlog: busy")
	// The uplink drains: the waiting microblock is cut and goes to a proxy.
	r.env.Uplink.Backlog = 0
	r.advance(250 * time.Millisecond)
	out := r.take()
	require.NotEmpty(t, pick[*types.LBQuery](out), "pressed: the replica samples proxies for the microblock")
	// Once the pressure is over for long enough, the replica pushes its own again.
	r.advance(300*time.Millisecond + cfg.BusyThreshold + cfg.LBTimeout + cfg.ForwardTimeout)
	r.take()
	require.False(t, r.m.Gauges().Busy)
	out = r.pushOwn('z')
	require.Empty(t, pick[*types.LBQuery](out), "not busy: no proxy sampled")
	require.NotEmpty(t, pick[*types.MicroBlock](out), "not busy: pushed by the replica")
}
