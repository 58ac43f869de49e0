package replica

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/transport"
	"github.com/stratusbft/stratus/types"
)

func TestVoteStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := NewVoteStore(dir, 3)
	require.NoError(t, err)
	got, err := s.Load()
	require.NoError(t, err)
	require.Nil(t, got, "nothing saved yet")

	_, ver := crypto.SimKeys(1, 4)
	signers, _ := crypto.SimKeys(1, 4)
	id := types.Keccak([]byte("locked"))
	lock := &types.QC{View: 7, BlockID: id}
	for _, i := range []types.NodeID{1, 2, 3} {
		lock.Signers.Set(types.SignerBit(i))
		lock.Sigs = append(lock.Sigs, signers[i-1].Sign(types.VoteDigest(7, id)))
	}
	require.NoError(t, s.Save(consensus.VotingState{LastVoted: 9, Lock: lock}))
	got, err = s.Load()
	require.NoError(t, err)
	require.Equal(t, types.View(9), got.LastVoted)
	require.NoError(t, consensus.VerifyQC(ver, got.Lock))
	info, err := os.Stat(s.Path())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	require.NoError(t, s.Save(consensus.VotingState{LastVoted: 10}))
	got, err = s.Load()
	require.NoError(t, err)
	require.Equal(t, types.View(10), got.LastVoted)
	require.Nil(t, got.Lock)

	require.NoError(t, os.WriteFile(s.Path(), []byte("garbage"), 0o600))
	_, err = s.Load()
	require.ErrorContains(t, err, "damaged")
	require.ErrorContains(t, err, filepath.Base(s.Path()))
}

// A replica of a live cluster crashes (it loses everything but its voting state, saved in a file
// before each of its votes), stays down while the others commit, restarts, and catches up; its
// file always held the last view it voted in.
func TestReplicaCrashesAndRestarts(t *testing.T) {
	const n = 4
	spec := testSpec("hotstuff")
	spec.Timeout = 300 * time.Millisecond
	signers, keys := crypto.SimKeys(7, n)
	ver := crypto.NewCache(keys)
	hub := transport.NewHub(n, transport.HubOptions{Buffer: 4096})
	var reps []*Replica
	var cols []*stats.Collector
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		id := types.NodeID(i + 1)
		col := stats.New(stats.Info{Node: id, N: n}, time.Now)
		r, err := New(Options{ID: id, N: n, Spec: spec, Signer: signers[i], Verifier: ver, Workers: 2, Seed: 3, Stats: col, DataDir: dir}, hub.Endpoint(id))
		require.NoError(t, err)
		reps = append(reps, r)
		cols = append(cols, col)
	}
	for _, r := range reps {
		r.Start()
	}
	defer func() {
		for _, r := range reps {
			r.Stop()
		}
		hub.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := reps[0].Submit(ctx, txBatch("before", 0, 20), true)
	require.NoError(t, err)

	reps[3].Crash(time.Second)
	require.Eventually(t, func() bool {
		_, err := reps[3].Submit(ctx, txBatch("down", 0, 1), false)
		return err == ErrCrashed
	}, 5*time.Second, 10*time.Millisecond, "a crashed replica refuses submissions")
	for k := 1; k <= 5; k++ {
		_, err := reps[k%3].Submit(ctx, txBatch("while-down", k, 20), true)
		require.NoError(t, err, "the others go on without it")
	}
	require.Eventually(t, func() bool { return cols[3].Snapshot().Restarts == 1 }, 5*time.Second, 10*time.Millisecond)
	_, err = reps[3].Submit(ctx, txBatch("after", 0, 20), true)
	require.NoError(t, err, "restarted and caught up, it delivers new transactions again")
	require.Eventually(t, func() bool {
		a, b := cols[0].Snapshot(), cols[3].Snapshot()
		return b.CommittedHeight >= a.CommittedHeight-1 && b.CommittedHeight > 0
	}, 10*time.Second, 20*time.Millisecond, "replica 4 reaches the others' height")

	store, err := NewVoteStore(dir, 4)
	require.NoError(t, err)
	saved, err := store.Load()
	require.NoError(t, err)
	require.NotNil(t, saved)
	require.Positive(t, saved.LastVoted, "its votes were saved")
}

// A client waiting for its transactions at a replica that crashes hears that at once (the crash
// lost the mempool that held them), not after its wait limit.
func TestWaitingSubmissionFailsWhenTheReplicaCrashes(t *testing.T) {
	const n = 4
	signers, keys := crypto.SimKeys(7, n)
	hub := transport.NewHub(n, transport.HubOptions{Buffer: 4096})
	defer hub.Close()
	col := stats.New(stats.Info{Node: 1, N: n}, time.Now)
	// Alone of four, it cannot commit anything.
	r, err := New(Options{ID: 1, N: n, Spec: testSpec("hotstuff"), Signer: signers[0], Verifier: crypto.NewCache(keys), Workers: 2, Seed: 3, Stats: col}, hub.Endpoint(1))
	require.NoError(t, err)
	r.Start()
	defer r.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		_, err := r.Submit(ctx, txBatch("waiting", 0, 5), true)
		res <- err
	}()
	require.Eventually(t, func() bool { return col.Snapshot().SubmittedTx == 5 }, 5*time.Second, 5*time.Millisecond)
	r.Crash(0)
	select {
	case err := <-res:
		require.ErrorIs(t, err, ErrCrashed)
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting submission did not hear of the crash")
	}
}

// A crash while the replica is down replaces the first one's end: it stays down until the
// second crash's time is up, not the first's (the fault API promises exactly that).
func TestSecondCrashReplacesTheFirstsEnd(t *testing.T) {
	const n = 4
	signers, keys := crypto.SimKeys(7, n)
	hub := transport.NewHub(n, transport.HubOptions{Buffer: 4096})
	defer hub.Close()
	col := stats.New(stats.Info{Node: 1, N: n}, time.Now)
	r, err := New(Options{ID: 1, N: n, Spec: testSpec("hotstuff"), Signer: signers[0], Verifier: crypto.NewCache(keys), Workers: 2, Seed: 3, Stats: col}, hub.Endpoint(1))
	require.NoError(t, err)
	r.Start()
	defer r.Stop()
	ctx := context.Background()

	r.Crash(300 * time.Millisecond)
	r.Crash(2 * time.Second) // replaces the end: down for 2 s from now
	time.Sleep(time.Second)  // well past the first crash's end
	_, err = r.Submit(ctx, txBatch("down", 0, 1), false)
	require.ErrorIs(t, err, ErrCrashed, "the replica came back at the first crash's end")
	assert.Zero(t, col.Snapshot().Restarts)
	require.Eventually(t, func() bool { return col.Snapshot().Restarts == 1 }, 10*time.Second, 10*time.Millisecond)

	// Shortening works too: a long crash, then a short one.
	r.Crash(time.Hour)
	r.Crash(100 * time.Millisecond)
	require.Eventually(t, func() bool { return col.Snapshot().Restarts == 2 }, 5*time.Second, 10*time.Millisecond)
}
