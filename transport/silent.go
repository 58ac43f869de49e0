package transport

import (
	"sync"

	"github.com/stratusbft/stratus/types"
)

// Silent wraps an endpoint into a replica that has crashed for good: it sends nothing and ignores
// everything. What reaches the wrapped endpoint is drained and discarded so that senders see a
// normal peer. The honest replica behind it runs unchanged; only its network is gone.
func Silent(inner Endpoint) Endpoint {
	s := &silent{inner: inner, stop: make(chan struct{})}
	for l := types.Lane(0); l < types.NumLanes; l++ {
		s.lanes[l] = make(chan Envelope)
		s.wg.Add(1)
		go s.drain(inner.Inbox(l))
	}
	return s
}

type silent struct {
	inner Endpoint
	lanes [types.NumLanes]chan Envelope // never written: the replica hears nothing
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func (s *silent) drain(in <-chan Envelope) {
	defer s.wg.Done()
	for {
		select {
		case <-in:
		case <-s.stop:
			return
		}
	}
}

func (s *silent) Self() types.NodeID                 { return s.inner.Self() }
func (s *silent) Send(types.NodeID, types.Message)   {}
func (s *silent) Broadcast(types.Message)            {}
func (s *silent) Inbox(l types.Lane) <-chan Envelope { return s.lanes[l] }
func (s *silent) Counters() Counters                 { return Counters{} }

func (s *silent) Close() error {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
	return s.inner.Close()
}
