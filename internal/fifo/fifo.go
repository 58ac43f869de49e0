// Package fifo is the first-in, first-out queue that the mempools, the simulator's links and the
// transport's shaper and inbound lanes share: a slice with a head index, amortised O(1) push and
// pop, no allocation per element once the slice has grown, popped slots zeroed so that the
// garbage collector can take what they held, and the consumed prefix reclaimed once it outgrows
// the rest.
package fifo

// compactAt is the consumed prefix beyond which Pop moves the rest to the front (when the prefix
// is also at least half the slice).
const compactAt = 1024

// releaseAbove is the capacity beyond which Trim gives an empty queue's backing array back (a
// burst's memory goes with it).
const releaseAbove = 4096

// Queue is a FIFO of T. The zero value is an empty queue.
type Queue[T any] struct {
	items []T
	head  int
}

// Len is the number of queued elements.
func (q *Queue[T]) Len() int { return len(q.items) - q.head }

// Push appends xs at the back, in order.
func (q *Queue[T]) Push(xs ...T) { q.items = append(q.items, xs...) }

// PushFront puts xs at the front, in order: xs[0] is popped next.
func (q *Queue[T]) PushFront(xs []T) {
	if len(xs) <= q.head {
		q.head -= len(xs)
		copy(q.items[q.head:], xs)
		return
	}
	rest := q.items[q.head:]
	items := make([]T, 0, len(xs)+len(rest))
	items = append(items, xs...)
	q.items, q.head = append(items, rest...), 0
}

// Peek is the front element, without removing it.
func (q *Queue[T]) Peek() (T, bool) {
	if q.head == len(q.items) {
		var zero T
		return zero, false
	}
	return q.items[q.head], true
}

// Pop removes and returns the front element.
func (q *Queue[T]) Pop() (T, bool) {
	var zero T
	if q.head == len(q.items) {
		return zero, false
	}
	x := q.items[q.head]
	q.items[q.head] = zero
	q.head++
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head >= compactAt && 2*q.head >= len(q.items):
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return x, true
}

// Trim gives the backing array of an empty queue back when it is large: for a queue whose bursts
// should not pin memory (a peer's inbound queue). Queues refilled at once (the simulator's links)
// keep theirs.
func (q *Queue[T]) Trim() {
	if q.Len() == 0 && cap(q.items) > releaseAbove {
		q.items, q.head = nil, 0
	}
}
