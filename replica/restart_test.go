package replica

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/stats"
	"github.com/stratusbft/stratus/transport"
	"github.com/stratusbft/stratus/types"
)

// A replica of a live cluster crashes (it loses everything but what its store holds), stays down
// while the others commit, restarts from its store, and catches up; the store on disk holds its
// votes and its delivered state.
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
	_, err := reps[0].Submit(ctx, enginetest.TxBatch("before", 0, 20), true)
	require.NoError(t, err)

	reps[3].Crash(time.Second)
	require.Eventually(t, func() bool {
		_, err := reps[3].Submit(ctx, enginetest.TxBatch("down", 0, 1), false)
		return err == ErrCrashed
	}, 5*time.Second, 10*time.Millisecond, "a crashed replica refuses submissions")
	for k := 1; k <= 5; k++ {
		_, err := reps[k%3].Submit(ctx, enginetest.TxBatch("while-down", k, 20), true)
		require.NoError(t, err, "the others go on without it")
	}
	require.Eventually(t, func() bool { return cols[3].Snapshot().Restarts == 1 }, 5*time.Second, 10*time.Millisecond)
	_, err = reps[3].Submit(ctx, enginetest.TxBatch("after", 0, 20), true)
	require.NoError(t, err, "restarted and caught up, it delivers new transactions again")
	require.Eventually(t, func() bool {
		a, b := cols[0].Snapshot(), cols[3].Snapshot()
		return b.CommittedHeight >= a.CommittedHeight-1 && b.CommittedHeight > 0
	}, 10*time.Second, 20*time.Millisecond, "replica 4 reaches the others' height")
	st := cols[0].Snapshot().Store
	assert.Equal(t, "pebble", st.Kind, "/query names the store a replica keeps on disk")
	assert.Positive(t, st.Bytes, "and its size there")

	for _, r := range reps {
		r.Stop()
	}
	store, err := OpenPebbleStore(StorePath(dir, 4))
	require.NoError(t, err)
	defer store.Close()
	saved, err := store.Load()
	require.NoError(t, err)
	require.NotNil(t, saved)
	require.Positive(t, saved.Voting.LastVoted, "its votes were saved")
	require.Positive(t, saved.Height, "and its delivered state")
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
		_, err := r.Submit(ctx, enginetest.TxBatch("waiting", 0, 5), true)
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
	_, err = r.Submit(ctx, enginetest.TxBatch("down", 0, 1), false)
	require.ErrorIs(t, err, ErrCrashed, "the replica came back at the first crash's end")
	assert.Zero(t, col.Snapshot().Restarts)
	require.Eventually(t, func() bool { return col.Snapshot().Restarts == 1 }, 10*time.Second, 10*time.Millisecond)

	// Shortening works too: a long crash, then a short one.
	r.Crash(time.Hour)
	r.Crash(100 * time.Millisecond)
	require.Eventually(t, func() bool { return col.Snapshot().Restarts == 2 }, 5*time.Second, 10*time.Millisecond)
}

// failingStore is a memory store whose syncs fail once armed.
type failingStore struct {
	*core.MemStore
	armed atomic.Bool
}

func (f *failingStore) Sync() error {
	if f.armed.Load() {
		return errors.New("injected: the disk is gone")
	}
	return nil
}

// A replica whose store fails stops as a crash would: the client waiting for its transactions
// hears that the replica crashed, never that they committed (the delivery is not on disk), and
// the replica takes no more submissions, while the others go on.
func TestStoreFailureStopsTheReplica(t *testing.T) {
	const n = 4
	signers, keys := crypto.SimKeys(7, n)
	ver := crypto.NewCache(keys)
	hub := transport.NewHub(n, transport.HubOptions{Buffer: 4096})
	defer hub.Close()
	fs := &failingStore{MemStore: core.NewMemStore()}
	var reps []*Replica
	for i := 0; i < n; i++ {
		id := types.NodeID(i + 1)
		o := Options{ID: id, N: n, Spec: testSpec("hotstuff"), Signer: signers[i], Verifier: ver, Workers: 2, Seed: 3}
		if id == 1 {
			o.Store = fs
		}
		r, err := New(o, hub.Endpoint(id))
		require.NoError(t, err)
		reps = append(reps, r)
		r.Start()
	}
	defer func() {
		for _, r := range reps {
			r.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := reps[0].Submit(ctx, enginetest.TxBatch("before", 0, 10), true)
	require.NoError(t, err, "a working store acknowledges")

	fs.armed.Store(true)
	_, err = reps[0].Submit(ctx, enginetest.TxBatch("after", 0, 10), true)
	require.ErrorIs(t, err, ErrCrashed, "no acknowledgement of a delivery that is not on disk")
	_, err = reps[0].Submit(ctx, enginetest.TxBatch("later", 0, 1), false)
	require.ErrorIs(t, err, ErrCrashed, "the replica stopped")
	_, err = reps[1].Submit(ctx, enginetest.TxBatch("others", 0, 10), true)
	require.NoError(t, err, "the others go on")
}

// A store copied from another cluster (other keys) is refused: its lock would be trusted blindly.
func TestStoreFromAnotherClusterIsRefused(t *testing.T) {
	other := newStoreFixture() // keys of another cluster
	ms := core.NewMemStore()
	id := types.Keccak([]byte("locked elsewhere"))
	ms.Stage(core.OpVoting{State: consensus.VotingState{LastVoted: 9, Lock: other.qc(8, id)}})
	signers, keys := crypto.SimKeys(7, 4)
	hub := transport.NewHub(4, transport.HubOptions{Buffer: 16})
	defer hub.Close()
	_, err := New(Options{ID: 1, N: 4, Spec: testSpec("hotstuff"), Signer: signers[0], Verifier: crypto.NewCache(keys), Store: ms}, hub.Endpoint(1))
	require.ErrorContains(t, err, "saved lock does not verify")
}
