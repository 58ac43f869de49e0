package consensus_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/types"
)

// requests lists the (peer, block) of the BlockRequests sent, in order.
func requests(env *enginetest.Env) []types.NodeID {
	var out []types.NodeID
	for _, s := range env.Sends() {
		if _, ok := s.Msg.(*types.BlockRequest); ok {
			out = append(out, s.To)
		}
	}
	return out
}

// fireSync fires the last SyncTimer set, if it has not fired yet, and reports whether it did.
func fireSync(env *enginetest.Env, s *consensus.Syncer) bool {
	ts := enginetest.TimersOf[consensus.SyncTimer](env)
	if len(ts) == 0 || ts[len(ts)-1].Fired {
		return false
	}
	ts[len(ts)-1].Fired = true
	s.OnTimer(ts[len(ts)-1].Timer.(consensus.SyncTimer))
	return true
}

// "It asks two peers at once, the one that referred to the block and the next, then the others in
// turn, one per timeout" (Syncer), "up to two rounds over all peers, then gives up".
func TestSyncerAsksHintFirstThenNext(t *testing.T) {
	tests := []struct {
		name      string
		self      types.NodeID
		hint      types.NodeID
		wantFirst []types.NodeID // the rotation over two rounds, from the hint
	}{
		{"hint 3 at node 2", 2, 3, []types.NodeID{3, 4, 1, 3, 4, 1}},
		{"hint 1 at node 4", 4, 1, []types.NodeID{1, 2, 3, 1, 2, 3}},
		{"hint 4 at node 1 wraps around", 1, 4, []types.NodeID{4, 2, 3, 4, 2, 3}},
		{"hint is self: start at the next node", 2, 2, []types.NodeID{3, 4, 1, 3, 4, 1}},
		{"no hint: start at the next node", 4, 0, []types.NodeID{1, 2, 3, 1, 2, 3}},
	}
	id := types.Keccak([]byte("missing"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _ := newEnv(tt.self)
			s := consensus.NewSyncer(env, 300*time.Millisecond, 8)
			s.Need(id, tt.hint)
			require.Equal(t, tt.wantFirst[:2], requests(env), "the hinted peer and the next, at once")
			req := env.Sends()[0].Msg.(*types.BlockRequest)
			require.Equal(t, id, req.ID)
			require.True(t, s.Pending(id))
			s.Need(id, tt.hint)
			require.Len(t, requests(env), 2, "a pending request is not repeated")

			fires := 0
			for fireSync(env, s) {
				fires++
				require.Less(t, fires, 20)
				if s.Pending(id) {
					require.Len(t, requests(env), fires+2, "every timeout asks one more peer")
				}
			}
			got := requests(env)
			want := append([]types.NodeID{tt.wantFirst[0], tt.wantFirst[1]}, tt.wantFirst[1:]...)
			require.GreaterOrEqual(t, len(got), len(want)-1)
			require.Equal(t, want[:len(want)-1], got[:len(want)-1], "then one peer per timeout, never itself")
			require.LessOrEqual(t, len(got), len(want)+1, "gives up after about two rounds")
			require.NotContains(t, got, tt.self)
			require.False(t, s.Pending(id), "given up")
			for _, c := range enginetest.TimersOf[consensus.SyncTimer](env) {
				require.Equal(t, 300*time.Millisecond, c.After)
			}
		})
	}
}

func TestSyncerIgnoresStaleTimer(t *testing.T) {
	env, _ := newEnv(2)
	s := consensus.NewSyncer(env, time.Second, 8)
	id := types.Keccak([]byte("x"))
	s.Need(id, 3)
	s.OnTimer(consensus.SyncTimer{ID: id, Attempt: 5})
	s.OnTimer(consensus.SyncTimer{ID: types.Keccak([]byte("other")), Attempt: 0})
	require.Equal(t, []types.NodeID{3, 4}, requests(env))
	s.OnTimer(consensus.SyncTimer{ID: id, Attempt: 0})
	require.Equal(t, []types.NodeID{3, 4, 4}, requests(env))
	s.OnTimer(consensus.SyncTimer{ID: id, Attempt: 0})
	require.Equal(t, []types.NodeID{3, 4, 4}, requests(env), "an old attempt's timer is stale")
	s.Resolved(id)
	s.OnTimer(consensus.SyncTimer{ID: id, Attempt: 1})
	require.Equal(t, []types.NodeID{3, 4, 4}, requests(env), "no retry once resolved")
}

// Another peer that refers to a block being fetched is asked at once, once: a slow first peer
// does not set the pace.
func TestSyncerAsksEveryReferrerAtOnce(t *testing.T) {
	env, _ := newEnv(1)
	s := consensus.NewSyncer(env, time.Second, 8)
	id := types.Keccak([]byte("y"))
	s.Need(id, 2)
	require.Equal(t, []types.NodeID{2, 3}, requests(env))
	s.Need(id, 4)
	s.Need(id, 4)
	s.Need(id, 3)
	s.Need(id, 2)
	require.Equal(t, []types.NodeID{2, 3, 4}, requests(env), "4 referred to it: asked at once, once")
}

// "parks the blocks that wait for them": a parked block asks for its parent and comes back when
// the parent is resolved.
func TestSyncerParkAndResolve(t *testing.T) {
	env, f := newEnv(1)
	s := consensus.NewSyncer(env, time.Second, 3)
	parent := f.Block(enginetest.BlockSpec{View: 1})
	c1 := f.Block(enginetest.BlockSpec{View: 2, Parent: parent, QC: f.QCFor(parent)})
	c2 := f.Block(enginetest.BlockSpec{View: 3, Parent: parent, QC: f.QCFor(parent), TC: f.TC(2, 1, 2, 3)})
	other := f.Block(enginetest.BlockSpec{View: 5})
	orphanChild := f.Block(enginetest.BlockSpec{View: 6, Parent: other, QC: f.QCFor(other)})

	require.True(t, s.Park(c1, 3))
	require.Equal(t, []types.NodeID{3, 4}, requests(env), "the parent is requested from the sender and the next peer")
	require.True(t, s.Park(c2, 4))
	require.True(t, s.Park(c1, 2), "parking twice is harmless")
	require.Equal(t, []types.NodeID{3, 4}, requests(env), "one request per missing block and peer")
	require.True(t, s.IsParked(c1.ID()))
	require.True(t, s.Pending(parent.ID()))
	require.True(t, s.Park(orphanChild, 2))
	require.False(t, s.Park(f.Block(enginetest.BlockSpec{View: 7, Parent: other, QC: f.QCFor(other)}), 2), "parking space is bounded")

	got := s.Resolved(parent.ID())
	require.Equal(t, []types.Hash{c1.ID(), c2.ID()}, enginetest.IDs(got), "in arrival order")
	require.False(t, s.IsParked(c1.ID()))
	require.False(t, s.Pending(parent.ID()))
	require.Empty(t, s.Resolved(parent.ID()))

	s.Forget(func(b *types.Block) bool { return b.View > 6 })
	require.False(t, s.Pending(other.ID()), "a request whose waiting blocks are forgotten ends")
	require.Empty(t, s.Resolved(other.ID()))
}
