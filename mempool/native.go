package mempool

import (
	"fmt"
	"time"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/internal/fifo"
	"github.com/stratusbft/stratus/types"
)

// NativeConfig configures the native mempool.
type NativeConfig struct {
	BSize   int           // transactions per proposal
	MemSize int           // bytes held at most
	Master  types.NodeID  // static leader, or 0 when leaders rotate
	Retry   time.Duration // how long a replica waits for a forwarded transaction to commit before forwarding it again
}

// Native is the mempool of native HotStuff/Streamlet: transactions travel inside proposals.
//
// With rotating leaders every replica proposes the transactions its clients sent it when it leads.
// A replica whose own proposals keep being orphaned — for example because the leaders after it are
// Byzantine and fork its blocks away, every time its turn comes — would never get its clients'
// transactions committed; so a transaction orphaned OrphansBeforeForward times is also forwarded
// to the f+1 replicas that lead after this one in the rotation, at least one of them honest, which
// propose it in their turn (a copy ordered twice is dropped at delivery).
// With a static leader the other replicas forward their transactions to it and forward them again
// if they have not committed after Retry, so a transaction is lost neither by a busy leader nor by
// a lost message. A replica holds every transaction it accepted until the transaction commits, and
// takes back the payload of its own orphaned proposals. Forwarded transactions are held within the
// forwarding replica's share of memsize (memsize split among the other replicas).
type Native struct {
	env   consensus.Env
	cfg   NativeConfig
	queue fifo.Queue[types.Tx] // pending transactions; entries no longer pending are skipped lazily
	held  map[types.Hash]*heldTx
	live  int // pending entries in queue
	bytes int // charged bytes of own transactions (txCost)
	// At a replica that takes forwards (a static leader, or any replica with rotating leaders),
	// the charged bytes of the transactions each replica forwarded: every origin has a share of
	// its own, so one cannot crowd the others (or this replica's clients) out.
	fwdBytes map[types.NodeID]int
	fwd      []types.Hash // forwarded transactions in forwarding order
	retryOn  bool
}

type txState uint8

const (
	statePending txState = iota
	stateProposed
	stateForwarded
)

type heldTx struct {
	tx      types.Tx
	origin  types.NodeID // the replica that forwarded it here; 0: own client
	state   txState
	at      time.Time // when forwarded
	orphans uint8     // own proposals of it that were orphaned
}

// OrphansBeforeForward is how many times a replica's own proposal of a transaction is orphaned,
// with rotating leaders, before the replica forwards the transaction to the next leaders.
const OrphansBeforeForward = 2

type retryTimer struct{}

// NewNative returns a native mempool.
func NewNative(env consensus.Env, cfg NativeConfig) *Native {
	return &Native{env: env, cfg: cfg, held: make(map[types.Hash]*heldTx), fwdBytes: make(map[types.NodeID]int)}
}

func (m *Native) forwards() bool { return m.cfg.Master != 0 && m.cfg.Master != m.env.Self() }

// AddTxs implements Mempool.
func (m *Native) AddTxs(txs []types.Tx) error {
	add := 0
	for _, t := range txs {
		if m.held[t.ID()] == nil {
			add += txCost(t)
		}
	}
	if m.bytes+add > m.cfg.MemSize {
		return &FullError{HeldBytes: m.bytes, AddBytes: add, Limit: m.cfg.MemSize}
	}
	var fresh []types.Tx
	for _, t := range txs {
		if m.held[t.ID()] != nil {
			continue
		}
		h := &heldTx{tx: t}
		m.held[t.ID()] = h
		m.bytes += txCost(t)
		if m.forwards() {
			h.state, h.at = stateForwarded, m.env.Now()
			m.fwd = append(m.fwd, t.ID())
			fresh = append(fresh, t)
			continue
		}
		m.queue.Push(t)
		m.live++
	}
	if len(fresh) > 0 {
		m.env.Send(m.cfg.Master, &types.TxForward{Txs: fresh})
		if !m.retryOn {
			m.retryOn = true
			m.env.SetTimer(m.cfg.Retry, retryTimer{})
		}
	}
	return nil
}

// OnMessage implements Mempool: the static leader, or with rotating leaders any replica, takes
// forwarded transactions while the forwarding replica's share has room (memsize split among the
// other replicas); what it drops the origin forwards again (static leader) or proposes itself.
func (m *Native) OnMessage(from types.NodeID, msg types.Message) {
	fw, ok := msg.(*types.TxForward)
	if !ok || from == m.env.Self() || m.cfg.Master != 0 && m.cfg.Master != m.env.Self() {
		return
	}
	share := max(m.cfg.MemSize/max(1, m.env.N()-1), 1)
	for _, t := range fw.Txs {
		if m.held[t.ID()] != nil {
			continue
		}
		if m.fwdBytes[from]+txCost(t) > share {
			return
		}
		m.held[t.ID()] = &heldTx{tx: t, origin: from}
		m.fwdBytes[from] += txCost(t)
		m.queue.Push(t)
		m.live++
	}
}

// free forgets a held transaction and what it was charged.
func (m *Native) free(h *heldTx) {
	if h.origin == 0 {
		m.bytes -= txCost(h.tx)
	} else if m.fwdBytes[h.origin] -= txCost(h.tx); m.fwdBytes[h.origin] <= 0 {
		delete(m.fwdBytes, h.origin)
	}
	delete(m.held, h.tx.ID())
}

