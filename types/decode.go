package types

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/kelindar/bitmap"
)

// The wire decoder. It reads the RLP encoding that Encode writes (go-ethereum's rules: canonical
// sizes and integers, struct fields in order, `rlp:"nil"` pointers as empty lists) straight from
// the frame, and bounds what it allocates by the bytes it has read: before it allocates a list, it
// walks the list's elements (which allocates nothing), refuses more elements than the protocol
// allows and elements that no valid message holds (an empty transaction or signature, a reference
// or microblock too short to be one), and then allocates the list at its exact length (the bytes of
// a microblock's or block's transactions in one allocation; see txLayout). A decoded
// element therefore stands for encoded bytes of its own; the largest ratio is a one-byte
// transaction, whose Tx value takes 64 bytes, and lists of transactions are capped by
// MaxPayloadItems (and the microblocks of a fetch response by MaxFetchTxs together).

// MaxFetchTxs bounds the transactions of a fetch response, over all its microblocks. A responder
// sends at most 8 MiB of transactions (or a single microblock, of at most MaxPayloadItems): that
// is at most 8 Mi transactions, of one byte each.
const MaxFetchTxs = 8 * MaxPayloadItems

// Smallest encoded contents (list headers excluded) of the list elements the decoder refuses to
// allocate for when shorter: an ID and an empty proof, an ID and a view, a one-byte key with an
// empty value and a height, and a microblock with one one-byte transaction and an ECDSA signature.
const (
	minRefContent    = rlpHash + 1
	minMBViewContent = rlpHash + 1
	minKVContent     = 3
	minMBContent     = rlpHash + 4 + 2 + 2 + SigSize
)

// fields is what is left of the values of one RLP list, read in order.
type fields []byte

// next splits off the next value.
func (f *fields) next(what string) (rlp.Kind, []byte, error) {
	if len(*f) == 0 {
		return 0, nil, fmt.Errorf("%s: missing (too few elements)", what)
	}
	k, c, rest, err := rlp.Split(*f)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", what, err)
	}
	*f = rest
	return k, c, nil
}

// end refuses values left over.
func (f fields) end(what string) error {
	if len(f) > 0 {
		return fmt.Errorf("%s: too many elements", what)
	}
	return nil
}

func (f *fields) uint(what string, bits int) (uint64, error) {
	k, c, err := f.next(what)
	if err != nil {
		return 0, err
	}
	return rlpUintValue(what, k, c, bits)
}

// rlpUintValue decodes a canonical RLP integer of at most bits bits.
func rlpUintValue(what string, k rlp.Kind, c []byte, bits int) (uint64, error) {
	switch {
	case k == rlp.List:
		return 0, fmt.Errorf("%s: expected an integer, got a list", what)
	case k == rlp.Byte:
		if c[0] == 0 {
			return 0, fmt.Errorf("%s: %w", what, rlp.ErrCanonInt)
		}
		return uint64(c[0]), nil
	case len(c) > bits/8:
		return 0, fmt.Errorf("%s: integer of %d bytes overflows %d bits", what, len(c), bits)
	case len(c) > 0 && c[0] == 0:
		return 0, fmt.Errorf("%s: %w", what, rlp.ErrCanonInt)
	}
	var v uint64
	for _, b := range c {
		v = v<<8 | uint64(b)
	}
	return v, nil
}

func (f *fields) view(what string) (View, error) {
	v, err := f.uint(what, 64)
	return View(v), err
}

func (f *fields) node(what string) (NodeID, error) {
	v, err := f.uint(what, 32)
	return NodeID(v), err
}

func (f *fields) bool(what string) (bool, error) {
	v, err := f.uint(what, 8)
	if err == nil && v > 1 {
		err = fmt.Errorf("%s: invalid boolean %d", what, v)
	}
	return v == 1, err
}

// bytes returns a copy of the next byte string (empty, not nil, when it is empty).
func (f *fields) bytes(what string) ([]byte, error) {
	k, c, err := f.next(what)
	if err != nil {
		return nil, err
	}
	if k == rlp.List {
		return nil, fmt.Errorf("%s: expected a byte string, got a list", what)
	}
	return clone(c), nil
}

