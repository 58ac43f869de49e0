package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/types"
)

// StoreFormat names the layout of a replica's Pebble store. A store of another format is refused:
// reading it as this one could load a wrong state.
const StoreFormat = "stratus-store/1"

// Key space of the Pebble store. Every value ends with a CRC-32C of the key and the value, so a
// value damaged on disk is reported by its key, never loaded.
//
//	f                      format
//	v                      voting state
//	m                      delivered head: block, certificate, height, digest, count, dedup generation
//	b/<block ID>           certified block above the head, with its certificate
//	x/<gen>/<height>/<i>   dedup segment: commit info and transaction IDs
//	k/<key>                key-value entry: height, value
//	w/<view>/<mb ID>       delivered microblock (the mempool's window)
//	u/<mb ID>              microblock held or retained
var (
	keyFormat = []byte("f")
	keyVoting = []byte("v")
	keyMeta   = []byte("m")
	pfxBlock  = []byte("b/")
	pfxDedup  = []byte("x/")
	pfxKV     = []byte("k/")
	pfxWindow = []byte("w/")
	pfxMB     = []byte("u/")
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// PebbleStore keeps a replica's state on disk in an embedded Pebble database. Staged changes go
// into one batch; Sync commits it with an fsync of the write-ahead log, so a crash keeps either
// all of a step's changes or none of them.
type PebbleStore struct {
	dir    string
	db     *pebble.DB
	batch  *pebble.Batch
	gen    uint64 // the dedup generation the store holds as current
	seg    uint64 // segments written, to keep their keys apart
	err    error  // a staging error, reported by the next Sync
	broken error  // a fatal error: every Sync fails
	// unsynced: a batch was written without a sync since the last sync (set and read by the
	// goroutine that commits, one at a time in order; atomic in case that is not the loop's).
	unsynced atomic.Bool
}

// OpenPebbleStore opens (creating if needed) the store in dir.
func OpenPebbleStore(dir string) (*PebbleStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	return OpenPebbleStoreFS(dir, nil)
}

// OpenPebbleStoreFS opens the store in dir on a simulated file system of Pebble's (the
// simulator's disks), with small memtables so that flushes and compactions happen in short runs.
// An error Pebble holds fatal (a failed write of its log) panics in the call that met it instead
// of ending the process; Sync turns it into its error.
func OpenPebbleStoreFS(dir string, fs vfs.FS) (*PebbleStore, error) {
	db, err := pebble.Open(dir, pebbleOptions(fs))
	if err != nil {
		return nil, fmt.Errorf("store %s cannot be opened (damaged or not a store): %w", dir, err)
	}
	s := &PebbleStore{dir: dir, db: db}
	if err := s.checkFormat(); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.batch = db.NewBatch()
	return s, nil
}

// The store's Pebble tuning. What a replica writes is a queue more than a table: microblocks
// (tens of kilobytes each) and dedup segments (a block's transaction IDs) go in, and most leave
// again a few seconds to minutes later, oldest first; reads happen only when a replica starts.
// With Pebble's defaults every compaction into the base level rewrote all the microblocks and IDs
// held there (4-MiB memtables, a compaction every four flushes, keys spread over the whole key
// space): 358 MB of compaction writes per replica beside 500 MB of log in a 45-s bin/run.sh run
// at N=4. So:
//   - values of blobMinSize bytes or more live in blob files that compactions reference instead of
//     rewriting (Pebble's value separation); a blob file goes once no table refers to it, or is
//     rewritten when a fraction blobGarbage of it is dead and it is older than blobRewriteAge;
//   - memtables of memTableSize and a compaction every l0Compaction flushes make compactions
//     rarer and their outputs larger. Reads of level 0 do not matter here.
//
// Measured in docs/performance.md ("The store's Pebble tuning").
const (
	blobMinSize    = 1 << 10
	blobGarbage    = 0.5
	blobRewriteAge = time.Minute
	memTableSize   = 16 << 20
	l0Compaction   = 8
)

// storeFormat is the Pebble format version of a store: the first with value separation. A store
// of an earlier format is upgraded when it is opened; earlier builds, on the same Pebble version,
// still open it (value separation governs only how values are written).
const storeFormat = pebble.FormatValueSeparation

// pebbleOptions are the options of a store on the real file system (fs nil) or a simulated one.
// A simulated disk keeps Pebble's small memtables and default compaction triggers, so that short
// runs flush and compact often, and uses the same format and value separation as a real one.
func pebbleOptions(fs vfs.FS) *pebble.Options {
	opts := &pebble.Options{Logger: quietLogger{}, FormatMajorVersion: storeFormat}
	opts.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           blobMinSize,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     blobRewriteAge,
			TargetGarbageRatio:    blobGarbage,
		}
	}
	if fs != nil {
		opts.FS, opts.Logger, opts.MemTableSize = fs, panicLogger{}, 256<<10
		opts.EventListener = &pebble.EventListener{}
		return opts
	}
	opts.MemTableSize = memTableSize
	opts.L0CompactionThreshold = l0Compaction
	opts.L0StopWritesThreshold = 4 * l0Compaction
	return opts
}

