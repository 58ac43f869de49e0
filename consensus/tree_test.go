package consensus_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/types"
)

// mk returns an unsigned block (the tree does not check signatures) with one transaction tag, or
// an empty payload for tag "".
func mk(view types.View, height uint64, parent *types.Block, tag string) *types.Block {
	p := enginetest.Payload()
	if tag != "" {
		p = enginetest.Payload(tag)
	}
	return &types.Block{View: view, Height: height, Parent: parent.ID(), Payload: p, Proposer: 1}
}

func addAll(t *testing.T, tr *consensus.Tree, bs ...*types.Block) {
	t.Helper()
	for _, b := range bs {
		_, err := tr.Add(b)
		require.NoError(t, err, "add view %d height %d", b.View, b.Height)
	}
}

// Tree.Add: "checks height and view against the parent and that the block can still commit".
func TestTreeAdd(t *testing.T) {
	g := types.Genesis()
	a1 := mk(1, 1, g, "a1")
	a2 := mk(2, 2, a1, "a2")
	a3 := mk(3, 1, g, "a3")
	withQC := func(b *types.Block, qc *types.QC) *types.Block { b.QC = qc; return b }

	tests := []struct {
		name    string
		tree    func() *consensus.Tree
		setup   []*types.Block
		commit  *types.Block // committed after setup
		add     *types.Block
		errIs   error
		errText string
	}{
		{name: "extends genesis", add: a1},
		{name: "extends a known block", setup: []*types.Block{a1}, add: a2},
		{name: "unknown parent", add: a2, errIs: consensus.ErrUnknownParent},
		{name: "height skips one", setup: []*types.Block{a1}, add: mk(2, 3, a1, "x"), errText: "height 3 does not follow parent height 1"},
		{name: "height repeats the parent's", setup: []*types.Block{a1}, add: mk(2, 1, a1, "x"), errText: "height 1 does not follow parent height 1"},
		{name: "same view as the parent", setup: []*types.Block{a1}, add: mk(1, 2, a1, "x"), errText: "view 1 does not follow parent view 1"},
		{name: "view lower than the parent's", setup: []*types.Block{a3}, add: mk(2, 2, a3, "x"), errText: "view 2 does not follow parent view 3"},
		{name: "QC of another view than the parent's", setup: []*types.Block{a1},
			add: withQC(mk(2, 2, a1, "x"), &types.QC{View: 0, BlockID: a1.ID()}), errText: "QC view 0 is not the parent's view 1"},
		{name: "extends a committed block that is not the head", setup: []*types.Block{a1, a2}, commit: a2,
			add: mk(4, 2, a1, "x"), errIs: consensus.ErrConflicts},
		{name: "extends genesis after a commit", setup: []*types.Block{a1}, commit: a1,
			add: mk(4, 1, g, "x"), errIs: consensus.ErrConflicts},
		{name: "too many uncommitted blocks", tree: func() *consensus.Tree { return consensus.NewTree(8, 2) },
			setup: []*types.Block{a1, a3}, add: a2, errIs: consensus.ErrTreeFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := consensus.NewTree(8, 100)
			if tt.tree != nil {
				tr = tt.tree()
			}
			addAll(t, tr, tt.setup...)
			if tt.commit != nil {
				committed, _ := tr.Commit(tr.Get(tt.commit.ID()))
				require.NotEmpty(t, committed)
			}
			n, err := tr.Add(tt.add)
			switch {
			case tt.errIs != nil:
				require.ErrorIs(t, err, tt.errIs)
				require.Nil(t, n)
				require.Nil(t, tr.Get(tt.add.ID()))
			case tt.errText != "":
				require.ErrorContains(t, err, tt.errText)
				require.Nil(t, n)
				require.Nil(t, tr.Get(tt.add.ID()))
			default:
				require.NoError(t, err)
				require.Same(t, n, tr.Get(tt.add.ID()))
				require.Equal(t, tt.add.Parent, n.Parent.ID())
				require.False(t, n.Committed)
				again, err := tr.Add(tt.add)
				require.NoError(t, err)
				require.Same(t, n, again, "adding a known block returns the existing node")
			}
		})
	}
}