// clone copies b into a slice of its exact size (empty, not nil, when b is empty): bytes.Clone
// rounds a short slice up to 8 bytes, which is 8 times a one-byte transaction.
func clone(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

func (f *fields) hash(what string) (h Hash, err error) {
	k, c, err := f.next(what)
	switch {
	case err != nil:
		return h, err
	case k == rlp.List:
		return h, fmt.Errorf("%s: expected a hash, got a list", what)
	case len(c) != len(h):
		return h, fmt.Errorf("%s: hash of %d bytes, want %d", what, len(c), len(h))
	}
	copy(h[:], c)
	return h, nil
}

// list returns the values of the next list.
func (f *fields) list(what string) (fields, error) {
	k, c, err := f.next(what)
	if err != nil {
		return nil, err
	}
	if k != rlp.List {
		return nil, fmt.Errorf("%s: expected a list", what)
	}
	return fields(c), nil
}

// optional returns the values of the next list, or ok false for the empty list that stands for a
// nil pointer (`rlp:"nil"`).
func (f *fields) optional(what string) (v fields, ok bool, err error) {
	v, err = f.list(what)
	return v, err == nil && len(v) > 0, err
}

// walk checks the elements of a list's content c with check, without decoding them, and counts
// them; it refuses more than limit. Nothing is allocated unless it fails.
func walk(c fields, limit int, what string, check func(i int, k rlp.Kind, v []byte) error) (int, error) {
	n := 0
	for rest := []byte(c); len(rest) > 0; n++ {
		if n == limit {
			if more, err := rlp.CountValues(rest); err == nil {
				return 0, fmt.Errorf("%d %s exceeds %d", n+more, what, limit)
			}
			return 0, fmt.Errorf("more than %d %s", limit, what)
		}
		k, v, r, err := rlp.Split(rest)
		if err != nil {
			return 0, fmt.Errorf("%s: element %d: %w", what, n, err)
		}
		if check != nil {
			if err := check(n, k, v); err != nil {
				return 0, err
			}
		}
		rest = r
	}
	return n, nil
}

// structs checks that every element of a list is a list of at least least content bytes (what
// the smallest valid element takes) and counts them, refusing more than limit.
func structs(c fields, limit, least int, what, elem string) (int, error) {
	return walk(c, limit, what, func(i int, k rlp.Kind, v []byte) error {
		switch {
		case k != rlp.List:
			return fmt.Errorf("%s %d: expected a list", elem, i)
		case len(v) < least:
			return fmt.Errorf("%s %d: %d bytes, less than the %d of the smallest valid one", elem, i, len(v), least)
		}
		return nil
	})
}

// decoder decodes the messages of one frame.
type decoder struct{}

// txs decodes a list of transactions: byte strings of 1..MaxTxSize bytes, at most MaxPayloadItems.
func (d *decoder) txs(f *fields, what string, layout txLayout) ([]Tx, error) {
	c, err := f.list(what)
	if err != nil {
		return nil, err
	}
	total := 0
	n, err := walk(c, MaxPayloadItems, "transactions", func(i int, k rlp.Kind, v []byte) error {
		total += len(v)
		switch {
		case k == rlp.List:
			return fmt.Errorf("transaction %d: expected a byte string, got a list", i)
		case len(v) == 0:
			return fmt.Errorf("transaction %d has 0 bytes, want 1..%d", i, MaxTxSize)
		case len(v) > MaxTxSize:
			return fmt.Errorf("transaction %d: %d bytes exceeds the limit of %d", i, len(v), MaxTxSize)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Tx, n)
	var buf []byte
	if layout == txsTogether {
		buf = make([]byte, 0, total)
	}
	for i := range out {
		_, v, _ := c.next("transaction") // checked by walk
		if layout == txsApart {
			out[i] = NewTx(clone(v))
			continue
		}
		off := len(buf)
		buf = append(buf, v...)
		out[i] = NewTx(buf[off:len(buf):len(buf)])
	}
	return out, nil
}

// txLayout says whether decoded transactions may share one buffer.
type txLayout bool

const (
	// txsTogether: the transactions live and go together, with the microblock or block that
	// holds them; their bytes share one allocation (one instead of one per transaction).
	txsTogether txLayout = true
	// txsApart: each transaction may outlive the others (a forward's, kept one by one in the
	// leader's pool), so each has its own copy and none pins the others' bytes.
	txsApart txLayout = false
)

// wireSigs decodes the signatures of a certificate: at most MaxNodes, each of SigSize or BLSSigSize
// bytes (Validate's rule), copied into one buffer.
func wireSigs(f *fields) ([][]byte, error) {
	c, err := f.list("signatures")
	if err != nil {
		return nil, err
	}
	total := 0
	n, err := walk(c, MaxNodes, "signatures", func(i int, k rlp.Kind, v []byte) error {
		if k == rlp.List {
			return fmt.Errorf("signature %d: expected a byte string, got a list", i)
		}
		if err := checkSig(v); err != nil {
			return fmt.Errorf("signature %d: %w", i, err)
		}
		total += len(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out, buf := make([][]byte, n), make([]byte, total)
	for i := range out {
		_, v, _ := c.next("signature") // checked by walk
		m := copy(buf, v)
		out[i], buf = buf[:m:m], buf[m:]
	}
	return out, nil
}

// wireSigners decodes a signer bitmap of at most MaxNodes/64 words.
func wireSigners(f *fields) (bitmap.Bitmap, error) {
	c, err := f.list("signers")
	if err != nil {
		return nil, err
	}
	n, err := rlp.CountValues(c)
	if err != nil {
		return nil, fmt.Errorf("signers: %w", err)
	}
	if n > MaxNodes/64 {
		return nil, fmt.Errorf("signer bitmap of %d words exceeds %d", n, MaxNodes/64)
	}
	bm := make(bitmap.Bitmap, n)
	for i := range bm {
		if bm[i], err = c.uint("signer word", 64); err != nil {
			return nil, err
		}
	}
	return bm, nil
}

// hashes decodes a list of at most limit hashes.
func hashes(f *fields, limit int, what string) ([]Hash, error) {
	c, err := f.list(what)
	if err != nil {
		return nil, err
	}
	n, err := walk(c, limit, what, func(i int, k rlp.Kind, v []byte) error {
		if k == rlp.List || len(v) != len(Hash{}) {
			return fmt.Errorf("%s: element %d is not a hash of %d bytes", what, i, len(Hash{}))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Hash, n)
	for i := range out {
		_, v, _ := c.next(what) // checked by walk
		copy(out[i][:], v)
	}
	return out, nil
}

func (d *decoder) qc(c fields) (*QC, error) {
	q := new(QC)
	var err error
	if q.View, err = c.view("view"); err != nil {
		return nil, err
	}
	if q.BlockID, err = c.hash("block ID"); err != nil {
		return nil, err
	}
	if q.Signers, err = wireSigners(&c); err != nil {
		return nil, err
	}
	if q.Sigs, err = wireSigs(&c); err != nil {
		return nil, err
	}
	return q, c.end("QC")
}

func (d *decoder) tc(c fields) (*TC, error) {
	t := new(TC)
	var err error
	if t.View, err = c.view("view"); err != nil {
		return nil, err
	}
	if t.Signers, err = wireSigners(&c); err != nil {
		return nil, err
	}
	if t.Sigs, err = wireSigs(&c); err != nil {
		return nil, err
	}
	return t, c.end("TC")
}

func (d *decoder) proof(c fields) (*Proof, error) {
	p := new(Proof)
	var err error
	if p.MBID, err = c.hash("microblock ID"); err != nil {
		return nil, err
	}
	if p.View, err = c.view("view"); err != nil {
		return nil, err
	}
	if p.Signers, err = wireSigners(&c); err != nil {
		return nil, err
	}
	if p.Sigs, err = wireSigs(&c); err != nil {
		return nil, err
	}
	return p, c.end("proof")
}

func (d *decoder) vote(c fields) (*Vote, error) {
	v := new(Vote)
	var err error
	if v.View, err = c.view("view"); err != nil {
		return nil, err
	}
	if v.BlockID, err = c.hash("block ID"); err != nil {
		return nil, err
	}
	if v.Voter, err = c.node("voter"); err != nil {
		return nil, err
	}
	if v.Sig, err = c.bytes("signature"); err != nil {
		return nil, err
	}
	return v, c.end("vote")
}

func (d *decoder) refs(f *fields) ([]MBRef, error) {
	c, err := f.list("references")
	if err != nil {
		return nil, err
	}
	n, err := structs(c, MaxPayloadItems, minRefContent, "microblock references", "reference")
	if err != nil {
		return nil, err
	}
	out := make([]MBRef, n)
	for i := range out {
		r, _ := c.list("reference") // checked by structs
		if out[i].ID, err = r.hash("ID"); err != nil {
			return nil, fmt.Errorf("reference %d: %w", i, err)
		}
		pc, ok, err := r.optional("proof")
		if err == nil && ok {
			out[i].Proof, err = d.proof(pc)
		}
		if err == nil {
			err = r.end("reference")
		}
		if err != nil {
			return nil, fmt.Errorf("reference %d: %w", i, err)
		}
	}
	return out, nil
}

func (d *decoder) payload(c fields) (*Payload, error) {
	p := new(Payload)
	var err error
	if p.Txs, err = d.txs(&c, "transactions", txsTogether); err != nil {
		return nil, err
	}
	if p.Refs, err = d.refs(&c); err != nil {
		return nil, err
	}
	return p, c.end("payload")
}

func (d *decoder) block(c fields) (*Block, error) {
	b := new(Block)
	var err error
	if b.View, err = c.view("view"); err != nil {
		return nil, err
	}
	if b.Height, err = c.uint("height", 64); err != nil {
		return nil, err
	}
	if b.Parent, err = c.hash("parent"); err != nil {
		return nil, err
	}
	if qc, ok, err := c.optional("QC"); err != nil {
		return nil, err
	} else if ok {
		if b.QC, err = d.qc(qc); err != nil {
			return nil, fmt.Errorf("QC: %w", err)
		}
	}
	if tc, ok, err := c.optional("TC"); err != nil {
		return nil, err
	} else if ok {
		if b.TC, err = d.tc(tc); err != nil {
			return nil, fmt.Errorf("TC: %w", err)
		}
	}
	pc, err := c.list("payload")
	if err != nil {
		return nil, err
	}
	if b.Payload, err = d.payload(pc); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if b.Proposer, err = c.node("proposer"); err != nil {
		return nil, err
	}
	if b.Sig, err = c.bytes("signature"); err != nil {
		return nil, err
	}
	return b, c.end("block")
}

func (d *decoder) microBlock(c fields) (*MicroBlock, error) {
	mb := new(MicroBlock)
	var err error
	if mb.ID, err = c.hash("ID"); err != nil {
		return nil, err
	}
	if mb.Creator, err = c.node("creator"); err != nil {
		return nil, err
	}
	if mb.View, err = c.view("view"); err != nil {
		return nil, err
	}
	if mb.Sender, err = c.node("sender"); err != nil {
		return nil, err
	}
	hops, err := c.uint("hops", 8)
	if err != nil {
		return nil, err
	}
	mb.Hops = uint8(hops)
	if mb.Txs, err = d.txs(&c, "transactions", txsTogether); err != nil {
		return nil, err
	}
	if mb.Sig, err = c.bytes("signature"); err != nil {
		return nil, err
	}
	return mb, c.end("microblock")
}

func (d *decoder) snapshot(c fields) (*Snapshot, error) {
	s := new(Snapshot)
	bc, err := c.list("block")
	if err != nil {
		return nil, err
	}
	if s.Block, err = d.block(bc); err != nil {
		return nil, fmt.Errorf("block: %w", err)
	}
	qc, err := c.list("certificate")
	if err != nil {
		return nil, err
	}
	if s.Cert, err = d.qc(qc); err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	if s.Digest, err = c.hash("digest"); err != nil {
		return nil, err
	}
	if s.Delivered, err = c.uint("delivered", 64); err != nil {
		return nil, err
	}
	if s.TxPrev, err = hashes(&c, MaxSnapshotIDs, "previous transaction IDs"); err != nil {
		return nil, err
	}
	if s.TxCur, err = hashes(&c, MaxSnapshotIDs, "current transaction IDs"); err != nil {
		return nil, err
	}
	mc, err := c.list("microblocks")
	if err != nil {
		return nil, err
	}
	n, err := structs(mc, MaxSnapshotIDs, minMBViewContent, "delivered microblocks", "delivered microblock")
	if err != nil {
		return nil, err
	}
	s.MBs = make([]MBView, n)
	for i := range s.MBs {
		e, _ := mc.list("delivered microblock") // checked by structs
		if s.MBs[i].ID, err = e.hash("ID"); err == nil {
			if s.MBs[i].View, err = e.view("view"); err == nil {
				err = e.end("delivered microblock")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("delivered microblock %d: %w", i, err)
		}
	}
	if s.KV, err = kvPairs(&c); err != nil {
		return nil, err
	}
	return s, c.end("snapshot")
}

// kvPairs decodes the key-value store of a snapshot. Keys are checked as Validate does (not empty,
// no zero byte, sorted and distinct) before anything is allocated.
func kvPairs(f *fields) ([]KVPair, error) {
	c, err := f.list("key-value entries")
	if err != nil {
		return nil, err
	}
	var prev []byte
	n, err := walk(c, MaxSnapshotIDs, "key-value entries", func(i int, k rlp.Kind, v []byte) error {
		if k != rlp.List || len(v) < minKVContent {
			return fmt.Errorf("key-value entry %d: expected a list of key, value and height", i)
		}
		e := fields(v)
		kk, key, err := e.next("key")
		switch {
		case err != nil:
			return fmt.Errorf("key-value entry %d: %w", i, err)
		case kk == rlp.List || len(key) == 0 || bytes.IndexByte(key, 0) >= 0:
			return fmt.Errorf("key-value entry %d: a key is not empty and holds no zero byte", i)
		case i > 0 && bytes.Compare(prev, key) >= 0:
			return fmt.Errorf("key-value entry %d: keys are not sorted and distinct", i)
		}
		prev = key
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]KVPair, n)
	for i := range out {
		e, _ := c.list("key-value entry") // checked by walk
		if out[i].Key, err = e.bytes("key"); err == nil {
			if out[i].Value, err = e.bytes("value"); err == nil {
				if out[i].Height, err = e.uint("height", 64); err == nil {
					err = e.end("key-value entry")
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("key-value entry %d: %w", i, err)
		}
	}
	return out, nil
}

func (d *decoder) fetchResponse(c fields) (*FetchResponse, error) {
	l, err := c.list("microblocks")
	if err != nil {
		return nil, err
	}
	n, err := structs(l, MaxFetch, minMBContent, "microblocks", "microblock")
	if err != nil {
		return nil, err
	}
	// Count the transactions of every microblock before decoding any.
	total := 0
	for rest := l; len(rest) > 0; {
		mc, _ := rest.list("microblock") // checked by structs
		fs := []byte(mc)
		for range 5 { // ID, creator, view, sender, hops
			if _, _, r, err := rlp.Split(fs); err == nil {
				fs = r
			}
		}
		if k, tl, _, err := rlp.Split(fs); err == nil && k == rlp.List {
			if k, err := rlp.CountValues(tl); err == nil {
				total += k
			}
		}
	}
	if total > MaxFetchTxs {
		return nil, fmt.Errorf("%d transactions in %d microblocks exceed %d", total, n, MaxFetchTxs)
	}
	r := &FetchResponse{MBs: make([]*MicroBlock, n)}
	for i := range r.MBs {
		mc, _ := l.list("microblock") // checked by structs
		if r.MBs[i], err = d.microBlock(mc); err != nil {
			return nil, fmt.Errorf("microblock %d: %w", i, err)
		}
	}
	return r, c.end("fetch response")
}

// decodeBody decodes the RLP body of a message of kind k.
func decodeBody(k Kind, body []byte) (Message, error) {
	var d decoder
	top := fields(body)
	c, err := top.list("message")
	if err != nil {
		return nil, err
	}
	if len(top) > 0 {
		return nil, fmt.Errorf("%d trailing bytes after the message", len(top))
	}
	switch k {
	case KindBlock:
		return d.block(c)
	case KindVote:
		return d.vote(c)
	case KindTimeout:
		t := new(Timeout)
		if t.View, err = c.view("view"); err != nil {
			return nil, err
		}
		qc, err := c.list("high QC")
		if err != nil {
			return nil, err
		}
		if t.HighQC, err = d.qc(qc); err != nil {
			return nil, fmt.Errorf("high QC: %w", err)
		}
		if t.Sender, err = c.node("sender"); err != nil {
			return nil, err
		}
		if t.Sig, err = c.bytes("signature"); err != nil {
			return nil, err
		}
		if vc, ok, err := c.optional("vote"); err != nil {
			return nil, err
		} else if ok {
			if t.Vote, err = d.vote(vc); err != nil {
				return nil, fmt.Errorf("vote: %w", err)
			}
		}
		return t, c.end("timeout")
	case KindTC:
		return d.tc(c)
	case KindBlockRequest:
		r := new(BlockRequest)
		if r.ID, err = c.hash("ID"); err != nil {
			return nil, err
		}
		return r, c.end("block request")
	case KindBlockResponse:
		bc, err := c.list("block")
		if err != nil {
			return nil, err
		}
		r := new(BlockResponse)
		if r.Block, err = d.block(bc); err != nil {
			return nil, fmt.Errorf("block: %w", err)
		}
		return r, c.end("block response")
	case KindTxForward:
		r := new(TxForward)
		if r.Txs, err = d.txs(&c, "transactions", txsApart); err != nil {
			return nil, err
		}
		return r, c.end("forward")
	case KindMicroBlock:
		return d.microBlock(c)
	case KindAck:
		a := new(Ack)
		if a.MBID, err = c.hash("microblock ID"); err != nil {
			return nil, err
		}
		if a.View, err = c.view("view"); err != nil {
			return nil, err
		}
		if a.Signer, err = c.node("signer"); err != nil {
			return nil, err
		}
		if a.Sig, err = c.bytes("signature"); err != nil {
			return nil, err
		}
		return a, c.end("ack")
	case KindProof:
		return d.proof(c)
	case KindFetchRequest:
		r := new(FetchRequest)
		if r.IDs, err = hashes(&c, MaxFetch, "IDs"); err != nil {
			return nil, err
		}
		return r, c.end("fetch request")
	case KindProofRequest:
		r := new(ProofRequest)
		if r.IDs, err = hashes(&c, MaxFetch, "IDs"); err != nil {
			return nil, err
		}
		return r, c.end("proof request")
	case KindFetchResponse:
		return d.fetchResponse(c)
	case KindLBQuery:
		q := new(LBQuery)
		if q.Nonce, err = c.uint("nonce", 64); err != nil {
			return nil, err
		}
		return q, c.end("load query")
	case KindLBInfo:
		r := new(LBInfo)
		if r.Nonce, err = c.uint("nonce", 64); err != nil {
			return nil, err
		}
		if r.LoadUS, err = c.uint("load", 64); err != nil {
			return nil, err
		}
		if r.Busy, err = c.bool("busy"); err != nil {
			return nil, err
		}
		return r, c.end("load info")
	case KindLBForward:
		mc, err := c.list("microblock")
		if err != nil {
			return nil, err
		}
		r := new(LBForward)
		if r.MB, err = d.microBlock(mc); err != nil {
			return nil, fmt.Errorf("microblock: %w", err)
		}
		return r, c.end("load forward")
	case KindStateRequest:
		r := new(StateRequest)
		if r.Height, err = c.uint("height", 64); err != nil {
			return nil, err
		}
		return r, c.end("state request")
	case KindSnapshot:
		return d.snapshot(c)
	}
	return nil, errors.New("unknown message kind")
}
