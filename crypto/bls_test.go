package crypto

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kelindar/bitmap"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	blst "github.com/supranational/blst/bindings/go"

	"github.com/stratusbft/stratus/types"
)

// blsKeys returns n simulation BLS signers and their verifier (with the real pairing checks).
func blsKeys(t testing.TB, seed int64, n int) ([]*BLSSigner, *BLSVerifier) {
	t.Helper()
	ps, v, err := SimKeysFor(SchemeBLS, seed, n)
	require.NoError(t, err)
	out := make([]*BLSSigner, n)
	for i, s := range ps {
		out[i] = s.(*BLSSigner)
	}
	return out, v.(*BLSVerifier)
}

// newBLSVerifierWithoutPoP builds a verifier that takes every key on trust, without proofs of
// possession: what the rogue-key test shows to be unsafe. Test only.
func newBLSVerifierWithoutPoP(t testing.TB, pubs [][]byte) *BLSVerifier {
	t.Helper()
	pks := make([]*blst.P1Affine, len(pubs))
	for i, p := range pubs {
		pk, err := parseBLSPub(p)
		require.NoError(t, err)
		pks[i] = pk
	}
	v, err := blsVerifierOfCheckedKeys(pks, pubs)
	require.NoError(t, err)
	return v
}

func signersOf(ids ...int) bitmap.Bitmap {
	var b bitmap.Bitmap
	for _, id := range ids {
		b.Set(uint32(id - 1))
	}
	return b
}

// infinityG2 is the compressed point at infinity of G2 (a valid encoding, an invalid signature).
func infinityG2() []byte {
	b := make([]byte, types.BLSSigSize)
	b[0] = 0xc0
	return b
}

// offSubgroupG2 returns a compressed point on the curve of G2 that is not in the G2 subgroup.
func offSubgroupG2(t testing.TB) []byte {
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 1000; i++ {
		b := make([]byte, types.BLSSigSize)
		rng.Read(b)
		b[0] = 0x80 | byte(rng.Intn(0x1a)) // compressed; both coordinates below the field prime
		b[48] = byte(rng.Intn(0x1a))
		if p := new(blst.P2Affine).Uncompress(b); p != nil && !p.InG2() {
			return b
		}
	}
	t.Fatal("no G2 curve point outside the subgroup found")
	return nil
}

// offSubgroupG1 returns a compressed point on the curve of G1 that is not in the G1 subgroup.
func offSubgroupG1(t testing.TB) []byte {
	rng := rand.New(rand.NewSource(8))
	for i := 0; i < 1000; i++ {
		b := make([]byte, types.BLSPubSize)
		rng.Read(b)
		b[0] = 0x80 | byte(rng.Intn(0x1a))
		if p := new(blst.P1Affine).Uncompress(b); p != nil && !p.InG1() {
			return b
		}
	}
	t.Fatal("no G1 curve point outside the subgroup found")
	return nil
}

func TestBLSSignVerifyRoundTrip(t *testing.T) {
	signers, v := blsKeys(t, 1, testN)
	require.Equal(t, testN, v.N())
	for i, s := range signers {
		id := types.NodeID(i + 1)
		assert.Equal(t, id, s.ID())
		d := digest(fmt.Sprintf("bls-%d", i))
		sig := s.Sign(d)
		require.Len(t, sig, types.BLSSigSize)
		require.Len(t, s.PublicKey(), types.BLSPubSize)
		assert.True(t, v.Verify(id, d, sig), "node %d", id)
		assert.Equal(t, sig, s.Sign(d), "BLS signing is deterministic")
		for j := 1; j <= testN; j++ {
			if j != i+1 {
				assert.False(t, v.Verify(types.NodeID(j), d, sig), "node %d's signature verified as %d's", id, j)
			}
		}
	}
	// A signer rebuilt from its secret key has the same key; generated keys differ.
	again, err := NewBLSSigner(7, signers[0].secret())
	require.NoError(t, err)
	assert.Equal(t, signers[0].PublicKey(), again.PublicKey())
	assert.Equal(t, types.NodeID(7), again.ID())
	g1, err := GenerateBLSSigner(1)
	require.NoError(t, err)
	g2, err := GenerateBLSSigner(1)
	require.NoError(t, err)
	assert.NotEqual(t, g1.PublicKey(), g2.PublicKey())
	// Simulation keys are reproducible per seed and differ across seeds.
	same, _ := blsKeys(t, 1, 1)
	other, _ := blsKeys(t, 2, 1)
	assert.Equal(t, signers[0].PublicKey(), same[0].PublicKey())
	assert.NotEqual(t, signers[0].PublicKey(), other[0].PublicKey())
	var _ PubSigner = signers[0]
	var _ Aggregator = v
}

