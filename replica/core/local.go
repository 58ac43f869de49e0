package core

import (
	"encoding/binary"
	"time"

	"github.com/stratusbft/stratus/types"
)

// localTx is a transaction submitted to this replica and not delivered yet.
type localTx struct {
	recv    time.Time
	waiters []*Waiter
}

// localTxs are the transactions submitted to this replica and not delivered yet. Every delivered
// transaction is looked up here, and with clients spread over the replicas most were submitted
// elsewhere: a counting filter in front of the map, a byte per key of up to 15 bits taken from ID
// bytes the dedup window does not use, answers most of those lookups from memory that stays in
// the cache instead of probing a map whose groups the dedup window's traffic has evicted. (Those
// probes were 6 % of server -sim's CPU at N=4.) The filter is as small as keeps it sparse — eight
// keys for each entry, from 4 KiB up to 32 KiB — because what stays in the cache is what a
// process's replicas touch often: at N=16 a replica holds a few hundred entries, and sixteen
// 32-KiB filters, every lookup a different line, made the lookups 7 % of server -sim's CPU.
type localTxs struct {
	m map[types.Hash]*localTx
	// counts[k] is the number of entries whose key is k; 255 means at least that many, and is
	// never decremented (the lookups of that key then probe the map, as they did without filter)
	// until the filter grows and counts again. Its length is a power of two.
	counts []uint8
}

const (
	localFilterMin = 1 << 12
	localFilterMax = 1 << 15 // the 16 bits key reads allow up to 1 << 16
	localFilterPer = 8       // keys per entry the filter keeps while it may grow
)

func newLocalTxs() localTxs {
	return localTxs{m: make(map[types.Hash]*localTx), counts: make([]uint8, localFilterMin)}
}

// key is id's filter key.
func (l *localTxs) key(id *types.Hash) int {
	return int(binary.LittleEndian.Uint16(id[16:18])) & (len(l.counts) - 1)
}

func (l *localTxs) len() int { return len(l.m) }

// get returns id's entry, or nil.
func (l *localTxs) get(id types.Hash) *localTx {
	if l.counts[l.key(&id)] == 0 {
		return nil
	}
	return l.m[id]
}

// grow doubles the filter, below its limit, while it holds fewer than localFilterPer keys per
// entry, and counts the entries again; put calls it when that is due. It never shrinks: a
// replica that once held many may again.
func (l *localTxs) grow() {
	n := len(l.counts)
	for n < localFilterMax && n < localFilterPer*len(l.m) {
		n *= 2
	}
	l.counts = make([]uint8, n)
	for id := range l.m {
		if c := &l.counts[l.key(&id)]; *c < 255 {
			*c++
		}
	}
}

// put adds id, which is not there.
func (l *localTxs) put(id types.Hash, x *localTx) {
	l.m[id] = x
	if len(l.m)*localFilterPer > len(l.counts) && len(l.counts) < localFilterMax {
		l.grow() // counts id too
		return
	}
	if c := &l.counts[l.key(&id)]; *c < 255 {
		*c++
	}
}

// replace gives id, which is there, the entry x.
func (l *localTxs) replace(id types.Hash, x *localTx) { l.m[id] = x }

// remove drops id, which is there.
func (l *localTxs) remove(id types.Hash) {
	delete(l.m, id)
	if c := &l.counts[l.key(&id)]; *c < 255 {
		*c--
	}
}
