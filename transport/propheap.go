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

// Before orders copies in flight by arrival, then by the order they were scheduled (a
// minheap.Heap, so that scheduling does not allocate).
func (x inFlight) Before(o inFlight) bool {
	if !x.at.Equal(o.at) {
		return x.at.Before(o.at)
	}
	return x.seq < o.seq
}