func TestNewBLSSignerRefusesBadScalars(t *testing.T) {
	order, _ := hex.DecodeString("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001")
	for name, secret := range map[string][]byte{
		"empty":   nil,
		"short":   make([]byte, 31),
		"long":    make([]byte, 33),
		"zero":    make([]byte, 32),
		"order r": order,
		"all ff":  bytes.Repeat([]byte{0xff}, 32),
	} {
		_, err := NewBLSSigner(1, secret)
		assert.Error(t, err, name)
	}
	one := make([]byte, 32)
	one[31] = 1
	_, err := NewBLSSigner(1, one)
	assert.NoError(t, err)
}

func TestBLSVerifyRejects(t *testing.T) {
	signers, v := blsKeys(t, 1, testN)
	d := digest("block")
	good := signers[1].Sign(d) // node 2
	require.True(t, v.Verify(2, d, good))
	other := d
	other[0] ^= 1
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		return b
	}
	garbage := make([]byte, types.BLSSigSize)
	rand.New(rand.NewSource(1)).Read(garbage)
	cases := map[string]struct {
		id  types.NodeID
		d   types.Hash
		sig []byte
	}{
		"tampered digest":     {2, other, good},
		"wrong signer":        {1, d, good},
		"unknown node 0":      {0, d, good},
		"unknown node N+1":    {testN + 1, d, good},
		"unknown node max":    {types.NodeID(^uint32(0)), d, good},
		"truncated":           {2, d, good[:95]},
		"long":                {2, d, append(bytes.Clone(good), 0)},
		"empty":               {2, d, nil},
		"secp256k1 size":      {2, d, good[:types.SigSize]},
		"garbage":             {2, d, garbage},
		"all zero":            {2, d, make([]byte, types.BLSSigSize)},
		"infinity":            {2, d, infinityG2()},
		"not in subgroup":     {2, d, offSubgroupG2(t)},
		"flipped first byte":  {2, d, flip(0)},
		"flipped last byte":   {2, d, flip(95)},
		"sig of other digest": {2, d, signers[1].Sign(other)},
		"proof of possession": {2, d, signers[1].ProvePossession()},
	}
	for name, c := range cases {
		assert.NotPanics(t, func() { assert.False(t, v.Verify(c.id, c.d, c.sig), name) }, name)
	}
	assert.True(t, v.Verify(2, d, good), "the signature was not modified")
}

func TestNewBLSVerifierRefusesBadKeys(t *testing.T) {
	signers, _ := blsKeys(t, 3, 3)
	pubs := make([][]byte, 3)
	pops := make([][]byte, 3)
	for i, s := range signers {
		pubs[i], pops[i] = s.PublicKey(), s.ProvePossession()
	}
	v, err := NewBLSVerifier(pubs, pops)
	require.NoError(t, err)
	assert.Equal(t, 3, v.N())

	infinity := make([]byte, types.BLSPubSize)
	infinity[0] = 0xc0
	for name, bad := range map[string][]byte{
		"empty":           nil,
		"short":           pubs[1][:47],
		"uncompressed":    new(blst.P1Affine).From(signers[1].sk).Serialize(),
		"all zero":        make([]byte, types.BLSPubSize),
		"infinity":        infinity,
		"not in subgroup": offSubgroupG1(t),
	} {
		p := [][]byte{pubs[0], bad, pubs[2]}
		_, err := NewBLSVerifier(p, pops)
		assert.ErrorContains(t, err, "public key of node 2", name)
	}
	for name, bad := range map[string][]byte{
		"missing":         nil,
		"garbage":         bytes.Repeat([]byte{0xab}, types.BLSSigSize),
		"infinity":        infinityG2(),
		"another node's":  pops[0],
		"a signature":     signers[1].Sign(digest("x")),
		"sig over pubkey": new(blst.P2Affine).Sign(signers[1].sk, pubs[1], blsSigDST).Compress(),
	} {
		p := [][]byte{pops[0], bad, pops[2]}
		_, err := NewBLSVerifier(pubs, p)
		assert.ErrorContains(t, err, "node 2: proof of possession", name)
	}
	_, err = NewBLSVerifier(pubs, pops[:2])
	assert.ErrorContains(t, err, "3 BLS public keys but 2 proofs of possession")
	_, err = NewBLSVerifier([][]byte{pubs[0], pubs[1], pubs[0]}, [][]byte{pops[0], pops[1], pops[0]})
	assert.ErrorContains(t, err, "nodes 1 and 3 have the same public key")
}

