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
//
// Under an aggregating scheme a timeout, and with deferVotes a vote, that came from its signer is
// not verified here: the collector counts it unchecked and checks the quorum's signatures as one
// aggregate (Deferral); PreVerify only checks that the signature decodes, and keeps it decoded.
// HotStuff defers votes; Streamlet echoes every vote it counts, so it checks each one at once.
func PreVerify(from types.NodeID, m types.Message, v crypto.Verifier, leaders LeaderElection, deferVotes bool) (rule string, err error) {
	switch m := m.(type) {
	case *types.Block:
		return CheckBlock(m, v, leaders)
	case *types.BlockResponse:
		return CheckBlock(m.Block, v, leaders)
	case *types.Vote:
		if !deferVotes {
			from = 0 // checked at once, as a relayed vote is
		}
		if !CheckOrDefer(v, from, m.Voter, types.VoteDigest(m.View, m.BlockID), m.Sig) {
			return RuleSignature, errors.New("vote signature does not verify")
		}
	case *types.Timeout:
		if !CheckOrDefer(v, from, m.Sender, types.TimeoutDigest(m.View), m.Sig) {
			return RuleSignature, errors.New("timeout signature does not verify")
		}
		if err := VerifyQC(v, m.HighQC); err != nil {
			return RuleCert, err
		}
		if m.Vote != nil && !v.Verify(m.Vote.Voter, types.VoteDigest(m.Vote.View, m.Vote.BlockID), m.Vote.Sig) {
			return RuleSignature, errors.New("vote inside timeout does not verify")
		}
	case *types.TC:
		// Every replica that forms a TC broadcasts it, N TCs of distinct signer sets a view
		// change, and a replica needs at most the first one: drivers skip PreVerify for a TC of
		// a view the replica has left (Base.OnTC drops it unchecked).
		if err := VerifyTC(v, m); err != nil {
			return RuleCert, err
		}
	}
	return "", nil
}

// CheckOrDefer is a pre-check's look at one signature: verified, or, when the scheme aggregates
// and the signature came from its signer, only decoded (its check is deferred to the certificate
// that counts it, see Deferral). It reports whether the signature passed.
func CheckOrDefer(v crypto.Verifier, from, signer types.NodeID, digest types.Hash, sig []byte) bool {
	if from == signer {
		if a, ok := crypto.AggregatorOf(v); ok {
			return crypto.Decodes(a, sig)
		}
	}
	return v.Verify(signer, digest, sig)
}
