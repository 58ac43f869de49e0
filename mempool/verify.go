package mempool

import (
	"errors"
	"fmt"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

// PreVerify checks the signatures a mempool message carries, using no replica state, so that
// drivers can run it in parallel before the event loop and the mempool's own checks hit the
// verification cache. Proofs are checked as certificates; the quorum is the mempool's call.
// An ack from its signer under an aggregating scheme is only decoded: the proof's quorum is
// checked as one aggregate (consensus.CheckOrDefer).
func PreVerify(from types.NodeID, m types.Message, v crypto.Verifier) (rule string, err error) {
	mbSig := func(mb *types.MicroBlock) bool { return v.Verify(mb.Creator, mb.ID, mb.Sig) }
	switch m := m.(type) {
	case *types.MicroBlock:
		if !mbSig(m) {
			return consensus.RuleSignature, errors.New("microblock: creator signature does not verify")
		}
	case *types.LBForward:
		if !mbSig(m.MB) {
			return consensus.RuleSignature, errors.New("forwarded microblock: creator signature does not verify")
		}
	case *types.FetchResponse:
		for _, mb := range m.MBs {
			if !mbSig(mb) {
				return consensus.RuleSignature, errors.New("fetched microblock: creator signature does not verify")
			}
		}
	case *types.Ack:
		if !consensus.CheckOrDefer(v, from, m.Signer, types.AckDigest(m.MBID, m.View), m.Sig) {
			return consensus.RuleSignature, errors.New("ack signature does not verify")
		}
	case *types.Proof:
		// Every signature, or the one aggregate (BLS); how many signers make a proof is q, the
		// mempool's call.
		if err := consensus.VerifyCert(v, types.AckDigest(m.MBID, m.View), m.Signers, m.Sigs, 1); err != nil {
			return consensus.RuleCert, fmt.Errorf("proof: %w", err)
		}
	}
	return "", nil
}
