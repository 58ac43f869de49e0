package types

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/kelindar/bitmap"
)

// Wire limits. Decoding never allocates more than the frame it is given, and Validate rejects
// messages whose fields exceed these bounds whatever transport delivered them.
const (
	MaxFrame        = 64 << 20 // bytes per encoded message
	MaxTxSize       = 1 << 20  // bytes per transaction
	MaxPayloadItems = 1 << 20  // transactions per payload or forward
	MaxNodes        = 1024     // signer bitmaps cover node IDs 1..MaxNodes
	SigSize         = 65       // secp256k1 [R || S || V]
)

// ErrEmptyFrame is returned when decoding zero bytes.
var ErrEmptyFrame = errors.New("codec: empty frame")

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
	}
	return nil
}

// Encode returns the wire form of m: one kind byte followed by the RLP encoding.
func Encode(m Message) ([]byte, error) {
	body, err := rlp.EncodeToBytes(m)
	if err != nil {
		return nil, fmt.Errorf("codec: encode %v: %w", m.Kind(), err)
	}
	out := make([]byte, 0, 1+len(body))
	out = append(out, byte(m.Kind()))
	return append(out, body...), nil
}

// Decode parses one wire frame and validates the message's structure. Garbage returns an error,
// never a panic.
func Decode(frame []byte) (Message, error) {
	if len(frame) == 0 {
		return nil, ErrEmptyFrame
	}
	if len(frame) > MaxFrame {
		return nil, fmt.Errorf("codec: frame of %d bytes exceeds %d", len(frame), MaxFrame)
	}
	k := Kind(frame[0])
	m := newMessage(k)
	if m == nil {
		return nil, fmt.Errorf("codec: unknown message kind %d", frame[0])
	}
	if err := rlp.DecodeBytes(frame[1:], m); err != nil {
		return nil, fmt.Errorf("codec: decode %v: %w", k, err)
	}
	if err := Validate(m); err != nil {
		return nil, err
	}
	return m, nil
}

// Validate checks a message's structure: sizes, signature lengths, signer sets, node IDs. It does
// not check signatures (that needs keys) nor protocol rules (that needs state).
func Validate(m Message) error {
	if isNil(m) {
		return errors.New("codec: nil message")
	}
	var err error
	switch m := m.(type) {
	case *Block:
		err = validateBlock(m)
	case *Vote:
		err = errors.Join(checkNode("voter", m.Voter), checkSig(m.Sig))
	case *Timeout:
		if m.HighQC == nil {
			err = errors.New("missing high QC")
		} else {
			err = errors.Join(checkNode("sender", m.Sender), checkSig(m.Sig), validateCert(m.HighQC.Signers, m.HighQC.Sigs))
			if err == nil && m.Vote != nil {
				err = errors.Join(checkNode("voter", m.Vote.Voter), checkSig(m.Vote.Sig))
			}
		}
	case *TC:
		err = validateCert(m.Signers, m.Sigs)
	case *BlockRequest:
	case *BlockResponse:
		if m.Block == nil {
			err = errors.New("missing block")
		} else {
			err = validateBlock(m.Block)
		}
	case *TxForward:
		err = checkTxs(m.Txs)
	default:
		err = fmt.Errorf("unknown message type %T", m)
	}
	if err != nil {
		return fmt.Errorf("codec: invalid %v: %w", m.Kind(), err)
	}
	return nil
}

func validateBlock(b *Block) error {
	var errs []error
	errs = append(errs, checkNode("proposer", b.Proposer), checkSig(b.Sig))
	if b.Payload == nil {
		errs = append(errs, errors.New("missing payload"))
	} else {
		errs = append(errs, checkTxs(b.Payload.Txs))
	}
	if b.QC != nil {
		errs = append(errs, validateCert(b.QC.Signers, b.QC.Sigs))
	}
	if b.TC != nil {
		errs = append(errs, validateCert(b.TC.Signers, b.TC.Sigs))
	}
	return errors.Join(errs...)
}

func checkTxs(txs []Tx) error {
	if len(txs) > MaxPayloadItems {
		return fmt.Errorf("%d transactions exceeds %d", len(txs), MaxPayloadItems)
	}
	for i, t := range txs {
		if t.Size() == 0 || t.Size() > MaxTxSize {
			return fmt.Errorf("transaction %d has %d bytes, want 1..%d", i, t.Size(), MaxTxSize)
		}
	}
	return nil
}

func checkNode(what string, id NodeID) error {
	if id < 1 || id > MaxNodes {
		return fmt.Errorf("%s %d is outside [1, %d]", what, id, MaxNodes)
	}
	return nil
}

func checkSig(sig []byte) error {
	if len(sig) != SigSize {
		return fmt.Errorf("signature has %d bytes, want %d", len(sig), SigSize)
	}
	return nil
}

func validateCert(signers bitmap.Bitmap, sigs [][]byte) error {
	if len(signers) > MaxNodes/64 {
		return fmt.Errorf("signer bitmap of %d words exceeds %d", len(signers), MaxNodes/64)
	}
	if n := signers.Count(); n != len(sigs) {
		return fmt.Errorf("%d signers but %d signatures", n, len(sigs))
	}
	for i, s := range sigs {
		if len(s) != SigSize {
			return fmt.Errorf("signature %d has %d bytes, want %d", i, len(s), SigSize)
		}
	}
	return nil
}

// isNil reports a nil interface or a typed nil pointer inside it.
func isNil(m Message) bool {
	if m == nil {
		return true
	}
	v := reflect.ValueOf(m)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
