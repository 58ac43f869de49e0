package replica

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/types"
)

// storeFixture makes signed blocks, QCs and microblocks of a 4-replica cluster.
type storeFixture struct {
	signers []*crypto.KeySigner
	ver     crypto.Verifier
}

func newStoreFixture() storeFixture {
	s, v := crypto.SimKeys(11, 4)
	return storeFixture{signers: s, ver: v}
}

func (f storeFixture) qc(view types.View, id types.Hash) *types.QC {
	q := &types.QC{View: view, BlockID: id}
	for i := types.NodeID(1); i <= 3; i++ {
		q.Signers.Set(types.SignerBit(i))
		q.Sigs = append(q.Sigs, f.signers[i-1].Sign(types.VoteDigest(view, id)))
	}
	return q
}

func (f storeFixture) block(parent *types.Block, parentQC *types.QC, view types.View, txs ...string) *types.Block {
	p := &types.Payload{}
	for _, t := range txs {
		p.Txs = append(p.Txs, types.NewTx([]byte(t)))
	}
	b := &types.Block{View: view, Height: parent.Height + 1, Parent: parent.ID(), QC: parentQC, Payload: p, Proposer: 1}
	b.Sig = f.signers[0].Sign(b.ID())
	return b
}

func openStore(t *testing.T, dir string) *PebbleStore {
	t.Helper()
	s, err := OpenPebbleStore(dir)
	require.NoError(t, err)
	return s
}

// reopen opens the store in dir again (closed when the test ends) and loads it.
func reopen(t *testing.T, dir string) (*PebbleStore, *core.Saved) {
	t.Helper()
	s := openStore(t, dir)
	t.Cleanup(func() { _ = s.Close() })
	got, err := s.Load()
	require.NoError(t, err)
	return s, got
}

// Everything staged and synced comes back after a reopen, exactly: voting state, certified blocks,
// microblocks, the delivered head, the dedup window with each transaction's commit, the key-value
// store and the mempool's delivered window.
func TestPebbleStoreRoundTrip(t *testing.T) {
	f := newStoreFixture()
	dir := filepath.Join(t.TempDir(), "store.1")
	s := openStore(t, dir)
	got, err := s.Load()
	require.NoError(t, err)
	require.Nil(t, got, "a new store holds nothing")

	b1 := f.block(types.Genesis(), types.GenesisQC(), 1, string(core.NewPut(core.PutID{}, "a", []byte("one")).Data()), "plain")
	q1 := f.qc(1, b1.ID())
	b2 := f.block(b1, q1, 2)
	q2 := f.qc(2, b2.ID())
	mb := types.NewMicroBlock(2, 3, []types.Tx{types.NewTx([]byte("in a microblock"))}).Signed(f.signers[1].Sign)
	lock := f.qc(1, b1.ID())

	s.Stage(core.OpVoting{State: consensus.VotingState{LastVoted: 2, Lock: lock}})
	s.Stage(core.OpBlock{CertifiedBlock: consensus.CertifiedBlock{Block: b2, Cert: q2}})
	s.Stage(core.OpMB{MB: mb})
	info := core.CommitInfo{View: 1, Height: 1, Block: b1.ID()}
	ids := []types.Hash{b1.Payload.Txs[0].ID(), b1.Payload.Txs[1].ID()}
	s.Stage(core.OpDeliver{Head: b1, Cert: q1, Height: 1, Digest: types.ChainDigest(types.Hash{}, b1.ID()), TxCount: 2,
		Segments: []core.DedupSegment{{Gen: 1, Info: info, IDs: ids}},
		KV:       []core.KVWrite{{Key: "a", Entry: core.KVEntry{Value: []byte("one"), Height: 1}}},
		Window:   []types.MBView{{ID: mb.ID, View: 1}}})
	require.NoError(t, s.Sync())
	require.NoError(t, s.Close())

	_, got = reopen(t, dir)
	require.NotNil(t, got)
	require.Equal(t, types.View(2), got.Voting.LastVoted)
	require.NoError(t, consensus.VerifyQC(f.ver, got.Voting.Lock))
	require.Equal(t, b1.ID(), got.Head.ID())
	require.NoError(t, consensus.VerifyQC(f.ver, got.HeadCert))
	require.Equal(t, uint64(1), got.Height)
	require.Equal(t, uint64(2), got.TxCount)
	require.Equal(t, types.ChainDigest(types.Hash{}, b1.ID()), got.Digest)
	require.Len(t, got.Blocks, 1)
	require.Equal(t, b2.ID(), got.Blocks[b2.ID()].Block.ID())
	require.Equal(t, q2.BlockID, got.Blocks[b2.ID()].Cert.BlockID)
	require.Equal(t, mb.ID, got.MBs[mb.ID].ID)
	for _, id := range ids {
		ci, ok := got.Dedup.Get(id)
		require.True(t, ok)
		require.Equal(t, info, ci, "each transaction keeps the commit that delivered it")
	}
	e, ok := got.KV.Get("a")
	require.True(t, ok)
	require.Equal(t, core.KVEntry{Value: []byte("one"), Height: 1}, e)
	require.Equal(t, []types.MBView{{ID: mb.ID, View: 1}}, got.Window)
}

