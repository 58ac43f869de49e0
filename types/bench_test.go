package types

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/ethereum/go-ethereum/rlp"
)

func benchTxs(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, size)
		binary.BigEndian.PutUint64(b, uint64(i))
		out[i] = b
	}
	return out
}

// BenchmarkDecodeBatch: the cost per client batch of 200 transactions of 128 bytes (parsing and
// hashing every transaction).
func BenchmarkDecodeBatch(b *testing.B) {
	body := AppendBatch(nil, benchTxs(200, 128))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeBatch(body, 1000, 1024); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBlockRoundTrip: encoding and decoding a native block of 1000 transactions.
func BenchmarkBlockRoundTrip(b *testing.B) {
	raw := benchTxs(1000, 128)
	txs := make([]Tx, len(raw))
	for i, r := range raw {
		txs[i] = NewTx(r)
	}
	blk := &Block{View: 9, Height: 3, QC: GenesisQC(), Payload: &Payload{Txs: txs}, Proposer: 1, Sig: make([]byte, SigSize)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		frame, err := Encode(blk)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Decode(frame); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(frame)))
	}
}

// benchMicroBlock is a 128 KB microblock: 1024 transactions of 128 bytes.
func benchMicroBlock() *MicroBlock {
	raw := benchTxs(1024, 128)
	txs := make([]Tx, len(raw))
	for i, r := range raw {
		txs[i] = NewTx(r)
	}
	return NewMicroBlock(1, 1, txs)
}

// BenchmarkMicroBlockID: recomputing the ID of a 128 KB microblock, as every receiver does.
func BenchmarkMicroBlockID(b *testing.B) {
	mb := benchMicroBlock()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if mb.ComputeID() != mb.ID {
			b.Fatal("id")
		}
	}
}

// BenchmarkIDHash: SHA-256, the hash of transactions and ID lists, against Keccak-256, the hash of
// signed digests, for a transaction of 128 bytes and a KiB of IDs.
func BenchmarkIDHash(b *testing.B) {
	for _, size := range []int{128, 1024} {
		data := make([]byte, size)
		b.Run(fmt.Sprintf("sha256/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				IDHash(data)
			}
		})
		b.Run(fmt.Sprintf("keccak/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				Keccak(data)
			}
		})
	}
}

// BenchmarkMicroBlockEncode: the wire form of a 128 KB microblock (1024 transactions of 128
// bytes), as a creator sends it and every replica stores it; "reflection" is the generic RLP
// encoder that wrote it before the direct encoder.
func BenchmarkMicroBlockEncode(b *testing.B) {
	mb := benchMicroBlock()
	mb.Sig = make([]byte, SigSize)
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			frame, err := Encode(mb)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(frame)))
		}
	})
	b.Run("reflection", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			body, err := rlp.EncodeToBytes((*reflectedMicroBlock)(mb))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
		}
	})
}
