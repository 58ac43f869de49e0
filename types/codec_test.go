package types

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/kelindar/bitmap"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sortedNames(m map[string]Message) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func TestEncodeFrameStartsWithKind(t *testing.T) {
	for _, name := range sortedNames(sampleMessages()) {
		m := sampleMessages()[name]
		b := mustEncode(t, m)
		require.NotEmpty(t, b, name)
		assert.Equal(t, byte(m.Kind()), b[0], name)
		// The rest is exactly the RLP encoding of the message.
		body, err := rlp.EncodeToBytes(m)
		require.NoError(t, err)
		assert.Equal(t, body, b[1:], name)
	}
}

func TestRoundTripEveryKind(t *testing.T) {
	msgs := sampleMessages()
	kinds := map[Kind]bool{}
	for _, name := range sortedNames(msgs) {
		m := msgs[name]
		kinds[m.Kind()] = true
		frame := mustEncode(t, m)
		got, err := Decode(frame)
		require.NoError(t, err, name)
		require.Equal(t, m.Kind(), got.Kind(), name)
		// Canonical: re-encoding the decoded message gives the same bytes.
		assert.Equal(t, frame, mustEncode(t, got), name)
	}
	for k := KindBlock; k < kindEnd; k++ {
		assert.True(t, kinds[k], "no sample of kind %v", k)
	}
}

func TestRoundTripBlockFields(t *testing.T) {
	b := testBlock()
	got, err := Decode(mustEncode(t, b))
	require.NoError(t, err)
	d, ok := got.(*Block)
	require.True(t, ok, "%T", got)

	assert.Equal(t, b.ID(), d.ID())
	assert.Equal(t, b.View, d.View)
	assert.Equal(t, b.Height, d.Height)
	assert.Equal(t, b.Parent, d.Parent)
	assert.Equal(t, b.Proposer, d.Proposer)
	assert.Equal(t, b.Sig, d.Sig)

	require.NotNil(t, d.QC)
	assert.Equal(t, b.QC.View, d.QC.View)
	assert.Equal(t, b.QC.BlockID, d.QC.BlockID)
	assert.Equal(t, []NodeID{1, 2, 4}, SignerIDs(d.QC.Signers))
	assert.Equal(t, b.QC.Sigs, d.QC.Sigs)

	require.NotNil(t, d.TC)
	assert.Equal(t, b.TC.View, d.TC.View)
	assert.Equal(t, []NodeID{1, 3, 4}, SignerIDs(d.TC.Signers))
	assert.Equal(t, b.TC.Sigs, d.TC.Sigs)

	require.NotNil(t, d.Payload)
	require.Len(t, d.Payload.Txs, 3)
	for i, tx := range b.Payload.Txs {
		assert.Equal(t, tx.ID(), d.Payload.Txs[i].ID(), "tx %d", i)
		assert.Equal(t, tx.Data(), d.Payload.Txs[i].Data(), "tx %d", i)
		assert.Equal(t, IDHash(tx.Data()), d.Payload.Txs[i].ID(), "tx %d: ID recomputed from bytes", i)
	}
	assert.Equal(t, b.Payload.Digest(), d.Payload.Digest())
}

func TestRoundTripBlockWithoutQCAndTC(t *testing.T) {
	b := &Block{View: 3, Height: 2, Parent: hashOf("p"), Payload: &Payload{Txs: txs("one")}, Proposer: 2, Sig: sig(5)}
	got, err := Decode(mustEncode(t, b))
	require.NoError(t, err)
	d := got.(*Block)
	assert.Nil(t, d.QC)
	assert.Nil(t, d.TC)
	assert.Equal(t, b.ID(), d.ID())
}

func TestRoundTripVote(t *testing.T) {
	v := &Vote{View: 9, BlockID: hashOf("b9"), Voter: 4, Sig: sig(9)}
	got, err := Decode(mustEncode(t, v))
	require.NoError(t, err)
	assert.Equal(t, v, got)
}

