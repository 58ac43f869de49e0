package transport

import (
	"time"

	"github.com/stratusbft/stratus/types"
)

// inFlight is a serialized copy travelling to its destination.
type inFlight struct {
	at   time.Time
	seq  uint64
	to   types.NodeID
	m    types.Message
	size int
}

// propHeap orders copies in flight by arrival, then by the order they were scheduled. It is typed
// (not container/heap) so that scheduling does not allocate.
type propHeap []inFlight

func (h propHeap) less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}

func (h *propHeap) push(x inFlight) {
	*h = append(*h, x)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *propHeap) pop() inFlight {
	q := *h
	x := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = inFlight{}
	q = q[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && q.less(l, m) {
			m = l
		}
		if r < len(q) && q.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return x
}
