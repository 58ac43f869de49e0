package consensus_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/consensus/enginetest"
	"github.com/stratusbft/stratus/types"
)

// "A QC is valid iff it has ≥ 2f+1 distinct, known signers with valid signatures over
// (view, blockID)." (docs/spec.md §2.2) and "Quorum = 2f+1 distinct valid signers"
// (docs/spec.md §2.1).
func TestVerifyQC(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	id := types.Keccak([]byte("block"))
	sig := func(signer types.NodeID) []byte { return f.Sign(signer, types.VoteDigest(3, id)) }
	corrupt := f.QC(3, id, 1, 2, 3)
	corrupt.Sigs[1] = append([]byte(nil), corrupt.Sigs[1]...)
	corrupt.Sigs[1][20] ^= 0x10
	short := f.QC(3, id, 1, 2, 3)
	short.Sigs[0] = short.Sigs[0][:64]

	tests := []struct {
		name string
		qc   *types.QC
		err  string // "" = valid
	}{
		{"genesis QC", types.GenesisQC(), ""},
		{"2f+1 signers", f.QC(3, id, 1, 2, 3), ""},
		{"any 2f+1 signers", f.QC(3, id, 2, 3, 4), ""},
		{"all N signers", f.QC(3, id, 1, 2, 3, 4), ""},
		{"nil", nil, "missing QC"},
		{"view 0 but not genesis", &types.QC{View: 0, BlockID: id}, "not the genesis QC"},
		{"2f signers", f.QC(3, id, 1, 2), "2 signers, need 3"},
		{"no signers", &types.QC{View: 3, BlockID: id}, "0 signers, need 3"},
		{"duplicate signature: 2 signers, 3 signatures", &types.QC{View: 3, BlockID: id,
			Signers: enginetest.Bitmap(1, 2), Sigs: [][]byte{sig(1), sig(2), sig(2)}}, "2 signers but 3 signatures"},
		{"3 signers, 2 signatures", &types.QC{View: 3, BlockID: id,
			Signers: enginetest.Bitmap(1, 2, 3), Sigs: [][]byte{sig(1), sig(2)}}, "3 signers but 2 signatures"},
		{"signer 1's signature twice, once under bit 3", &types.QC{View: 3, BlockID: id,
			Signers: enginetest.Bitmap(1, 2, 3), Sigs: [][]byte{sig(1), sig(2), sig(1)}}, "signature of 3 does not verify"},
		{"unknown signer ID N+1 with its own valid key", f.QC(3, id, 1, 2, 5), "signer 5 is not a replica (N=4)"},
		{"unknown signer far beyond N", &types.QC{View: 3, BlockID: id,
			Signers: enginetest.Bitmap(1, 2, 70), Sigs: [][]byte{sig(1), sig(2), sig(3)}}, "signer 70 is not a replica"},
		{"corrupted signature", corrupt, "signature of 2 does not verify"},
		{"truncated signature", short, "signature of 1 does not verify"},
		{"signatures in the wrong order", &types.QC{View: 3, BlockID: id,
			Signers: enginetest.Bitmap(1, 2, 3), Sigs: [][]byte{sig(2), sig(1), sig(3)}}, "signature of 1 does not verify"},
		{"signed over another view", &types.QC{View: 4, BlockID: id,
			Signers: enginetest.Bitmap(1, 2, 3), Sigs: f.QC(3, id, 1, 2, 3).Sigs}, "does not verify"},
		{"signed over another block", &types.QC{View: 3, BlockID: types.Keccak([]byte("other")),
			Signers: enginetest.Bitmap(1, 2, 3), Sigs: f.QC(3, id, 1, 2, 3).Sigs}, "does not verify"},
		{"timeout signatures are not votes", &types.QC{View: 3, BlockID: id,
			Signers: enginetest.Bitmap(1, 2, 3), Sigs: f.TC(3, 1, 2, 3).Sigs}, "does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := consensus.VerifyQC(f.Verifier, tt.qc)
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.err)
		})
	}
}

