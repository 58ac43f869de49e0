package types

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMicroBlockID(t *testing.T) {
	mb := testMicroBlock()
	require.Equal(t, mb.ID, mb.ComputeID())
	// The ID commits to creator, epoch and every transaction, not to sender or hops.
	assert.NotEqual(t, mb.ID, NewMicroBlock(3, mb.View, mb.Txs).ID)
	assert.NotEqual(t, mb.ID, NewMicroBlock(mb.Creator, mb.View+1, mb.Txs).ID)
	assert.NotEqual(t, mb.ID, NewMicroBlock(mb.Creator, mb.View, mb.Txs[:2]).ID)
	assert.Equal(t, mb.ID, mb.Relay(4, 3).ComputeID())
	assert.Equal(t, 6, mb.Bytes())
	assert.NotEqual(t, AckDigest(mb.ID, 1), AckDigest(mb.ID, 2))
}

func TestMicroBlockValidation(t *testing.T) {
	good := testMicroBlock()
	forged := *good
	forged.Txs = txs("m1", "m2", "evil")
	cases := map[string]struct {
		m    Message
		want string
	}{
		"id mismatch":          {&forged, "does not match its content"},
		"empty":                {NewMicroBlock(2, 1, nil), "without transactions"},
		"too many hops":        {good.Relay(2, MaxHops+1), "hops"},
		"bad sender":           {good.Relay(0, 1), "sender 0"},
		"forward without mb":   {&LBForward{}, "missing microblock"},
		"forward forged":       {&LBForward{MB: &forged}, "does not match"},
		"response forged":      {&FetchResponse{MBs: []*MicroBlock{good, &forged}}, "does not match"},
		"response nil":         {&FetchResponse{MBs: []*MicroBlock{nil}}, "missing"},
		"empty fetch":          {&FetchRequest{}, "0 IDs"},
		"empty proof request":  {&ProofRequest{}, "0 IDs"},
		"ack bad sig":          {&Ack{MBID: good.ID, Signer: 1, Sig: []byte{1}}, "signature"},
		"proof count mismatch": {&Proof{MBID: good.ID, Sigs: [][]byte{sig(1)}}, "0 signers but 1 signatures"},
		"ref proof for another": {&Block{View: 2, Height: 1, Proposer: 1, Sig: sig(1),
			Payload: &Payload{Refs: []MBRef{{ID: hashOf("x"), Proof: testProof(good, 1)}}}}, "proof is for"},
		"txs and refs": {&Block{View: 2, Height: 1, Proposer: 1, Sig: sig(1),
			Payload: &Payload{Txs: txs("a"), Refs: []MBRef{{ID: hashOf("x")}}}}, "both"},
	}
	for name, c := range cases {
		err := Validate(c.m)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), c.want, name)
		if frame, encErr := Encode(c.m); encErr == nil {
			_, err := Decode(frame)
			assert.Error(t, err, "%s: decoding must reject it too", name)
		}
	}
}

// WireSize equals the length of the real encoding for every kind.
func TestWireSize(t *testing.T) {
	for name, m := range sampleMessages() {
		assert.Equal(t, len(mustEncode(t, m)), WireSize(m), name)
	}
	big := NewMicroBlock(1, 1<<40, txs(string(make([]byte, 70000)), "a", string(make([]byte, 300))))
	assert.Equal(t, len(mustEncode(t, big)), WireSize(big))
}
