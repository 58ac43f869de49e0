package simnet

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// Checker verifies the invariants of docs/spec.md §4.3 from what replicas actually send and deliver, after
// every step of the simulation. It holds every replica that is not Byzantine, silent or crashed
// for good to these rules, whatever engine it runs:
//
//   - Agreement: replicas deliver the same block at every height (a prefix of one chain), and a
//     replica that skips ahead by state transfer lands on that chain with the right digest.
//   - No transaction is delivered twice by one incarnation of a replica.
//   - One vote per view: from the votes a replica signs (on the wire, inside timeouts, and the
//     votes it counts itself), across restarts.
//   - Locking (HotStuff): a replica that voted for a block carrying QC(P) is locked on P's parent
//     at least, and never votes afterwards for a block that neither extends that lock nor carries
//     a newer QC.
//   - Commit rule: every block a replica commits ends a chain the rule allows (HotStuff: a child
//     and a grandchild of consecutive views, the grandchild certified; Streamlet: three notarized
//     blocks of consecutive epochs with it in the middle), from the votes and QCs seen anywhere.
//   - Certificates: every block such a replica sends has a valid signature, QC and TC; every
//     timeout and TC it sends is valid; every proof it sends or votes for has q valid signers;
//     with proofs by reference it proposes or votes for a reference only when it received or
//     formed a valid proof of it.
type Checker struct {
	sim       *Sim
	quorum    int
	hotstuff  bool
	leaders   consensus.LeaderElection
	chain     []types.Hash // the block delivered at each height (index height-1)
	digests   []types.Hash // the chain digest after each height
	blockTxs  map[types.Hash][]types.Hash
	nodes     map[types.NodeID]*nodeCheck
	blocks    map[types.Hash]*types.Block
	children  map[types.Hash][]types.Hash
	certified map[types.Hash]bool
	voters    map[voteKey]map[types.NodeID]bool
	validated map[types.Hash]bool // blocks an honest replica sent and the checker validated
	// proofs memoizes proof verdicts by pointer: in the simulator every receiver of a proof gets
	// the same immutable message, and verifying it again at each of N=400 replicas (its digest,
	// its certificate key) was a sixth of a run. Emptied when full.
	proofs  map[*types.Proof]error
	pending map[types.NodeID][]*types.Block
	// Light mode (Options.Light): the fresh transactions delivered at each height, as a digest,
	// and the height at which the chain delivered each transaction.
	txDigests []types.Hash
	txHeight  map[types.Hash]uint64
	// violations lists what went wrong, with the seed and the virtual time.
	violations []string
}

type voteKey struct {
	view  types.View
	block types.Hash
}

type nodeCheck struct {
	height  uint64              // delivered height of the current incarnation
	seen    map[types.Hash]bool // transactions the current incarnation delivered (or skipped by snapshot)
	votes   map[types.View]types.Hash
	hasLock bool
	lock    voteKey
	// proofs are the microblocks of which the replica received or formed a valid proof (proofs
	// by reference: it may propose and vote for a reference only with one).
	proofs map[types.Hash]bool
}

func newChecker(s *Sim) *Checker {
	return &Checker{
		sim:       s,
		quorum:    consensus.QuorumSize(s.opts.N),
		hotstuff:  s.opts.Spec.Engine == config.EngineHotStuff,
		leaders:   consensus.NewLeaderElection(int(s.opts.Spec.Master), s.opts.N),
		blockTxs:  make(map[types.Hash][]types.Hash),
		nodes:     make(map[types.NodeID]*nodeCheck),
		blocks:    map[types.Hash]*types.Block{types.Genesis().ID(): types.Genesis()},
		children:  make(map[types.Hash][]types.Hash),
		certified: map[types.Hash]bool{types.Genesis().ID(): true},
		voters:    make(map[voteKey]map[types.NodeID]bool),
		validated: make(map[types.Hash]bool),
		pending:   make(map[types.NodeID][]*types.Block),
		txHeight:  make(map[types.Hash]uint64),
	}
}

func (c *Checker) fail(format string, args ...any) {
	msg := fmt.Sprintf("seed %d, t=%v: ", c.sim.opts.Seed, c.sim.Now()) + fmt.Sprintf(format, args...)
	if len(c.violations) < 100 {
		c.violations = append(c.violations, msg)
	}
}

