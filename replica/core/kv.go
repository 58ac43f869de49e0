package core

import (
	"bytes"
	"maps"
	"slices"

	"github.com/stratusbft/stratus/types"
)

// The key-value store is the state machine on the committed log: a write (what PUT /{key} submits,
// NewPut) sets its key to its value; every other transaction is ignored by it. Every replica
// applies the transactions it delivers, in delivery order, so replicas that delivered the same
// blocks hold the same store. The store keeps every key ever written (the latest value of each, at
// most one transaction's size). It is part of a replica's saved state (Store) and of the snapshots
// of state transfer, so a replica that restarted or skipped blocks by snapshot reads what the
// others read at the same height.
//
// A write is a command, not a value: PutPrefix, a 16-byte identity, the key (no zero byte), a zero
// byte, the value. The identity makes two PUTs of the same value to the same key two transactions
// (replicas deduplicate by a transaction's hash), so writing a key's earlier value again applies;
// a client that retries one PUT gives both attempts the same identity (an Idempotency-Key) and the
// second is answered as the duplicate it is. The prefix keeps other transactions, whatever bytes
// they hold, from being taken for writes.

// KVEntry is a key's committed value and the height of the block that delivered it.
type KVEntry struct {
	Value  []byte
	Height uint64
}

// KVStore is the committed key-value state a replica delivered: every key's last write.
type KVStore struct {
	m map[string]KVEntry
}

// NewKVStore returns an empty store.
// Get returns key's entry.
func (s *KVStore) Get(key string) (KVEntry, bool) {
	e, ok := s.m[key]
	return e, ok
}

// Put sets key's entry: a store loading what it saved.
func (s *KVStore) Put(key string, e KVEntry) { s.m[key] = e }

// All visits every key and its entry, in no order: a store saving the whole state.
func (s *KVStore) All(visit func(key string, e KVEntry)) {
	for k, e := range s.m {
		visit(k, e)
	}
}

// export lists the store sorted by key, as a snapshot carries it.
func (s *KVStore) export() []types.KVPair {
	keys := slices.Sorted(maps.Keys(s.m))
	out := make([]types.KVPair, len(keys))
	for i, k := range keys {
		e := s.m[k]
		out[i] = types.KVPair{Key: []byte(k), Value: e.Value, Height: e.Height}
	}
	return out
}

// restore replaces the store's contents by a snapshot's, in place.
func (s *KVStore) restore(kv []types.KVPair) {
	s.m = make(map[string]KVEntry, len(kv))
	for _, x := range kv {
		s.m[string(x.Key)] = KVEntry{Value: bytes.Clone(x.Value), Height: x.Height}
	}
}

func NewKVStore() *KVStore { return &KVStore{m: make(map[string]KVEntry)} }

// apply applies one delivered transaction at height and returns the write it made, if any.
func (s *KVStore) apply(t types.Tx, height uint64) (key string, e KVEntry, wrote bool) {
	k, value, ok := SplitKV(t.Data())
	if !ok {
		return "", KVEntry{}, false
	}
	// A copy: the transaction's bytes may share the backing array of a whole request body.
	key, e = string(k), KVEntry{Value: bytes.Clone(value), Height: height}
	s.m[key] = e
	return key, e, true
}

// PutPrefix starts every key-value write; PutIDSize is the length of the identity after it.
const (
	PutPrefix = "\xffstratus/put/"
	PutIDSize = 16
)

// PutOverhead is what a write adds to its key and value: the prefix, the identity and the zero
// byte after the key.
const PutOverhead = len(PutPrefix) + PutIDSize + 1

// PutID is the identity of one write command.
type PutID [PutIDSize]byte

// NewPut returns the write of value to key with identity id. The key must not contain a zero byte.
func NewPut(id PutID, key string, value []byte) types.Tx {
	data := make([]byte, 0, PutOverhead+len(key)+len(value))
	data = append(data, PutPrefix...)
	data = append(data, id[:]...)
	data = append(data, key...)
	data = append(data, 0)
	return types.NewTx(append(data, value...))
}

// SplitKV returns the key and value of a write; ok is false for every other transaction: one
// without PutPrefix, too short for the identity, without the zero byte after the key, or with an
// empty key.
func SplitKV(data []byte) (key, value []byte, ok bool) {
	rest, found := bytes.CutPrefix(data, []byte(PutPrefix))
	if !found || len(rest) < PutIDSize {
		return nil, nil, false
	}
	rest = rest[PutIDSize:]
	i := bytes.IndexByte(rest, 0)
	if i <= 0 {
		return nil, nil, false
	}
	return rest[:i], rest[i+1:], true
}

// BarrierPrefix starts every read-barrier transaction. It contains no zero byte, and neither does
// the rest of a barrier, so the store ignores barriers.
const BarrierPrefix = "\xffstratus/read-barrier/"

// IsBarrier tells read barriers apart from client transactions.
func IsBarrier(data []byte) bool { return bytes.HasPrefix(data, []byte(BarrierPrefix)) }

// KV returns key's entry in the core's store; it must be called from the core's goroutine.
func (c *Core) KV(key string) (KVEntry, bool, error) {
	e, ok := c.kv.m[key]
	return e, ok, nil
}

// KVKeys is the number of keys in the store.
func (c *Core) KVKeys() int { return len(c.kv.m) }