func TestBLSAggregate(t *testing.T) {
	signers, v := blsKeys(t, 4, testN)
	d := digest("cert")
	sigs := make([][]byte, testN)
	for i, s := range signers {
		sigs[i] = s.Sign(d)
	}
	agg, err := v.Aggregate(sigs[:3]) // nodes 1, 2, 3
	require.NoError(t, err)
	require.Len(t, agg, types.BLSSigSize)
	assert.True(t, v.VerifyAggregate(signersOf(1, 2, 3), d, agg), "3 of 4")
	assert.True(t, v.VerifyAggregate(signersOf(1, 2, 3), d, agg), "3 of 4, aggregate key cached")
	// The aggregate does not depend on the order of the signatures.
	again, err := v.Aggregate([][]byte{sigs[2], sigs[0], sigs[1]})
	require.NoError(t, err)
	assert.Equal(t, agg, again)
	// A bitmap with trailing zero words names the same set.
	long := signersOf(1, 2, 3)
	long.Grow(200)
	assert.True(t, v.VerifyAggregate(long, d, agg))
	// One signer: the aggregate is the signature.
	one, err := v.Aggregate(sigs[3:])
	require.NoError(t, err)
	assert.Equal(t, sigs[3], one)
	assert.True(t, v.VerifyAggregate(signersOf(4), d, one))

	sub, err := v.Aggregate(sigs[:2])
	require.NoError(t, err)
	all, err := v.Aggregate(sigs)
	require.NoError(t, err)
	beyond := signersOf(1, 2, 3)
	beyond.Set(testN) // replica N+1
	other := d
	other[31] ^= 1
	bad := map[string]struct {
		signers bitmap.Bitmap
		d       types.Hash
		agg     []byte
	}{
		"not the same set {1,2,4}":   {signersOf(1, 2, 4), d, agg},
		"bit beyond N":               {beyond, d, agg},
		"bit far beyond N":           {signersOf(1, 2, 3, types.MaxNodes), d, agg},
		"empty bitmap":               {nil, d, agg},
		"all-zero bitmap":            {make(bitmap.Bitmap, 2), d, agg},
		"subset agg, superset map":   {signersOf(1, 2, 3), d, sub},
		"superset agg, subset map":   {signersOf(1, 2, 3), d, all},
		"subset map":                 {signersOf(1, 2), d, agg},
		"other digest":               {signersOf(1, 2, 3), other, agg},
		"truncated aggregate":        {signersOf(1, 2, 3), d, agg[:95]},
		"infinity aggregate":         {signersOf(1, 2, 3), d, infinityG2()},
		"all-zero aggregate":         {signersOf(1, 2, 3), d, make([]byte, types.BLSSigSize)},
		"aggregate not in subgroup":  {signersOf(1, 2, 3), d, offSubgroupG2(t)},
		"one signature for three":    {signersOf(1, 2, 3), d, sigs[0]},
		"secp256k1-sized aggregate":  {signersOf(1, 2, 3), d, agg[:types.SigSize]},
		"aggregate of other digest":  {signersOf(1, 2, 3), other, agg},
		"garbage aggregate":          {signersOf(1, 2, 3), d, bytes.Repeat([]byte{0x9c}, types.BLSSigSize)},
		"set {1,2,3} named as {1,2}": {signersOf(1, 2), d, agg},
	}
	for name, c := range bad {
		assert.NotPanics(t, func() { assert.False(t, v.VerifyAggregate(c.signers, c.d, c.agg), name) }, name)
	}

	// Aggregate refuses malformed input and names it.
	for name, c := range map[string]struct {
		sigs [][]byte
		want string
	}{
		"empty list":      {nil, "no signatures"},
		"truncated":       {[][]byte{sigs[0], sigs[1][:95]}, "signature 1"},
		"infinity":        {[][]byte{infinityG2()}, "signature 0: BLS12-381 signature is the point at infinity"},
		"all zero":        {[][]byte{sigs[0], make([]byte, types.BLSSigSize)}, "signature 1"},
		"not in subgroup": {[][]byte{sigs[0], sigs[1], offSubgroupG2(t)}, "signature 2"},
	} {
		out, err := v.Aggregate(c.sigs)
		assert.ErrorContains(t, err, c.want, name)
		assert.Nil(t, out, name)
	}
	// Signatures that cancel out do not make an aggregate.
	var neg blst.P2
	neg.FromAffine(new(blst.P2Affine).Uncompress(sigs[0]))
	minus := new(blst.P2).Sub(&neg) // infinity − s
	_, err = v.Aggregate([][]byte{sigs[0], minus.ToAffine().Compress()})
	assert.ErrorContains(t, err, "point at infinity")
}

