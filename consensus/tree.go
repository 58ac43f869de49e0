package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/stratusbft/stratus/types"
)

// Node is a block in the tree.
type Node struct {
	Block     *types.Block
	Parent    *Node
	Cert      *types.QC // a QC certifying (HotStuff) or notarizing (Streamlet) this block, once known
	Committed bool
}

// ID is the block's ID.
func (n *Node) ID() types.Hash { return n.Block.ID() }

// View is the block's view.
func (n *Node) View() types.View { return n.Block.View }

// Height is the block's height.
func (n *Node) Height() uint64 { return n.Block.Height }

// Tree holds the blocks a replica knows: the committed head, a window of committed ancestors kept
// to answer peers that sync, and every uncommitted block that extends the head. Blocks that can no
// longer commit are pruned and returned as orphans.
type Tree struct {
	nodes          map[types.Hash]*Node
	slots          map[slot]*Node // the first uncommitted block of each (view, proposer)
	head           *Node
	committed      []*Node // retained committed nodes, oldest first
	retain         int
	maxUncommitted int
	uncommitted    int
}

// slot is what only one block may fill: a proposer's block of a view. A second one is
// equivocation.
type slot struct {
	view     types.View
	proposer types.NodeID
}

// Errors of Tree.Add.
var (
	ErrUnknownParent = errors.New("parent unknown")
	ErrConflicts     = errors.New("block conflicts with the committed chain")
	ErrTreeFull      = errors.New("too many uncommitted blocks")
)

// NewTree returns a tree holding genesis, committed and certified by the genesis QC. It keeps
// retain committed blocks for peers and at most maxUncommitted uncommitted ones.
func NewTree(retain, maxUncommitted int) *Tree {
	g := &Node{Block: types.Genesis(), Cert: types.GenesisQC(), Committed: true}
	t := &Tree{
		nodes:          map[types.Hash]*Node{g.ID(): g},
		slots:          make(map[slot]*Node),
		head:           g,
		committed:      []*Node{g},
		retain:         max(retain, 1),
		maxUncommitted: maxUncommitted,
	}
	return t
}

// Get returns the node of a block, or nil.
func (t *Tree) Get(id types.Hash) *Node { return t.nodes[id] }

// Head is the last committed block.
func (t *Tree) Head() *Node { return t.head }

// Add inserts a block whose parent is known. It checks height and view against the parent and that
// the block can still commit. Adding a known block returns the existing node.
func (t *Tree) Add(b *types.Block) (*Node, error) {
	if n := t.nodes[b.ID()]; n != nil {
		return n, nil
	}
	parent := t.nodes[b.Parent]
	if parent == nil {
		return nil, ErrUnknownParent
	}
	if parent.Committed && parent != t.head {
		return nil, ErrConflicts
	}
	if b.Height != parent.Height()+1 {
		return nil, fmt.Errorf("height %d does not follow parent height %d", b.Height, parent.Height())
	}
	if b.View <= parent.View() {
		return nil, fmt.Errorf("view %d does not follow parent view %d", b.View, parent.View())
	}
	if b.QC != nil && b.QC.View != parent.View() {
		return nil, fmt.Errorf("QC view %d is not the parent's view %d", b.QC.View, parent.View())
	}
	if t.uncommitted >= t.maxUncommitted {
		return nil, ErrTreeFull
	}
	n := &Node{Block: b, Parent: parent}
	t.nodes[b.ID()] = n
	t.uncommitted++
	k := slot{b.View, b.Proposer}
	if t.slots[k] == nil {
		t.slots[k] = n
	}
	return n, nil
}

// Slot returns the block the tree holds for proposer's view v, if any (the first one added when
// the proposer equivocated and a certificate made the tree take a second one).
func (t *Tree) Slot(v types.View, proposer types.NodeID) *Node { return t.slots[slot{v, proposer}] }

// remove deletes an uncommitted node.
func (t *Tree) remove(n *Node) {
	delete(t.nodes, n.ID())
	t.uncommitted--
	k := slot{n.View(), n.Block.Proposer}
	if t.slots[k] == n {
		delete(t.slots, k)
	}
}

// Evict removes uncommitted blocks that have no certificate, no child in the tree, and a view
// below before, and returns them in a deterministic order. They could only commit if a
// certificate for them showed up later, and then block sync fetches them again.
func (t *Tree) Evict(before types.View) []*types.Block {
	if t.uncommitted == 0 {
		return nil
	}
	var cand []*Node
	for _, n := range t.nodes {
		if !n.Committed && n.Cert == nil && n.View() < before {
			cand = append(cand, n)
		}
	}
	if len(cand) == 0 {
		return nil // the common case: no map built on every view change
	}
	hasChild := make(map[*Node]bool)
	for _, n := range t.nodes {
		if !n.Committed && n.Parent != nil { // a candidate's children are uncommitted
			hasChild[n.Parent] = true
		}
	}
	var out []*types.Block
	SortNodes(cand)
	for _, n := range cand {
		if !hasChild[n] {
			t.remove(n)
			out = append(out, n.Block)
		}
	}
	return out
}

// Extends reports whether n is anc or descends from it.
func (t *Tree) Extends(n *Node, anc *Node) bool {
	for n != nil && n.Height() > anc.Height() {
		n = n.Parent
	}
	return n == anc
}

