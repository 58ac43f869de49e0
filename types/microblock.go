package types

import (
	"encoding/binary"
	"io"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/kelindar/bitmap"
)

// MicroBlock is a batch of client transactions that its creator disseminates outside consensus
// (shared mempools). ID commits to the creator, the creator's view when it made the batch (View)
// and the transaction IDs; every receiver recomputes it and rejects a mismatch. Sender is the
// replica that runs the push phase (the creator, or a proxy under load balancing) and collects the
// acks; Hops counts gossip relays. Neither is part of the ID. Sig is the creator's signature over
// the ID: storage is charged to the creator, so only the creator may spend it.
type MicroBlock struct {
	ID      Hash
	Creator NodeID
	View    View
	Sender  NodeID
	Hops    uint8
	Txs     []Tx
	Sig     []byte
}

// Kind implements Message.
func (*MicroBlock) Kind() Kind { return KindMicroBlock }

// ComputeID hashes what a microblock ID commits to.
func (mb *MicroBlock) ComputeID() Hash {
	head := newDigester("microblock").u64(uint64(mb.Creator)).u64(uint64(mb.View)).buf
	return hashList(head, len(mb.Txs), func(i int) Hash { return mb.Txs[i].ID() })
}

// NewMicroBlock builds an unsigned microblock with its ID; the creator is the sender.
func NewMicroBlock(creator NodeID, view View, txs []Tx) *MicroBlock {
	mb := &MicroBlock{Creator: creator, View: view, Sender: creator, Txs: txs}
	mb.ID = mb.ComputeID()
	return mb
}

// Signed sets the creator's signature (sign signs a digest with the creator's key) and returns mb.
func (mb *MicroBlock) Signed(sign func(Hash) []byte) *MicroBlock {
	mb.Sig = sign(mb.ID)
	return mb
}

// Relay returns a copy of mb with another sender and hop count; transactions and signature are
// shared.
func (mb *MicroBlock) Relay(sender NodeID, hops uint8) *MicroBlock {
	return &MicroBlock{ID: mb.ID, Creator: mb.Creator, View: mb.View, Sender: sender, Hops: hops, Txs: mb.Txs, Sig: mb.Sig}
}

// Bytes is the size of the transactions.
func (mb *MicroBlock) Bytes() int {
	n := 0
	for _, t := range mb.Txs {
		n += t.Size()
	}
	return n
}

// AckDigest is what an ack of microblock id, made in view, signs; PAB proofs carry signatures over it.
func AckDigest(id Hash, view View) Hash {
	return newDigester("ack").hash(id).u64(uint64(view)).sum()
}

// Ack tells the microblock's sender that Signer stores it.
type Ack struct {
	MBID   Hash
	View   View
	Signer NodeID
	Sig    []byte
}

// Kind implements Message.
func (*Ack) Kind() Kind { return KindAck }

// Proof shows that microblock MBID is available: q distinct replicas signed AckDigest(MBID, View).
type Proof struct {
	MBID    Hash
	View    View
	Signers bitmap.Bitmap
	Sigs    [][]byte
}

// Kind implements Message: a proof is broadcast on its own (recovery phase) and travels in proposals.
func (*Proof) Kind() Kind { return KindProof }

// Digest commits to every field of the proof, signatures included; the zero hash stands for no
// proof. A block's ID covers the digests of the proofs it carries.
func (p *Proof) Digest() Hash {
	if p == nil {
		return Hash{}
	}
	st := ethcrypto.NewKeccakState()
	d := newDigester("proof").hash(p.MBID).u64(uint64(p.View)).u64(uint64(len(p.Signers)))
	for _, w := range p.Signers {
		d.u64(w)
	}
	d.u64(uint64(len(p.Sigs)))
	st.Write(d.buf)
	for _, s := range p.Sigs {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		st.Write(n[:])
		st.Write(s)
	}
	var out Hash
	st.Read(out[:])
	return out
}

// MBRef references a microblock in a proposal. Under PAB with inline proofs (the paper's design)
// it carries the availability proof; with proofs by reference it does not, and a replica votes
// once it holds a verified proof of every referenced microblock (from the creator's broadcast, or
// asked of the leader with a ProofRequest).
type MBRef struct {
	ID    Hash
	Proof *Proof `rlp:"nil"`
}