func (c *Checker) node(id types.NodeID) *nodeCheck {
	nc := c.nodes[id]
	if nc == nil {
		nc = &nodeCheck{seen: make(map[types.Hash]bool), votes: make(map[types.View]types.Hash), proofs: make(map[types.Hash]bool)}
		c.nodes[id] = nc
	}
	return nc
}

// restarted starts a new incarnation. A replica's chain across its incarnations is one chain: the
// new one starts where the old one's store says it delivered up to, which must be where the old
// one was (every step's changes are saved before the next), with the same chain digest; what it
// delivers next must follow on. Its votes and lock still count.
//
// A replica on a disk that failed may come back lower than it was (the last steps were never
// synced, so nothing of them was acknowledged or sent): what it had delivered above is forgotten,
// and it must deliver the same blocks there again.
func (c *Checker) restarted(n *Node, unsynced bool) {
	nc := c.node(n.ID)
	h, digest, _ := n.Core.Delivered()
	switch {
	case h > nc.height || (h < nc.height && !unsynced):
		c.fail("replica %d restarted at delivered height %d; before its crash it had delivered up to %d", n.ID, h, nc.height)
	case h < nc.height:
		for k := h; k < nc.height && int(k) < len(c.chain); k++ {
			for _, tx := range c.blockTxs[c.chain[k]] {
				delete(nc.seen, tx)
			}
		}
	}
	if k := int(h) - 1; h > 0 && k < len(c.digests) && c.digests[k] != digest {
		c.fail("replica %d restarted at height %d with chain digest %v, not the chain's %v", n.ID, h, digest, c.digests[k])
	}
	nc.height = h
}

// sent sees every message a replica sends.
func (c *Checker) sent(from *Node, m types.Message) {
	honest := !from.Faulty()
	switch m := m.(type) {
	case *types.Block:
		c.block(from, honest, m)
	case *types.BlockResponse:
		c.block(from, honest, m.Block)
	case *types.Snapshot:
		c.block(from, honest, m.Block)
	case *types.Vote:
		c.vote(from, honest, m, m.Voter == from.ID)
	case *types.Timeout:
		c.cert(m.HighQC)
		if honest {
			if !c.sim.ver.Verify(m.Sender, types.TimeoutDigest(m.View), m.Sig) {
				c.fail("replica %d sent a timeout for view %d that does not verify", from.ID, m.View)
			}
			if err := consensus.VerifyQC(c.sim.ver, m.HighQC); err != nil {
				c.fail("replica %d sent a timeout carrying an invalid QC: %v", from.ID, err)
			}
		}
		if m.Vote != nil {
			c.vote(from, honest, m.Vote, m.Vote.Voter == from.ID)
		}
	case *types.TC:
		if err := consensus.VerifyTC(c.sim.ver, m); honest && err != nil {
			c.fail("replica %d sent an invalid TC: %v", from.ID, err)
		}
	case *types.Proof:
		err := c.proof(m)
		if honest && err != nil {
			c.fail("replica %d sent an invalid proof of %v: %v", from.ID, m.MBID, err)
		}
		if err == nil && c.byRef() {
			c.node(from.ID).proofs[m.MBID] = true
		}
	}
}

// byRef reports whether proposals reference microblocks without their proofs.
func (c *Checker) byRef() bool {
	return c.sim.opts.Spec.MemType == config.MemStratus && c.sim.opts.Spec.Shared.ProofsByRef
}

// received sees every message a replica takes in: with proofs by reference it learns which
// proofs the replica holds.
func (c *Checker) received(n *Node, m types.Message) {
	if !c.byRef() {
		return
	}
	switch m := m.(type) {
	case *types.Proof:
		if c.proof(m) == nil {
			c.node(n.ID).proofs[m.MBID] = true
		}
	case *types.Block:
		// An inline proof a replica verified counts too (a leader may still attach them).
		for _, r := range m.Payload.Refs {
			if r.Proof != nil && r.Proof.MBID == r.ID && c.proof(r.Proof) == nil {
				c.node(n.ID).proofs[r.ID] = true
			}
		}
	}
}