func TestRoundTripTimeout(t *testing.T) {
	for _, withVote := range []bool{false, true} {
		to := &Timeout{View: 12, HighQC: testQC(10, hashOf("b10"), 1, 2, 3), Sender: 2, Sig: sig(0x12)}
		if withVote {
			to.Vote = &Vote{View: 11, BlockID: hashOf("b11"), Voter: 2, Sig: sig(0x11)}
		}
		got, err := Decode(mustEncode(t, to))
		require.NoError(t, err)
		d := got.(*Timeout)
		assert.Equal(t, to.View, d.View)
		assert.Equal(t, to.Sender, d.Sender)
		assert.Equal(t, to.Sig, d.Sig)
		require.NotNil(t, d.HighQC)
		assert.Equal(t, to.HighQC.View, d.HighQC.View)
		assert.Equal(t, to.HighQC.BlockID, d.HighQC.BlockID)
		assert.Equal(t, []NodeID{1, 2, 3}, SignerIDs(d.HighQC.Signers))
		assert.Equal(t, to.HighQC.Sigs, d.HighQC.Sigs)
		if withVote {
			assert.Equal(t, to.Vote, d.Vote)
		} else {
			assert.Nil(t, d.Vote)
		}
	}
}

func TestRoundTripGenesisQC(t *testing.T) {
	to := &Timeout{View: 1, HighQC: GenesisQC(), Sender: 1, Sig: sig(1)}
	got, err := Decode(mustEncode(t, to))
	require.NoError(t, err)
	assert.True(t, got.(*Timeout).HighQC.IsGenesis())
}

func TestRoundTripTC(t *testing.T) {
	tc := testTC(14, 1, 64, 65, 500, MaxNodes)
	got, err := Decode(mustEncode(t, tc))
	require.NoError(t, err)
	d := got.(*TC)
	assert.Equal(t, tc.View, d.View)
	assert.Equal(t, []NodeID{1, 64, 65, 500, MaxNodes}, SignerIDs(d.Signers))
	assert.Equal(t, tc.Sigs, d.Sigs)
}

func TestRoundTripBlockRequestAndResponse(t *testing.T) {
	req := &BlockRequest{ID: hashOf("wanted")}
	got, err := Decode(mustEncode(t, req))
	require.NoError(t, err)
	assert.Equal(t, req, got)

	b := testBlock()
	got, err = Decode(mustEncode(t, &BlockResponse{Block: b}))
	require.NoError(t, err)
	resp := got.(*BlockResponse)
	require.NotNil(t, resp.Block)
	assert.Equal(t, b.ID(), resp.Block.ID())
	assert.Equal(t, b.Sig, resp.Block.Sig)
}

func TestRoundTripTxForward(t *testing.T) {
	in := txs("x", "yy", string(bytes.Repeat([]byte{0xab}, 300)), "\x00", "\x7f", "\x80")
	got, err := Decode(mustEncode(t, &TxForward{Txs: in}))
	require.NoError(t, err)
	d := got.(*TxForward)
	require.Len(t, d.Txs, len(in))
	for i := range in {
		assert.Equal(t, in[i].Data(), d.Txs[i].Data(), "tx %d", i)
		assert.Equal(t, in[i].ID(), d.Txs[i].ID(), "tx %d", i)
	}
}

// encodeRaw encodes v as a frame of kind k without any validation.
func encodeRaw(t *testing.T, k Kind, v any) []byte {
	t.Helper()
	body, err := rlp.EncodeToBytes(v)
	require.NoError(t, err)
	return append([]byte{byte(k)}, body...)
}

