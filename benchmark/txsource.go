package benchmark

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync/atomic"
)

// TxSource makes unique transactions of a fixed size. Replicas deduplicate transactions by hash, so
// every transaction must differ from every other one, including those of other client processes:
// each starts with a random 8-byte nonce drawn once per source and an 8-byte big-endian counter,
// and the rest is zero padding. A TxSource is safe for concurrent use.
type TxSource struct {
	size    int
	nonce   [8]byte
	counter atomic.Uint64
}

// NewTxSource returns a source of size-byte transactions with a fresh random nonce.
func NewTxSource(size int) (*TxSource, error) {
	if size < MinPayload {
		return nil, fmt.Errorf("benchmark: payload %d bytes is below the minimum of %d", size, MinPayload)
	}
	s := &TxSource{size: size}
	if _, err := rand.Read(s.nonce[:]); err != nil {
		return nil, fmt.Errorf("benchmark: transaction nonce: %w", err)
	}
	return s, nil
}

// Size is the length of every transaction of the source.
func (s *TxSource) Size() int { return s.size }

// Fill overwrites the 16-byte header of each txs[i] so that it becomes a transaction never made
// before by this source. Each txs[i] must be Size() bytes long; the bytes after the header are left
// as they are (zero in buffers the caller allocated), so buffers can be reused across batches.
func (s *TxSource) Fill(txs [][]byte) {
	next := s.counter.Add(uint64(len(txs))) - uint64(len(txs))
	for i, tx := range txs {
		if len(tx) != s.size {
			panic(fmt.Sprintf("benchmark: TxSource.Fill: transaction of %d bytes, want %d", len(tx), s.size))
		}
		copy(tx[:8], s.nonce[:])
		binary.BigEndian.PutUint64(tx[8:16], next+uint64(i))
	}
}

// NewBatch returns n fresh transactions sharing one backing array.
func (s *TxSource) NewBatch(n int) [][]byte {
	txs := splitBuffer(make([]byte, n*s.size), n, s.size)
	s.Fill(txs)
	return txs
}

// splitBuffer cuts buf into n slices of size bytes with capped capacity.
func splitBuffer(buf []byte, n, size int) [][]byte {
	txs := make([][]byte, n)
	for i := range txs {
		txs[i] = buf[i*size : (i+1)*size : (i+1)*size]
	}
	return txs
}
