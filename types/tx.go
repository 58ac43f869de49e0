package types

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ethereum/go-ethereum/rlp"
)

// Tx is a client transaction: opaque bytes identified by their SHA-256 hash (IDHash). The ID is computed
// when the Tx is made (NewTx or decoding), so it always matches the bytes.
type Tx struct {
	data []byte
	id   Hash
	// count and unit are set on compact transactions only (the simulator's): the Tx stands for
	// count transactions of unit bytes each, identified by data, which is a short unique tag.
	count, unit uint32
}

// NewTx wraps data (not copied: the caller must not modify it afterwards) and computes its ID.
func NewTx(data []byte) Tx {
	return Tx{data: data, id: IDHash(data)}
}

// ID is the SHA-256 hash of the transaction bytes.
func (t Tx) ID() Hash { return t.id }

// Data returns the transaction bytes; callers must not modify them.
func (t Tx) Data() []byte { return t.data }

// Size is the transaction's length in bytes; for a compact transaction, the bytes of all the
// transactions it stands for.
func (t Tx) Size() int {
	if t.count > 0 {
		return int(t.count) * int(t.unit)
	}
	return len(t.data)
}

// NewCompactTx is a simulated batch of count transactions of unit bytes each that exists only as
// the tag (which must be unique; it is not copied) and a count: the virtual-time simulator uses it
// so that N=400 does not mean materialising and hashing every transaction at every replica. It
// costs count × unit bytes of memory quota and wire size, and count transactions of block size
// and throughput. It never goes on a real wire: its encoding carries only the tag.
func NewCompactTx(tag []byte, count, unit int) Tx {
	return Tx{data: tag, id: IDHash(tag), count: uint32(max(count, 1)), unit: uint32(max(unit, 1))}
}

// Count is the number of transactions t stands for: 1, or a compact transaction's count.
func (t Tx) Count() int {
	if t.count > 0 {
		return int(t.count)
	}
	return 1
}

// Compact reports whether t is a compact (simulated) transaction.
func (t Tx) Compact() bool { return t.count > 0 }

// wireBytes is the RLP size of t on the wire; a compact transaction counts as the count strings
// of unit bytes it stands for.
func (t Tx) wireBytes() int {
	if t.count > 0 {
		return int(t.count) * (rlpHead(int(t.unit)) + int(t.unit))
	}
	return rlpBytes(t.data)
}

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
