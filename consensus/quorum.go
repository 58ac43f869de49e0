package consensus

import (
	"errors"
	"fmt"
	"sort"

	"github.com/kelindar/bitmap"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

// QuorumSize is the number of distinct signers a certificate needs among n replicas (2f+1 for
// n = 3f+1).
func QuorumSize(n int) int { return config.Quorum(n) }

// VerifyCert checks that signers/sigs hold at least need distinct signatures of known replicas over
// digest. It names the first problem it finds.
func VerifyCert(v crypto.Verifier, digest types.Hash, signers bitmap.Bitmap, sigs [][]byte, need int) error {
	if agg, ok := crypto.AggregatorOf(v); ok {
		return verifyAggregate(agg, digest, signers, sigs, need)
	}
	count := signers.Count()
	if count != len(sigs) {
		return fmt.Errorf("%d signers but %d signatures", count, len(sigs))
	}
	if count < need {
		return fmt.Errorf("%d signers, need %d", count, need)
	}
	memo, _ := v.(crypto.CertMemo)
	var key crypto.CertKey
	if memo != nil {
		if key = memo.CertKey(digest, signers, sigs); memo.CertVerified(key) {
			return nil
		}
	}
	n := v.N()
	i := 0
	var err error
	defer func() {
		if err == nil && memo != nil {
			memo.RememberCert(key)
		}
	}()
	signers.Range(func(bit uint32) {
		if err != nil {
			return
		}
		id := types.NodeID(bit + 1)
		switch {
		case int(id) > n:
			err = fmt.Errorf("signer %d is not a replica (N=%d)", id, n)
		case !v.Verify(id, digest, sigs[i]):
			err = fmt.Errorf("signature of %d does not verify", id)
		}
		i++
	})
	return err
}

// verifyAggregate checks a certificate of an aggregating scheme: a signer bitmap of at least need
// known replicas and one aggregate signature, one pairing check against their aggregated keys.
func verifyAggregate(agg crypto.Aggregator, digest types.Hash, signers bitmap.Bitmap, sigs [][]byte, need int) error {
	count := signers.Count()
	if len(sigs) != 1 {
		return fmt.Errorf("%d signatures: a BLS certificate carries one aggregate signature", len(sigs))
	}
	if count < need {
		return fmt.Errorf("%d signers, need %d", count, need)
	}
	var unknown types.NodeID
	signers.Range(func(bit uint32) {
		if id := types.NodeID(bit + 1); int(id) > agg.N() && unknown == 0 {
			unknown = id
		}
	})
	if unknown != 0 {
		return fmt.Errorf("signer %d is not a replica (N=%d)", unknown, agg.N())
	}
	if !agg.VerifyAggregate(signers, digest, sigs[0]) {
		return fmt.Errorf("the aggregate signature of %d signers does not verify", count)
	}
	return nil
}

// VerifyQC checks a quorum certificate: the genesis QC, or at least QuorumSize distinct known
// signers with valid signatures over VoteDigest(View, BlockID).
func VerifyQC(v crypto.Verifier, qc *types.QC) error {
	if qc == nil {
		return errors.New("missing QC")
	}
	if qc.View == 0 {
		if qc.IsGenesis() {
			return nil
		}
		return errors.New("QC for view 0 is not the genesis QC")
	}
	if err := VerifyCert(v, types.VoteDigest(qc.View, qc.BlockID), qc.Signers, qc.Sigs, QuorumSize(v.N())); err != nil {
		return fmt.Errorf("QC for view %d: %w", qc.View, err)
	}
	return nil
}

// VerifyTC checks a timeout certificate: at least QuorumSize distinct known signers with valid
// signatures over TimeoutDigest(View).
func VerifyTC(v crypto.Verifier, tc *types.TC) error {
	if tc == nil {
		return errors.New("missing TC")
	}
	if tc.View == 0 {
		return errors.New("TC for view 0")
	}
	if err := VerifyCert(v, types.TimeoutDigest(tc.View), tc.Signers, tc.Sigs, QuorumSize(v.N())); err != nil {
		return fmt.Errorf("TC for view %d: %w", tc.View, err)
	}
	return nil
}

// SigSet accumulates signatures of distinct signers over one digest. Under an aggregating scheme
// (BLS) a signature its signer sent itself may be counted unchecked (AddUnchecked): Check verifies
// all of them at once, one pairing for the aggregate, when a certificate is about to form, and
// only when that fails one by one, to find and drop the bad ones.
type SigSet struct {
	signers   bitmap.Bitmap
	unchecked bitmap.Bitmap // signers counted whose signature is not verified yet
	sigs      map[types.NodeID][]byte
	agg       []byte // the aggregate of every signature, kept by Check for BuildFor
	aggCount  int    // how many signatures agg holds (stale once it differs from Count)
}

// Add records id's verified signature; it returns false if id already signed.
func (s *SigSet) Add(id types.NodeID, sig []byte) bool {
	bit := types.SignerBit(id)
	if s.signers.Contains(bit) {
		return false
	}
	if s.sigs == nil {
		s.sigs = make(map[types.NodeID][]byte)
	}
	s.signers.Set(bit)
	s.sigs[id] = sig
	return true
}

// AddUnchecked records id's signature unverified, to be checked by Check before a certificate
// counts it; it returns false if id already signed.
func (s *SigSet) AddUnchecked(id types.NodeID, sig []byte) bool {
	if !s.Add(id, sig) {
		return false
	}
	s.unchecked.Set(types.SignerBit(id))
	return true
}

// Unchecked is the number of signatures counted but not verified yet.
func (s *SigSet) Unchecked() int { return s.unchecked.Count() }

// Check verifies the signatures counted unchecked, over digest: all at once, as one aggregate
// checked with one pairing, when v aggregates; one by one when that fails (or v does not
// aggregate). It drops the signers whose signature fails and returns them, in ascending order.
func (s *SigSet) Check(v crypto.Verifier, digest types.Hash) []types.NodeID {
	if s.unchecked.Count() == 0 {
		return nil
	}
	if a, ok := crypto.AggregatorOf(v); ok {
		bm, sigs := s.Build()
		if one, err := a.Aggregate(sigs); err == nil && a.VerifyAggregate(bm, digest, one) {
			s.unchecked.Clear()
			s.agg, s.aggCount = one, len(sigs)
			return nil
		}
	}
	var bad []types.NodeID
	s.unchecked.Range(func(bit uint32) {
		id := types.NodeID(bit + 1)
		if !v.Verify(id, digest, s.sigs[id]) {
			bad = append(bad, id)
		}
	})
	s.unchecked.Clear()
	for _, id := range bad {
		s.signers.Remove(types.SignerBit(id))
		delete(s.sigs, id)
	}
	return bad
}

// Has reports whether id signed.
func (s *SigSet) Has(id types.NodeID) bool { return s.signers.Contains(types.SignerBit(id)) }

// Count is the number of distinct signers.
func (s *SigSet) Count() int { return len(s.sigs) }

// Build returns a copy of the signer bitmap and the signatures in ascending signer order.
func (s *SigSet) Build() (bitmap.Bitmap, [][]byte) {
	ids := make([]types.NodeID, 0, len(s.sigs))
	for id := range s.sigs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	sigs := make([][]byte, len(ids))
	for i, id := range ids {
		sigs[i] = s.sigs[id]
	}
	bm := make(bitmap.Bitmap, len(s.signers))
	copy(bm, s.signers)
	return bm, sigs
}

// BuildFor is Build for a certificate checked by v: under an aggregating scheme (BLS) the
// signatures become one aggregate. Every signature was verified (when it came, or by Check), so
// aggregating them cannot fail; if it did, the certificate keeps them apart (and v refuses it).
func (s *SigSet) BuildFor(v crypto.Verifier) (bitmap.Bitmap, [][]byte) {
	bm, sigs := s.Build()
	if a, ok := crypto.AggregatorOf(v); ok && len(sigs) > 0 {
		if s.agg != nil && s.aggCount == len(sigs) {
			return bm, [][]byte{s.agg}
		}
		if one, err := a.Aggregate(sigs); err == nil {
			sigs = [][]byte{one}
		}
	}
	return bm, sigs
}

// Deferral decides whose signatures may be counted before they are checked: under an aggregating
// scheme, those a signer sent itself over its authenticated link (a Byzantine signer could as
// well have signed; the certificate that counts the signature checks it), unless the signer
// already sent one that failed. Relayed signatures are checked at once: a relay must not make an
// honest signer's signature look bad, nor take its place.
type Deferral struct {
	on      bool
	suspect map[types.NodeID]bool
}

// NewDeferral returns the deferral of v's scheme: on when it aggregates.
func NewDeferral(v crypto.Verifier) *Deferral {
	_, on := crypto.AggregatorOf(v)
	return &Deferral{on: on}
}

// Defers reports whether signer's signature, received from from, may be counted unchecked.
func (d *Deferral) Defers(from, signer types.NodeID) bool {
	return d != nil && d.on && from == signer && !d.suspect[signer]
}

// Failed records signers whose unchecked signatures failed: theirs are checked at once from now on.
func (d *Deferral) Failed(signers []types.NodeID) {
	if d == nil || len(signers) == 0 {
		return
	}
	if d.suspect == nil {
		d.suspect = make(map[types.NodeID]bool)
	}
	for _, id := range signers {
		d.suspect[id] = true
	}
}

// VoteKey names what a vote is for.
type VoteKey struct {
	View  types.View
	Block types.Hash
}

// VoteCollector aggregates votes into QCs, once per (view, block).
type VoteCollector struct {
	need  int
	n     int
	sets  map[VoteKey]*SigSet
	voted map[types.View]map[types.NodeID]types.Hash // first vote of each voter per view
	most  map[types.View]int                         // votes of the view's most voted block
	done  map[VoteKey]bool
	// Verifier, when set, checks the votes counted unchecked and makes QCs as it checks them
	// (one aggregate signature under BLS).
	Verifier crypto.Verifier
	// Deferral, when set, says which votes may be counted unchecked (Defers).
	Deferral *Deferral
}

// Defers reports whether a vote of voter received from from may be counted unchecked.
func (c *VoteCollector) Defers(from, voter types.NodeID) bool { return c.Deferral.Defers(from, voter) }

// NewVoteCollector returns a collector that forms QCs at need votes among n replicas.
func NewVoteCollector(need, n int) *VoteCollector {
	return &VoteCollector{
		need:  need,
		n:     n,
		sets:  make(map[VoteKey]*SigSet),
		voted: make(map[types.View]map[types.NodeID]types.Hash),
		most:  make(map[types.View]int),
		done:  make(map[VoteKey]bool),
	}
}

// Hopeless reports whether the votes of view v are split so that no block of v can reach a
// quorum any more, even if every replica that has not voted yet votes for it: the leader of v
// equivocated (or some votes were for a block nobody else saw).
func (c *VoteCollector) Hopeless(v types.View) bool {
	voters := len(c.voted[v])
	return voters > 0 && c.most[v]+c.n-voters < c.need
}

// VotesOf returns the votes counted for view v, by voter, in voter order, each checked (bad lists
// the voters whose unchecked votes failed, dropped).
func (c *VoteCollector) VotesOf(v types.View) (votes []*types.Vote, bad []types.NodeID) {
	var out []*types.Vote
	for k, set := range c.sets {
		if k.View != v {
			continue
		}
		if b := set.Check(c.Verifier, types.VoteDigest(k.View, k.Block)); len(b) > 0 {
			c.Deferral.Failed(b)
			bad = append(bad, b...)
		}
		for id, sig := range set.sigs {
			out = append(out, &types.Vote{View: v, BlockID: k.Block, Voter: id, Sig: sig})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Voter < out[j].Voter })
	return out, bad
}

// Counted reports whether this very vote (view, block, voter) was counted already: a repeat
// (echo, retransmission) needs no second signature check.
func (c *VoteCollector) Counted(v *types.Vote) bool {
	id, ok := c.voted[v.View][v.Voter]
	return ok && id == v.BlockID
}

// ErrDuplicateVote is returned for a second vote of a voter in one view.
var ErrDuplicateVote = errors.New("second vote in the view")

// Add records a vote, verified (checked) or to be checked when its block reaches a quorum. It
// returns the QC the first time the block reaches a quorum of valid votes; bad lists the voters
// whose unchecked votes failed then (dropped, and their signatures checked at once from then on);
// and it returns ErrDuplicateVote when the voter already voted in the view (for any block).
func (c *VoteCollector) Add(v *types.Vote, checked bool) (qc *types.QC, bad []types.NodeID, err error) {
	byVoter := c.voted[v.View]
	if byVoter == nil {
		byVoter = make(map[types.NodeID]types.Hash)
		c.voted[v.View] = byVoter
	}
	if prev, ok := byVoter[v.Voter]; ok {
		if prev == v.BlockID {
			return nil, nil, nil // a repeat of the same vote (echo, retransmission): harmless
		}
		return nil, nil, ErrDuplicateVote
	}
	byVoter[v.Voter] = v.BlockID
	k := VoteKey{v.View, v.BlockID}
	set := c.sets[k]
	if set == nil {
		set = &SigSet{}
		c.sets[k] = set
	}
	if checked {
		set.Add(v.Voter, v.Sig)
	} else {
		set.AddUnchecked(v.Voter, v.Sig)
	}
	c.most[v.View] = max(c.most[v.View], set.Count())
	if set.Count() < c.need || c.done[k] {
		return nil, nil, nil
	}
	if bad = set.Check(c.Verifier, types.VoteDigest(v.View, v.BlockID)); len(bad) > 0 {
		c.Deferral.Failed(bad)
		if set.Count() < c.need {
			return nil, bad, nil
		}
	}
	c.done[k] = true
	bm, sigs := set.BuildFor(c.Verifier)
	return &types.QC{View: v.View, BlockID: v.BlockID, Signers: bm, Sigs: sigs}, bad, nil
}

// Prune forgets views below keep.
func (c *VoteCollector) Prune(keep types.View) {
	for k := range c.sets {
		if k.View < keep {
			delete(c.sets, k)
			delete(c.done, k)
		}
	}
	for v := range c.voted {
		if v < keep {
			delete(c.voted, v)
			delete(c.most, v)
		}
	}
}

// CheckBlock runs the checks on a block that need no replica state: the proposer is the leader of
// its view and signed it, it carries a valid QC for its parent, and a TC, if any, is valid and older.
// It returns the rule name of the failed check with the error.
func CheckBlock(b *types.Block, v crypto.Verifier, leaders LeaderElection) (string, error) {
	if b.View == 0 {
		return RuleStructure, errors.New("block for view 0")
	}
	if b.Height == 0 {
		return RuleStructure, errors.New("block at height 0")
	}
	if want := leaders.Leader(b.View); b.Proposer != want {
		return RuleLeader, fmt.Errorf("proposer %d is not the leader %d of view %d", b.Proposer, want, b.View)
	}
	if !v.Verify(b.Proposer, b.ID(), b.Sig) {
		return RuleSignature, fmt.Errorf("block %v of view %d: signature of %d does not verify", b.ID(), b.View, b.Proposer)
	}
	if b.QC == nil {
		return RuleStructure, errors.New("block without QC")
	}
	if b.QC.BlockID != b.Parent {
		return RuleStructure, fmt.Errorf("QC certifies %v but the parent is %v", b.QC.BlockID, b.Parent)
	}
	if b.QC.View >= b.View {
		return RuleStructure, fmt.Errorf("QC view %d is not below block view %d", b.QC.View, b.View)
	}
	if err := VerifyQC(v, b.QC); err != nil {
		return RuleCert, err
	}
	if b.TC != nil {
		if b.TC.View >= b.View {
			return RuleStructure, fmt.Errorf("TC view %d is not below block view %d", b.TC.View, b.View)
		}
		if err := VerifyTC(v, b.TC); err != nil {
			return RuleCert, err
		}
	}
	return "", nil
}