// "2f+1 of them [signed timeouts] form a TC" → a TC is valid iff it has 2f+1 distinct known
// signers with valid signatures over the timeout digest of its view.
func TestVerifyTC(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	sig := func(signer types.NodeID) []byte { return f.Sign(signer, types.TimeoutDigest(2)) }
	tests := []struct {
		name string
		tc   *types.TC
		err  string
	}{
		{"2f+1 signers", f.TC(2, 1, 3, 4), ""},
		{"all N signers", f.TC(2, 1, 2, 3, 4), ""},
		{"nil", nil, "missing TC"},
		{"view 0", f.TC(0, 1, 2, 3), "TC for view 0"},
		{"2f signers", f.TC(2, 1, 2), "2 signers, need 3"},
		{"duplicate signature", &types.TC{View: 2, Signers: enginetest.Bitmap(1, 2), Sigs: [][]byte{sig(1), sig(2), sig(1)}},
			"2 signers but 3 signatures"},
		{"unknown signer", f.TC(2, 1, 2, 5), "signer 5 is not a replica"},
		{"signature under the wrong bit", &types.TC{View: 2, Signers: enginetest.Bitmap(1, 2, 3), Sigs: [][]byte{sig(1), sig(2), sig(4)}},
			"signature of 3 does not verify"},
		{"signed over another view", &types.TC{View: 2, Signers: enginetest.Bitmap(1, 2, 3), Sigs: f.TC(1, 1, 2, 3).Sigs},
			"does not verify"},
		{"vote signatures are not timeouts", &types.TC{View: 2, Signers: enginetest.Bitmap(1, 2, 3),
			Sigs: f.QC(2, types.Hash{}, 1, 2, 3).Sigs}, "does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := consensus.VerifyTC(f.Verifier, tt.tc)
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.err)
		})
	}
}

// "2f+1 votes → QC {view, blockID, signer bitmap, signatures}", "Quorum = 2f+1 distinct valid
// signers", and one vote per voter per view.
func TestVoteCollector(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	b := types.Keccak([]byte("b"))
	c := types.Keccak([]byte("c"))
	type step struct {
		voter   types.NodeID
		view    types.View
		block   types.Hash
		qc      []types.NodeID // signers of the QC returned, nil = none
		dupErr  bool
		pruneTo types.View // Prune(pruneTo) before the vote when > 0
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"QC at exactly 2f+1 votes, once", []step{
			{voter: 3, view: 1, block: b},
			{voter: 1, view: 1, block: b},
			{voter: 4, view: 1, block: b, qc: []types.NodeID{1, 3, 4}},
			{voter: 2, view: 1, block: b},
		}},
		{"a repeated vote is harmless and not counted", []step{
			{voter: 1, view: 1, block: b},
			{voter: 1, view: 1, block: b},
			{voter: 2, view: 1, block: b},
			{voter: 2, view: 1, block: b},
			{voter: 3, view: 1, block: b, qc: []types.NodeID{1, 2, 3}},
		}},
		{"a second vote in the view for another block is an error and not counted", []step{
			{voter: 1, view: 1, block: b},
			{voter: 1, view: 1, block: c, dupErr: true},
			{voter: 2, view: 1, block: c},
			{voter: 3, view: 1, block: c},
			{voter: 4, view: 1, block: c, qc: []types.NodeID{2, 3, 4}},
		}},
		{"views are independent", []step{
			{voter: 1, view: 1, block: b},
			{voter: 2, view: 1, block: b},
			{voter: 1, view: 2, block: c},
			{voter: 2, view: 2, block: c},
			{voter: 3, view: 2, block: c, qc: []types.NodeID{1, 2, 3}},
			{voter: 3, view: 1, block: b, qc: []types.NodeID{1, 2, 3}},
		}},
		{"votes split between two blocks make no QC", []step{
			{voter: 1, view: 1, block: b},
			{voter: 2, view: 1, block: b},
			{voter: 3, view: 1, block: c},
			{voter: 4, view: 1, block: c},
		}},
		{"pruned views are forgotten", []step{
			{voter: 1, view: 1, block: b},
			{voter: 2, view: 1, block: b},
			{voter: 1, view: 1, block: c, pruneTo: 2},
			{voter: 3, view: 1, block: b},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vc := consensus.NewVoteCollector(3, 4)
			for i, s := range tt.steps {
				if s.pruneTo > 0 {
					vc.Prune(s.pruneTo)
				}
				qc, _, err := vc.Add(f.Vote(s.voter, s.view, s.block), true)
				if s.dupErr {
					require.ErrorIs(t, err, consensus.ErrDuplicateVote, "step %d", i)
				} else {
					require.NoError(t, err, "step %d", i)
				}
				if s.qc == nil {
					require.Nil(t, qc, "step %d", i)
					continue
				}
				require.NotNil(t, qc, "step %d", i)
				require.Equal(t, s.view, qc.View)
				require.Equal(t, s.block, qc.BlockID)
				require.Equal(t, s.qc, types.SignerIDs(qc.Signers))
				require.NoError(t, consensus.VerifyQC(f.Verifier, qc), "step %d: the QC verifies", i)
			}
		})
	}
}