// Changes staged but never synced are not there after a reopen: a crash before the sync loses
// the whole step, never a part of it.
func TestPebbleStoreUnsyncedChangesAreLost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store.1")
	s := openStore(t, dir)
	s.Stage(core.OpVoting{State: consensus.VotingState{LastVoted: 4}})
	require.NoError(t, s.Sync())
	s.Stage(core.OpVoting{State: consensus.VotingState{LastVoted: 5}})
	s.Stage(core.OpDeliver{Height: 9, TxCount: 90})
	require.NoError(t, s.Close())

	_, got := reopen(t, dir)
	require.Equal(t, types.View(4), got.Voting.LastVoted)
	require.Zero(t, got.Height)
}

// The dedup window keeps two generations: segments of older ones are forgotten when a newer one
// starts, as the in-memory set forgets them.
func TestPebbleStoreDedupGenerations(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store.1")
	s := openStore(t, dir)
	id := func(i byte) types.Hash { return types.Keccak([]byte{i}) }
	for gen := uint64(1); gen <= 4; gen++ {
		s.Stage(core.OpDeliver{Height: gen, Segments: []core.DedupSegment{{Gen: gen, Info: core.CommitInfo{Height: gen}, IDs: []types.Hash{id(byte(gen))}}}})
		require.NoError(t, s.Sync())
	}
	require.NoError(t, s.Close())
	s, got := reopen(t, dir)
	gen, _, _ := got.Dedup.Export()
	require.Equal(t, uint64(4), gen)
	for i, want := range []bool{false, false, true, true} {
		require.Equal(t, want, got.Dedup.Has(id(byte(i+1))), "generation %d", i+1)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: pfxDedup, UpperBound: prefixEnd(pfxDedup)})
	require.NoError(t, err)
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	require.NoError(t, it.Close())
	require.Equal(t, 2, n, "older generations are deleted from disk")
}

// A store of another format version is refused with a message that says what to do, and so is a
// directory holding some other Pebble database.
func TestPebbleStoreRefusesAnotherFormat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store.1")
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	require.NoError(t, err)
	require.NoError(t, db.Set(keyFormat, []byte("stratus-store/0"), pebble.Sync))
	require.NoError(t, db.Close())
	_, err = OpenPebbleStore(dir)
	require.ErrorContains(t, err, `has format "stratus-store/0"`)
	require.ErrorContains(t, err, dir)

	other := filepath.Join(t.TempDir(), "other")
	db, err = pebble.Open(other, &pebble.Options{Logger: quietLogger{}})
	require.NoError(t, err)
	require.NoError(t, db.Set([]byte("unrelated"), []byte("x"), pebble.Sync))
	require.NoError(t, db.Close())
	_, err = OpenPebbleStore(other)
	require.ErrorContains(t, err, "no format record")

	notADB := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notADB, []byte("x"), 0o600))
	_, err = OpenPebbleStore(notADB)
	require.ErrorContains(t, err, notADB)
}

