package types

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBatchRoundTrip(t *testing.T) {
	in := [][]byte{
		[]byte("a"),
		bytes.Repeat([]byte{1}, 127), // 1-byte length prefix
		bytes.Repeat([]byte{2}, 128), // 2-byte length prefix
		bytes.Repeat([]byte{3}, 20000),
		{0},
	}
	body := AppendBatch(nil, in)
	want := 0
	for _, tx := range in {
		want += len(tx) + len(binary.AppendUvarint(nil, uint64(len(tx))))
	}
	assert.Len(t, body, want)

	got, err := DecodeBatch(body, len(in), 20000)
	require.NoError(t, err)
	require.Len(t, got, len(in))
	for i := range in {
		assert.Equal(t, in[i], got[i].Data(), "tx %d", i)
		assert.Equal(t, IDHash(in[i]), got[i].ID(), "tx %d", i)
		// Transactions share memory with body but cannot grow into the next record.
		assert.Equal(t, len(in[i]), cap(got[i].Data()), "tx %d cap", i)
	}
}

func TestAppendBatchAppends(t *testing.T) {
	prefix := []byte("xyz")
	out := AppendBatch(prefix, [][]byte{[]byte("ab")})
	assert.Equal(t, []byte{'x', 'y', 'z', 2, 'a', 'b'}, out)
	assert.Empty(t, AppendBatch(nil, nil))
}

func TestDecodeBatchSharesMemory(t *testing.T) {
	body := AppendBatch(nil, [][]byte{[]byte("ab"), []byte("cd")})
	got, err := DecodeBatch(body, 10, 10)
	require.NoError(t, err)
	// Appending to the first transaction must not overwrite the second.
	_ = append(got[0].Data(), 'Z')
	assert.Equal(t, []byte("cd"), got[1].Data())
	assert.Equal(t, byte('a'), body[1])
}

func TestDecodeBatchErrors(t *testing.T) {
	good := AppendBatch(nil, [][]byte{[]byte("one"), []byte("two")})
	cases := []struct {
		name          string
		body          []byte
		maxTxs, maxSz int
		want          string
	}{
		{"truncated first", []byte{5, 'a', 'b'}, 10, 10, "record 1: truncated (5 bytes announced, 2 left)"},
		{"truncated second", append(append([]byte{}, good...), 4, 'x'), 10, 10, "record 3: truncated (4 bytes announced, 1 left)"},
		{"length prefix only", append(append([]byte{}, good...), 1), 10, 10, "record 3: truncated (1 bytes announced, 0 left)"},
		{"incomplete varint", []byte{0x80}, 10, 10, "record 1: bad length prefix at byte 0"},
		{"incomplete varint after record", append(append([]byte{}, good...), 0xff, 0xff), 10, 10, "record 3: bad length prefix at byte 8"},
		{"varint overflow", bytes.Repeat([]byte{0xff}, 11), 10, 10, "record 1: bad length prefix"},
		{"zero length", []byte{0}, 10, 10, "record 1: empty transaction"},
		{"zero length third", append(append([]byte{}, good...), 0), 10, 10, "record 3: empty transaction"},
		{"oversized", AppendBatch(nil, [][]byte{bytes.Repeat([]byte{1}, 11)}), 10, 10, "record 1: 11 bytes exceeds max_tx_size 10"},
		{"oversized second", AppendBatch(nil, [][]byte{[]byte("a"), bytes.Repeat([]byte{1}, 11)}), 10, 10, "record 2: 11 bytes exceeds max_tx_size 10"},
		{"huge announced", binary.AppendUvarint(nil, 1<<62), 10, 1 << 20, "record 1: 4611686018427387904 bytes exceeds max_tx_size"},
		{"too many", AppendBatch(nil, [][]byte{{1}, {2}, {3}}), 2, 10, "more than 2 transactions"},
		{"zero allowed", AppendBatch(nil, [][]byte{{1}}), 0, 10, "more than 0 transactions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []Tx
			var err error
			require.NotPanics(t, func() { got, err = DecodeBatch(tc.body, tc.maxTxs, tc.maxSz) })
			require.Error(t, err)
			assert.Nil(t, got)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDecodeBatchEmpty(t *testing.T) {
	for _, body := range [][]byte{nil, {}} {
		got, err := DecodeBatch(body, 10, 10)
		assert.True(t, errors.Is(err, ErrEmptyBatch), "%v", err)
		assert.Nil(t, got)
	}
}

func TestDecodeBatchLimitsInclusive(t *testing.T) {
	body := AppendBatch(nil, [][]byte{bytes.Repeat([]byte{1}, 10), {2}})
	got, err := DecodeBatch(body, 2, 10)
	require.NoError(t, err)
	assert.Len(t, got, 2)
}

func TestTxRLPLimits(t *testing.T) {
	// Tx decodes from an RLP string and refuses lists.
	tx := NewTx([]byte("payload"))
	frame := mustEncode(t, &TxForward{Txs: []Tx{tx}})
	m, err := Decode(frame)
	require.NoError(t, err)
	assert.Equal(t, tx.ID(), m.(*TxForward).Txs[0].ID())
}

func TestDecodeBatchRejectsOverlongLength(t *testing.T) {
	for _, body := range [][]byte{{0x81, 0x00, 'a'}, {0x82, 0x80, 0x00, 'a', 'b'}, {0x01, 'x', 0x80, 0x00}} {
		_, err := DecodeBatch(body, 10, 10)
		assert.Error(t, err, "%x", body)
	}
}
