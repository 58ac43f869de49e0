package types

import (
	"bytes"
	"testing"
)

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to a frame that decodes to a
// message of the same kind (and, for blocks, the same ID); the re-encoding is a fixed point.
func FuzzDecode(f *testing.F) {
	for _, name := range sortedNames(sampleMessages()) {
		frame := mustEncode(f, sampleMessages()[name])
		f.Add(frame)
		if len(frame) > 4 {
			f.Add(frame[:len(frame)/2])                           // truncated
			f.Add(append(append([]byte{}, frame...), 0x80))       // trailing byte
			mut := append([]byte{}, frame...)                     // flipped kind
			mut[0] = byte(KindBlock) + (mut[0] % byte(kindEnd-1)) // another valid kind
			f.Add(mut)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{byte(KindVote)})
	f.Add([]byte{byte(KindTC), 0xc0})
	f.Add([]byte{byte(KindTxForward), 0xc1, 0xc0})
	f.Add([]byte{byte(KindTxForward), 0xc2, 0xc1, 0x00})
	f.Add([]byte{byte(KindBlock), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("\x03garbage that is not RLP at all"))

	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := Decode(frame)
		if err != nil {
			if m != nil {
				t.Fatalf("Decode returned both a message and an error: %v", err)
			}
			return
		}
		if m == nil {
			t.Fatal("Decode returned neither a message nor an error")
		}
		if Kind(frame[0]) != m.Kind() {
			t.Fatalf("frame kind %d decoded as %v", frame[0], m.Kind())
		}
		if err := Validate(m); err != nil {
			t.Fatalf("decoded message does not validate: %v", err)
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("re-encode %v: %v", m.Kind(), err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded %v does not decode: %v", m.Kind(), err)
		}
		if m2.Kind() != m.Kind() {
			t.Fatalf("kind changed: %v -> %v", m.Kind(), m2.Kind())
		}
		enc2, err := Encode(m2)
		if err != nil {
			t.Fatalf("second re-encode: %v", err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not a fixed point:\n%x\n%x", enc, enc2)
		}
		switch b := m.(type) {
		case *Block:
			if b.ID() != m2.(*Block).ID() {
				t.Fatalf("block ID changed across re-encoding: %v -> %v", b.ID(), m2.(*Block).ID())
			}
		case *BlockResponse:
			if b.Block.ID() != m2.(*BlockResponse).Block.ID() {
				t.Fatal("block ID in a response changed across re-encoding")
			}
		case *TxForward:
			d := m2.(*TxForward)
			if len(d.Txs) != len(b.Txs) {
				t.Fatalf("%d txs became %d", len(b.Txs), len(d.Txs))
			}
			for i := range b.Txs {
				if b.Txs[i].ID() != d.Txs[i].ID() || b.Txs[i].ID() != Keccak(b.Txs[i].Data()) {
					t.Fatalf("tx %d ID mismatch", i)
				}
			}
		}
	})
}

// FuzzDecodeBatch: DecodeBatch never panics, and a successful decode re-encodes to the same bytes.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(AppendBatch(nil, [][]byte{[]byte("a")}), 4, 16)
	f.Add(AppendBatch(nil, [][]byte{[]byte("a"), bytes.Repeat([]byte{7}, 200), []byte("xyz")}), 8, 256)
	f.Add(AppendBatch(nil, [][]byte{bytes.Repeat([]byte{7}, 20)}), 1, 10)
	f.Add([]byte{}, 1, 1)
	f.Add([]byte{0}, 1, 1)
	f.Add([]byte{0x80}, 1, 1)
	f.Add([]byte{5, 1, 2}, 3, 10)
	f.Add(bytes.Repeat([]byte{0xff}, 12), 3, 10)
	f.Add([]byte{1, 1, 1, 2, 1, 3}, 2, 10)

	f.Fuzz(func(t *testing.T, body []byte, maxTxs, maxTxSize int) {
		// DecodeBatch's contract covers non-negative limits (the API passes positive ones).
		if maxTxs < 0 || maxTxSize < 0 {
			return
		}
		maxTxs %= 1 << 16
		got, err := DecodeBatch(body, maxTxs, maxTxSize)
		if err != nil {
			if got != nil {
				t.Fatalf("transactions returned with error %v", err)
			}
			return
		}
		if len(got) == 0 || len(got) > maxTxs {
			t.Fatalf("%d transactions with maxTxs %d", len(got), maxTxs)
		}
		raw := make([][]byte, len(got))
		for i, tx := range got {
			if tx.Size() < 1 || tx.Size() > maxTxSize {
				t.Fatalf("tx %d has %d bytes (max %d)", i, tx.Size(), maxTxSize)
			}
			if tx.ID() != Keccak(tx.Data()) {
				t.Fatalf("tx %d ID mismatch", i)
			}
			raw[i] = tx.Data()
		}
		if re := AppendBatch(nil, raw); !bytes.Equal(re, body) {
			t.Fatalf("re-encoding differs:\n%x\n%x", body, re)
		}
	})
}