// A record damaged on disk fails its checksum and is reported by its key, never loaded.
func TestPebbleStoreDetectsADamagedRecord(t *testing.T) {
	f := newStoreFixture()
	dir := filepath.Join(t.TempDir(), "store.1")
	s := openStore(t, dir)
	b1 := f.block(types.Genesis(), types.GenesisQC(), 1)
	s.Stage(core.OpBlock{CertifiedBlock: consensus.CertifiedBlock{Block: b1, Cert: f.qc(1, b1.ID())}})
	s.Stage(core.OpDeliver{Height: 3, KV: []core.KVWrite{{Key: "k", Entry: core.KVEntry{Value: []byte("v"), Height: 3}}}})
	require.NoError(t, s.Sync())

	// One flipped byte in the key-value record's value.
	k := key(pfxKV, []byte("k"))
	v, closer, err := s.db.Get(k)
	require.NoError(t, err)
	bad := append([]byte(nil), v...)
	_ = closer.Close()
	bad[len(bad)-5] ^= 0x40
	require.NoError(t, s.db.Set(k, bad, pebble.Sync))
	_, err = s.Load()
	require.ErrorContains(t, err, "fails its checksum")
	require.ErrorContains(t, err, `"k/6b"`, "named by its key")
	require.ErrorContains(t, err, dir)
	require.NoError(t, s.Close())
}

// A torn write at the end of the write-ahead log (the process died in the middle of a sync) loses
// at most the step being written: the store opens, and what it holds is a prefix of what was
// synced.
func TestPebbleStoreTornWALTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store.1")
	s := openStore(t, dir)
	for h := uint64(1); h <= 3; h++ {
		s.Stage(core.OpDeliver{Height: h, TxCount: 10 * h})
		require.NoError(t, s.Sync())
	}
	// Simulate the crash: copy the directory as it is on disk, without closing.
	torn := filepath.Join(t.TempDir(), "torn")
	require.NoError(t, os.CopyFS(torn, os.DirFS(dir)))
	require.NoError(t, s.Close())
	logs, err := filepath.Glob(filepath.Join(torn, "*.log"))
	require.NoError(t, err)
	require.NotEmpty(t, logs)
	sort.Strings(logs)
	wal := logs[len(logs)-1]
	fi, err := os.Stat(wal)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(wal, fi.Size()-7))

	s = openStore(t, torn)
	defer s.Close()
	got, err := s.Load()
	require.NoError(t, err)
	require.Contains(t, []uint64{2, 3}, got.Height, "a prefix of what was synced")
	require.Equal(t, 10*got.Height, got.TxCount, "and never half a step")
}

// A segment written without reflection is byte for byte what the reflection encoder writes, so
// stores written before and after read the same.
func TestSegmentEncodingMatchesReflection(t *testing.T) {
	for _, seg := range []storedSegment{
		{},
		{View: 1, Height: 1, Block: types.Keccak([]byte("b")), IDs: []types.Hash{types.Keccak([]byte("x"))}},
		{View: 1 << 40, Height: 0x80, IDs: make([]types.Hash, 3000)},
	} {
		w := encodeSegment(seg)
		got := w.ToBytes()
		require.NoError(t, w.Flush())
		require.Equal(t, mustRLP(seg), got)
	}
}

// TestPebbleStoreGroupCommit: a batch written without a sync is durable once a later batch is
// written with one (the committer's group commit), and is lost in a crash before that; a synced
// empty batch makes those written before it durable too. Crashes are simulated on Pebble's
// crashable file system, keeping exactly what was synced.
func TestPebbleStoreGroupCommit(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, err := OpenPebbleStoreFS("store.1", fs)
	require.NoError(t, err)
	defer s.Close()
	after := func(stage string) *core.Saved {
		t.Helper()
		crashed, err := OpenPebbleStoreFS("store.1", fs.CrashClone(vfs.CrashCloneCfg{}))
		require.NoError(t, err, stage)
		defer crashed.Close()
		got, err := crashed.Load()
		require.NoError(t, err, stage)
		return got
	}
	s.Stage(core.OpVoting{State: consensus.VotingState{LastVoted: 4}})
	first := s.Seal()
	s.Stage(core.OpDeliver{Height: 9, TxCount: 90})
	second := s.Seal()
	require.NoError(t, first(false))
	if got := after("first written, no sync"); got != nil && got.Voting != nil {
		require.Zero(t, got.Voting.LastVoted, "a batch written without a sync is not durable yet")
	}
	require.NoError(t, second(true))
	got := after("second synced")
	require.Equal(t, types.View(4), got.Voting.LastVoted, "the sync of a later batch made the first durable")
	require.Equal(t, uint64(9), got.Height)

	s.Stage(core.OpVoting{State: consensus.VotingState{LastVoted: 7}})
	third := s.Seal()
	empty := s.Seal()
	require.NoError(t, third(false))
	require.NoError(t, empty(true))
	require.Equal(t, types.View(7), after("an empty batch synced").Voting.LastVoted, "a synced empty batch made the one before durable")
}

