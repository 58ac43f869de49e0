package types

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ethereum/go-ethereum/rlp"
)

// Tx is a client transaction: opaque bytes identified by their Keccak-256 hash. The ID is computed
// when the Tx is made (NewTx or decoding), so it always matches the bytes.
type Tx struct {
	data []byte
	id   Hash
}

// NewTx wraps data (not copied: the caller must not modify it afterwards) and computes its ID.
func NewTx(data []byte) Tx {
	return Tx{data: data, id: Keccak(data)}
}

// ID is the Keccak-256 hash of the transaction bytes.
func (t Tx) ID() Hash { return t.id }

// Data returns the transaction bytes; callers must not modify them.
func (t Tx) Data() []byte { return t.data }

// Size is the transaction's length in bytes.
func (t Tx) Size() int { return len(t.data) }

// EncodeRLP encodes the transaction as an RLP string.
func (t Tx) EncodeRLP(w io.Writer) error { return rlp.Encode(w, t.data) }

// DecodeRLP decodes an RLP string of at most MaxTxSize bytes and computes the ID.
func (t *Tx) DecodeRLP(s *rlp.Stream) error {
	kind, size, err := s.Kind()
	if err != nil {
		return err
	}
	if kind == rlp.List {
		return errors.New("transaction: expected a byte string, got a list")
	}
	if size > MaxTxSize {
		return fmt.Errorf("transaction: %d bytes exceeds the limit of %d", size, MaxTxSize)
	}
	b, err := s.Bytes()
	if err != nil {
		return err
	}
	*t = NewTx(b)
	return nil
}

// Batch codec for POST /txs: a sequence of (uvarint length, bytes) records. It is trivial to produce
// from any language and costs one pass to parse.

// ErrEmptyBatch is returned for a batch without transactions.
var ErrEmptyBatch = errors.New("batch: no transactions")

// AppendBatch appends the batch encoding of txs to dst.
func AppendBatch(dst []byte, txs [][]byte) []byte {
	for _, t := range txs {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
	}
	return dst
}

// DecodeBatch parses a batch body. Transactions share memory with body. It fails, naming the
// record, on a truncated record, an empty or oversized transaction, or more than maxTxs records.
func DecodeBatch(body []byte, maxTxs, maxTxSize int) ([]Tx, error) {
	if len(body) == 0 {
		return nil, ErrEmptyBatch
	}
	maxTxs, maxTxSize = max(maxTxs, 0), max(maxTxSize, 0)
	txs := make([]Tx, 0, min(maxTxs, 1+len(body)/64))
	for off := 0; off < len(body); {
		if len(txs) == maxTxs {
			return nil, fmt.Errorf("batch: more than %d transactions", maxTxs)
		}
		n, k := binary.Uvarint(body[off:])
		if k <= 0 || k != uvarintLen(n) {
			return nil, fmt.Errorf("batch: record %d: bad length prefix at byte %d", len(txs)+1, off)
		}
		off += k
		if n == 0 {
			return nil, fmt.Errorf("batch: record %d: empty transaction", len(txs)+1)
		}
		if n > uint64(maxTxSize) {
			return nil, fmt.Errorf("batch: record %d: %d bytes exceeds max_tx_size %d", len(txs)+1, n, maxTxSize)
		}
		if n > uint64(len(body)-off) {
			return nil, fmt.Errorf("batch: record %d: truncated (%d bytes announced, %d left)", len(txs)+1, n, len(body)-off)
		}
		txs = append(txs, NewTx(body[off:off+int(n):off+int(n)]))
		off += int(n)
	}
	return txs, nil
}

// uvarintLen is the length of the minimal uvarint encoding of n; longer encodings are refused so
// that every batch has exactly one encoding.
func uvarintLen(n uint64) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}
