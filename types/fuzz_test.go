package types

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/ethereum/go-ethereum/rlp"
)

// FuzzDecode: Decode never panics; it allocates at most allocLimit(frame); it accepts exactly the
// frames that go-ethereum's reflection decoder followed by Validate accepts, with the same result;
// and whatever it accepts re-encodes to a frame that decodes to a message of the same kind (and,
// for blocks, the same ID); the re-encoding is a fixed point. Seeds: valid messages of every kind
// and variants of them, and frames of every list-bearing kind whose lists hold as many empty or
// minimal elements as fit.
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
	attacks := attackFrames(f, 2048)
	for _, name := range sortedKeys(attacks) {
		f.Add(attacks[name])
	}

	f.Fuzz(func(t *testing.T, frame []byte) {
		var m Message
		var err error
		if got, limit := allocatedOnce(func() { m, err = Decode(frame) }), allocLimit(frame); got > limit {
			// Measure again, the least of three runs, before blaming the decoder for noise.
			if got = allocated(func() { m, err = Decode(frame) }); got > limit {
				t.Fatalf("decoding a frame of %d bytes allocated %d bytes, more than %d (%v)", len(frame), got, limit, err)
			}
		}
		if len(frame) <= 1<<16 {
			ref, refErr := referenceDecode(frame)
			switch {
			case (err == nil) != (refErr == nil):
				t.Fatalf("Decode: %v; reference decoder: %v", err, refErr)
			case err == nil && !bytes.Equal(mustEncode(t, m), mustEncode(t, ref)):
				t.Fatalf("Decode and the reference decoder differ:\n%x\n%x", mustEncode(t, m), mustEncode(t, ref))
			}
		}
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
				if b.Txs[i].ID() != d.Txs[i].ID() || b.Txs[i].ID() != IDHash(b.Txs[i].Data()) {
					t.Fatalf("tx %d ID mismatch", i)
				}
			}
		}
	})
}

// allocSlack is what decoding any frame may allocate beside allocRatio bytes per frame byte: a
// message's fixed parts, error messages, the hash states of Validate.
const allocSlack = 16 << 10

// allocLimit is what decoding frame may allocate: allocSlack, allocRatio bytes per frame byte and
// the Tx value of every byte string of fewer than 8 bytes in it (transactions, and keys of a
// snapshot's store, are the only elements that may be that short and cost more than allocRatio
// bytes per encoded byte).
func allocLimit(frame []byte) uint64 {
	return uint64(allocSlack + allocRatio*len(frame) + txHeaderBytes*shortStrings(frame[min(1, len(frame)):]))
}

// shortStrings counts the RLP byte strings of 1 to 7 bytes in b, at any depth, as far as b parses.
func shortStrings(b []byte) int {
	n := 0
	for len(b) > 0 {
		k, c, rest, err := rlp.Split(b)
		if err != nil {
			return n
		}
		switch {
		case k == rlp.List:
			n += shortStrings(c)
		case len(c) >= 1 && len(c) < 8:
			n++
		}
		b = rest
	}
	return n
}

// referenceDecode decodes frame with go-ethereum's reflection decoder, as Decode once did, and
// validates the result.
func referenceDecode(frame []byte) (Message, error) {
	if len(frame) == 0 {
		return nil, ErrEmptyFrame
	}
	m := newMessage(Kind(frame[0]))
	if m == nil {
		return nil, fmt.Errorf("unknown message kind %d", frame[0])
	}
	if err := rlp.DecodeBytes(frame[1:], m); err != nil {
		return nil, err
	}
	if err := Validate(m); err != nil {
		return nil, err
	}
	return m, nil
}

// newMessage returns an empty message of kind k, for the reference decoder to fill (nil for an
// unknown kind).
func newMessage(k Kind) Message {
	switch k {
	case KindBlock:
		return new(Block)
	case KindVote:
		return new(Vote)
	case KindTimeout:
		return new(Timeout)
	case KindTC:
		return new(TC)
	case KindBlockRequest:
		return new(BlockRequest)
	case KindBlockResponse:
		return new(BlockResponse)
	case KindTxForward:
		return new(TxForward)
	case KindMicroBlock:
		return new(MicroBlock)
	case KindAck:
		return new(Ack)
	case KindProof:
		return new(Proof)
	case KindFetchRequest:
		return new(FetchRequest)
	case KindFetchResponse:
		return new(FetchResponse)
	case KindLBQuery:
		return new(LBQuery)
	case KindLBInfo:
		return new(LBInfo)
	case KindLBForward:
		return new(LBForward)
	case KindStateRequest:
		return new(StateRequest)
	case KindSnapshot:
		return new(Snapshot)
	case KindProofRequest:
		return new(ProofRequest)
	}
	return nil
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
			if tx.ID() != IDHash(tx.Data()) {
				t.Fatalf("tx %d ID mismatch", i)
			}
			raw[i] = tx.Data()
		}
		if re := AppendBatch(nil, raw); !bytes.Equal(re, body) {
			t.Fatalf("re-encoding differs:\n%x\n%x", body, re)
		}
	})
}