func TestDecodeRejects(t *testing.T) {
	valid := mustEncode(t, testBlock())
	bigBitmap := make(bitmap.Bitmap, MaxNodes/64+1)
	bigBitmap.Set(0)

	cases := []struct {
		name  string
		frame []byte
		want  string
	}{
		{"empty frame", nil, "empty frame"},
		{"empty slice", []byte{}, "empty frame"},
		{"kind 0", []byte{0, 0xc0}, "unknown message kind 0"},
		{"kind end", []byte{byte(kindEnd), 0xc0}, "unknown message kind 19"},
		{"snapshot without block", mustEncode(t, &Snapshot{Cert: GenesisQC()}), "decode Snapshot"},
		{"kind 255", append([]byte{255}, valid[1:]...), "unknown message kind 255"},
		{"kind only", []byte{byte(KindVote)}, "decode Vote"},
		{"truncated block", valid[:len(valid)-10], "decode Block"},
		{"truncated header", valid[:3], "decode Block"},
		{"trailing bytes", append(append([]byte{}, valid...), 0x00), "decode Block"},
		{"two messages", append(append([]byte{}, valid...), valid[1:]...), "decode Block"},
		{"wrong kind for body", append([]byte{byte(KindVote)}, valid[1:]...), "Vote"},
		{"vote sig 64 bytes", mustEncode(t, &Vote{View: 1, Voter: 1, Sig: make([]byte, 64)}), "signature has 64 bytes, want 65"},
		{"vote sig 66 bytes", mustEncode(t, &Vote{View: 1, Voter: 1, Sig: make([]byte, 66)}), "signature has 66 bytes"},
		{"vote no sig", mustEncode(t, &Vote{View: 1, Voter: 1}), "signature has 0 bytes"},
		{"vote voter 0", mustEncode(t, &Vote{View: 1, Voter: 0, Sig: sig(1)}), "voter 0 is outside [1, 1024]"},
		{"vote voter too big", mustEncode(t, &Vote{View: 1, Voter: MaxNodes + 1, Sig: sig(1)}), "voter 1025 is outside"},
		{"block proposer 0", mustEncode(t, &Block{Payload: &Payload{}, Sig: sig(1)}), "proposer 0 is outside"},
		{"block bad sig", mustEncode(t, &Block{Payload: &Payload{}, Proposer: 1, Sig: sig(1)[:10]}), "signature has 10 bytes"},
		{"block nil payload", mustEncode(t, &Block{Proposer: 1, Sig: sig(1)}), "decode Block"},
		{"block empty tx", mustEncode(t, &Block{Payload: &Payload{Txs: []Tx{NewTx(nil)}}, Proposer: 1, Sig: sig(1)}), "transaction 0 has 0 bytes"},
		{"block qc count mismatch", mustEncode(t, &Block{QC: &QC{Signers: signers(1, 2), Sigs: sigs(1, 0)}, Payload: &Payload{}, Proposer: 1, Sig: sig(1)}), "2 signers but 1 signatures"},
		{"block qc sig length", mustEncode(t, &Block{QC: &QC{Signers: signers(1), Sigs: [][]byte{{1, 2}}}, Payload: &Payload{}, Proposer: 1, Sig: sig(1)}), "signature 0: signature has 2 bytes"},
		{"block tc count mismatch", mustEncode(t, &Block{TC: &TC{Signers: signers(1), Sigs: sigs(3, 0)}, Payload: &Payload{}, Proposer: 1, Sig: sig(1)}), "1 signers but 3 signatures"},
		{"tc count mismatch", mustEncode(t, &TC{View: 1, Signers: signers(1, 2, 3), Sigs: sigs(2, 0)}), "3 signers but 2 signatures"},
		{"tc sigs without signers", mustEncode(t, &TC{View: 1, Sigs: sigs(1, 0)}), "0 signers but 1 signatures"},
		{"tc oversized bitmap", mustEncode(t, &TC{View: 1, Signers: bigBitmap, Sigs: sigs(1, 0)}), "signer bitmap of 17 words exceeds 16"},
		{"tc short sig", mustEncode(t, &TC{View: 1, Signers: signers(2), Sigs: [][]byte{make([]byte, 64)}}), "signature 0: signature has 64 bytes"},
		{"timeout nil high qc", mustEncode(t, &Timeout{View: 1, Sender: 1, Sig: sig(1)}), "decode Timeout"},
		{"timeout sender 0", mustEncode(t, &Timeout{View: 1, HighQC: GenesisQC(), Sig: sig(1)}), "sender 0 is outside"},
		{"timeout bad sig", mustEncode(t, &Timeout{View: 1, HighQC: GenesisQC(), Sender: 1}), "signature has 0 bytes"},
		{"timeout bad high qc", mustEncode(t, &Timeout{View: 1, HighQC: &QC{Signers: signers(1)}, Sender: 1, Sig: sig(1)}), "1 signers but 0 signatures"},
		{"timeout vote voter 0", mustEncode(t, &Timeout{View: 1, HighQC: GenesisQC(), Sender: 1, Sig: sig(1), Vote: &Vote{Sig: sig(1)}}), "voter 0 is outside"},
		{"timeout vote bad sig", mustEncode(t, &Timeout{View: 1, HighQC: GenesisQC(), Sender: 1, Sig: sig(1), Vote: &Vote{Voter: 1}}), "signature has 0 bytes"},
		{"response bad block", mustEncode(t, &BlockResponse{Block: &Block{Payload: &Payload{}, Sig: sig(1)}}), "proposer 0"},
		{"forward empty tx", mustEncode(t, &TxForward{Txs: txs("a", "", "c")}), "transaction 1 has 0 bytes"},
		{"forward list as tx", encodeRaw(t, KindTxForward, []any{[]any{[]any{"a"}}}), "expected a byte string"},
		{"request short hash", encodeRaw(t, KindBlockRequest, []any{[]byte{1, 2, 3}}), "decode BlockRequest"},
		{"vote as string", encodeRaw(t, KindVote, []byte("hello")), "decode Vote"},
		{"non-canonical size", []byte{byte(KindBlockRequest), 0xf8, 0x21, 0xa0}, "decode BlockRequest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m Message
			var err error
			require.NotPanics(t, func() { m, err = Decode(tc.frame) })
			require.Error(t, err)
			assert.Nil(t, m)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "codec:"), err.Error())
		})
	}
}

