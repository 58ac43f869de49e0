package fifo

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestQueueAgainstSlice: random pushes, front pushes and pops agree with a plain slice model,
// across compaction and release of the backing array.
func TestQueueAgainstSlice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var q Queue[int]
	var model []int
	next := 0
	for step := 0; step < 200_000; step++ {
		switch op := r.IntN(10); {
		case op < 5:
			k := 1 + r.IntN(8)
			for range k {
				q.Push(next)
				model = append(model, next)
				next++
			}
		case op == 5:
			k := r.IntN(4)
			front := make([]int, k)
			for i := range front {
				front[i] = -next
				next++
			}
			q.PushFront(front)
			model = append(append([]int{}, front...), model...)
		case op == 6 && r.IntN(500) == 0: // drain, then give the array back
			for _, want := range model {
				x, ok := q.Pop()
				require.True(t, ok)
				require.Equal(t, want, x)
			}
			model = model[:0]
			q.Trim()
		default:
			x, ok := q.Pop()
			if len(model) == 0 {
				require.False(t, ok)
				continue
			}
			require.True(t, ok)
			require.Equal(t, model[0], x, "step %d", step)
			model = model[1:]
		}
		require.Equal(t, len(model), q.Len())
		if p, ok := q.Peek(); ok {
			require.Equal(t, model[0], p)
		}
	}
}

// TestPopZeroesSlots: a popped element is no longer referenced by the queue.
func TestPopZeroesSlots(t *testing.T) {
	var q Queue[*int]
	a, b := new(int), new(int)
	q.Push(a, b)
	x, _ := q.Pop()
	require.Same(t, a, x)
	require.Nil(t, q.items[0])
}

// TestTrimReleasesABurst: an emptied queue that held a burst keeps its array until Trim, which
// gives it back; a small one keeps it, and Trim leaves a queue that holds something alone.
func TestTrimReleasesABurst(t *testing.T) {
	var q Queue[int]
	for i := range 10_000 {
		q.Push(i)
	}
	q.Trim()
	require.NotNil(t, q.items, "not empty")
	for q.Len() > 0 {
		q.Pop()
	}
	require.NotNil(t, q.items, "Pop keeps the array for the next burst")
	q.Trim()
	require.Nil(t, q.items)
	q.Push(1, 2, 3)
	q.Pop()
	q.Pop()
	q.Pop()
	q.Trim()
	require.NotNil(t, q.items, "small: kept")
}
