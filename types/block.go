package types

import (
	"sync"

	"github.com/kelindar/bitmap"
)

// Payload is what a block orders: inline transactions (native mempool) or references to
// microblocks (shared mempools), never both. Engines treat it as opaque and ask the mempool.
type Payload struct {
	Txs  []Tx
	Refs []MBRef

	once   sync.Once
	digest Hash
}

// Digest commits to the payload's content, availability proofs included; it is part of the block
// ID, so the proposer's signature covers every proof and nobody who relays a block can swap them:
// a replica acts only on what it verified.
func (p *Payload) Digest() Hash {
	p.once.Do(func() {
		txs := hashList([]byte("payload/txs\x00"), len(p.Txs), func(i int) Hash { return p.Txs[i].ID() })
		refs := hashList([]byte("payload/refs\x00"), len(p.Refs), func(i int) Hash { return p.Refs[i].ID })
		proofs := hashList([]byte("payload/proofs\x00"), len(p.Refs), func(i int) Hash { return p.Refs[i].Proof.Digest() })
		p.digest = Keccak(txs[:], refs[:], proofs[:])
	})
	return p.digest
}

// Len is the number of items in the payload: transactions or microblock references.
func (p *Payload) Len() int {
	if p == nil {
		return 0
	}
	return len(p.Txs) + len(p.Refs)
}

// Block is a proposal: it extends Parent, justified by QC (HotStuff: the QC of Parent; Streamlet:
// Parent's notarization) and, after a view change, by TC. Proposer signs ID().
type Block struct {
	View     View
	Height   uint64
	Parent   Hash
	QC       *QC `rlp:"nil"`
	TC       *TC `rlp:"nil"`
	Payload  *Payload
	Proposer NodeID
	Sig      []byte

	once sync.Once
	id   Hash
}

// Kind implements Message.
func (*Block) Kind() Kind { return KindBlock }

// ID is the digest of every field except the signature; the proposer signs it.
func (b *Block) ID() Hash {
	b.once.Do(func() {
		d := newDigester("block").u64(uint64(b.View)).u64(b.Height).hash(b.Parent)
		if b.QC != nil {
			d.u64(uint64(b.QC.View)).hash(b.QC.BlockID)
		} else {
			d.u64(0).hash(Hash{})
		}
		if b.TC != nil {
			d.u64(uint64(b.TC.View))
		} else {
			d.u64(0)
		}
		var pd Hash
		if b.Payload != nil {
			pd = b.Payload.Digest()
		}
		b.id = d.hash(pd).u64(uint64(b.Proposer)).sum()
	})
	return b.id
}

var (
	genesisOnce sync.Once
	genesis     *Block
)

// Genesis is the root every chain starts from: view 0, height 0, no payload, no proposer.
func Genesis() *Block {
	genesisOnce.Do(func() { genesis = &Block{Payload: &Payload{}} })
	return genesis
}

// GenesisQC certifies Genesis. It has no signers and is valid by definition.
func GenesisQC() *QC {
	return &QC{View: 0, BlockID: Genesis().ID()}
}

// QC is a quorum certificate: signatures of distinct replicas over VoteDigest(View, BlockID).
// Signers holds bit id-1 for each signer; Sigs are in ascending signer order.
type QC struct {
	View    View
	BlockID Hash
	Signers bitmap.Bitmap
	Sigs    [][]byte
}

// Kind is not a message kind: QCs travel inside blocks and timeouts.

// IsGenesis reports whether q is the genesis certificate.
func (q *QC) IsGenesis() bool {
	return q.View == 0 && q.BlockID == Genesis().ID() && q.Signers.Count() == 0
}

// SignerIDs lists the signers in ascending order.
func SignerIDs(bm bitmap.Bitmap) []NodeID {
	ids := make([]NodeID, 0, bm.Count())
	bm.Range(func(x uint32) { ids = append(ids, NodeID(x+1)) })
	return ids
}

// SignerBit is the bitmap index of id.
func SignerBit(id NodeID) uint32 { return uint32(id) - 1 }

// VoteDigest is what a vote for (view, block) signs; QCs carry signatures over it.
func VoteDigest(view View, block Hash) Hash {
	return newDigester("vote").u64(uint64(view)).hash(block).sum()
}

// TimeoutDigest is what a timeout for view signs; TCs carry signatures over it.
func TimeoutDigest(view View) Hash {
	return newDigester("timeout").u64(uint64(view)).sum()
}

// Vote is a replica's signature on VoteDigest(View, BlockID).
type Vote struct {
	View    View
	BlockID Hash
	Voter   NodeID
	Sig     []byte
}

// Kind implements Message.
func (*Vote) Kind() Kind { return KindVote }

// Timeout says Sender gave up on View; it carries Sender's highest QC so the next leader can
// extend the highest certified block, and Sender's latest vote so that, when a leader fails, the
// QC it should have formed is assembled from the timeouts instead of being lost.
type Timeout struct {
	View   View
	HighQC *QC
	Sender NodeID
	Sig    []byte
	Vote   *Vote `rlp:"nil"`
}

// Kind implements Message.
func (*Timeout) Kind() Kind { return KindTimeout }

// TC is a timeout certificate: a quorum of signatures over TimeoutDigest(View).
type TC struct {
	View    View
	Signers bitmap.Bitmap
	Sigs    [][]byte
}

// Kind implements Message.
func (*TC) Kind() Kind { return KindTC }

// BlockRequest asks a peer for a block the sender is missing.
type BlockRequest struct {
	ID Hash
}

// Kind implements Message.
func (*BlockRequest) Kind() Kind { return KindBlockRequest }

// BlockResponse carries a requested block.
type BlockResponse struct {
	Block *Block
}

// Kind implements Message.
func (*BlockResponse) Kind() Kind { return KindBlockResponse }

// TxForward carries client transactions from a replica to a static leader (native mempool).
type TxForward struct {
	Txs []Tx
}

// Kind implements Message.
func (*TxForward) Kind() Kind { return KindTxForward }
