package types

import (
	"bytes"
	"testing"

	"github.com/kelindar/bitmap"
	"github.com/stretchr/testify/require"
)

// sig returns a well-formed (65-byte) fake signature filled with b.
func sig(b byte) []byte { return bytes.Repeat([]byte{b}, SigSize) }

// hashOf returns a distinct hash per label.
func hashOf(label string) Hash { return Keccak([]byte(label)) }

func signers(ids ...NodeID) bitmap.Bitmap {
	var bm bitmap.Bitmap
	for _, id := range ids {
		bm.Set(SignerBit(id))
	}
	return bm
}

func sigs(n int, first byte) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = sig(first + byte(i))
	}
	return out
}

func testQC(view View, block Hash, ids ...NodeID) *QC {
	return &QC{View: view, BlockID: block, Signers: signers(ids...), Sigs: sigs(len(ids), 0x10)}
}

func testTC(view View, ids ...NodeID) *TC {
	return &TC{View: view, Signers: signers(ids...), Sigs: sigs(len(ids), 0x40)}
}

func txs(datas ...string) []Tx {
	out := make([]Tx, len(datas))
	for i, d := range datas {
		out[i] = NewTx([]byte(d))
	}
	return out
}

// testBlock returns a fully populated block: payload, QC and TC.
func testBlock() *Block {
	return &Block{
		View:     7,
		Height:   5,
		Parent:   hashOf("parent"),
		QC:       testQC(6, hashOf("parent"), 1, 2, 4),
		TC:       testTC(6, 1, 3, 4),
		Payload:  &Payload{Txs: txs("tx-a", "tx-b", "a somewhat longer transaction body")},
		Proposer: 3,
		Sig:      sig(0x77),
	}
}

// sampleMessages returns one valid message of every kind (and variants), keyed by a name.
func sampleMessages() map[string]Message {
	return map[string]Message{
		"block":              testBlock(),
		"block-minimal":      &Block{View: 1, Height: 1, Parent: Genesis().ID(), Payload: &Payload{}, Proposer: 1, Sig: sig(1)},
		"block-genesis-qc":   &Block{View: 1, Height: 1, Parent: Genesis().ID(), QC: GenesisQC(), Payload: &Payload{}, Proposer: 2, Sig: sig(2)},
		"vote":               &Vote{View: 9, BlockID: hashOf("b9"), Voter: 4, Sig: sig(9)},
		"timeout":            &Timeout{View: 12, HighQC: testQC(10, hashOf("b10"), 1, 2, 3), Sender: 2, Sig: sig(0x12)},
		"timeout-with-vote":  &Timeout{View: 12, HighQC: testQC(10, hashOf("b10"), 1, 2, 3), Sender: 2, Sig: sig(0x12), Vote: &Vote{View: 11, BlockID: hashOf("b11"), Voter: 2, Sig: sig(0x11)}},
		"timeout-genesis-qc": &Timeout{View: 1, HighQC: GenesisQC(), Sender: MaxNodes, Sig: sig(3)},
		"tc":                 testTC(13, 1, 2, 3),
		"tc-high-ids":        testTC(14, 1, 64, 65, 500, MaxNodes),
		"block-request":      &BlockRequest{ID: hashOf("wanted")},
		"block-response":     &BlockResponse{Block: testBlock()},
		"tx-forward":         &TxForward{Txs: txs("x", "yy", string(bytes.Repeat([]byte{0xab}, 300)))},
		"tx-forward-empty":   &TxForward{},
		"microblock":         testMicroBlock(),
		"microblock-relayed": testMicroBlock().Relay(3, 2),
		"ack":                &Ack{MBID: hashOf("mb"), View: 4, Signer: 2, Sig: sig(0x21)},
		"proof":              testProof(testMicroBlock(), 1, 3),
		"block-refs": &Block{View: 5, Height: 2, Parent: hashOf("p"), QC: testQC(4, hashOf("p"), 1, 2, 3), Proposer: 1, Sig: sig(5),
			Payload: &Payload{Refs: []MBRef{{ID: testMicroBlock().ID, Proof: testProof(testMicroBlock(), 2, 4)}, {ID: hashOf("smp")}}}},
		"fetch-request":  &FetchRequest{IDs: []Hash{hashOf("a"), hashOf("b")}},
		"proof-request":  &ProofRequest{IDs: []Hash{hashOf("c")}},
		"fetch-response": &FetchResponse{MBs: []*MicroBlock{testMicroBlock()}},
		"fetch-empty":    &FetchResponse{},
		"lb-query":       &LBQuery{Nonce: 77},
		"lb-info":        &LBInfo{Nonce: 77, LoadUS: 12345, Busy: true},
		"lb-forward":     &LBForward{MB: testMicroBlock()},
		"state-request":  &StateRequest{Height: 1 << 20},
		"snapshot": &Snapshot{Block: testBlock(), Cert: testQC(7, testBlock().ID(), 1, 2, 3), Digest: hashOf("digest"), Delivered: 12345,
			TxPrev: []Hash{hashOf("t1"), hashOf("t2")}, TxCur: []Hash{hashOf("t3")}, MBs: []MBView{{ID: hashOf("mb"), View: 6}}},
		"snapshot-empty": &Snapshot{Block: testBlock(), Cert: GenesisQC()},
	}
}

func testMicroBlock() *MicroBlock {
	return NewMicroBlock(2, 9, txs("m1", "m2", "m3")).Signed(func(Hash) []byte { return sig(0x22) })
}

func testProof(mb *MicroBlock, signers ...NodeID) *Proof {
	p := &Proof{MBID: mb.ID, View: mb.View}
	for _, id := range signers {
		p.Signers.Set(SignerBit(id))
		p.Sigs = append(p.Sigs, sig(byte(id)))
	}
	return p
}

func mustEncode(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := Encode(m)
	require.NoError(t, err)
	return b
}