func TestDecodeEmptyFrameSentinel(t *testing.T) {
	_, err := Decode(nil)
	assert.True(t, errors.Is(err, ErrEmptyFrame))
}

func TestDecodeTxOverLimit(t *testing.T) {
	big := make([]byte, MaxTxSize+1)
	big[0] = 1
	frame := encodeRaw(t, KindTxForward, []any{[]any{big}})
	_, err := Decode(frame)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exceeds the limit of 1048576")

	ok := make([]byte, MaxTxSize)
	ok[0] = 1
	m, err := Decode(encodeRaw(t, KindTxForward, []any{[]any{ok}}))
	require.NoError(t, err)
	assert.Equal(t, MaxTxSize, m.(*TxForward).Txs[0].Size())
}

func TestDecodeFrameOverLimit(t *testing.T) {
	frame := make([]byte, MaxFrame+1)
	frame[0] = byte(KindTxForward)
	_, err := Decode(frame)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exceeds")
}

func TestDecodeEveryPrefixOfValidFramesFails(t *testing.T) {
	for _, name := range sortedNames(sampleMessages()) {
		frame := mustEncode(t, sampleMessages()[name])
		for n := 0; n < len(frame); n++ {
			var err error
			require.NotPanics(t, func() { _, err = Decode(frame[:n]) }, "%s[:%d]", name, n)
			assert.Error(t, err, "%s[:%d]", name, n)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, name := range sortedNames(sampleMessages()) {
		assert.NoError(t, Validate(sampleMessages()[name]), name)
	}
	err := Validate(&Timeout{View: 1, Sender: 1, Sig: sig(1)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing high QC")

	err = Validate(&BlockResponse{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing block")

	err = Validate(&Block{Proposer: 1, Sig: sig(1)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing payload")

	// Several problems of a block are reported together.
	err = Validate(&Block{Payload: &Payload{Txs: txs("")}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "proposer 0")
	assert.Contains(t, err.Error(), "signature has 0 bytes")
	assert.Contains(t, err.Error(), "transaction 0 has 0 bytes")
}

type alienMessage struct{}

func (alienMessage) Kind() Kind { return Kind(200) }

func TestValidateUnknownType(t *testing.T) {
	err := Validate(alienMessage{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unknown message type")
}

func TestValidateNilMessage(t *testing.T) {
	var err error
	require.NotPanics(t, func() { err = Validate(nil) })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nil message")
}

func TestKindNamesAndLanes(t *testing.T) {
	want := map[Kind]string{
		KindBlock: "Block", KindVote: "Vote", KindTimeout: "Timeout", KindTC: "TC",
		KindBlockRequest: "BlockRequest", KindBlockResponse: "BlockResponse", KindTxForward: "TxForward",
	}
	for k, n := range want {
		assert.Equal(t, n, k.String())
	}
	assert.Equal(t, "Kind(0)", Kind(0).String())
	assert.Equal(t, "Kind(99)", Kind(99).String())
	// Values are part of the wire format.
	assert.Equal(t, Kind(1), KindBlock)
	assert.Equal(t, Kind(7), KindTxForward)

	data := map[Kind]bool{KindTxForward: true, KindMicroBlock: true, KindFetchResponse: true, KindLBForward: true, KindSnapshot: true}
	engine := map[Kind]bool{KindBlock: true, KindVote: true, KindTimeout: true, KindTC: true, KindBlockRequest: true, KindBlockResponse: true}
	for k := KindBlock; k < kindEnd; k++ {
		if data[k] {
			assert.Equal(t, LaneData, k.Lane(), k.String())
		} else {
			assert.Equal(t, LaneConsensus, k.Lane(), k.String())
		}
		assert.Equal(t, engine[k], k.IsConsensus(), k.String())
	}
	assert.Len(t, Kinds(), int(kindEnd)-1)
	assert.False(t, Kind(0).IsConsensus())
	for _, m := range sampleMessages() {
		assert.NotNil(t, newMessage(m.Kind()))
	}
	assert.Nil(t, newMessage(0))
	assert.Nil(t, newMessage(kindEnd))
}

// A certificate is one signature per signer, or (BLS) one aggregate signature of all of them; the
// verifier then requires its own scheme's form.
func TestCertificateForms(t *testing.T) {
	var signers bitmap.Bitmap
	for _, b := range []uint32{0, 2, 3} {
		signers.Set(b)
	}
	sig := func(n int) []byte { return bytes.Repeat([]byte{7}, n) }
	ok := map[string][][]byte{
		"one ECDSA signature each": {sig(SigSize), sig(SigSize), sig(SigSize)},
		"one BLS signature each":   {sig(BLSSigSize), sig(BLSSigSize), sig(BLSSigSize)},
		"one BLS aggregate":        {sig(BLSSigSize)},
	}
	for name, sigs := range ok {
		require.NoError(t, Validate(&TC{View: 1, Signers: signers, Sigs: sigs}), name)
	}
	bad := map[string][][]byte{
		"one ECDSA signature for three": {sig(SigSize)},
		"two aggregates":                {sig(BLSSigSize), sig(BLSSigSize)},
		"an aggregate of another size":  {sig(BLSSigSize + 1)},
	}
	for name, sigs := range bad {
		require.Error(t, Validate(&TC{View: 1, Signers: signers, Sigs: sigs}), name)
	}
	require.Error(t, Validate(&TC{View: 1, Sigs: [][]byte{sig(BLSSigSize)}}), "an aggregate of nobody")
}

// A decoded microblock's (or block's) transactions share one allocation, and a forward's do not:
// a forwarded transaction kept alone in a leader's pool must not pin the bytes of the others.
// Sharing never lets one transaction's bytes run into the next's.
func TestDecodedTransactionsShareOneBuffer(t *testing.T) {
	const n = 64
	var list []Tx
	for i := 0; i < n; i++ {
		list = append(list, NewTx([]byte(fmt.Sprintf("transaction %02d", i))))
	}
	mb := NewMicroBlock(2, 9, list).Signed(func(Hash) []byte { return sig(2) })
	frames := map[string][]byte{
		"microblock": mustEncode(t, mb),
		"block":      mustEncode(t, &Block{View: 9, Height: 3, Parent: hashOf("p"), QC: testQC(8, hashOf("p"), 1, 2, 3), Payload: &Payload{Txs: list}, Proposer: 1, Sig: sig(1)}),
		"forward":    mustEncode(t, &TxForward{Txs: list}),
	}
	decode := func(name string) []Tx {
		m, err := Decode(frames[name])
		require.NoError(t, err, name)
		switch m := m.(type) {
		case *MicroBlock:
			return m.Txs
		case *Block:
			return m.Payload.Txs
		case *TxForward:
			return m.Txs
		}
		t.Fatalf("%s: decoded as %T", name, m)
		return nil
	}
	allocs := func(name string) float64 {
		frame := frames[name]
		return testing.AllocsPerRun(20, func() { _, _ = Decode(frame) })
	}
	for _, name := range []string{"microblock", "block", "forward"} {
		got := decode(name)
		require.Len(t, got, n, name)
		for i := range got {
			assert.Equal(t, list[i].Data(), got[i].Data(), name)
			assert.Equal(t, list[i].ID(), got[i].ID(), name)
			assert.Equal(t, len(got[i].Data()), cap(got[i].Data()), "%s: transaction %d's slice ends at its bytes", name, i)
		}
		_ = append(got[0].Data(), 'X')
		assert.Equal(t, []byte("transaction 01"), got[1].Data(), "%s: appending to one transaction copies", name)
	}
	assert.Less(t, allocs("microblock"), float64(16), "one buffer for all the transactions' bytes")
	assert.Less(t, allocs("block"), float64(16), "one buffer for all the transactions' bytes")
	assert.GreaterOrEqual(t, allocs("forward"), float64(n), "a copy of its own for each forwarded transaction")
}