// Tree.Commit "returns the newly committed nodes, oldest first, and the blocks that can no longer
// commit, in a deterministic order".
func TestTreeCommit(t *testing.T) {
	g := types.Genesis()
	a1 := mk(1, 1, g, "a1")
	a2 := mk(2, 2, a1, "a2")
	a3 := mk(3, 3, a2, "a3")
	f1 := mk(5, 1, g, "f1")
	f2 := mk(4, 2, a1, "f2")
	f3 := mk(6, 2, f1, "f3")
	f4 := mk(7, 1, g, "f4")
	x := mk(8, 1, g, "x")
	y := mk(8, 1, g, "y")
	lo, hi := x, y
	if xi, yi := x.ID(), y.ID(); string(yi[:]) < string(xi[:]) {
		lo, hi = y, x
	}
	// Orphans by height, then view, then ID.
	wantOrphans := []types.Hash{f1.ID(), f4.ID(), lo.ID(), hi.ID(), f2.ID(), f3.ID()}
	orders := [][]*types.Block{
		{a1, a2, a3, f1, f2, f3, f4, x, y},
		{y, x, f4, f1, f3, a1, f2, a2, a3},
		{x, f1, a1, f3, y, a2, f4, a3, f2},
	}
	for i, order := range orders {
		tr := consensus.NewTree(8, 100)
		addAll(t, tr, order...)
		require.Len(t, tr.Uncommitted(), 9)
		f2node := tr.Get(f2.ID())
		committed, orphans := tr.Commit(tr.Get(a2.ID()))
		var got []types.Hash
		for _, n := range committed {
			got = append(got, n.ID())
			require.True(t, n.Committed)
		}
		require.Equal(t, []types.Hash{a1.ID(), a2.ID()}, got, "order %d: committed oldest first", i)
		require.Equal(t, wantOrphans, enginetest.IDs(orphans), "order %d: orphans", i)
		require.Equal(t, a2.ID(), tr.Head().ID())
		for _, o := range orphans {
			require.Nil(t, tr.Get(o.ID()), "orphans leave the tree")
		}
		unc := tr.Uncommitted()
		require.Len(t, unc, 1)
		require.Equal(t, a3.ID(), unc[0].ID())

		c, o := tr.Commit(tr.Get(a2.ID()))
		require.Empty(t, c, "committing the head again does nothing")
		require.Empty(t, o)
		c, o = tr.Commit(f2node)
		require.Empty(t, c, "a block off the committed chain cannot commit")
		require.Empty(t, o)
	}
}

// "a window of committed ancestors kept to answer peers that sync": retain bounds it.
func TestTreeRetention(t *testing.T) {
	g := types.Genesis()
	a1 := mk(1, 1, g, "a1")
	a2 := mk(2, 2, a1, "a2")
	a3 := mk(3, 3, a2, "a3")
	tr := consensus.NewTree(2, 100)
	addAll(t, tr, a1, a2, a3)
	for _, b := range []*types.Block{a1, a2, a3} {
		c, _ := tr.Commit(tr.Get(b.ID()))
		require.Len(t, c, 1)
	}
	require.Nil(t, tr.Get(g.ID()))
	require.Nil(t, tr.Get(a1.ID()))
	require.NotNil(t, tr.Get(a2.ID()))
	require.Equal(t, a3.ID(), tr.Head().ID())
	_, err := tr.Add(mk(4, 3, a2, "late"))
	require.ErrorIs(t, err, consensus.ErrConflicts)
	_, err = tr.Add(mk(4, 4, a3, "next"))
	require.NoError(t, err)
}

func TestTreeHelpers(t *testing.T) {
	g := types.Genesis()
	a1 := mk(1, 1, g, "")
	a2 := mk(2, 2, a1, "tx")
	a3 := mk(3, 3, a2, "")
	b2 := mk(4, 2, a1, "")
	tr := consensus.NewTree(8, 100)
	addAll(t, tr, a1, a2, a3, b2)
	n1, n2, n3, m2 := tr.Get(a1.ID()), tr.Get(a2.ID()), tr.Get(a3.ID()), tr.Get(b2.ID())

	require.True(t, tr.Extends(n3, n1))
	require.True(t, tr.Extends(n3, n3))
	require.False(t, tr.Extends(n3, m2))
	require.False(t, tr.Extends(n1, n3))
	require.True(t, tr.Extends(m2, tr.Head()))

	var path []types.Hash
	for _, n := range tr.UncommittedPath(n3) {
		path = append(path, n.ID())
	}
	require.Equal(t, []types.Hash{a1.ID(), a2.ID(), a3.ID()}, path)

	require.False(t, consensus.ChainCertified(n3))
	n1.Cert, n2.Cert = &types.QC{View: 1}, &types.QC{View: 2}
	require.False(t, consensus.ChainCertified(n3), "a3 itself is not certified")
	n3.Cert = &types.QC{View: 3}
	require.True(t, consensus.ChainCertified(n3))
	require.True(t, consensus.ChainCertified(tr.Head()), "the committed head counts as certified")

	require.True(t, consensus.HasPendingPayload(n3), "a2 carries payload")
	require.False(t, consensus.HasPendingPayload(m2))
	tr.Commit(n2)
	require.False(t, consensus.HasPendingPayload(n3), "committed payload no longer pending")
	require.True(t, consensus.RecentPayload(n3, 2), "a2 is one block up from a3, committed or not")
	require.False(t, consensus.RecentPayload(n3, 1), "a3 itself is empty")
	require.False(t, consensus.RecentPayload(m2, 3))
}