// block records a block seen on the wire and, the first time an honest replica sends it, checks
// its signature and certificates.
func (c *Checker) block(from *Node, honest bool, b *types.Block) {
	if b == nil {
		return
	}
	id := b.ID()
	if c.blocks[id] == nil {
		c.blocks[id] = b
		c.children[b.Parent] = append(c.children[b.Parent], id)
		c.cert(b.QC)
	}
	if honest && !c.validated[id] {
		c.validated[id] = true
		if rule, err := consensus.CheckBlock(b, c.sim.ver, c.leaders); err != nil {
			c.fail("replica %d sent block %v of view %d that fails %s: %v", from.ID, id, b.View, rule, err)
		}
		if b.Proposer == from.ID {
			if err := c.payloadProofs(b, from.ID); err != nil {
				c.fail("replica %d proposed block %v of view %d with %v", from.ID, id, b.View, err)
			}
		}
	}
}

// cert records a valid QC: its block is certified.
func (c *Checker) cert(qc *types.QC) {
	if qc == nil || c.certified[qc.BlockID] {
		return
	}
	if consensus.VerifyQC(c.sim.ver, qc) == nil {
		c.certified[qc.BlockID] = true
	}
}

func (c *Checker) proof(p *types.Proof) error {
	if err, ok := c.proofs[p]; ok {
		return err
	}
	if c.proofs == nil || len(c.proofs) >= maxProofMemo {
		c.proofs = make(map[*types.Proof]error)
	}
	err := consensus.VerifyCert(c.sim.ver, types.AckDigest(p.MBID, p.View), p.Signers, p.Sigs, max(1, c.sim.opts.Spec.Shared.Q))
	c.proofs[p] = err
	return err
}

// maxProofMemo bounds Checker.proofs: the proofs it holds stay in memory (9 KB each at N=400).
const maxProofMemo = 4096

// payloadProofs checks the availability proofs of a stratus payload that replica id proposes or
// votes for: each reference carries a valid proof, or (by reference) id held one.
func (c *Checker) payloadProofs(b *types.Block, id types.NodeID) error {
	if c.sim.opts.Spec.MemType != config.MemStratus {
		return nil
	}
	for i, r := range b.Payload.Refs {
		if r.Proof == nil && c.byRef() {
			if !c.node(id).proofs[r.ID] {
				return fmt.Errorf("reference %d to %v, of which it held no valid proof", i, r.ID)
			}
			continue
		}
		if r.Proof == nil {
			return fmt.Errorf("reference %d without a proof", i)
		}
		if r.Proof.MBID != r.ID {
			return fmt.Errorf("reference %d carrying the proof of %v", i, r.Proof.MBID)
		}
		if err := c.proof(r.Proof); err != nil {
			return fmt.Errorf("reference %d with an invalid proof: %w", i, err)
		}
	}
	return nil
}

// vote records a vote seen anywhere; a vote an honest replica signed itself (direct) is checked.
func (c *Checker) vote(from *Node, honest bool, v *types.Vote, direct bool) {
	if !c.sim.ver.Verify(v.Voter, types.VoteDigest(v.View, v.BlockID), v.Sig) {
		if honest {
			c.fail("replica %d sent a vote of %d for view %d that does not verify", from.ID, v.Voter, v.View)
		}
		return
	}
	c.countVote(v.Voter, v.View, v.BlockID)
	if direct && honest {
		c.honestVote(from, v.View, v.BlockID)
	}
}

func (c *Checker) countVote(voter types.NodeID, view types.View, block types.Hash) {
	k := voteKey{view, block}
	set := c.voters[k]
	if set == nil {
		set = make(map[types.NodeID]bool)
		c.voters[k] = set
	}
	set[voter] = true
	if len(set) >= c.quorum {
		c.certified[block] = true
	}
}

// honestVote checks a vote an honest replica signed: one per view, and (HotStuff) not against
// the lock its earlier votes imply.
func (c *Checker) honestVote(n *Node, view types.View, id types.Hash) {
	nc := c.node(n.ID)
	if prev, ok := nc.votes[view]; ok {
		if prev != id {
			c.fail("replica %d voted twice in view %d: for %v and for %v", n.ID, view, prev, id)
		}
		return
	}
	nc.votes[view] = id
	b := c.blocks[id]
	if b == nil {
		return
	}
	if err := c.payloadProofs(b, n.ID); err != nil {
		c.fail("replica %d voted for block %v of view %d with %v", n.ID, id, view, err)
	}
	if !c.hotstuff || b.QC == nil {
		return
	}
	if nc.hasLock && b.QC.View <= nc.lock.view && !c.extends(b, nc.lock.block) {
		c.fail("replica %d voted for block %v of view %d that neither extends its lock (view %d) nor carries a newer QC (view %d): safeNode violated",
			n.ID, id, view, nc.lock.view, b.QC.View)
	}
	// Voting for b, the replica processed b's QC for P, which locks P's parent.
	if p := c.blocks[b.QC.BlockID]; p != nil && p.QC != nil && (!nc.hasLock || p.QC.View > nc.lock.view) {
		nc.hasLock, nc.lock = true, voteKey{p.QC.View, p.QC.BlockID}
	}
}

