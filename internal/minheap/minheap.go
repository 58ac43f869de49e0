// Package minheap is a binary min-heap of values that order themselves (Before), typed so that
// pushing and popping neither allocates per element nor goes through container/heap's interface.
// The simulator's event queue and the transport's copies in flight use it.
package minheap

// Ordered is a value that says whether it comes before another.
type Ordered[T any] interface{ Before(T) bool }

// Heap holds values with the least (by Before) first. The zero value is empty and ready.
type Heap[T Ordered[T]] []T

// Len is the number of values held.
func (h Heap[T]) Len() int { return len(h) }

// Min is the least value; the heap must not be empty.
func (h Heap[T]) Min() T { return h[0] }

// Push adds x.
func (h *Heap[T]) Push(x T) {
	*h = append(*h, x)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].Before(q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

// Pop removes and returns the least value; the heap must not be empty. The vacated slot is
// cleared, so the heap keeps no reference to what it returned.
func (h *Heap[T]) Pop() T {
	q := *h
	n := len(q) - 1
	q[0], q[n] = q[n], q[0]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && q[r].Before(q[c]) {
			c = r
		}
		if !q[c].Before(q[i]) {
			break
		}
		q[i], q[c] = q[c], q[i]
		i = c
	}
	x := q[n]
	var zero T
	q[n] = zero
	*h = q[:n]
	return x
}
