package simnet

import (
	"fmt"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// Checker verifies the invariants of SPEC §4 after every delivery: honest replicas deliver the
// same sequence of blocks (each a prefix of the longest), no transaction twice, and every committed
// block's QC has a quorum of distinct valid signers. Votes at most once per view are checked on the
// Voted events.
type Checker struct {
	sim        *Sim
	chain      []types.Hash // the longest delivered block sequence
	seen       map[types.NodeID]map[types.Hash]bool
	violations []string
}

func newChecker(s *Sim) *Checker {
	return &Checker{sim: s, seen: make(map[types.NodeID]map[types.Hash]bool)}
}

func (c *Checker) fail(format string, args ...any) {
	msg := fmt.Sprintf("seed %d, t=%v: ", c.sim.opts.Seed, c.sim.Now()) + fmt.Sprintf(format, args...)
	if len(c.violations) < 100 {
		c.violations = append(c.violations, msg)
	}
}

func (c *Checker) delivered(n *Node, b *types.Block, txs []types.Tx) {
	k := len(n.Blocks) - 1 // n.Blocks already holds b
	switch {
	case k < len(c.chain):
		if c.chain[k] != b.ID() {
			c.fail("replica %d delivered block %v at position %d where another replica delivered %v", n.ID, b.ID(), k, c.chain[k])
		}
	case k == len(c.chain):
		c.chain = append(c.chain, b.ID())
	default:
		c.fail("replica %d skipped deliveries", n.ID)
	}
	if err := consensus.VerifyQC(c.sim.ver, b.QC); err != nil {
		c.fail("replica %d delivered block %v whose QC does not verify: %v", n.ID, b.ID(), err)
	}
	seen := c.seen[n.ID]
	if seen == nil {
		seen = make(map[types.Hash]bool)
		c.seen[n.ID] = seen
	}
	for _, t := range txs {
		if seen[t.ID()] {
			c.fail("replica %d delivered transaction %v twice", n.ID, t.ID())
		}
		seen[t.ID()] = true
	}
}

// DeliveredBy reports whether replica id delivered transaction tx.
func (c *Checker) DeliveredBy(id types.NodeID, tx types.Hash) bool { return c.seen[id][tx] }

// Checker returns the run's invariant checker.
func (s *Sim) Checker() *Checker { return s.check }

// AllDelivered reports whether every honest replica delivered every transaction in txs.
func (s *Sim) AllDelivered(txs []types.Tx) bool {
	for _, n := range s.Honest() {
		if len(n.Txs) < len(txs) {
			return false // cheap: checked after every event while waiting
		}
	}
	for _, n := range s.Honest() {
		for _, t := range txs {
			if !s.check.DeliveredBy(n.ID, t.ID()) {
				return false
			}
		}
	}
	return true
}