// extends reports whether b descends from the block anc, as far as the checker can tell (an
// ancestry it cannot follow counts as extending: the check never accuses without proof).
func (c *Checker) extends(b *types.Block, anc types.Hash) bool {
	a := c.blocks[anc]
	for b != nil {
		if b.ID() == anc {
			return true
		}
		if a != nil && b.Height <= a.Height {
			return false
		}
		if b.Height == 0 {
			return false
		}
		b = c.blocks[b.Parent]
	}
	return true
}

// event sees what a replica's core reports.
func (c *Checker) event(n *Node, e consensus.Event) {
	if n.Faulty() {
		return
	}
	switch e := e.(type) {
	case consensus.Voted:
		c.countVote(n.ID, e.View, e.Block)
		if n.disk == nil {
			// A replica on a disk holds its messages until its step is synced: its votes are
			// held to one per view as they leave (sent). A vote whose step never reached the
			// disk never left, and the restarted replica may cast another in that view.
			c.honestVote(n, e.View, e.Block)
		}
	case consensus.Committed:
		c.pending[n.ID] = append(c.pending[n.ID], e.Block)
	case consensus.StateSynced:
		c.synced(n, e)
	}
}

// afterStep checks the commits of the step: each batch ends with a block the commit rule allows
// (the earlier ones are its ancestors).
func (c *Checker) afterStep() {
	for id, bs := range c.pending {
		tip := bs[len(bs)-1]
		if err := c.justified(tip); err != nil {
			c.fail("replica %d committed block %v of view %d (height %d): %v", id, tip.ID(), tip.View, tip.Height, err)
		}
		delete(c.pending, id)
	}
}

func (c *Checker) childrenOf(b *types.Block, view types.View) []*types.Block {
	var out []*types.Block
	for _, id := range c.children[b.ID()] {
		if ch := c.blocks[id]; ch != nil && ch.View == view {
			out = append(out, ch)
		}
	}
	return out
}

var (
	errNoHotStuffChain  = errors.New("no child and grandchild of consecutive views with the grandchild certified: the commit rule does not allow it")
	errNoStreamletChain = errors.New("not the middle of three notarized blocks of consecutive epochs: the finalization rule does not allow it")
)

func (c *Checker) justified(b *types.Block) error {
	if c.hotstuff {
		for _, ch := range c.childrenOf(b, b.View+1) {
			for _, g := range c.childrenOf(ch, ch.View+1) {
				if c.certified[g.ID()] {
					return nil
				}
			}
		}
		return errNoHotStuffChain
	}
	p := c.blocks[b.Parent]
	if p == nil || p.View+1 != b.View || !c.certified[p.ID()] || !c.certified[b.ID()] {
		return errNoStreamletChain
	}
	for _, ch := range c.childrenOf(b, b.View+1) {
		if c.certified[ch.ID()] {
			return nil
		}
	}
	return errNoStreamletChain
}