// OnTimer implements Mempool: forward again what has not committed in time.
func (m *Native) OnTimer(t consensus.Timer) {
	if _, ok := t.(retryTimer); !ok {
		return
	}
	now := m.env.Now()
	var again []types.Tx
	kept := m.fwd[:0]
	for _, id := range m.fwd {
		h := m.held[id]
		if h == nil || h.state != stateForwarded {
			continue
		}
		kept = append(kept, id)
		if now.Sub(h.at) >= m.cfg.Retry {
			h.at = now
			again = append(again, h.tx)
		}
	}
	m.fwd = kept
	if len(again) > 0 {
		m.env.Send(m.cfg.Master, &types.TxForward{Txs: again})
	}
	if len(m.fwd) > 0 {
		m.env.SetTimer(m.cfg.Retry, retryTimer{})
	} else {
		m.retryOn = false
	}
}

// Ready implements consensus.Mempool.
func (m *Native) Ready() bool { return m.live > 0 }

// MakePayload implements consensus.Mempool: up to bsize pending transactions, oldest first.
func (m *Native) MakePayload(types.View, []*types.Block) *types.Payload {
	n := min(m.live, m.cfg.BSize)
	txs := make([]types.Tx, 0, n)
	count := 0 // transactions: a compact (simulated) one counts as the many it stands for
	for count < m.cfg.BSize {
		t, ok := m.queue.Peek()
		if !ok {
			break
		}
		h := m.held[t.ID()]
		if h == nil || h.state != statePending {
			m.queue.Pop()
			continue
		}
		if count > 0 && count+t.Count() > m.cfg.BSize {
			break
		}
		m.queue.Pop()
		h.state = stateProposed
		m.live--
		count += t.Count()
		txs = append(txs, t)
	}
	return &types.Payload{Txs: txs}
}

// CheckPayload implements consensus.Mempool: at most bsize transactions, none twice.
func (m *Native) CheckPayload(b *types.Block) (consensus.Verdict, error) {
	p := b.Payload
	if len(p.Refs) > 0 {
		return consensus.Reject, fmt.Errorf("payload references %d microblocks; the native mempool carries transactions", len(p.Refs))
	}
	count := 0
	for _, t := range p.Txs {
		count += t.Count()
	}
	if count > m.cfg.BSize && len(p.Txs) > 1 {
		return consensus.Reject, fmt.Errorf("payload has %d transactions, bsize is %d", count, m.cfg.BSize)
	}
	seen := make(map[types.Hash]struct{}, len(p.Txs))
	for i, t := range p.Txs {
		if _, dup := seen[t.ID()]; dup {
			return consensus.Reject, fmt.Errorf("transaction %d (%v) appears twice", i, t.ID())
		}
		seen[t.ID()] = struct{}{}
	}
	return consensus.Accept, nil
}

// Resolve implements Mempool: native payloads carry their transactions.
func (m *Native) Resolve(b *types.Block) ([][]types.Tx, bool) {
	return [][]types.Tx{b.Payload.Txs}, true
}

// Committed implements Mempool.
func (m *Native) Committed(b *types.Block) {
	for _, t := range b.Payload.Txs {
		h := m.held[t.ID()]
		if h == nil {
			continue
		}
		if h.state == statePending {
			m.live--
		}
		m.free(h)
	}
}

// Requeue implements Mempool: this replica's own proposed transactions go back to the front; with
// rotating leaders, those of its clients orphaned OrphansBeforeForward times are also forwarded to
// the next f+1 leaders.
func (m *Native) Requeue(b *types.Block) {
	var back, forward []types.Tx
	for _, t := range b.Payload.Txs {
		if h := m.held[t.ID()]; h != nil && h.state == stateProposed {
			h.state = statePending
			back = append(back, t)
			if h.origin == 0 && m.cfg.Master == 0 && b.Proposer == m.env.Self() {
				if h.orphans++; h.orphans == OrphansBeforeForward {
					forward = append(forward, t)
				}
			}
		}
	}
	m.queue.PushFront(back)
	m.live += len(back)
	if len(forward) > 0 {
		n := m.env.N()
		for k := 1; k <= min(n-consensus.QuorumSize(n)+1, n-1); k++ { // f+1 of them
			to := types.NodeID((int(m.env.Self())-1+k)%n + 1)
			m.env.Send(to, &types.TxForward{Txs: forward})
		}
	}
}

// DeliveredWindow implements Mempool: duplicates of native payloads are the replica's business.
func (m *Native) DeliveredWindow() []types.MBView { return nil }

// Synced implements Mempool: held transactions that were delivered meanwhile are dropped.
// A held transaction delivered before txDelivered's window stays and is proposed again (a
// duplicate beyond the window is delivered again, as anywhere else); nothing to return.
func (m *Native) Synced(_ []types.MBView, txDelivered func(types.Hash) bool) []types.Tx {
	for id, h := range m.held {
		if !txDelivered(id) {
			continue
		}
		if h.state == statePending {
			m.live--
		}
		m.free(h)
	}
	return nil
}

// Restore implements Mempool: a native mempool keeps nothing (payloads are inside blocks).
func (m *Native) Restore([]*types.MicroBlock) {}

// Decided implements Mempool; native payloads are settled at delivery (Committed).
func (m *Native) Decided(*types.Block) {}

// SetView implements Mempool; the native mempool does not depend on views.
func (m *Native) SetView(types.View) {}

// Gauges implements Mempool.
func (m *Native) Gauges() Gauges {
	return Gauges{PendingTxs: m.live, PendingBytes: m.bytes, InFlightTxs: len(m.held) - m.live}
}
