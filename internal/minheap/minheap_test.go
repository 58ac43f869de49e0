package minheap

import (
	"math/rand"
	"sort"
	"testing"
)

type item struct {
	key, seq int
	ref      *int
}

func (a item) Before(b item) bool { return a.key < b.key || a.key == b.key && a.seq < b.seq }

// TestPopsInOrder: whatever the order of pushes, interleaved with pops, values come out least
// first, and a popped value's slot keeps no reference.
func TestPopsInOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var h Heap[item]
	var want, got []item
	x := 0
	for seq := 0; seq < 5000; seq++ {
		it := item{key: rng.Intn(50), seq: seq, ref: &x}
		h.Push(it)
		want = append(want, it)
		if rng.Intn(3) == 0 {
			// Popping now must give the least of what is held.
			least := h.Min()
			p := h.Pop()
			if p != least {
				t.Fatalf("Pop %v, Min said %v", p, least)
			}
			if tail := h[:cap(h)][h.Len()]; tail.ref != nil {
				t.Fatal("the vacated slot still references the popped value")
			}
			got = append(got, p)
			for i, w := range want {
				if w == p {
					want = append(want[:i], want[i+1:]...)
					break
				}
			}
			for _, w := range want {
				if w.Before(p) {
					t.Fatalf("popped %v while %v was held", p, w)
				}
			}
		}
	}
	rest := len(want)
	for h.Len() > 0 {
		got = append(got, h.Pop())
	}
	tail := got[len(got)-rest:]
	if !sort.SliceIsSorted(tail, func(i, j int) bool { return tail[i].Before(tail[j]) }) {
		t.Fatal("the final pops are not in order")
	}
	if len(got) != 5000 {
		t.Fatalf("%d values out of 5000", len(got))
	}
}
