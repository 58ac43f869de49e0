package types

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBlockIDChangesWithEverySignedField(t *testing.T) {
	base := testBlock().ID()
	require.False(t, base.IsZero())
	mods := map[string]func(b *Block){
		"view":          func(b *Block) { b.View++ },
		"height":        func(b *Block) { b.Height++ },
		"parent":        func(b *Block) { b.Parent[0] ^= 1 },
		"qc view":       func(b *Block) { b.QC.View++ },
		"qc block":      func(b *Block) { b.QC.BlockID[31] ^= 1 },
		"qc removed":    func(b *Block) { b.QC = nil },
		"tc view":       func(b *Block) { b.TC.View++ },
		"tc removed":    func(b *Block) { b.TC = nil },
		"proposer":      func(b *Block) { b.Proposer++ },
		"payload tx":    func(b *Block) { b.Payload = &Payload{Txs: txs("tx-a", "tx-B", "a somewhat longer transaction body")} },
		"payload order": func(b *Block) { b.Payload = &Payload{Txs: txs("tx-b", "tx-a", "a somewhat longer transaction body")} },
		"payload extra": func(b *Block) {
			b.Payload = &Payload{Txs: txs("tx-a", "tx-b", "a somewhat longer transaction body", "x")}
		},
		"payload fewer":  func(b *Block) { b.Payload = &Payload{Txs: txs("tx-a", "tx-b")} },
		"payload empty":  func(b *Block) { b.Payload = &Payload{} },
		"payload nil":    func(b *Block) { b.Payload = nil },
		"view high bits": func(b *Block) { b.View += 1 << 40 },
	}
	seen := map[Hash]string{base: "base"}
	for name, mod := range mods {
		b := testBlock()
		mod(b)
		id := b.ID()
		assert.NotEqual(t, base, id, name)
		if prev, dup := seen[id]; dup {
			t.Errorf("%s and %s have the same ID", name, prev)
		}
		seen[id] = name
	}
}

func TestBlockIDIgnoresSignatures(t *testing.T) {
	base := testBlock().ID()
	mods := map[string]func(b *Block){
		"sig":      func(b *Block) { b.Sig = sig(0x99) },
		"no sig":   func(b *Block) { b.Sig = nil },
		"qc sigs":  func(b *Block) { b.QC.Sigs[0] = sig(0x55) },
		"tc sigs":  func(b *Block) { b.TC.Sigs[2] = sig(0x56) },
		"qc again": func(b *Block) { b.QC = testQC(6, hashOf("parent"), 1, 2, 4) },
	}
	for name, mod := range mods {
		b := testBlock()
		mod(b)
		assert.Equal(t, base, b.ID(), name)
	}
}

func TestBlockIDDeterministicAndCached(t *testing.T) {
	a, b := testBlock(), testBlock()
	assert.Equal(t, a.ID(), b.ID())
	id := a.ID()
	// The ID is computed once: a block must not be modified after its ID is used.
	a.View++
	assert.Equal(t, id, a.ID())
}

func TestGenesis(t *testing.T) {
	g := Genesis()
	assert.Same(t, g, Genesis())
	assert.Equal(t, View(0), g.View)
	assert.Equal(t, uint64(0), g.Height)
	assert.Equal(t, NodeID(0), g.Proposer)
	assert.Equal(t, 0, g.Payload.Len())
	assert.False(t, g.ID().IsZero())

	qc := GenesisQC()
	assert.True(t, qc.IsGenesis())
	assert.Equal(t, g.ID(), qc.BlockID)
	assert.False(t, testQC(0, g.ID(), 1).IsGenesis(), "signers")
	assert.False(t, (&QC{View: 1, BlockID: g.ID()}).IsGenesis(), "view")
	assert.False(t, (&QC{BlockID: hashOf("x")}).IsGenesis(), "block")
}

func TestPayload(t *testing.T) {
	var nilp *Payload
	assert.Equal(t, 0, nilp.Len())

	p := &Payload{Txs: txs("a", "b", "c")}
	assert.Equal(t, 3, p.Len())
	refs := &Payload{Refs: []MBRef{{ID: hashOf("m1")}, {ID: hashOf("m2")}}}
	assert.Equal(t, 2, refs.Len())
	assert.NotEqual(t, p.Digest(), refs.Digest())
	assert.NotEqual(t, refs.Digest(), (&Payload{Refs: refs.Refs[:1]}).Digest())
	assert.Equal(t, p.Digest(), (&Payload{Txs: txs("a", "b", "c")}).Digest())
	assert.NotEqual(t, p.Digest(), (&Payload{Txs: txs("a", "b")}).Digest())
	assert.NotEqual(t, p.Digest(), (&Payload{Txs: txs("c", "b", "a")}).Digest())
	// Transaction boundaries matter: "ab","c" is not "a","bc".
	assert.NotEqual(t, (&Payload{Txs: txs("ab", "c")}).Digest(), (&Payload{Txs: txs("a", "bc")}).Digest())
	assert.NotEqual(t, Hash{}, (&Payload{}).Digest())
}

