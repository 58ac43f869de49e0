package replica

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

// An ack for a microblock whose proof this replica broadcast is surplus (the Core ignores acks
// for a finished push) and is dropped before its signature is checked; acks for other
// microblocks, and every ack after a crash (the pushes are gone with the Core), go on to be
// verified.
func TestAcksAfterTheProofAreDroppedUnverified(t *testing.T) {
	r := &Replica{proven: newProvenSet()}
	r.env = &liveEnv{hold: true, proven: r.proven}
	proven, other := types.IDHash([]byte("proven")), types.IDHash([]byte("other"))

	assert.False(t, r.surplusAck(&types.Ack{MBID: proven, View: 3, Signer: 2}), "no proof yet")
	r.env.Send(2, &types.Proof{MBID: proven, View: 3})
	assert.False(t, r.surplusAck(&types.Ack{MBID: proven, View: 3, Signer: 2}), "a proof sent to one replica (an answer) does not count")
	r.env.Broadcast(&types.Proof{MBID: proven, View: 3})
	assert.True(t, r.surplusAck(&types.Ack{MBID: proven, View: 3, Signer: 2}))
	assert.True(t, r.surplusAck(&types.Ack{MBID: proven, View: 5, Signer: 4}), "whatever the view: the microblock's push is done")
	assert.False(t, r.surplusAck(&types.Ack{MBID: other, View: 3, Signer: 2}))
	assert.False(t, r.surplusAck(&types.Proof{MBID: proven, View: 3}), "only acks")

	r.proven.reset()
	assert.False(t, r.surplusAck(&types.Ack{MBID: proven, View: 3, Signer: 2}), "a crash forgets the proofs")
}

// The set keeps the last provenCap microblocks: the oldest leaves first, and adding one twice
// keeps one entry.
func TestProvenSetKeepsTheLatest(t *testing.T) {
	p := newProvenSet()
	id := func(i int) types.Hash { return types.IDHash([]byte{byte(i), byte(i >> 8), byte(i >> 16)}) }
	for i := 0; i < provenCap; i++ {
		p.add(id(i))
		p.add(id(i))
	}
	require.Len(t, p.ids, provenCap)
	p.add(id(provenCap))
	assert.False(t, p.has(id(0)), "the oldest left")
	for i := 1; i <= provenCap; i++ {
		require.True(t, p.has(id(i)), "entry %d", i)
	}
	require.Len(t, p.ids, provenCap)
}