func TestSigSet(t *testing.T) {
	var s consensus.SigSet
	require.True(t, s.Add(3, []byte{3}))
	require.True(t, s.Add(1, []byte{1}))
	require.False(t, s.Add(3, []byte{33}), "a second signature of 3")
	require.True(t, s.Has(1))
	require.False(t, s.Has(2))
	require.Equal(t, 2, s.Count())
	bm, sigs := s.Build()
	require.Equal(t, []types.NodeID{1, 3}, types.SignerIDs(bm))
	require.Equal(t, [][]byte{{1}, {3}}, sigs, "signatures in ascending signer order, first one kept")
	s.Add(2, []byte{2})
	require.Equal(t, []types.NodeID{1, 3}, types.SignerIDs(bm), "Build returns a copy")
}

// CheckBlock: "Replica votes for the block iff: signature valid; proposer is the leader of v; ...
// the QC inside is valid" — the checks that need no replica state.
func TestCheckBlock(t *testing.T) {
	f := enginetest.NewFixture(1, 4)
	b1 := f.Block(enginetest.BlockSpec{View: 1})
	qc1 := f.QCFor(b1)
	tests := []struct {
		name string
		b    *types.Block
		rule string
		err  string
	}{
		{"valid", f.Block(enginetest.BlockSpec{View: 2, Parent: b1, QC: qc1}), "", ""},
		{"valid with a TC", f.Block(enginetest.BlockSpec{View: 3, Parent: b1, QC: qc1, TC: f.TC(2, 1, 2, 3)}), "", ""},
		{"view 0", f.Block(enginetest.BlockSpec{View: 0, Proposer: 1}), consensus.RuleStructure, "view 0"},
		{"height 0", func() *types.Block {
			b := enginetest.Clone(b1)
			b.Height = 0
			return b
		}(), consensus.RuleStructure, "height 0"},
		{"wrong leader", f.Block(enginetest.BlockSpec{View: 2, Parent: b1, QC: qc1, Proposer: 3}), consensus.RuleLeader, "not the leader 2"},
		{"bad signature", f.Block(enginetest.BlockSpec{View: 2, Parent: b1, QC: qc1, SignAs: 3}), consensus.RuleSignature, "does not verify"},
		{"no QC", f.Block(enginetest.BlockSpec{View: 2, Parent: b1}), consensus.RuleStructure, "without QC"},
		{"QC for another block than the parent", f.Block(enginetest.BlockSpec{View: 2, QC: qc1}), consensus.RuleStructure, "but the parent is"},
		{"QC not older than the block", f.Block(enginetest.BlockSpec{View: 1, Parent: b1, QC: qc1}), consensus.RuleStructure, "QC view 1 is not below block view 1"},
		{"invalid QC", f.Block(enginetest.BlockSpec{View: 2, Parent: b1, QC: f.QC(1, b1.ID(), 1, 2)}), consensus.RuleCert, "need 3"},
		{"TC not older than the block", f.Block(enginetest.BlockSpec{View: 3, Parent: b1, QC: qc1, TC: f.TC(3, 1, 2, 3)}), consensus.RuleStructure, "TC view 3"},
		{"invalid TC", f.Block(enginetest.BlockSpec{View: 3, Parent: b1, QC: qc1, TC: f.TC(2, 1, 3, 5)}), consensus.RuleCert, "not a replica"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule, err := consensus.CheckBlock(tt.b, f.Verifier, f.Leaders)
			require.Equal(t, tt.rule, rule)
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.err)
			r2, err2 := consensus.PreVerify(tt.b.Proposer, tt.b, f.Verifier, f.Leaders, true)
			require.Equal(t, rule, r2, "PreVerify runs the same checks")
			require.Error(t, err2)
		})
	}
}

// A view is hopeless once its votes are split so that no block can reach 2f+1 even with every
// missing vote: at N=7 (quorum 5), 2 votes for a and 2 for b leave either at most 5 (still
// possible); a fifth vote for a third block leaves at most 4.
func TestVoteCollectorHopeless(t *testing.T) {
	a, b, other := types.Keccak([]byte("a")), types.Keccak([]byte("b")), types.Keccak([]byte("c"))
	c := consensus.NewVoteCollector(consensus.QuorumSize(7), 7)
	require.False(t, c.Hopeless(5), "no votes yet")
	add := func(voter types.NodeID, id types.Hash) {
		_, _, err := c.Add(&types.Vote{View: 5, BlockID: id, Voter: voter}, true)
		require.NoError(t, err)
	}
	add(1, a)
	add(2, a)
	add(3, b)
	add(4, b)
	require.False(t, c.Hopeless(5), "a can still get votes 5, 6, 7")
	add(5, other)
	require.True(t, c.Hopeless(5), "a or b reach at most 4")
	require.False(t, c.Hopeless(6), "another view is untouched")
}
