package types

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/rlp"

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

// reflectedMicroBlock has MicroBlock's fields without its methods, EncodeRLP among them: what the
// reflection encoder writes for a microblock, the form the direct encoder must reproduce byte for
// byte.
type reflectedMicroBlock MicroBlock

func TestMicroBlockEncoderMatchesReflection(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 2, 55, 56, 57, 255, 256, 300, 65535, 65536, 70000}
	ints := []uint64{0, 1, 0x7f, 0x80, 0xff, 0x100, 1 << 31, 1<<32 - 1}
	for i := range 300 {
		var ts []Tx
		for range rng.IntN(40) {
			n := sizes[rng.IntN(len(sizes))]
			if rng.IntN(3) > 0 {
				n = 1 + rng.IntN(200)
			}
			b := make([]byte, n)
			for j := range b {
				b[j] = byte(rng.IntN(256))
			}
			if n == 1 && rng.IntN(2) == 0 {
				b[0] = byte(rng.IntN(0x80)) // a single byte below 0x80 is its own encoding
			}
			ts = append(ts, NewTx(b))
		}
		if i%7 == 0 { // the simulator's compact transactions travel as their tag
			ts = append(ts, NewCompactTx([]byte{byte(i), 0x9c}, 500, 128))
		}
		mb := &MicroBlock{
			Creator: NodeID(ints[rng.IntN(len(ints))]),
			View:    View(ints[rng.IntN(len(ints))] << (8 * rng.IntN(5))),
			Sender:  NodeID(ints[rng.IntN(len(ints))]),
			Hops:    uint8(ints[rng.IntN(5)]),
			Txs:     ts,
		}
		mb.ID = mb.ComputeID()
		switch i % 3 {
		case 1:
			mb.Sig = sig(byte(i))
		case 2:
			mb.Sig = []byte{byte(i % 0x90)}
		}
		want, err := rlp.EncodeToBytes((*reflectedMicroBlock)(mb))
		require.NoError(t, err)
		got, err := rlp.EncodeToBytes(mb)
		require.NoError(t, err)
		require.Equal(t, want, got, "microblock %d", i)
		require.Equal(t, len(want), mb.rlpSize())
		frame := mustEncode(t, mb)
		require.Equal(t, append([]byte{byte(KindMicroBlock)}, want...), frame)
	}
}

func TestMicroBlockRoundTripsThroughTheDirectEncoder(t *testing.T) {
	mb := NewMicroBlock(3, 1<<40, txs("a", "\x01", strings.Repeat("x", 56), strings.Repeat("y", 70000)))
	mb.Sender, mb.Hops, mb.Sig = 300, 2, sig(7)
	got, err := Decode(mustEncode(t, mb))
	require.NoError(t, err)
	require.Equal(t, mb, got)
	// nested, as a fetch response carries microblocks
	resp := &FetchResponse{MBs: []*MicroBlock{mb, mb}}
	got, err = Decode(mustEncode(t, resp))
	require.NoError(t, err)
	require.Equal(t, resp, got)
}
