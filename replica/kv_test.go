package replica

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/types"
)

// kvTx is the write of value to key with an identity made of both, so that equal arguments make
// the same transaction.
func kvTx(key, value string) types.Tx {
	var id core.PutID
	h := types.Keccak([]byte(key), []byte{0}, []byte(value))
	copy(id[:], h[:])
	return core.NewPut(id, key, []byte(value))
}

func TestKVReadsSeeCommittedWrites(t *testing.T) {
	c := startCluster(t, 4, testSpec("hotstuff"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Readers run against the loops while writes commit.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, r := range c.reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _, _, err := r.Get(ctx, "k", 0)
				if err != nil {
					return
				}
			}
		}()
	}

	_, err := c.reps[0].Submit(ctx, []types.Tx{kvTx("k", "v1")}, true)
	require.NoError(t, err)
	v, h, found, err := c.reps[0].Get(ctx, "k", 0)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, "v1", string(v))
	require.Positive(t, h)

	for i := range 5 {
		_, err = c.reps[1].Submit(ctx, []types.Tx{kvTx("k", fmt.Sprintf("v%d", i+2))}, true)
		require.NoError(t, err)
	}
	for _, r := range c.reps {
		info, err := r.Barrier(ctx)
		require.NoError(t, err)
		v, h2, found, err := r.Get(ctx, "k", 0)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, "v6", string(v), "replica %d", r.ID())
		require.Greater(t, h2, h)
		require.GreaterOrEqual(t, info.Height, h2)
	}
	_, _, found, err = c.reps[2].Get(ctx, "never", 0)
	require.NoError(t, err)
	require.False(t, found)
	// A read that must see a height this replica has not delivered (a barrier's, before a crash
	// and restart) is refused, not answered from an older state.
	_, _, _, err = c.reps[2].Get(ctx, "k", 1<<40)
	require.ErrorIs(t, err, ErrCrashed)
	close(stop)
	wg.Wait()
}