// Kind implements core.DiskStore: what /query calls the store.
func (s *PebbleStore) Kind() string { return "pebble" }

var _ core.DiskStore = (*PebbleStore)(nil)

// DiskBytes is the space the store takes on disk.
func (s *PebbleStore) DiskBytes() int64 { return int64(s.db.Metrics().DiskSpaceUsage()) }

// Dir is the store's directory.
func (s *PebbleStore) Dir() string { return s.dir }

func (s *PebbleStore) checkFormat() error {
	v, closer, err := s.db.Get(keyFormat)
	if errors.Is(err, pebble.ErrNotFound) {
		it, err := s.db.NewIter(nil)
		if err != nil {
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
		empty := !it.First()
		_ = it.Close()
		if !empty {
			return fmt.Errorf("store %s holds data but no format record: it is not a %s store", s.dir, StoreFormat)
		}
		return s.db.Set(keyFormat, []byte(StoreFormat), pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("store %s: format record: %w", s.dir, err)
	}
	got := string(v)
	_ = closer.Close()
	if got != StoreFormat {
		return fmt.Errorf("store %s has format %q; this build reads %q only (move the directory away to start this replica afresh)", s.dir, got, StoreFormat)
	}
	return nil
}

// Journal implements Store.
func (s *PebbleStore) Journal() bool { return true }

// Adopt implements Store: a journaling store rebuilds the structures at Load.
func (s *PebbleStore) Adopt(*core.DedupWindow, *core.KVStore) {}

// Close implements Store. A store broken by a fatal error closes as well as it can.
func (s *PebbleStore) Close() (err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fatalError); !ok {
				panic(r)
			}
			err = fmt.Errorf("store %s: %s", s.dir, r)
		}
	}()
	if s.batch != nil {
		_ = s.batch.Close()
		s.batch = nil
	}
	return s.db.Close()
}

// crcSize is the checksum every stored value ends with (seal).
const crcSize = 4

// seal appends the checksum of key and value to value.
func seal(key, value []byte) []byte {
	c := crc32.Update(crc32.Checksum(key, crcTable), crcTable, value)
	return binary.BigEndian.AppendUint32(value, c)
}

func unseal(dir string, key, v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, fmt.Errorf("store %s: record %q is truncated", dir, printableKey(key))
	}
	body := v[:len(v)-4]
	want := binary.BigEndian.Uint32(v[len(v)-4:])
	if crc32.Update(crc32.Checksum(key, crcTable), crcTable, body) != want {
		return nil, fmt.Errorf("store %s: record %q fails its checksum (damaged on disk)", dir, printableKey(key))
	}
	return body, nil
}

func printableKey(k []byte) string {
	if i := bytes.IndexByte(k, '/'); i > 0 {
		return fmt.Sprintf("%s/%x", k[:i], k[i+1:])
	}
	return string(k)
}

func (s *PebbleStore) set(key, value []byte) {
	s.setWith(key, len(value), func(dst []byte) []byte { return append(dst, value...) })
}

// setWith stages key with a value of n bytes that fill appends to a slice of capacity n inside the
// batch, and seals it there: the value is written once, into the batch.
func (s *PebbleStore) setWith(key []byte, n int, fill func(dst []byte) []byte) {
	op := s.batch.SetDeferred(len(key), n+crcSize)
	copy(op.Key, key)
	if v := fill(op.Value[:0:n]); len(v) != n || n > 0 && &v[0] != &op.Value[0] {
		panic(fmt.Sprintf("store: %q: value of %d bytes written for a size of %d", printableKey(key), len(v), n)) // a size function out of step with its encoder
	}
	seal(key, op.Value[:n:n+crcSize])
	if err := op.Finish(); err != nil && s.err == nil {
		s.err = err
	}
}

