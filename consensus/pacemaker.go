package consensus

import (
	"time"

	"github.com/stratusbft/stratus/types"
)

// ViewTimer fires when a view lasted too long. Seq tells a stale timer from the current one.
type ViewTimer struct {
	View types.View
	Seq  uint64
}

// Pacemaker keeps the view timer with exponential backoff and aggregates timeouts into TCs.
type Pacemaker struct {
	env      Env
	base     time.Duration
	maxExp   int
	backoff  int // consecutive timeouts without progress
	seq      uint64
	view     types.View
	need     int
	timeouts map[types.View]*SigSet
	sent     map[types.View]bool
	// Deferral, when set, says which timeouts may be counted unchecked.
	Deferral *Deferral
}

// NewPacemaker returns a pacemaker with base timeout and at most maxExp doublings.
func NewPacemaker(env Env, base time.Duration, maxExp int) *Pacemaker {
	if maxExp <= 0 {
		maxExp = 6
	}
	return &Pacemaker{
		env:      env,
		base:     base,
		maxExp:   maxExp,
		need:     QuorumSize(env.N()),
		timeouts: make(map[types.View]*SigSet),
		sent:     make(map[types.View]bool),
	}
}

// Duration is the current view timeout: base × 2^backoff, capped.
func (p *Pacemaker) Duration() time.Duration {
	return p.base << min(p.backoff, p.maxExp)
}

// Backoff is the number of consecutive timeouts without progress.
func (p *Pacemaker) Backoff() int { return p.backoff }

// Enter starts view v's timer.
func (p *Pacemaker) Enter(v types.View) {
	p.view = v
	p.arm()
}

func (p *Pacemaker) arm() {
	p.seq++
	p.env.SetTimer(p.Duration(), ViewTimer{View: p.view, Seq: p.seq})
}

// Expired reports whether t is the current view's timer. If so the timeout counts: the backoff
// grows and the timer is re-armed so that the timeout is re-sent until the view changes.
func (p *Pacemaker) Expired(t ViewTimer) bool {
	if t.View != p.view || t.Seq != p.seq {
		return false
	}
	p.backoff++
	p.arm()
	return true
}

// Progress resets the backoff after the protocol moved forward: a commit, a state sync, or under
// Streamlet a notarization (which moves it to the next epoch).
func (p *Pacemaker) Progress() { p.backoff = 0 }

// Sent reports whether this replica counted its own timeout for v.
func (p *Pacemaker) Sent(v types.View) bool { return p.sent[v] }

// MarkSent records that this replica counted its own timeout for v.
func (p *Pacemaker) MarkSent(v types.View) { p.sent[v] = true }

// AddTimeout records a timeout, verified (checked) or to be checked when the view's timeouts
// reach a quorum. It returns the number of distinct senders counted for the view and, the first
// time they reach a quorum of valid timeouts, the TC; bad lists the senders whose unchecked
// timeouts failed then (dropped, and recorded with the Deferral).
func (p *Pacemaker) AddTimeout(t *types.Timeout, checked bool) (count int, tc *types.TC, bad []types.NodeID) {
	set := p.timeouts[t.View]
	if set == nil {
		set = &SigSet{}
		p.timeouts[t.View] = set
	}
	before := set.Count()
	if checked {
		set.Add(t.Sender, t.Sig)
	} else {
		set.AddUnchecked(t.Sender, t.Sig)
	}
	if set.Count() == before || set.Count() != p.need {
		return set.Count(), nil, nil
	}
	if bad = set.Check(p.env.Verifier(), types.TimeoutDigest(t.View)); len(bad) > 0 {
		p.Deferral.Failed(bad)
		if set.Count() < p.need {
			return set.Count(), nil, bad
		}
	}
	bm, sigs := set.BuildFor(p.env.Verifier())
	return set.Count(), &types.TC{View: t.View, Signers: bm, Sigs: sigs}, bad
}

// Prune forgets timeouts for views below keep.
func (p *Pacemaker) Prune(keep types.View) {
	for v := range p.timeouts {
		if v < keep {
			delete(p.timeouts, v)
		}
	}
	for v := range p.sent {
		if v < keep {
			delete(p.sent, v)
		}
	}
}
