package types

import "encoding/binary"

// StateRequest asks peers for a snapshot of their delivered state: the sender has delivered up to
// Height and cannot catch up block by block (the blocks it needs are no longer retained).
type StateRequest struct {
	Height uint64
}

// Kind implements Message.
func (*StateRequest) Kind() Kind { return KindStateRequest }

// MBView is a delivered microblock's ID with the view of the block that delivered it; shared
// mempools remember them for a window of views to refuse re-proposals.
type MBView struct {
	ID   Hash
	View View
}

// Snapshot is a replica's delivered state right after it delivered Block: the chain digest, the
// number of transactions delivered, and what duplicate suppression needs (the delivered
// transaction IDs of the two dedup generations, each sorted, and the delivered microblocks of the
// shared mempool window, oldest first). Honest replicas that delivered the same block have the same
// snapshot, so a replica that gets identical ones from f+1 peers holds the truth. Cert certifies
// Block; it is checked but not compared, since peers may hold different QCs for one block.
type Snapshot struct {
	Block     *Block
	Cert      *QC
	Digest    Hash
	Delivered uint64
	TxPrev    []Hash
	TxCur     []Hash
	MBs       []MBView
	KV        []KVPair // the key-value store, sorted by key
}

// KVPair is a key of the key-value store with its value and the height of the block that wrote it.
type KVPair struct {
	Key    []byte
	Value  []byte
	Height uint64
}

// Kind implements Message.
func (*Snapshot) Kind() Kind { return KindSnapshot }

// MaxSnapshotIDs bounds each ID list of a snapshot.
const MaxSnapshotIDs = 1 << 21

// ContentKey hashes everything replicas must agree on: the block, the digest, the count, the ID
// lists and the key-value store (not the certificate).
func (s *Snapshot) ContentKey() Hash {
	head := newDigester("snapshot").hash(s.Block.ID()).hash(s.Digest).u64(s.Delivered).buf
	prev := hashList([]byte("snapshot/prev\x00"), len(s.TxPrev), func(i int) Hash { return s.TxPrev[i] })
	cur := hashList([]byte("snapshot/cur\x00"), len(s.TxCur), func(i int) Hash { return s.TxCur[i] })
	mbs := hashList([]byte("snapshot/mbs\x00"), len(s.MBs), func(i int) Hash {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(s.MBs[i].View))
		return Keccak(s.MBs[i].ID[:], v[:])
	})
	kv := hashList([]byte("snapshot/kv\x00"), len(s.KV), func(i int) Hash {
		var h [8]byte
		binary.BigEndian.PutUint64(h[:], s.KV[i].Height)
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s.KV[i].Key)))
		return Keccak(n[:], s.KV[i].Key, s.KV[i].Value, h[:])
	})
	return Keccak(head, prev[:], cur[:], mbs[:], kv[:])
}

// ChainDigest extends a running digest over delivered block IDs by one block.
func ChainDigest(prev, block Hash) Hash { return Keccak([]byte("chain\x00"), prev[:], block[:]) }