func (s *PebbleStore) del(key []byte) {
	if err := s.batch.Delete(key, nil); err != nil && s.err == nil {
		s.err = err
	}
}

func (s *PebbleStore) delPrefix(pfx []byte) { s.delRange(pfx, prefixEnd(pfx)) }

func (s *PebbleStore) delRange(from, to []byte) {
	if err := s.batch.DeleteRange(from, to, nil); err != nil && s.err == nil {
		s.err = err
	}
}

func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	end[len(end)-1]++
	return end
}

func key(pfx []byte, parts ...[]byte) []byte {
	k := bytes.Clone(pfx)
	for i, p := range parts {
		if i > 0 {
			k = append(k, '/')
		}
		k = append(k, p...)
	}
	return k
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

type storedVote struct {
	LastVoted types.View
	Lock      *types.QC `rlp:"nil"`
}

type storedBlock struct {
	Block []byte // the block's wire form
	Cert  *types.QC
}

type storedMeta struct {
	Head     []byte    // the head block's wire form; empty: none
	Cert     *types.QC `rlp:"nil"`
	Height   uint64
	Digest   types.Hash
	TxCount  uint64
	DedupGen uint64
}

type storedSegment struct {
	View   types.View
	Height uint64
	Block  types.Hash
	IDs    []types.Hash
}

func mustRLP(v any) []byte {
	b, err := rlp.EncodeToBytes(v)
	if err != nil {
		panic(fmt.Sprintf("store: encoding %T: %v", v, err)) // our own values: a bug, not input
	}
	return b
}

func mustWire(m types.Message) []byte {
	b, err := types.Encode(m)
	if err != nil {
		panic(fmt.Sprintf("store: encoding %v: %v", m.Kind(), err))
	}
	return b
}

// Stage implements Store.
func (s *PebbleStore) Stage(op core.StoreOp) {
	switch o := op.(type) {
	case core.OpVoting:
		s.set(keyVoting, mustRLP(storedVote{LastVoted: o.State.LastVoted, Lock: o.State.Lock}))
	case core.OpBlock:
		s.set(key(pfxBlock, o.Block.ID().Slice()), mustRLP(storedBlock{Block: mustWire(o.Block), Cert: o.Cert}))
	case core.OpDropBlock:
		s.del(key(pfxBlock, o.ID.Slice()))
	case core.OpMB: // encoded straight into the batch: a microblock is most of what a replica stores
		s.setWith(key(pfxMB, o.MB.ID.Slice()), o.MB.EncodedSize(), o.MB.AppendEncoded)
	case core.OpDropMB:
		s.del(key(pfxMB, o.ID.Slice()))
	case core.OpDeliver:
		for _, seg := range o.Segments {
			s.putSegment(seg)
		}
		for _, w := range o.KV {
			s.set(key(pfxKV, []byte(w.Key)), append(u64(w.Entry.Height), w.Entry.Value...))
		}
		for _, w := range o.Window {
			s.set(key(pfxWindow, u64(uint64(w.View)), w.ID.Slice()), nil)
		}
		if o.WindowFloor > 0 {
			s.delRange(pfxWindow, key(pfxWindow, u64(uint64(o.WindowFloor))))
		}
		s.putMeta(o.Head, o.Cert, o.Height, o.Digest, o.TxCount)
	case core.OpReset:
		r := o.State
		s.delPrefix(pfxDedup)
		s.delPrefix(pfxKV)
		s.delPrefix(pfxWindow)
		info := core.CommitInfo{Height: r.Height}
		if r.Head != nil {
			info.View, info.Block = r.Head.View, r.Head.ID()
		}
		var prev, cur []types.Hash
		s.gen, prev, cur = r.Dedup.Export()
		s.putSegment(core.DedupSegment{Gen: s.gen - 1, Info: info, IDs: prev})
		s.putSegment(core.DedupSegment{Gen: s.gen, Info: info, IDs: cur})
		r.KV.All(func(k string, e core.KVEntry) {
			s.set(key(pfxKV, []byte(k)), append(u64(e.Height), e.Value...))
		})
		for _, w := range r.Window {
			s.set(key(pfxWindow, u64(uint64(w.View)), w.ID.Slice()), nil)
		}
		s.putMeta(r.Head, r.HeadCert, r.Height, r.Digest, r.TxCount)
	}
}

func (s *PebbleStore) putMeta(head *types.Block, cert *types.QC, height uint64, digest types.Hash, count uint64) {
	m := storedMeta{Cert: cert, Height: height, Digest: digest, TxCount: count, DedupGen: s.gen}
	if head != nil {
		m.Head = mustWire(head)
	}
	s.set(keyMeta, mustRLP(m))
}

// putSegment writes a dedup segment; a segment of a newer generation than the store's forgets
// the generations before the previous one.
func (s *PebbleStore) putSegment(seg core.DedupSegment) {
	if seg.Gen > s.gen {
		s.gen = seg.Gen
		if s.gen >= 2 {
			s.delRange(pfxDedup, key(pfxDedup, u64(s.gen-1)))
		}
	}
	if len(seg.IDs) == 0 {
		return
	}
	s.seg++
	w := encodeSegment(storedSegment{View: seg.Info.View, Height: seg.Info.Height, Block: seg.Info.Block, IDs: seg.IDs})
	s.setWith(key(pfxDedup, u64(seg.Gen), u64(seg.Info.Height), u64(s.seg)), w.Size(), w.AppendToBytes)
	_ = w.Flush() // no destination: returns the buffer to rlp's pool
}

// encodeSegment writes a segment's RLP form (mustRLP's, without reflection per ID: a segment
// lists every transaction a block delivered).
func encodeSegment(seg storedSegment) rlp.EncoderBuffer {
	w := rlp.NewEncoderBuffer(nil)
	l := w.List()
	w.WriteUint64(uint64(seg.View))
	w.WriteUint64(seg.Height)
	w.WriteBytes(seg.Block[:])
	ids := w.List()
	for i := range seg.IDs {
		w.WriteBytes(seg.IDs[i][:])
	}
	w.ListEnd(ids)
	w.ListEnd(l)
	return w
}

// Sync implements Store: the staged changes, sealed and committed at once.
func (s *PebbleStore) Sync() (err error) {
	defer func() {
		r := recover()
		if f, ok := r.(fatalError); ok {
			err = fmt.Errorf("store %s: %s", s.dir, string(f))
			s.broken = err // the database is unusable now
		} else if r != nil {
			panic(r)
		}
	}()
	return s.Seal()(true)
}

// Pending reports whether changes are staged.
func (s *PebbleStore) Pending() bool { return !s.batch.Empty() || s.err != nil }

// Seal implements SealingStore. A staging error is reported by the returned function. A batch
// written with sync is durable with every batch written before it: the write-ahead log is synced
// to its end.
func (s *PebbleStore) Seal() (commit func(sync bool) error) {
	if s.broken != nil {
		err := s.broken
		return func(bool) error { return err }
	}
	b, err := s.batch, s.err
	s.batch, s.err = s.db.NewBatch(), nil
	return func(sync bool) error {
		defer b.Close()
		if err != nil {
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
		if b.Empty() {
			if sync && s.unsynced.Swap(false) {
				// Batches were written before it without a sync: one synced empty write
				// makes them durable. Without them an empty batch costs no sync.
				return s.syncWAL()
			}
			return nil
		}
		opt := pebble.NoSync
		if sync {
			opt = pebble.Sync
		}
		if err := b.Commit(opt); err != nil {
			return fmt.Errorf("store %s: commit: %w", s.dir, err)
		}
		s.unsynced.Store(!sync)
		return nil
	}
}

// syncWAL makes everything written so far durable: an empty record written with a sync.
func (s *PebbleStore) syncWAL() error {
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("store %s: sync: %w", s.dir, err)
	}
	return nil
}

// Load implements Store.
func (s *PebbleStore) Load() (*core.Saved, error) {
	out := &core.Saved{Blocks: make(map[types.Hash]consensus.CertifiedBlock), MBs: make(map[types.Hash]*types.MicroBlock)}
	found := false
	get := func(k []byte) ([]byte, error) {
		v, closer, err := s.db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("store %s: %q: %w", s.dir, printableKey(k), err)
		}
		defer closer.Close()
		return unseal(s.dir, k, bytes.Clone(v))
	}
	if v, err := get(keyVoting); err != nil {
		return nil, err
	} else if v != nil {
		var sv storedVote
		if err := rlp.DecodeBytes(v, &sv); err != nil {
			return nil, fmt.Errorf("store %s: voting state is damaged: %w", s.dir, err)
		}
		if sv.Lock != nil {
			if err := types.ValidateQC(sv.Lock); err != nil {
				return nil, fmt.Errorf("store %s: voting state: lock: %w", s.dir, err)
			}
		}
		out.Voting, found = &consensus.VotingState{LastVoted: sv.LastVoted, Lock: sv.Lock}, true
	}
	if v, err := get(keyMeta); err != nil {
		return nil, err
	} else if v != nil {
		var m storedMeta
		if err := rlp.DecodeBytes(v, &m); err != nil {
			return nil, fmt.Errorf("store %s: delivered state is damaged: %w", s.dir, err)
		}
		if len(m.Head) > 0 {
			msg, err := types.Decode(m.Head)
			b, ok := msg.(*types.Block)
			if err != nil || !ok {
				return nil, fmt.Errorf("store %s: delivered head is damaged: %v", s.dir, err)
			}
			out.Head = b
		}
		out.HeadCert, out.Height, out.Digest, out.TxCount, s.gen = m.Cert, m.Height, m.Digest, m.TxCount, m.DedupGen
		found = true
	}
	err := s.scan(pfxBlock, func(k, v []byte) error {
		var sb storedBlock
		if err := rlp.DecodeBytes(v, &sb); err != nil {
			return err
		}
		msg, err := types.Decode(sb.Block)
		b, ok := msg.(*types.Block)
		if err != nil || !ok || sb.Cert == nil || sb.Cert.BlockID != b.ID() {
			return fmt.Errorf("not a certified block (%v)", err)
		}
		out.Blocks[b.ID()] = consensus.CertifiedBlock{Block: b, Cert: sb.Cert}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = s.scan(pfxMB, func(k, v []byte) error {
		msg, err := types.Decode(v)
		mb, ok := msg.(*types.MicroBlock)
		if err != nil || !ok {
			return fmt.Errorf("not a microblock (%v)", err)
		}
		out.MBs[mb.ID] = mb
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.loadDedup(out); err != nil {
		return nil, err
	}
	out.KV = core.NewKVStore()
	err = s.scan(pfxKV, func(k, v []byte) error {
		if len(v) < 8 {
			return errors.New("short entry")
		}
		out.KV.Put(string(k[len(pfxKV):]), core.KVEntry{Height: binary.BigEndian.Uint64(v), Value: bytes.Clone(v[8:])})
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = s.scan(pfxWindow, func(k, _ []byte) error {
		rest := k[len(pfxWindow):]
		if len(rest) != 8+1+32 {
			return errors.New("malformed key")
		}
		out.Window = append(out.Window, types.MBView{View: types.View(binary.BigEndian.Uint64(rest)), ID: types.Hash(rest[9:])})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !found && len(out.Blocks) == 0 && len(out.MBs) == 0 {
		return nil, nil
	}
	return out, nil
}

func (s *PebbleStore) loadDedup(out *core.Saved) error {
	out.Dedup = core.NewDedupWindow(s.gen)
	err := s.scan(pfxDedup, func(k, v []byte) error {
		rest := k[len(pfxDedup):]
		if len(rest) < 8 {
			return errors.New("malformed key")
		}
		var seg storedSegment
		if err := rlp.DecodeBytes(v, &seg); err != nil {
			return err
		}
		// An older generation not yet compacted away is left out.
		out.Dedup.Load(binary.BigEndian.Uint64(rest), &core.CommitInfo{View: seg.View, Height: seg.Height, Block: seg.Block}, seg.IDs)
		return nil
	})
	return err
}

// scan visits every record under pfx, checksums checked.
func (s *PebbleStore) scan(pfx []byte, visit func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: pfx, UpperBound: prefixEnd(pfx)})
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := bytes.Clone(it.Key())
		v, err := unseal(s.dir, k, bytes.Clone(it.Value()))
		if err != nil {
			return err
		}
		if err := visit(k, v); err != nil {
			return fmt.Errorf("store %s: record %q is damaged: %w", s.dir, printableKey(k), err)
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("store %s: reading %q records: %w", s.dir, pfx, err)
	}
	return nil
}

// fatalError is what panicLogger panics with.
type fatalError string

// panicLogger is quietLogger, but a fatal error panics (see OpenPebbleStoreFS).
type panicLogger struct{ quietLogger }

func (panicLogger) Fatalf(format string, args ...any) {
	panic(fatalError(fmt.Sprintf(format, args...)))
}

// quietLogger keeps Pebble's informational messages out of the replica's output; errors go to
// standard error.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
	os.Exit(1)
}
