package types

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/kelindar/bitmap"
)

// Wire limits. Decoding allocates in proportion to the frame it is given (see Decode), and
// Validate rejects messages whose fields exceed these bounds whatever transport delivered them.
const (
	MaxFrame        = 64 << 20 // bytes per encoded message
	MaxTxSize       = 1 << 20  // bytes per transaction
	MaxPayloadItems = 1 << 20  // transactions per payload or forward
	MaxNodes        = 1024     // signer bitmaps cover node IDs 1..MaxNodes
	SigSize         = 65       // secp256k1 [R || S || V] (and ECDSA P-256 in the same form)
	BLSSigSize      = 96       // BLS12-381 signature (G2, compressed), alone or aggregated
	BLSPubSize      = 48       // BLS12-381 public key (G1, compressed)
	MaxFetch        = 4096     // microblocks per fetch request or response
	MaxHops         = 64       // gossip relays
)

// ErrEmptyFrame is returned when decoding zero bytes.
var ErrEmptyFrame = errors.New("codec: empty frame")

// Encode returns the wire form of m: one kind byte followed by the RLP encoding.
func Encode(m Message) ([]byte, error) {
	if mb, ok := m.(*MicroBlock); ok && mb != nil { // the bulk of the traffic: sized once, no reflection
		return mb.AppendEncoded(make([]byte, 0, mb.EncodedSize())), nil
	}
	body, err := rlp.EncodeToBytes(m)
	if err != nil {
		return nil, fmt.Errorf("codec: encode %v: %w", m.Kind(), err)
	}
	out := make([]byte, 0, 1+len(body))
	out = append(out, byte(m.Kind()))
	return append(out, body...), nil
}

// Decode parses one wire frame and validates the message's structure. Garbage returns an error,
// never a panic. A frame above its kind's limit (MaxFrameFor) is refused unread, and decoding
// allocates in proportion to the bytes it reads: lists are checked (element count, and elements
// that no valid message holds, such as empty transactions or signatures) before they are
// allocated.
func Decode(frame []byte) (Message, error) {
	if len(frame) == 0 {
		return nil, ErrEmptyFrame
	}
	if len(frame) > MaxFrame {
		return nil, fmt.Errorf("codec: frame of %d bytes exceeds %d", len(frame), MaxFrame)
	}
	k := Kind(frame[0])
	limit := MaxFrameFor(k)
	if limit == 0 {
		return nil, fmt.Errorf("codec: unknown message kind %d", frame[0])
	}
	if len(frame) > limit {
		return nil, fmt.Errorf("codec: %v frame of %d bytes exceeds the %v limit of %d bytes", k, len(frame), k, limit)
	}
	m, err := decodeBody(k, frame[1:])
	if err != nil {
		return nil, fmt.Errorf("codec: decode %v: %w", k, err)
	}
	if err := Validate(m); err != nil {
		return nil, err
	}
	return m, nil
}

// MaxFrameFor is the largest frame of kind k that can hold a valid message (0 for an unknown
// kind); Decode refuses larger ones, and a transport may refuse them before decoding them. Kinds
// whose size the protocol bounds only through MaxFrame get MaxFrame: blocks and block responses
// (MaxPayloadItems transactions of up to MaxTxSize bytes, or as many references with inline
// proofs of up to MaxNodes signatures), transaction forwards, microblocks and load-balancing
// forwards (MaxPayloadItems transactions), fetch responses (MaxFetch microblocks) and snapshots
// (a block and ID lists of MaxSnapshotIDs). The other kinds hold fields of bounded size, and
// their limit is the encoding of the largest valid message, every field at its maximum:
//
//   - Vote, Ack: integers of 64 (view) and 32 bits (node ID) at full width, a hash and a
//     BLS signature (the larger one): under 160 bytes.
//   - TC, Proof: a signer bitmap of MaxNodes/64 full words and MaxNodes BLS signatures: about
//     98 KiB.
//   - Timeout: a QC as large as a TC, a signature and a vote: about 98 KiB.
//   - FetchRequest, ProofRequest: MaxFetch hashes: about 132 KiB.
//   - BlockRequest, LBQuery, LBInfo, StateRequest: a hash or a few integers: under 40 bytes.
func MaxFrameFor(k Kind) int {
	if k == 0 || int(k) >= NumKinds {
		return 0
	}
	return frameLimits[k]
}

