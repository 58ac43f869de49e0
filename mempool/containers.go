package mempool

import (
	"github.com/stratusbft/stratus/internal/fifo"
	"github.com/stratusbft/stratus/types"
)

// retainer keeps the data of the latest committed microblocks, up to limit bytes, oldest evicted
// first: a replica that is behind in delivery can still fetch what the others already delivered,
// and memory stays flat. The microblocks of the latest retainBlocks delivered blocks are kept
// whatever their size, so that a microblock is never evicted in the very step that delivers it,
// while replicas that voted on its proof still need to fetch it.
type retainer struct {
	drop   func(types.Hash) // told of every microblock let go
	limit  int
	bytes  int
	height uint64 // the latest delivered block
	mbs    map[types.Hash]retained
	order  fifo.Queue[types.Hash]
}

type retained struct {
	mb     *types.MicroBlock
	height uint64
}

// retainBlocks is how many delivered blocks' microblocks are kept regardless of limit.
const retainBlocks = 8

func (r *retainer) add(mb *types.MicroBlock, height uint64) {
	if _, ok := r.mbs[mb.ID]; ok {
		return
	}
	r.mbs[mb.ID] = retained{mb, height}
	r.order.Push(mb.ID)
	r.bytes += mbCost(mb)
	r.height = max(r.height, height)
	for r.bytes > r.limit {
		id, ok := r.order.Peek()
		if !ok {
			return
		}
		old, held := r.mbs[id]
		if held && old.height+retainBlocks > r.height {
			return // recent: kept
		}
		r.order.Pop()
		if held {
			r.bytes -= mbCost(old.mb)
			delete(r.mbs, id)
			if r.drop != nil {
				r.drop(id)
			}
		}
	}
}

func (r *retainer) get(id types.Hash) *types.MicroBlock { return r.mbs[id].mb }

// availSet holds the IDs of the microblocks that may be proposed, oldest first (requeued ones
// first), each once. An entry stays while it can still be proposed, also while a pending block
// holds it: it leaves when a walk finds it dead (committed, freed, stale).
type availSet struct {
	ids []types.Hash
	in  map[types.Hash]bool
}

func (a *availSet) add(id types.Hash) {
	if a.in == nil {
		a.in = make(map[types.Hash]bool)
	}
	if !a.in[id] {
		a.in[id] = true
		a.ids = append(a.ids, id)
	}
}

// addFront puts ids, in their order, before every other entry (one that is in already stays
// where it is).
func (a *availSet) addFront(ids []types.Hash) {
	if a.in == nil {
		a.in = make(map[types.Hash]bool)
	}
	var front []types.Hash
	for _, id := range ids {
		if !a.in[id] {
			a.in[id] = true
			front = append(front, id)
		}
	}
	if len(front) > 0 {
		a.ids = append(front, a.ids...)
	}
}

func (a *availSet) len() int { return len(a.ids) }

// walk visits the IDs in order until visit says stop; the ones it finds dead are dropped.
func (a *availSet) walk(visit func(id types.Hash) (alive, stop bool)) {
	kept := a.ids[:0]
	i := 0
	for ; i < len(a.ids); i++ {
		id := a.ids[i]
		alive, stop := visit(id)
		if alive {
			kept = append(kept, id)
		} else {
			delete(a.in, id)
		}
		if stop {
			i++
			break
		}
	}
	kept = append(kept, a.ids[i:]...)
	clear(a.ids[len(kept):])
	a.ids = kept
}

// viewSet remembers IDs with the view they were added in and forgets them window views later.
type viewSet struct {
	window types.View
	ids    map[types.Hash]types.View
	order  []viewID
	head   int
}

type viewID struct {
	id   types.Hash
	view types.View
}

func newViewSet(window types.View) *viewSet {
	return &viewSet{window: window, ids: make(map[types.Hash]types.View)}
}

func (v *viewSet) has(id types.Hash) bool { _, ok := v.ids[id]; return ok }

func (v *viewSet) add(id types.Hash, view types.View) {
	v.ids[id] = view
	v.order = append(v.order, viewID{id, view})
}

// list returns the remembered IDs with their views, oldest first.
func (v *viewSet) list() []types.MBView {
	out := make([]types.MBView, 0, len(v.ids))
	for _, x := range v.order[v.head:] {
		if view, ok := v.ids[x.id]; ok && view == x.view {
			out = append(out, types.MBView{ID: x.id, View: x.view})
		}
	}
	return out
}

// merge adds entries sorted by view (a snapshot's window), keeping the order sorted by view so
// that pruning stays in order.
func (v *viewSet) merge(add []types.MBView) {
	old := v.order[v.head:]
	out := make([]viewID, 0, len(old)+len(add))
	i, j := 0, 0
	for i < len(old) || j < len(add) {
		if j == len(add) || (i < len(old) && old[i].view <= add[j].View) {
			out = append(out, old[i])
			i++
			continue
		}
		if _, dup := v.ids[add[j].ID]; !dup {
			v.ids[add[j].ID] = add[j].View
			out = append(out, viewID{add[j].ID, add[j].View})
		}
		j++
	}
	v.order, v.head = out, 0
}

func (v *viewSet) prune(now types.View) {
	for v.head < len(v.order) && v.order[v.head].view+v.window < now {
		delete(v.ids, v.order[v.head].id)
		v.head++
	}
	if v.head > 1024 && v.head*2 > len(v.order) {
		v.order = append(v.order[:0:0], v.order[v.head:]...)
		v.head = 0
	}
}