// TestCommitGroupSyncsOnceAndFailsTogether: the committer writes a group in order and syncs only
// with the last batch that has something to commit; a failed write fails its batch and those
// after it, unwritten; a failed sync fails the whole group.
func TestCommitGroupSyncsOnceAndFailsTogether(t *testing.T) {
	var calls []string
	batch := func(name string, fail bool) *sealedBatch {
		return &sealedBatch{commit: func(sync bool) error {
			calls = append(calls, fmt.Sprintf("%s sync=%v", name, sync))
			if fail {
				return fmt.Errorf("%s failed", name)
			}
			return nil
		}}
	}
	group := []*sealedBatch{batch("a", false), batch("b", false), {}, batch("c", false), {}}
	commitGroup(group)
	require.Equal(t, []string{"a sync=false", "b sync=false", "c sync=true"}, calls)
	for _, b := range group {
		require.NoError(t, b.err)
	}

	calls = nil
	group = []*sealedBatch{batch("a", false), batch("b", true), batch("c", false)}
	commitGroup(group)
	require.Equal(t, []string{"a sync=false", "b sync=false"}, calls, "nothing is written after a failure")
	for _, b := range group {
		require.ErrorContains(t, b.err, "b failed", "no batch of the group is known durable")
	}

	calls = nil
	group = []*sealedBatch{batch("a", false), batch("b", true)}
	commitGroup(group)
	require.Equal(t, []string{"a sync=false", "b sync=true"}, calls)
	require.ErrorContains(t, group[0].err, "b failed", "the failed sync fails the batch written before it")
	require.ErrorContains(t, group[1].err, "b failed")
}

// A store an earlier build wrote in Pebble's oldest format opens: its records load, it is upgraded
// to this build's format, and values of a kilobyte or more go to blob files from then on (value
// separation), from which they load back too.
func TestPebbleStoreUpgradesAnEarlierFormat(t *testing.T) {
	f := newStoreFixture()
	dir := filepath.Join(t.TempDir(), "store.1")
	bigMB := func(view types.View, tag string) *types.MicroBlock {
		var txs []types.Tx
		for i := 0; i < 20; i++ {
			txs = append(txs, types.NewTx(fmt.Appendf(make([]byte, 0, 128), "%s %03d %0100d", tag, i, i)))
		}
		return types.NewMicroBlock(2, view, txs).Signed(f.signers[1].Sign)
	}
	// Written the way the builds before value separation did: Pebble's default (oldest) format.
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	require.NoError(t, err)
	require.Less(t, db.FormatMajorVersion(), storeFormat)
	old := &PebbleStore{dir: dir, db: db}
	require.NoError(t, old.checkFormat())
	old.batch = db.NewBatch()
	mb1 := bigMB(1, "old")
	require.Greater(t, mb1.EncodedSize(), blobMinSize)
	old.Stage(core.OpVoting{State: consensus.VotingState{LastVoted: 3}})
	old.Stage(core.OpMB{MB: mb1})
	require.NoError(t, old.Sync())
	require.NoError(t, old.Close())

	s := openStore(t, dir)
	require.Equal(t, storeFormat, s.db.FormatMajorVersion(), "upgraded when opened")
	mb2 := bigMB(2, "new")
	s.Stage(core.OpMB{MB: mb2})
	require.NoError(t, s.Sync())
	require.NoError(t, s.db.Flush())
	blobs, err := filepath.Glob(filepath.Join(dir, "*.blob"))
	require.NoError(t, err)
	require.NotEmpty(t, blobs, "a flushed microblock's value goes to a blob file")
	require.NoError(t, s.Close())

	_, got := reopen(t, dir)
	require.Equal(t, types.View(3), got.Voting.LastVoted)
	require.Len(t, got.MBs, 2)
	require.Equal(t, mb1.Txs, got.MBs[mb1.ID].Txs)
	require.Equal(t, mb2.Txs, got.MBs[mb2.ID].Txs)
}