func (c *Checker) delivered(n *Node, b *types.Block, txs []types.Tx) {
	if n.Faulty() {
		return
	}
	nc := c.node(n.ID)
	if b.Height != nc.height+1 {
		c.fail("replica %d delivered height %d after height %d", n.ID, b.Height, nc.height)
	}
	nc.height = b.Height
	k := int(b.Height) - 1
	switch {
	case k < len(c.chain):
		if c.chain[k] != b.ID() {
			c.fail("replica %d delivered block %v at height %d where another replica delivered %v", n.ID, b.ID(), b.Height, c.chain[k])
		}
	case k == len(c.chain):
		c.chain = append(c.chain, b.ID())
		prev := types.Hash{}
		if k > 0 {
			prev = c.digests[k-1]
		}
		c.digests = append(c.digests, types.ChainDigest(prev, b.ID()))
	default:
		c.fail("replica %d delivered height %d, beyond every other replica's %d", n.ID, b.Height, len(c.chain))
	}
	if err := consensus.VerifyQC(c.sim.ver, b.QC); err != nil {
		c.fail("replica %d delivered block %v whose QC does not verify: %v", n.ID, b.ID(), err)
	}
	if _, ok := c.blockTxs[b.ID()]; !ok {
		ids := make([]types.Hash, len(txs))
		for i, t := range txs {
			ids[i] = t.ID()
		}
		c.blockTxs[b.ID()] = ids
	}
	if c.sim.opts.Light {
		c.deliveredLight(n, b, txs)
		return
	}
	for _, t := range txs {
		if nc.seen[t.ID()] {
			c.fail("replica %d delivered transaction %v twice", n.ID, t.ID())
		}
		nc.seen[t.ID()] = true
	}
}

// deliveredLight checks exactly-once delivery without a set per replica: the first honest
// replica to deliver a height fixes the transactions it contributed, none of which the chain may
// have delivered before, and every other honest replica must deliver exactly those there (they
// delivered the same blocks before it, so they drop the same duplicates).
func (c *Checker) deliveredLight(n *Node, b *types.Block, txs []types.Tx) {
	k := int(b.Height) - 1
	// SHA-256 over the IDs in order, streamed: every replica's delivery of every block passes
	// here, and a Keccak over a copy of the IDs was a tenth of an N=400 run.
	h := sha256.New()
	for _, t := range txs {
		id := t.ID()
		h.Write(id[:])
	}
	var d types.Hash
	h.Sum(d[:0])
	switch {
	case k < len(c.txDigests):
		if c.txDigests[k] != d {
			c.fail("replica %d delivered other transactions at height %d than the replica that delivered it first (%d transactions)", n.ID, b.Height, len(txs))
		}
	case k == len(c.txDigests):
		c.txDigests = append(c.txDigests, d)
		for _, t := range txs {
			if h, dup := c.txHeight[t.ID()]; dup {
				c.fail("transaction %v delivered at height %d and again at height %d", t.ID(), h, b.Height)
			}
			c.txHeight[t.ID()] = b.Height
		}
	}
}

// synced checks a state transfer: the replica lands on the delivered chain with its digest, and
// counts the transactions of the blocks it skipped as delivered.
func (c *Checker) synced(n *Node, e consensus.StateSynced) {
	nc := c.node(n.ID)
	k := int(e.To) - 1
	switch {
	case e.To <= nc.height:
		c.fail("replica %d synced back from height %d to %d", n.ID, nc.height, e.To)
		return
	case k >= len(c.chain):
		c.fail("replica %d synced to height %d, which no replica delivered", n.ID, e.To)
		return
	case c.chain[k] != e.Block:
		c.fail("replica %d synced to block %v at height %d where the others delivered %v", n.ID, e.Block, e.To, c.chain[k])
		return
	case c.digests[k] != e.Digest:
		c.fail("replica %d synced to height %d with chain digest %v, not %v", n.ID, e.To, e.Digest, c.digests[k])
	}
	for h := nc.height; h < e.To; h++ {
		for _, tx := range c.blockTxs[c.chain[h]] {
			nc.seen[tx] = true
		}
	}
	nc.height = e.To
}

// DeliveredBy reports whether replica id delivered transaction tx.
func (c *Checker) DeliveredBy(id types.NodeID, tx types.Hash) bool { return c.node(id).seen[tx] }

// Height is the delivered height of replica id's current incarnation.
func (c *Checker) Height(id types.NodeID) uint64 { return c.node(id).height }

// Checker returns the run's invariant checker.
func (s *Sim) Checker() *Checker { return s.check }

// AllDelivered reports whether every honest replica delivered every transaction in txs.
func (s *Sim) AllDelivered(txs []types.Tx) bool {
	honest := s.Honest()
	for _, n := range honest {
		if n.Down || len(s.check.node(n.ID).seen) < len(txs) {
			return false // cheap: checked after every event while waiting
		}
	}
	for _, n := range honest {
		for _, t := range txs {
			if !s.check.DeliveredBy(n.ID, t.ID()) {
				return false
			}
		}
	}
	return true
}