func TestSignerIDs(t *testing.T) {
	assert.Equal(t, []NodeID{}, SignerIDs(nil))
	assert.Equal(t, []NodeID{1, 2, 64, 65, 1024}, SignerIDs(signers(65, 1, 1024, 2, 64)))
	assert.Equal(t, uint32(0), SignerBit(1))
	assert.Equal(t, uint32(1023), SignerBit(1024))
}

func TestDigestsDistinct(t *testing.T) {
	b1, b2 := hashOf("b1"), hashOf("b2")
	seen := map[Hash]string{}
	add := func(name string, h Hash) {
		t.Helper()
		if prev, dup := seen[h]; dup {
			t.Errorf("%s collides with %s", name, prev)
		}
		seen[h] = name
	}
	add("vote 1 b1", VoteDigest(1, b1))
	add("vote 2 b1", VoteDigest(2, b1))
	add("vote 1 b2", VoteDigest(1, b2))
	add("vote 0 zero", VoteDigest(0, Hash{}))
	add("timeout 0", TimeoutDigest(0))
	add("timeout 1", TimeoutDigest(1))
	add("timeout 2", TimeoutDigest(2))
	add("timeout max", TimeoutDigest(View(^uint64(0))))
	add("block b1", b1)
	add("block b2", b2)
	// Deterministic.
	assert.Equal(t, VoteDigest(5, b1), VoteDigest(5, b1))
	assert.Equal(t, TimeoutDigest(5), TimeoutDigest(5))
	// A vote digest is not the block ID it votes for.
	b := testBlock()
	assert.NotEqual(t, b.ID(), VoteDigest(b.View, b.ID()))
}

func TestHashHelpers(t *testing.T) {
	var z Hash
	assert.True(t, z.IsZero())
	h := Keccak([]byte("abc"))
	assert.False(t, h.IsZero())
	assert.Equal(t, "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45", h.Hex())
	assert.Equal(t, "4e03657a", h.String())
	assert.Equal(t, Keccak([]byte("abc")), Keccak([]byte("a"), []byte("bc")))
}

func TestTx(t *testing.T) {
	data := []byte("hello")
	tx := NewTx(data)
	assert.Equal(t, IDHash(data), tx.ID())
	// SHA-256 of "hello", as sha256sum prints it.
	assert.Equal(t, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", tx.ID().Hex())
	assert.Equal(t, data, tx.Data())
	assert.Equal(t, 5, tx.Size())
	assert.NotEqual(t, tx.ID(), NewTx([]byte("hellp")).ID())
	assert.Equal(t, IDHash(nil), NewTx(nil).ID())
	assert.Equal(t, 0, NewTx(nil).Size())
}

// Defect: a block's ID did not cover the availability proofs its payload carries, so anybody
// relaying an honest leader's block could swap its proofs without breaking the signature, and a
// replica that kept the tampered copy fetched data only from the signers the forger named. Every
// field of every proof is part of the ID now.
func TestBlockIDCoversProofs(t *testing.T) {
	proof := func() *Proof {
		return &Proof{MBID: hashOf("mb"), View: 7, Signers: signers(1, 2), Sigs: [][]byte{sig(1), sig(2)}}
	}
	withRefs := func(mod func(p *Proof) *Proof) *Block {
		b := testBlock()
		b.Payload = &Payload{Refs: []MBRef{{ID: hashOf("mb"), Proof: mod(proof())}}}
		return b
	}
	base := withRefs(func(p *Proof) *Proof { return p }).ID()
	mods := map[string]func(p *Proof) *Proof{
		"no proof":      func(*Proof) *Proof { return nil },
		"epoch":         func(p *Proof) *Proof { p.View++; return p },
		"fewer signers": func(p *Proof) *Proof { p.Signers, p.Sigs = signers(1), p.Sigs[:1]; return p },
		"other signers": func(p *Proof) *Proof { p.Signers = signers(1, 3); return p },
		"a signature":   func(p *Proof) *Proof { p.Sigs[1] = sig(9); return p },
		"proof of another microblock": func(p *Proof) *Proof {
			p.MBID = hashOf("other")
			return p
		},
	}
	for name, mod := range mods {
		assert.NotEqual(t, base, withRefs(mod).ID(), name)
	}
	assert.Equal(t, base, withRefs(func(p *Proof) *Proof { return p }).ID(), "same proof, same ID")
}