// UncommittedPath returns the uncommitted blocks from the head (exclusive) to n (inclusive), oldest
// first. n must extend the head.
func (t *Tree) UncommittedPath(n *Node) []*Node {
	var path []*Node
	for ; n != nil && !n.Committed; n = n.Parent {
		path = append(path, n)
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path
}

// Commit marks target and its uncommitted ancestors committed and makes target the head. It returns
// the newly committed nodes, oldest first, and the blocks that can no longer commit, in a
// deterministic order. target must extend the head.
func (t *Tree) Commit(target *Node) (committed []*Node, orphans []*types.Block) {
	if target.Committed || !t.Extends(target, t.head) {
		return nil, nil
	}
	committed = t.UncommittedPath(target)
	for _, n := range committed {
		n.Committed = true
		t.uncommitted--
		if k := (slot{n.View(), n.Block.Proposer}); t.slots[k] == n {
			delete(t.slots, k)
		}
	}
	t.head = target
	t.committed = append(t.committed, committed...)
	if extra := len(t.committed) - t.retain; extra > 0 {
		for _, old := range t.committed[:extra] {
			delete(t.nodes, old.ID())
		}
		t.committed = append(t.committed[:0:0], t.committed[extra:]...)
		t.committed[0].Parent = nil
	}
	var dead []*Node
	for _, n := range t.nodes {
		if !n.Committed && !t.Extends(n, t.head) {
			dead = append(dead, n)
		}
	}
	SortNodes(dead)
	for _, n := range dead {
		t.remove(n)
		orphans = append(orphans, n.Block)
	}
	return committed, orphans
}

// Reset makes b, certified by cert, the committed head, as state transfer found it: committed
// blocks below it are forgotten, uncommitted blocks that extend it are kept, and the others are
// removed and returned as orphans in a deterministic order.
func (t *Tree) Reset(b *types.Block, cert *types.QC) (orphans []*types.Block) {
	head := t.nodes[b.ID()]
	if head == nil {
		head = &Node{Block: b}
	}
	head.Cert, head.Committed, head.Parent = cert, true, nil
	var dead []*Node
	keep := make(map[*Node]bool)
	for _, n := range t.nodes {
		if n.Committed || n == head {
			continue
		}
		a := n
		for a != nil && a.Height() > b.Height {
			a = a.Parent
		}
		if a == head {
			keep[n] = true
		} else {
			dead = append(dead, n)
		}
	}
	SortNodes(dead)
	for _, n := range dead {
		orphans = append(orphans, n.Block)
	}
	t.nodes = map[types.Hash]*Node{b.ID(): head}
	t.slots = make(map[slot]*Node)
	t.uncommitted = 0
	for n := range keep {
		t.nodes[n.ID()] = n
		t.uncommitted++
	}
	for _, n := range t.Uncommitted() { // deterministic: the first of a slot stays the first
		if k := (slot{n.View(), n.Block.Proposer}); t.slots[k] == nil {
			t.slots[k] = n
		}
	}
	t.head = head
	t.committed = []*Node{head}
	return orphans
}

// Uncommitted returns the uncommitted nodes in a deterministic order (height, view, ID).
func (t *Tree) Uncommitted() []*Node {
	out := make([]*Node, 0, t.uncommitted)
	for _, n := range t.nodes {
		if !n.Committed {
			out = append(out, n)
		}
	}
	SortNodes(out)
	return out
}

// SortNodes orders nodes by height, then view, then ID.
func SortNodes(ns []*Node) {
	sort.Slice(ns, func(i, j int) bool {
		a, b := ns[i], ns[j]
		if a.Height() != b.Height() {
			return a.Height() < b.Height()
		}
		if a.View() != b.View() {
			return a.View() < b.View()
		}
		ai, bi := a.ID(), b.ID()
		return bytes.Compare(ai[:], bi[:]) < 0
	})
}

// PendingChain returns the blocks of n and its uncommitted ancestors, oldest first: what a block
// extending n builds on before it commits.
func PendingChain(n *Node) []*types.Block {
	var out []*types.Block
	for ; n != nil && !n.Committed; n = n.Parent {
		out = append(out, n.Block)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// ChainCertified reports whether n and all its uncommitted ancestors are certified. The committed
// head counts as certified.
func ChainCertified(n *Node) bool {
	for ; n != nil && !n.Committed; n = n.Parent {
		if n.Cert == nil {
			return false
		}
	}
	return n != nil
}

// RecentPayload reports whether one of the k blocks from n up (n, its parent, ...) carries
// payload, committed or not. A payload that a certificate has just committed at this replica
// commits at the others only once they see that certificate, which the next proposal carries:
// HotStuff commits a block when a QC certifies its grandchild, so a leader whose parent is within
// three blocks of payload proposes at once rather than after ProposeTimeout (on an idle cluster
// that wait was most of a client's commit latency: 115 ms of 120).
func RecentPayload(n *Node, k int) bool {
	for i := 0; n != nil && i < k; i, n = i+1, n.Parent {
		if n.Block.Payload.Len() > 0 {
			return true
		}
	}
	return false
}

// HasPendingPayload reports whether n or an uncommitted ancestor carries payload; leaders use it to
// keep proposing until that payload commits.
func HasPendingPayload(n *Node) bool {
	for ; n != nil && !n.Committed; n = n.Parent {
		if n.Block.Payload.Len() > 0 {
			return true
		}
	}
	return false
}
