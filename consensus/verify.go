package consensus

import (
	"errors"

	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

// PreVerify checks the signatures and certificates a consensus message carries, using no replica
// state, so that drivers can run it on many messages in parallel before the event loop. With a
// caching verifier the engines' own checks then cost a cache lookup. Engines still run every check
// themselves: PreVerify is an early reject, not a substitute.
func PreVerify(m types.Message, v crypto.Verifier, leaders LeaderElection) (rule string, err error) {
	switch m := m.(type) {
	case *types.Block:
		return CheckBlock(m, v, leaders)
	case *types.BlockResponse:
		return CheckBlock(m.Block, v, leaders)
	case *types.Vote:
		if !v.Verify(m.Voter, types.VoteDigest(m.View, m.BlockID), m.Sig) {
			return RuleSignature, errors.New("vote signature does not verify")
		}
	case *types.Timeout:
		if !v.Verify(m.Sender, types.TimeoutDigest(m.View), m.Sig) {
			return RuleSignature, errors.New("timeout signature does not verify")
		}
		if err := VerifyQC(v, m.HighQC); err != nil {
			return RuleCert, err
		}
		if m.Vote != nil && !v.Verify(m.Vote.Voter, types.VoteDigest(m.Vote.View, m.Vote.BlockID), m.Vote.Sig) {
			return RuleSignature, errors.New("vote inside timeout does not verify")
		}
	case *types.TC:
		// Not checked here: every replica that forms a TC broadcasts it, N TCs of distinct
		// signer sets a view change, and a replica needs at most the first one. Base.OnTC
		// checks a TC of a view the replica has not left; the rest cost nothing.
	}
	return "", nil
}