// ProofRequest asks a peer for the availability proofs of microblocks a proposal references by ID
// (proofs by reference); the peer answers with a Proof message for each it holds.
type ProofRequest struct {
	IDs []Hash
}

// Kind implements Message.
func (*ProofRequest) Kind() Kind { return KindProofRequest }

// FetchRequest asks a peer for microblocks the sender is missing.
type FetchRequest struct {
	IDs []Hash
}

// Kind implements Message.
func (*FetchRequest) Kind() Kind { return KindFetchRequest }

// FetchResponse carries requested microblocks the responder holds.
type FetchResponse struct {
	MBs []*MicroBlock
}

// Kind implements Message.
func (*FetchResponse) Kind() Kind { return KindFetchResponse }

// LBQuery asks a sampled replica for its load (distributed load balancing).
type LBQuery struct {
	Nonce uint64
}

// Kind implements Message.
func (*LBQuery) Kind() Kind { return KindLBQuery }

// LBInfo answers an LBQuery: the replica's estimated stable time, or Busy.
type LBInfo struct {
	Nonce  uint64
	LoadUS uint64 // estimated stable time in microseconds
	Busy   bool
}

// Kind implements Message.
func (*LBInfo) Kind() Kind { return KindLBInfo }

// LBForward hands a busy creator's microblock to a proxy that runs the push phase for it.
type LBForward struct {
	MB *MicroBlock
}

// Kind implements Message.
func (*LBForward) Kind() Kind { return KindLBForward }

// EncodedSize is the length of the microblock's wire form (Encode's frame), without encoding it.
func (mb *MicroBlock) EncodedSize() int { return 1 + mb.rlpSize() }

// AppendEncoded appends the microblock's wire form (Encode's frame) to dst. With a dst of capacity
// len(dst)+EncodedSize() it writes in place, which lets a store encode straight into its batch.
func (mb *MicroBlock) AppendEncoded(dst []byte) []byte {
	return mb.appendRLP(append(dst, byte(KindMicroBlock)))
}

// EncodeRLP writes the microblock's RLP form (the list of its fields in declaration order, as the
// reflection encoder writes it) without reflection: a microblock is the bulk of what replicas send
// and store, and the reflection encoder spent microseconds per transaction and copied each twice.
func (mb *MicroBlock) EncodeRLP(w io.Writer) error {
	_, err := w.Write(mb.appendRLP(make([]byte, 0, mb.rlpSize())))
	return err
}

// rlpSize is the length of the microblock's RLP form.
func (mb *MicroBlock) rlpSize() int { return rlpList(mb.rlpContent(mb.txsContent())) }

// rlpContent is the length of the RLP list's content, given the transactions' (txsContent).
func (mb *MicroBlock) rlpContent(txs int) int {
	return rlpHash + rlpUint(uint64(mb.Creator)) + rlpUint(uint64(mb.View)) + rlpUint(uint64(mb.Sender)) +
		rlpUint(uint64(mb.Hops)) + rlpList(txs) + rlpBytes(mb.Sig)
}

func (mb *MicroBlock) txsContent() int {
	n := 0
	for _, t := range mb.Txs {
		n += rlpBytes(t.data) // a compact transaction is its tag on the wire, as Tx.EncodeRLP writes it
	}
	return n
}

// appendRLP appends the microblock's RLP form to dst.
func (mb *MicroBlock) appendRLP(dst []byte) []byte {
	txs := mb.txsContent() // one pass over the transactions for both heads
	dst = appendRLPHead(dst, 0xc0, mb.rlpContent(txs))
	dst = appendRLPBytes(dst, mb.ID[:])
	dst = rlp.AppendUint64(dst, uint64(mb.Creator))
	dst = rlp.AppendUint64(dst, uint64(mb.View))
	dst = rlp.AppendUint64(dst, uint64(mb.Sender))
	dst = rlp.AppendUint64(dst, uint64(mb.Hops))
	dst = appendRLPHead(dst, 0xc0, txs)
	for _, t := range mb.Txs {
		dst = appendRLPBytes(dst, t.data)
	}
	return appendRLPBytes(dst, mb.Sig)
}