var frameLimits = func() [NumKinds]int {
	var l [NumKinds]int
	for k := range l[1:] {
		l[1+k] = MaxFrame
	}
	const kind = 1 // the kind byte
	u64, u32 := rlpUint(1<<64-1), rlpUint(1<<32-1)
	sig := rlpHead(BLSSigSize) + BLSSigSize
	bm := rlpList(MaxNodes / 64 * u64)
	sigs := rlpList(MaxNodes * sig)
	vote := rlpList(u64 + rlpHash + u32 + sig)
	qc := rlpList(u64 + rlpHash + bm + sigs)
	ids := rlpList(rlpList(MaxFetch * rlpHash))
	l[KindVote] = kind + vote
	l[KindTimeout] = kind + rlpList(u64+qc+u32+sig+vote)
	l[KindTC] = kind + rlpList(u64+bm+sigs)
	l[KindBlockRequest] = kind + rlpList(rlpHash)
	l[KindAck] = kind + rlpList(rlpHash+u64+u32+sig)
	l[KindProof] = kind + rlpList(rlpHash+u64+bm+sigs)
	l[KindFetchRequest] = kind + ids
	l[KindProofRequest] = kind + ids
	l[KindLBQuery] = kind + rlpList(u64)
	l[KindLBInfo] = kind + rlpList(u64+u64+1)
	l[KindStateRequest] = kind + rlpList(u64)
	return l
}()

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
	case *MicroBlock:
		err = validateMicroBlock(m)
	case *Ack:
		err = errors.Join(checkNode("signer", m.Signer), checkSig(m.Sig))
	case *Proof:
		err = validateCert(m.Signers, m.Sigs)
	case *ProofRequest:
		if len(m.IDs) == 0 || len(m.IDs) > MaxFetch {
			err = fmt.Errorf("%d IDs, want 1..%d", len(m.IDs), MaxFetch)
		}
	case *FetchRequest:
		if len(m.IDs) == 0 || len(m.IDs) > MaxFetch {
			err = fmt.Errorf("%d IDs, want 1..%d", len(m.IDs), MaxFetch)
		}
	case *FetchResponse:
		if len(m.MBs) > MaxFetch {
			err = fmt.Errorf("%d microblocks exceeds %d", len(m.MBs), MaxFetch)
		}
		for i := 0; err == nil && i < len(m.MBs); i++ {
			if m.MBs[i] == nil {
				err = fmt.Errorf("microblock %d missing", i)
			} else {
				err = validateMicroBlock(m.MBs[i])
			}
		}
	case *LBQuery, *LBInfo, *StateRequest:
	case *Snapshot:
		err = validateSnapshot(m)
	case *LBForward:
		if m.MB == nil {
			err = errors.New("missing microblock")
		} else {
			err = validateMicroBlock(m.MB)
		}
	default:
		err = fmt.Errorf("unknown message type %T", m)
	}
	if err != nil {
		return fmt.Errorf("codec: invalid %v: %w", m.Kind(), err)
	}
	return nil
}

// ValidateQC checks a QC's structure (signer bitmap and signatures), as Validate does for the QCs
// inside messages.
func ValidateQC(q *QC) error {
	if q == nil {
		return errors.New("missing QC")
	}
	return validateCert(q.Signers, q.Sigs)
}

func validateBlock(b *Block) error {
	var errs []error
	errs = append(errs, checkNode("proposer", b.Proposer), checkSig(b.Sig))
	if b.Payload == nil {
		errs = append(errs, errors.New("missing payload"))
	} else {
		errs = append(errs, checkTxs(b.Payload.Txs), checkRefs(b.Payload.Refs))
		if len(b.Payload.Txs) > 0 && len(b.Payload.Refs) > 0 {
			errs = append(errs, errors.New("payload holds both transactions and microblock references"))
		}
	}
	if b.QC != nil {
		errs = append(errs, validateCert(b.QC.Signers, b.QC.Sigs))
	}
	if b.TC != nil {
		errs = append(errs, validateCert(b.TC.Signers, b.TC.Sigs))
	}
	return errors.Join(errs...)
}

func validateSnapshot(s *Snapshot) error {
	switch {
	case s.Block == nil:
		return errors.New("missing block")
	case len(s.TxPrev) > MaxSnapshotIDs || len(s.TxCur) > MaxSnapshotIDs || len(s.MBs) > MaxSnapshotIDs:
		return fmt.Errorf("ID lists of %d, %d and %d exceed %d", len(s.TxPrev), len(s.TxCur), len(s.MBs), MaxSnapshotIDs)
	case len(s.KV) > MaxSnapshotIDs:
		return fmt.Errorf("%d key-value entries exceed %d", len(s.KV), MaxSnapshotIDs)
	}
	for i, x := range s.KV {
		if len(x.Key) == 0 || bytes.IndexByte(x.Key, 0) >= 0 {
			return fmt.Errorf("key-value entry %d: a key is not empty and holds no zero byte", i)
		}
		if i > 0 && bytes.Compare(s.KV[i-1].Key, x.Key) >= 0 {
			return fmt.Errorf("key-value entry %d: keys are not sorted and distinct", i)
		}
	}
	if err := validateBlock(s.Block); err != nil {
		return fmt.Errorf("block: %w", err)
	}
	return ValidateQC(s.Cert)
}