func TestBLSAggregateKeyCache(t *testing.T) {
	const n = 12
	_, v := blsKeys(t, 5, n)
	var want blst.P1
	for i := 0; i < 3; i++ {
		want.AddAssign(v.pks[i])
	}
	assert.True(t, want.ToAffine().Equals(v.aggregateKey(signersOf(1, 2, 3))))
	assert.Same(t, v.aggregateKey(signersOf(1, 2, 3)), v.aggregateKey(signersOf(1, 2, 3)), "cached")
	// More distinct signer sets than the cache holds: it stays bounded.
	for set := uint64(1); set < blsAggKeyCacheCap+100; set++ {
		v.aggregateKey(bitmap.Bitmap{set})
		require.LessOrEqual(t, len(v.aggKeys), blsAggKeyCacheCap)
	}
	// Concurrent verifications of a few sets share the cache safely.
	signers, v := blsKeys(t, 6, 5)
	d := digest("parallel")
	sets := [][]int{{1, 2, 3}, {2, 3, 4}, {1, 3, 5}, {1, 2, 3, 4, 5}}
	aggs := make([][]byte, len(sets))
	for i, set := range sets {
		var sigs [][]byte
		for _, id := range set {
			sigs = append(sigs, signers[id-1].Sign(d))
		}
		var err error
		aggs[i], err = v.Aggregate(sigs)
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < 3; r++ {
				for i, set := range sets {
					if !v.VerifyAggregate(signersOf(set...), d, aggs[i]) {
						wrong.Add(1)
					}
					if v.VerifyAggregate(signersOf(set...), d, aggs[(i+w+1)%len(sets)]) != (w%len(sets) == len(sets)-1) {
						wrong.Add(1)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	assert.Equal(t, int64(0), wrong.Load())
}

// The rogue-key attack: an attacker who knows honest node 1's public key pk1 publishes
// pk_rogue = pk_a − pk1 as node 2's key. The aggregate key of {1, 2} is then pk_a, so a signature
// made by sk_a alone passes as node 1 and node 2 both signing. Proofs of possession stop it: nobody
// knows the secret key of pk_rogue, so nobody can make its proof.
func TestBLSRogueKeyAttack(t *testing.T) {
	honest, _ := blsKeys(t, 7, 1)
	pk1 := honest[0].PublicKey()
	attacker, err := GenerateBLSSigner(2)
	require.NoError(t, err)
	pkA := new(blst.P1Affine).Uncompress(attacker.PublicKey())
	var rogue blst.P1
	rogue.FromAffine(pkA)
	rogue.SubAssign(new(blst.P1Affine).Uncompress(pk1))
	pkRogue := rogue.ToAffine().Compress()
	require.True(t, rogue.ToAffine().KeyValidate(), "the rogue key is a valid-looking G1 key")

	d := digest("a block node 1 never signed")
	forged := attacker.Sign(d) // by sk_a alone

	// Without proofs of possession, the forged "aggregate" of {1, 2} verifies.
	unsafe := newBLSVerifierWithoutPoP(t, [][]byte{pk1, pkRogue})
	assert.True(t, unsafe.VerifyAggregate(signersOf(1, 2), d, forged), "the rogue-key attack should work without proofs of possession")
	assert.False(t, unsafe.Verify(1, d, forged), "node 1 did not sign")

	// With them, the rogue key is refused whatever proof the attacker makes: with sk_a over the
	// rogue key, or its own key's proof.
	attempts := map[string][]byte{
		"sk_a over pk_rogue": new(blst.P2Affine).Sign(attacker.sk, pkRogue, blsPoPDST).Compress(),
		"pk_a's own proof":   attacker.ProvePossession(),
		"node 1's proof":     honest[0].ProvePossession(),
		"the forged sig":     forged,
	}
	for name, pop := range attempts {
		_, err := NewBLSVerifier([][]byte{pk1, pkRogue}, [][]byte{honest[0].ProvePossession(), pop})
		assert.ErrorContains(t, err, "node 2: proof of possession does not verify (a rogue key?)", name)
	}

	// A key list on disk with the rogue key is refused too, naming the line and node.
	dir := t.TempDir()
	path := filepath.Join(dir, PubKeysFile)
	list := fmt.Sprintf("# scheme: bls12-381\n1 %x %x\n2 %x %x\n", pk1, honest[0].ProvePossession(), pkRogue, attempts["sk_a over pk_rogue"])
	require.NoError(t, os.WriteFile(path, []byte(list), 0o644))
	_, err = ReadPublicKeys(path, 2, SchemeBLS)
	assert.ErrorContains(t, err, path+" line 3: node 2: proof of possession does not verify (a rogue key?)")

	// The honest attacker key, with its own proof, is accepted; the forgery then fails.
	safe, err := NewBLSVerifier([][]byte{pk1, attacker.PublicKey()}, [][]byte{honest[0].ProvePossession(), attacker.ProvePossession()})
	require.NoError(t, err)
	assert.False(t, safe.VerifyAggregate(signersOf(1, 2), d, forged))
}

func TestBLSKeysOnDisk(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, GenerateKeys(dir, 4, SchemeBLS))
	raw, err := os.ReadFile(filepath.Join(dir, PubKeysFile))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	require.Len(t, lines, 6)
	assert.True(t, strings.HasPrefix(lines[0], "# "), lines[0])
	assert.Contains(t, lines[0], "proof of possession")
	assert.Equal(t, "# scheme: bls12-381", lines[1])
	for i, l := range lines[2:] {
		f := strings.Fields(l)
		require.Len(t, f, 3, l)
		assert.Equal(t, fmt.Sprint(i+1), f[0])
		assert.Len(t, f[1], 2*types.BLSPubSize)
		assert.Len(t, f[2], 2*types.BLSSigSize)
	}
	for i := 1; i <= 4; i++ {
		st, err := os.Stat(filepath.Join(dir, KeyFile(types.NodeID(i))))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	}
	// Every node loads; their signatures aggregate and verify under any node's list.
	d := digest("on disk")
	var sigs [][]byte
	var v Verifier
	for i := 1; i <= 4; i++ {
		s, vi, err := LoadKeys(dir, types.NodeID(i), 4, SchemeBLS)
		require.NoError(t, err)
		require.IsType(t, &BLSSigner{}, s)
		sigs = append(sigs, s.Sign(d))
		v = vi
	}
	a, ok := AggregatorOf(v)
	require.True(t, ok, "a BLS verifier aggregates")
	agg, err := a.Aggregate(sigs)
	require.NoError(t, err)
	assert.True(t, a.VerifyAggregate(signersOf(1, 2, 3, 4), d, agg))
	assert.False(t, a.VerifyAggregate(signersOf(1, 2, 3), d, agg))
	_, _, err = LoadKeys(dir, 1, 4, SchemeSecp256k1)
	assert.ErrorContains(t, err, "holds bls12-381 keys, but the config's signer is secp256k1")

	// A damaged list is refused, naming the file, line and node.
	field := func(line, i int) string { return strings.Fields(lines[line])[i] }
	edit := func(t *testing.T, dir string, line int, text string) {
		l := append([]string(nil), lines...)
		l[line] = text
		require.NoError(t, os.WriteFile(filepath.Join(dir, PubKeysFile), []byte(strings.Join(l, "\n")+"\n"), 0o644))
	}
	corrupt := []byte(field(4, 2))
	corrupt[100] = "0123456789abcdef"[(strings.IndexByte("0123456789abcdef", corrupt[100])+1)%16]
	cases := map[string]struct {
		line int
		text string
		want string
	}{
		"corrupted proof":  {4, fmt.Sprintf("3 %s %s", field(4, 1), corrupt), "line 5: node 3: proof of possession"},
		"another's proof":  {3, fmt.Sprintf("2 %s %s", field(3, 1), field(2, 2)), "line 4: node 2: proof of possession does not verify (a rogue key?)"},
		"missing proof":    {3, fmt.Sprintf("2 %s", field(3, 1)), "line 4: node 2 has no proof of possession"},
		"proof not hex":    {3, fmt.Sprintf("2 %s zz", field(3, 1)), "line 4: proof of possession of node 2 is not hex"},
		"short proof":      {3, fmt.Sprintf("2 %s %s", field(3, 1), field(3, 2)[:190]), "line 4: node 2: proof of possession: BLS12-381 signature has 95 bytes"},
		"bad public key":   {2, fmt.Sprintf("1 %s %s", field(2, 1)[:94], field(2, 2)), "line 3: public key of node 1"},
		"four fields":      {2, lines[2] + " 00", "line 3: want \"<node id> <public key hex> <proof of possession hex>\""},
		"secp256k1 length": {2, "1 04" + strings.Repeat("ab", 64) + " " + field(2, 2), "line 3: public key of node 1"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			edit(t, dir, c.line, c.text)
			path := filepath.Join(dir, PubKeysFile)
			_, err := ReadPublicKeys(path, 4, SchemeBLS)
			require.Error(t, err)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	// Bad secret keys are refused.
	for name, key := range map[string]string{
		"zero":     strings.Repeat("0", 64),
		"too big":  strings.Repeat("f", 64),
		"too long": strings.Repeat("1", 66),
	} {
		kdir := t.TempDir()
		require.NoError(t, GenerateKeys(kdir, 2, SchemeBLS))
		p := filepath.Join(kdir, KeyFile(2))
		require.NoError(t, os.WriteFile(p, []byte(key), 0o600))
		_, _, err := LoadKeys(kdir, 2, 2, SchemeBLS)
		assert.ErrorContains(t, err, "node2.key is malformed", name)
	}
}

// countingAggregator counts the calls reaching the real aggregator behind a Cache.
type countingAggregator struct {
	Aggregator
	verifies atomic.Int64
}

func (c *countingAggregator) VerifyAggregate(s bitmap.Bitmap, d types.Hash, agg []byte) bool {
	c.verifies.Add(1)
	return c.Aggregator.VerifyAggregate(s, d, agg)
}

func TestCacheAggregator(t *testing.T) {
	signers, v := blsKeys(t, 8, testN)
	inner := &countingAggregator{Aggregator: v}
	c := NewCache(inner)
	a, ok := AggregatorOf(c)
	require.True(t, ok, "a Cache of a BLS verifier aggregates")
	again, _ := AggregatorOf(c)
	assert.Same(t, a, again)
	a2, ok := AggregatorOf(NewCache(c))
	require.True(t, ok, "through two caches")

	d := digest("cached cert")
	sigs := make([][]byte, testN)
	for i, s := range signers {
		sigs[i] = s.Sign(d)
		assert.True(t, c.Verify(types.NodeID(i+1), d, sigs[i]))
		assert.True(t, c.Verify(types.NodeID(i+1), d, sigs[i]))
		assert.False(t, c.Verify(types.NodeID(i%testN+2), d, sigs[i]))
	}
	agg, err := a.Aggregate(sigs[:3])
	require.NoError(t, err)
	assert.True(t, a.VerifyAggregate(signersOf(1, 2, 3), d, agg))
	assert.True(t, a.VerifyAggregate(signersOf(1, 2, 3), d, agg))
	assert.True(t, a2.VerifyAggregate(signersOf(1, 2, 3), d, agg))
	assert.Equal(t, int64(1), inner.verifies.Load(), "a verified aggregate is verified once")
	// A cached aggregate does not vouch for another set, digest or aggregate; failures are not cached.
	other := d
	other[0] ^= 1
	for i := 0; i < 2; i++ {
		assert.False(t, a.VerifyAggregate(signersOf(1, 2, 4), d, agg))
		assert.False(t, a.VerifyAggregate(signersOf(1, 2, 3), other, agg))
		assert.False(t, a.VerifyAggregate(signersOf(1, 2, 3), d, sigs[0]))
		assert.False(t, a.VerifyAggregate(nil, d, agg))
	}
	assert.Equal(t, int64(9), inner.verifies.Load())
	assert.False(t, a.VerifyAggregate(signersOf(1, 2, 3), d, agg[:95]), "malformed: not asked")
	assert.Equal(t, int64(9), inner.verifies.Load())

	// secp256k1 and P-256 do not aggregate, directly or through a cache.
	for _, scheme := range []string{SchemeSecp256k1, SchemeP256} {
		_, v, err := SimKeysFor(scheme, 1, 2)
		require.NoError(t, err)
		_, ok := AggregatorOf(v)
		assert.False(t, ok, scheme)
		_, ok = AggregatorOf(NewCache(v))
		assert.False(t, ok, scheme+" through a cache")
		_, v, err = SimMACKeysFor(scheme, 1, 2)
		require.NoError(t, err)
		_, ok = AggregatorOf(NewCache(v))
		assert.False(t, ok, scheme+" simulated, through a cache")
	}
}

// acceptAll aggregates nothing and accepts every aggregate of 96 bytes; it counts verifications.
type acceptAll struct {
	fakeVerifier
	aggs atomic.Int64
}

func (f *acceptAll) Aggregate(sigs [][]byte) ([]byte, error) { return make([]byte, 96), nil }
func (f *acceptAll) VerifyAggregate(s bitmap.Bitmap, d types.Hash, agg []byte) bool {
	f.aggs.Add(1)
	return true
}

func TestCacheSignatureSizes(t *testing.T) {
	f := &acceptAll{fakeVerifier: fakeVerifier{n: testN}}
	c := NewCache(f)
	d := digest("sizes")
	ok65 := fakeSig(true, 3)
	assert.True(t, c.Verify(1, d, ok65))
	// The same bytes padded to 96 are another signature (the inner verifier refuses 96 bytes).
	padded := append(bytes.Clone(ok65), make([]byte, types.BLSSigSize-types.SigSize)...)
	assert.False(t, c.Verify(1, d, padded))
	assert.False(t, c.Verify(1, d, make([]byte, 80)))
	assert.Equal(t, int64(2), f.calls.Load())

	// The aggregate cache stays bounded.
	a, ok := AggregatorOf(c)
	require.True(t, ok)
	total := cacheShards*aggCacheShardCap + 3*aggCacheShardCap
	for i := 0; i < total; i++ {
		var d types.Hash
		d[0], d[1], d[2] = byte(i), byte(i>>8), byte(i>>16)
		require.True(t, a.VerifyAggregate(signersOf(1), d, make([]byte, types.BLSSigSize)))
	}
	assert.Equal(t, int64(total), f.aggs.Load())
	for i := range c.aggShards {
		assert.LessOrEqual(t, len(c.aggShards[i].set), aggCacheShardCap, "shard %d", i)
	}
}

func TestSimMACKeysFor(t *testing.T) {
	d := digest("sim")
	for _, scheme := range []string{SchemeSecp256k1, SchemeP256} {
		signers, v, err := SimMACKeysFor(scheme, 3, testN)
		require.NoError(t, err)
		sig := signers[1].Sign(d)
		assert.Len(t, sig, types.SigSize, scheme)
		assert.True(t, v.Verify(2, d, sig), scheme)
		_, ok := AggregatorOf(v)
		assert.False(t, ok, scheme)
		// The same as SimMACKeys.
		old, _ := SimMACKeys(3, testN)
		assert.Equal(t, old[1].Sign(d), sig)
	}
	_, _, err := SimMACKeysFor("rsa", 1, 1)
	assert.ErrorContains(t, err, `unknown signature scheme "rsa" (want secp256k1, ECDSA_P256 or bls12-381)`)

	signers, v, err := SimMACKeysFor(SchemeBLS, 3, testN)
	require.NoError(t, err)
	a, ok := AggregatorOf(v)
	require.True(t, ok, "the simulated BLS verifier aggregates")
	_, ok = AggregatorOf(NewCache(v))
	require.True(t, ok, "through a cache")
	_, ok = v.(CertMemo)
	assert.True(t, ok, "the simulated BLS verifier remembers certificates")
	sigs := make([][]byte, testN)
	for i, s := range signers {
		sigs[i] = s.Sign(d)
		require.Len(t, sigs[i], types.BLSSigSize)
		assert.True(t, v.Verify(types.NodeID(i+1), d, sigs[i]))
		assert.False(t, v.Verify(types.NodeID(i%testN+2), d, sigs[i]))
		assert.False(t, v.Verify(types.NodeID(i+1), d, sigs[i][:types.SigSize]))
	}
	agg, err := a.Aggregate(sigs[:3])
	require.NoError(t, err)
	require.Len(t, agg, types.BLSSigSize)
	again, err := a.Aggregate([][]byte{sigs[1], sigs[2], sigs[0]})
	require.NoError(t, err)
	assert.Equal(t, agg, again, "order-independent")
	assert.True(t, a.VerifyAggregate(signersOf(1, 2, 3), d, agg))
	assert.True(t, a.VerifyAggregate(signersOf(1, 2, 3), d, agg), "remembered")
	sub, _ := a.Aggregate(sigs[:2])
	forged := bytes.Clone(agg)
	forged[50] ^= 1
	beyond := signersOf(1, 2, 3)
	beyond.Set(testN)
	other := d
	other[3] ^= 1
	for name, c := range map[string]struct {
		s   bitmap.Bitmap
		d   types.Hash
		agg []byte
	}{
		"wrong set":      {signersOf(1, 2, 4), d, agg},
		"subset agg":     {signersOf(1, 2, 3), d, sub},
		"superset map":   {signersOf(1, 2, 3, 4), d, agg},
		"forged":         {signersOf(1, 2, 3), d, forged},
		"other digest":   {signersOf(1, 2, 3), other, agg},
		"empty":          {nil, d, agg},
		"beyond N":       {beyond, d, agg},
		"short agg":      {signersOf(1, 2, 3), d, agg[:95]},
		"duplicate sigs": {signersOf(1, 2, 3), d, mustAgg(t, a, sigs[0], sigs[0], sigs[1])},
	} {
		assert.False(t, a.VerifyAggregate(c.s, c.d, c.agg), name)
	}
	_, err = a.Aggregate(nil)
	assert.ErrorContains(t, err, "no signatures")
	_, err = a.Aggregate([][]byte{sigs[0], sigs[1][:types.SigSize]})
	assert.ErrorContains(t, err, "signature 1 has 65 bytes, want 96")
}

func mustAgg(t *testing.T, a Aggregator, sigs ...[]byte) []byte {
	agg, err := a.Aggregate(sigs)
	require.NoError(t, err)
	return agg
}

// The BLS12-381 costs next to secp256k1's (BenchmarkScheme): 267 is a quorum of 400 replicas.
func BenchmarkBLS(b *testing.B) {
	const n, quorum = 400, 267
	signers, v := blsKeys(b, 1, n)
	d := types.Keccak([]byte("digest"))
	sigs := make([][]byte, quorum)
	var set bitmap.Bitmap
	for i := range sigs {
		sigs[i] = signers[i].Sign(d)
		set.Set(uint32(i))
	}
	agg, err := v.Aggregate(sigs)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sign", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			signers[0].Sign(d)
		}
	})
	b.Run("verify", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if !v.Verify(1, d, sigs[0]) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("aggregate-267-unverified", func(b *testing.B) {
		u, _ := blsVerifierOfCheckedKeysFrom(v) // a fresh verifier: none of them decoded before
		for i := 0; i < b.N; i++ {
			if _, err := u.Aggregate(sigs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("aggregate-267-verified", func(b *testing.B) {
		for i := range sigs {
			v.Verify(types.NodeID(i+1), d, sigs[i]) // as a collector does when votes come
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := v.Aggregate(sigs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify-aggregate-267-cached-key", func(b *testing.B) {
		v.VerifyAggregate(set, d, agg)
		for i := 0; i < b.N; i++ {
			if !v.VerifyAggregate(set, d, agg) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("verify-aggregate-267-uncached-key", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			v.mu.Lock()
			clear(v.aggKeys)
			v.mu.Unlock()
			if !v.VerifyAggregate(set, d, agg) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("decompress-check-signature", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := parseBLSSig(sigs[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decompress-check-public-key", func(b *testing.B) {
		pub := signers[0].PublicKey()
		for i := 0; i < b.N; i++ {
			if _, err := parseBLSPub(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proof-of-possession-check", func(b *testing.B) {
		pub, pop := signers[0].PublicKey(), signers[0].ProvePossession()
		pk, _ := parseBLSPub(pub)
		for i := 0; i < b.N; i++ {
			if err := checkBLSPoP(pk, pub, pop); err != nil {
				b.Fatal(err)
			}
		}
	})
	mac, mv, _ := SimMACKeysFor(SchemeBLS, 1, n)
	ma, _ := AggregatorOf(mv)
	msigs := make([][]byte, quorum)
	for i := range msigs {
		msigs[i] = mac[i].Sign(d)
	}
	magg, _ := ma.Aggregate(msigs)
	b.Run("simulated-verify-aggregate-267-unremembered", func(b *testing.B) {
		m := mv.(*MACAggregator)
		for i := 0; i < b.N; i++ {
			m.mu.Lock()
			m.certs = nil
			m.mu.Unlock()
			if !ma.VerifyAggregate(set, d, magg) {
				b.Fatal("invalid")
			}
		}
	})
}

// blsVerifierOfCheckedKeysFrom is a verifier of v's keys with nothing decoded or remembered yet.
func blsVerifierOfCheckedKeysFrom(v *BLSVerifier) (*BLSVerifier, error) {
	return &BLSVerifier{pks: v.pks, aggKeys: make(map[string]*blst.P1Affine)}, nil
}
