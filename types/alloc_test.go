package types

import (
	"bytes"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"testing"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/stretchr/testify/require"
)

// allocRatio bounds what decoding a frame may allocate, in bytes per frame byte, for every frame
// that is refused and every valid frame whose elements take at least 8 encoded bytes each.
// Measured: the attack frames below are refused before any list is allocated (under 0.01 byte
// per frame byte, a few hundred bytes in all); valid frames allocate their content about once
// (1.5 bytes per byte for transactions of 128 bytes, each a 64-byte Tx beside its copy, and for
// certificates of 1024 signatures; 1.9 for references with the smallest proofs). 8 leaves room
// for Go's size classes and for the fixed parts of small messages.
const allocRatio = 8

// txHeaderBytes is what a decoded transaction costs beside its bytes (the Tx value); a valid list of
// transactions shorter than 8 bytes costs up to that much per transaction, capped by
// MaxPayloadItems transactions per list.
const txHeaderBytes = 64

// allocated reports the bytes f allocates (the least of three runs, to shed unrelated noise).
func allocated(f func()) uint64 {
	best := ^uint64(0)
	for range 3 {
		best = min(best, allocatedOnce(f))
	}
	return best
}

// allocatedOnce reports the bytes f allocates in one run.
func allocatedOnce(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// rawRepeat is an RLP list holding n copies of the encoded value item.
func rawRepeat(n int, item []byte) rlp.RawValue {
	content := bytes.Repeat(item, n)
	w := rlp.NewEncoderBuffer(nil)
	off := w.List()
	w.Write(content)
	w.ListEnd(off)
	return w.ToBytes()
}

// rawOf is the RLP encoding of v (lists as []any, raw parts as rlp.RawValue).
func rawOf(t testing.TB, v any) rlp.RawValue {
	t.Helper()
	b, err := rlp.EncodeToBytes(v)
	require.NoError(t, err)
	return b
}

func frameOf(t testing.TB, k Kind, v any) []byte {
	return append([]byte{byte(k)}, rawOf(t, v)...)
}

var (
	rlpEmptyString = []byte{0x80}
	rlpEmptyList   = rlp.RawValue{0xc0}
)

// attackFrames are frames of every list-bearing kind, each about size bytes, whose lists hold as
// many elements as fit: empty elements where the protocol never sends one (transactions,
// signatures, IDs, microblocks...), or the smallest element that parses. Only those in
// validAttack pass Validate.
func attackFrames(t testing.TB, size int) map[string][]byte {
	n := size        // one-byte elements
	h := hashOf("x") //
	s := sig(1)      //
	qcEmptySigs := []any{uint64(3), h, []uint64{0xf}, rawRepeat(n, rlpEmptyString)}
	tcEmptySigs := []any{uint64(3), []uint64{0xf}, rawRepeat(n, rlpEmptyString)}
	qcZeroWords := []any{uint64(3), h, rawRepeat(n, rlpEmptyString), rlpEmptyList}
	block := func(qc, tc, payload any) []any {
		return []any{uint64(7), uint64(5), h, qc, tc, payload, uint64(1), s}
	}
	noRefs := rlpEmptyList
	emptyTxs := []any{rawRepeat(n, rlpEmptyString), noRefs}
	emptyPayload := []any{rlpEmptyList, rlpEmptyList}
	mbEmptyTxs := []any{h, uint64(2), uint64(9), uint64(2), uint64(0), rawRepeat(n, rlpEmptyString), s}
	// The smallest microblock that parses: one one-byte transaction, no signature (42 bytes).
	tinyMB := rawOf(t, []any{h, uint64(2), uint64(9), uint64(2), uint64(0), []any{[]byte{1}}, []byte{}})
	// The smallest reference with a proof: a proof without signers (72 bytes).
	tinyRef := rawOf(t, []any{h, []any{h, uint64(1), rlpEmptyList, rlpEmptyList}})
	proofEmptySigs := []any{h, uint64(1), []uint64{0xf}, rawRepeat(n, rlpEmptyString)}
	tinyKV := rawOf(t, []any{[]byte{1}, []byte{}, uint64(1)}) // 4 bytes
	tinyMBView := rawOf(t, []any{h, uint64(1)})               // 35 bytes
	hashItem := rawOf(t, h)                                   // 33 bytes
	snapshot := func(blk, cert, prev, mbs, kv any) []any {
		return []any{blk, cert, h, uint64(1), prev, rlpEmptyList, mbs, kv}
	}
	okBlock := block(rlpEmptyList, rlpEmptyList, emptyPayload)
	genesisQC := []any{uint64(0), h, rlpEmptyList, rlpEmptyList}

	return map[string][]byte{
		"Block/empty-txs":            frameOf(t, KindBlock, block(rlpEmptyList, rlpEmptyList, emptyTxs)),
		"Block/qc-empty-sigs":        frameOf(t, KindBlock, block(qcEmptySigs, rlpEmptyList, emptyPayload)),
		"Block/tc-empty-sigs":        frameOf(t, KindBlock, block(rlpEmptyList, tcEmptySigs, emptyPayload)),
		"Block/qc-zero-bitmap-words": frameOf(t, KindBlock, block(qcZeroWords, rlpEmptyList, emptyPayload)),
		"Block/empty-refs":           frameOf(t, KindBlock, block(rlpEmptyList, rlpEmptyList, []any{rlpEmptyList, rawRepeat(n, rlpEmptyList)})),
		"Block/tiny-refs":            frameOf(t, KindBlock, block(rlpEmptyList, rlpEmptyList, []any{rlpEmptyList, rawRepeat(n/len(tinyRef), tinyRef)})),
		"Block/proof-empty-sigs":     frameOf(t, KindBlock, block(rlpEmptyList, rlpEmptyList, []any{rlpEmptyList, []any{[]any{h, proofEmptySigs}}})),
		"Vote/huge-sig":              frameOf(t, KindVote, []any{uint64(1), h, uint64(1), make([]byte, n)}),
		"Timeout/high-qc-empty-sigs": frameOf(t, KindTimeout, []any{uint64(4), qcEmptySigs, uint64(1), s, rlpEmptyList}),
		"TC/empty-sigs":              frameOf(t, KindTC, tcEmptySigs),
		"TC/zero-bitmap-words":       frameOf(t, KindTC, []any{uint64(3), rawRepeat(n, rlpEmptyString), rlpEmptyList}),
		"BlockRequest/huge-id":       frameOf(t, KindBlockRequest, []any{make([]byte, n)}),
		"BlockResponse/empty-txs":    frameOf(t, KindBlockResponse, []any{block(rlpEmptyList, rlpEmptyList, emptyTxs)}),
		"TxForward/empty-txs":        frameOf(t, KindTxForward, []any{rawRepeat(n, rlpEmptyString)}),
		"MicroBlock/empty-txs":       frameOf(t, KindMicroBlock, mbEmptyTxs),
		"Ack/huge-sig":               frameOf(t, KindAck, []any{h, uint64(1), uint64(1), make([]byte, n)}),
		"Proof/empty-sigs":           frameOf(t, KindProof, proofEmptySigs),
		"FetchRequest/empty-ids":     frameOf(t, KindFetchRequest, []any{rawRepeat(n, rlpEmptyString)}),
		"FetchRequest/ids":           frameOf(t, KindFetchRequest, []any{rawRepeat(n/len(hashItem), hashItem)}),
		"FetchResponse/empty-mbs":    frameOf(t, KindFetchResponse, []any{rawRepeat(n, rlpEmptyList)}),
		"FetchResponse/tiny-mbs":     frameOf(t, KindFetchResponse, []any{rawRepeat(n/len(tinyMB), tinyMB)}),
		"FetchResponse/mb-empty-txs": frameOf(t, KindFetchResponse, []any{[]any{mbEmptyTxs}}),
		"LBQuery/huge-nonce":         frameOf(t, KindLBQuery, []any{make([]byte, n)}),
		"LBInfo/huge-nonce":          frameOf(t, KindLBInfo, []any{make([]byte, n), uint64(1), uint64(1)}),
		"LBForward/empty-txs":        frameOf(t, KindLBForward, []any{mbEmptyTxs}),
		"StateRequest/huge-height":   frameOf(t, KindStateRequest, []any{make([]byte, n)}),
		"Snapshot/empty-ids":         frameOf(t, KindSnapshot, snapshot(okBlock, genesisQC, rawRepeat(n, rlpEmptyString), rlpEmptyList, rlpEmptyList)),
		"Snapshot/tiny-kv":           frameOf(t, KindSnapshot, snapshot(okBlock, genesisQC, rlpEmptyList, rlpEmptyList, rawRepeat(n/len(tinyKV), tinyKV))),
		"Snapshot/empty-kv":          frameOf(t, KindSnapshot, snapshot(okBlock, genesisQC, rlpEmptyList, rlpEmptyList, rawRepeat(n, rlpEmptyList))),
		"Snapshot/tiny-mb-views":     frameOf(t, KindSnapshot, snapshot(okBlock, genesisQC, rlpEmptyList, rawRepeat(n/len(tinyMBView), tinyMBView), rlpEmptyList)),
		"Snapshot/block-empty-txs":   frameOf(t, KindSnapshot, snapshot(block(rlpEmptyList, rlpEmptyList, emptyTxs), genesisQC, rlpEmptyList, rlpEmptyList, rlpEmptyList)),
		"Snapshot/cert-empty-sigs":   frameOf(t, KindSnapshot, snapshot(okBlock, qcEmptySigs, rlpEmptyList, rlpEmptyList, rlpEmptyList)),
		"ProofRequest/empty-ids":     frameOf(t, KindProofRequest, []any{rawRepeat(n, rlpEmptyString)}),
		"ProofRequest/ids":           frameOf(t, KindProofRequest, []any{rawRepeat(n/len(hashItem), hashItem)}),
	}
}

// validAttack are the attack frames that are structurally valid: proofs that name no signer (the
// signature check refuses them later) and a snapshot window of one microblock repeated.
var validAttack = map[string]bool{"Block/tiny-refs": true, "Snapshot/tiny-mb-views": true}

// TestDecodeAllocationIsBoundedByFrame: a frame of about 1 MiB whose lists hold as many empty or
// minimal elements as fit is refused, and decoding it allocates at most allocRatio bytes per frame
// byte. Kinds whose limit (MaxFrameFor) is below 1 MiB are refused on their size alone, so their
// frames are built again at that limit, to go through the decoder. (Before the codec bounded
// lists, a list of empty transactions cost 224 bytes per frame byte and a list of empty
// signatures 72.)
func TestDecodeAllocationIsBoundedByFrame(t *testing.T) {
	frames := attackFrames(t, 1<<20)
	atLimit := map[int]map[string][]byte{}
	kinds := map[Kind]bool{}
	check := func(name string, frame []byte) error {
		var err error
		got := allocated(func() { _, err = Decode(frame) })
		t.Logf("%-34s %8d bytes: allocated %9d (%.3f per byte): %v", name, len(frame), got, float64(got)/float64(len(frame)), short(err))
		if got > uint64(allocRatio*len(frame)) {
			t.Errorf("%s: %d bytes allocated for a frame of %d, more than %d per byte", name, got, len(frame), allocRatio)
		}
		return err
	}
	for _, name := range sortedKeys(frames) {
		frame := frames[name]
		k := Kind(frame[0])
		kinds[k] = true
		if err := check(name, frame); !validAttack[name] {
			require.Error(t, err, name)
		}
		limit := MaxFrameFor(k)
		if limit >= len(frame) || limit < 4096 {
			continue
		}
		if atLimit[limit] == nil {
			atLimit[limit] = attackFrames(t, limit-256)
		}
		small := atLimit[limit][name]
		require.LessOrEqual(t, len(small), limit, name)
		require.Greater(t, len(small), limit-512, name)
		check(name+"@limit", small)
	}
	for _, k := range Kinds() {
		require.True(t, kinds[k], "no attack frame of kind %v", k)
	}
}

// TestDecodeTransactionCaps: a list holds at most MaxPayloadItems transactions, and the
// microblocks of a fetch response MaxFetchTxs together; both are refused before anything is
// allocated.
func TestDecodeTransactionCaps(t *testing.T) {
	h, s := hashOf("x"), sig(1)
	mb := func(n int) []any {
		return []any{h, uint64(2), uint64(9), uint64(2), uint64(0), rawRepeat(n, []byte{1}), s}
	}
	over := frameOf(t, KindMicroBlock, mb(MaxPayloadItems+1))
	var err error
	got := allocated(func() { _, err = Decode(over) })
	require.ErrorContains(t, err, "codec: decode MicroBlock: 1048577 transactions exceeds 1048576")
	require.Less(t, got, uint64(4096))

	full := rawOf(t, mb(MaxPayloadItems))
	resp := frameOf(t, KindFetchResponse, []any{rawRepeat(MaxFetchTxs/MaxPayloadItems+1, full)})
	got = allocated(func() { _, err = Decode(resp) })
	require.ErrorContains(t, err, "codec: decode FetchResponse: 9437184 transactions in 9 microblocks exceed 8388608")
	require.Less(t, got, uint64(4096))
}

// TestMaxFrameFor: the largest valid message of every kind with a limit below MaxFrame fits its
// limit (within the slack of node IDs, which are encoded as 32-bit integers but stay below
// MaxNodes), and a frame one byte longer than the limit is refused with an error naming the kind
// and both sizes.
func TestMaxFrameFor(t *testing.T) {
	full := make([]NodeID, MaxNodes)
	for i := range full {
		full[i] = NodeID(i + 1)
	}
	bls := func() []byte { return bytes.Repeat([]byte{0xb1}, BLSSigSize) }
	bigQC := &QC{View: 1<<64 - 1, BlockID: hashOf("b"), Signers: signers(full...)}
	for range full {
		bigQC.Sigs = append(bigQC.Sigs, bls())
	}
	bigVote := &Vote{View: 1<<64 - 1, BlockID: hashOf("b"), Voter: MaxNodes, Sig: bls()}
	ids := make([]Hash, MaxFetch)
	for i := range ids {
		ids[i] = hashOf(fmt.Sprint(i))
	}
	largest := map[Kind]Message{
		KindVote:         bigVote,
		KindTimeout:      &Timeout{View: 1<<64 - 1, HighQC: bigQC, Sender: MaxNodes, Sig: bls(), Vote: bigVote},
		KindTC:           &TC{View: 1<<64 - 1, Signers: bigQC.Signers, Sigs: bigQC.Sigs},
		KindBlockRequest: &BlockRequest{ID: hashOf("b")},
		KindAck:          &Ack{MBID: hashOf("mb"), View: 1<<64 - 1, Signer: MaxNodes, Sig: bls()},
		KindProof:        &Proof{MBID: hashOf("mb"), View: 1<<64 - 1, Signers: bigQC.Signers, Sigs: bigQC.Sigs},
		KindFetchRequest: &FetchRequest{IDs: ids},
		KindProofRequest: &ProofRequest{IDs: ids},
		KindLBQuery:      &LBQuery{Nonce: 1<<64 - 1},
		KindLBInfo:       &LBInfo{Nonce: 1<<64 - 1, LoadUS: 1<<64 - 1, Busy: true},
		KindStateRequest: &StateRequest{Height: 1<<64 - 1},
	}
	for _, k := range Kinds() {
		limit := MaxFrameFor(k)
		require.Positive(t, limit, k.String())
		require.LessOrEqual(t, limit, MaxFrame, k.String())
		m, ok := largest[k]
		if !ok {
			require.Equal(t, MaxFrame, limit, "%v has no message of bounded size", k)
			continue
		}
		frame := mustEncode(t, m)
		t.Logf("%-13v limit %6d bytes, largest valid message %6d", k, limit, len(frame))
		require.LessOrEqual(t, len(frame), limit, k.String())
		require.GreaterOrEqual(t, len(frame), limit-4, "%v: the limit is loose", k)
		_, err := Decode(frame)
		require.NoError(t, err, k.String())

		over := append(append([]byte{}, frame...), make([]byte, limit+1-len(frame))...)
		_, err = Decode(over)
		require.Error(t, err)
		require.Equal(t, fmt.Sprintf("codec: %v frame of %d bytes exceeds the %v limit of %d bytes", k, limit+1, k, limit), err.Error())
	}
	require.Zero(t, MaxFrameFor(0))
	require.Zero(t, MaxFrameFor(kindEnd))
	require.Zero(t, MaxFrameFor(255))
}

// TestDecodeAllocationOfValidFrames: valid messages allocate their content once.
func TestDecodeAllocationOfValidFrames(t *testing.T) {
	mb128 := NewMicroBlock(2, 9, benchTxList(1000, 128)).Signed(func(Hash) []byte { return sig(2) })
	tiny := make([]Tx, 1<<16)
	for i := range tiny {
		tiny[i] = NewTx([]byte{byte(1 + i%127)})
	}
	mb1 := NewMicroBlock(2, 9, tiny).Signed(func(Hash) []byte { return sig(2) })
	qc := testQC(6, hashOf("b"), func() []NodeID {
		ids := make([]NodeID, MaxNodes)
		for i := range ids {
			ids[i] = NodeID(i + 1)
		}
		return ids
	}()...)
	cases := []struct {
		name  string
		m     Message
		ratio float64
	}{
		{"microblock of 1000 txs of 128 B", mb128, 2},
		{"block of 1000 txs of 128 B", &Block{View: 9, Height: 3, QC: GenesisQC(), Payload: &Payload{Txs: benchTxList(1000, 128)}, Proposer: 1, Sig: sig(1)}, 2},
		{"TC of 1024 signatures", &TC{View: 5, Signers: qc.Signers, Sigs: qc.Sigs}, 2},
		{"microblock of 65536 txs of 1 B", mb1, txHeaderBytes + allocRatio},
	}
	for _, c := range cases {
		frame := mustEncode(t, c.m)
		var err error
		got := allocated(func() { _, err = Decode(frame) })
		require.NoError(t, err, c.name)
		ratio := float64(got) / float64(len(frame))
		t.Logf("%-34s %8d bytes: allocated %10d (%.3f per byte)", c.name, len(frame), got, ratio)
		if ratio > c.ratio {
			t.Errorf("%s: %.3f bytes allocated per frame byte, more than %g", c.name, ratio, c.ratio)
		}
	}
}

func benchTxList(n, size int) []Tx {
	raw := benchTxs(n, size)
	out := make([]Tx, n)
	for i, r := range raw {
		out[i] = NewTx(r)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func short(err error) string {
	if err == nil {
		return "accepted"
	}
	s := err.Error()
	if len(s) > 110 {
		s = s[:110] + "..."
	}
	return s
}

// BenchmarkDecodeMicroBlock: decoding a microblock of 1000 transactions of 128 bytes, as every
// receiver does (transaction IDs and the microblock ID included).
func BenchmarkDecodeMicroBlock(b *testing.B) {
	mb := NewMicroBlock(2, 9, benchTxList(1000, 128)).Signed(func(Hash) []byte { return sig(2) })
	benchDecode(b, mb)
}

// BenchmarkDecodeBlock: decoding a native block of 1000 transactions of 128 bytes with a QC of
// 3 signatures.
func BenchmarkDecodeBlock(b *testing.B) {
	blk := &Block{View: 9, Height: 3, Parent: hashOf("p"), QC: testQC(8, hashOf("p"), 1, 2, 3), Payload: &Payload{Txs: benchTxList(1000, 128)}, Proposer: 1, Sig: sig(1)}
	benchDecode(b, blk)
}

// BenchmarkDecodeBlockRefs: decoding a shared-mempool block of 400 references with inline proofs
// of 3 signatures each.
func BenchmarkDecodeBlockRefs(b *testing.B) {
	refs := make([]MBRef, 400)
	for i := range refs {
		mb := NewMicroBlock(2, View(i+1), txs(fmt.Sprint("m", i)))
		refs[i] = MBRef{ID: mb.ID, Proof: testProof(mb, 1, 2, 3)}
	}
	blk := &Block{View: 9, Height: 3, Parent: hashOf("p"), QC: testQC(8, hashOf("p"), 1, 2, 3), Payload: &Payload{Refs: refs}, Proposer: 1, Sig: sig(1)}
	benchDecode(b, blk)
}

// benchDecode times decoding m's frame.
func benchDecode(b *testing.B, m Message) {
	frame := mustEncode(b, m)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}