func checkTxs(txs []Tx) error {
	if len(txs) > MaxPayloadItems {
		return fmt.Errorf("%d transactions exceeds %d", len(txs), MaxPayloadItems)
	}
	for i, t := range txs {
		if len(t.data) == 0 || len(t.data) > MaxTxSize {
			return fmt.Errorf("transaction %d has %d bytes, want 1..%d", i, len(t.data), MaxTxSize)
		}
	}
	return nil
}

func checkRefs(refs []MBRef) error {
	if len(refs) > MaxPayloadItems {
		return fmt.Errorf("%d microblock references exceeds %d", len(refs), MaxPayloadItems)
	}
	for i, r := range refs {
		if r.Proof == nil {
			continue
		}
		if r.Proof.MBID != r.ID {
			return fmt.Errorf("reference %d: proof is for %v, not %v", i, r.Proof.MBID, r.ID)
		}
		if err := validateCert(r.Proof.Signers, r.Proof.Sigs); err != nil {
			return fmt.Errorf("reference %d: proof: %w", i, err)
		}
	}
	return nil
}

func validateMicroBlock(mb *MicroBlock) error {
	if len(mb.Txs) == 0 {
		return errors.New("microblock without transactions")
	}
	if mb.Hops > MaxHops {
		return fmt.Errorf("%d hops exceeds %d", mb.Hops, MaxHops)
	}
	if err := errors.Join(checkNode("creator", mb.Creator), checkNode("sender", mb.Sender), checkSig(mb.Sig), checkTxs(mb.Txs)); err != nil {
		return err
	}
	if id := mb.ComputeID(); id != mb.ID {
		return fmt.Errorf("microblock ID %v does not match its content (%v)", mb.ID, id)
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
	if len(sig) != SigSize && len(sig) != BLSSigSize {
		return fmt.Errorf("signature has %d bytes, want %d (ECDSA) or %d (BLS)", len(sig), SigSize, BLSSigSize)
	}
	return nil
}

func validateCert(signers bitmap.Bitmap, sigs [][]byte) error {
	if len(signers) > MaxNodes/64 {
		return fmt.Errorf("signer bitmap of %d words exceeds %d", len(signers), MaxNodes/64)
	}
	n := signers.Count()
	if len(sigs) == 1 && len(sigs[0]) == BLSSigSize && n >= 1 {
		return nil // one aggregate signature of every signer (BLS)
	}
	if n != len(sigs) {
		return fmt.Errorf("%d signers but %d signatures (and not one %d-byte aggregate)", n, len(sigs), BLSSigSize)
	}
	for i, s := range sigs {
		if err := checkSig(s); err != nil {
			return fmt.Errorf("signature %d: %w", i, err)
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

// WireSize returns the encoded size of m without encoding it, for the traffic statistics of
// transports that pass values (the in-process hub). It follows RLP's size rules field by field.
func WireSize(m Message) int {
	return 1 + rlpSize(m)
}

// rlpHead is the size of an RLP string or list header for content of n bytes.
func rlpHead(n int) int {
	if n < 56 {
		return 1
	}
	k := 1
	for ; n > 0xff; n >>= 8 {
		k++
	}
	return 1 + k
}

func rlpList(content int) int { return rlpHead(content) + content }

func rlpBytes(b []byte) int {
	if len(b) == 1 && b[0] < 0x80 {
		return 1
	}
	return rlpHead(len(b)) + len(b)
}

func rlpUint(v uint64) int {
	if v < 0x80 {
		return 1
	}
	k := 0
	for ; v > 0; v >>= 8 {
		k++
	}
	return 1 + k
}

const rlpHash = 33

func rlpBitmap(bm bitmap.Bitmap) int {
	n := 0
	for _, w := range bm {
		n += rlpUint(w)
	}
	return rlpList(n)
}

func rlpSigs(sigs [][]byte) int {
	n := 0
	for _, s := range sigs {
		n += rlpBytes(s)
	}
	return rlpList(n)
}

func rlpTxs(ts []Tx) int {
	n := 0
	for _, t := range ts {
		n += t.wireBytes()
	}
	return rlpList(n)
}

func rlpQC(q *QC) int {
	if q == nil {
		return 1
	}
	return rlpList(rlpUint(uint64(q.View)) + rlpHash + rlpBitmap(q.Signers) + rlpSigs(q.Sigs))
}

func rlpProof(p *Proof) int {
	if p == nil {
		return 1
	}
	return rlpList(rlpHash + rlpUint(uint64(p.View)) + rlpBitmap(p.Signers) + rlpSigs(p.Sigs))
}

func rlpMB(mb *MicroBlock) int {
	if mb == nil {
		return 1
	}
	return rlpList(rlpHash + rlpUint(uint64(mb.Creator)) + rlpUint(uint64(mb.View)) + rlpUint(uint64(mb.Sender)) +
		rlpUint(uint64(mb.Hops)) + rlpTxs(mb.Txs) + rlpBytes(mb.Sig))
}

func rlpVote(v *Vote) int {
	if v == nil {
		return 1
	}
	return rlpList(rlpUint(uint64(v.View)) + rlpHash + rlpUint(uint64(v.Voter)) + rlpBytes(v.Sig))
}

func rlpSize(m Message) int {
	switch m := m.(type) {
	case *Block:
		n := rlpUint(uint64(m.View)) + rlpUint(m.Height) + rlpHash + rlpQC(m.QC)
		if m.TC != nil {
			n += rlpList(rlpUint(uint64(m.TC.View)) + rlpBitmap(m.TC.Signers) + rlpSigs(m.TC.Sigs))
		} else {
			n++
		}
		p := 1
		if m.Payload != nil {
			refs := 0
			for _, r := range m.Payload.Refs {
				refs += rlpList(rlpHash + rlpProof(r.Proof))
			}
			p = rlpList(rlpTxs(m.Payload.Txs) + rlpList(refs))
		}
		return rlpList(n + p + rlpUint(uint64(m.Proposer)) + rlpBytes(m.Sig))
	case *Vote:
		return rlpVote(m)
	case *Timeout:
		return rlpList(rlpUint(uint64(m.View)) + rlpQC(m.HighQC) + rlpUint(uint64(m.Sender)) + rlpBytes(m.Sig) + rlpVote(m.Vote))
	case *TC:
		return rlpList(rlpUint(uint64(m.View)) + rlpBitmap(m.Signers) + rlpSigs(m.Sigs))
	case *BlockRequest:
		return rlpList(rlpHash)
	case *BlockResponse:
		if m.Block == nil {
			return rlpList(1)
		}
		return rlpList(rlpSize(m.Block))
	case *TxForward:
		return rlpList(rlpTxs(m.Txs))
	case *MicroBlock:
		return rlpMB(m)
	case *Ack:
		return rlpList(rlpHash + rlpUint(uint64(m.View)) + rlpUint(uint64(m.Signer)) + rlpBytes(m.Sig))
	case *Proof:
		return rlpProof(m)
	case *FetchRequest:
		return rlpList(rlpList(rlpHash * len(m.IDs)))
	case *ProofRequest:
		return rlpList(rlpList(rlpHash * len(m.IDs)))
	case *FetchResponse:
		n := 0
		for _, mb := range m.MBs {
			n += rlpMB(mb)
		}
		return rlpList(rlpList(n))
	case *LBQuery:
		return rlpList(rlpUint(m.Nonce))
	case *LBInfo:
		return rlpList(rlpUint(m.Nonce) + rlpUint(m.LoadUS) + 1)
	case *LBForward:
		return rlpList(rlpMB(m.MB))
	case *StateRequest:
		return rlpList(rlpUint(m.Height))
	case *Snapshot:
		n := 1
		if m.Block != nil {
			n = rlpSize(m.Block)
		}
		n += rlpQC(m.Cert) + rlpHash + rlpUint(m.Delivered) + rlpList(rlpHash*len(m.TxPrev)) + rlpList(rlpHash*len(m.TxCur))
		mbs := 0
		for _, x := range m.MBs {
			mbs += rlpList(rlpHash + rlpUint(uint64(x.View)))
		}
		kv := 0
		for _, x := range m.KV {
			kv += rlpList(rlpBytes(x.Key) + rlpBytes(x.Value) + rlpUint(x.Height))
		}
		return rlpList(n + rlpList(mbs) + rlpList(kv))
	}
	return 0
}

// appendRLPHead appends the head of a string (base 0x80) or list (base 0xc0) of n bytes.
func appendRLPHead(dst []byte, base byte, n int) []byte {
	if n < 56 {
		return append(dst, base+byte(n))
	}
	k := rlpHead(n) - 1
	dst = append(dst, base+55+byte(k))
	for i := k - 1; i >= 0; i-- {
		dst = append(dst, byte(n>>(8*i)))
	}
	return dst
}

// appendRLPBytes appends b as an RLP string.
func appendRLPBytes(dst, b []byte) []byte {
	if len(b) == 1 && b[0] < 0x80 {
		return append(dst, b[0])
	}
	return append(appendRLPHead(dst, 0x80, len(b)), b...)
}
