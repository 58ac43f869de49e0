package simnet

import (
	"fmt"
	"math/bits"
	"time"

	"github.com/kelindar/bitmap"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

// CPU models each replica as a single server: a message it receives waits for the CPU, then
// costs a signature verification per signature it carries plus hashing per byte; a message it
// signs costs a signature before it leaves; a client submission costs hashing its bytes. Without
// a CPU model (nil) replicas compute in no time and only the network limits them.
type CPU struct {
	Scheme      string        // the signature scheme the costs are of
	Sign        time.Duration // one signature
	Verify      time.Duration // one verification
	AggVerify   time.Duration // one aggregate certificate (BLS: one pairing check, the signers' key sum cached)
	Decode      time.Duration // decoding one signature left to an aggregate check (BLS: decompress and subgroup check)
	HashPerByte float64       // SHA-256 (types.IDHash, the hash of transactions and ID lists), nanoseconds per byte
	Measured    string        // where the costs come from, for the output
}

// DefaultCPU holds the costs measured on the 2-core development machine: 23.9 µs per signature
// and 33.4 µs per verification (`go test -bench 'Sign|Verify' ./crypto`), 0.66 ns per hashed byte
// (SHA-256 of 1 MiB blocks, what `-cpu measure` times; BenchmarkIDHash gives 673 ns per KiB).
func DefaultCPU() *CPU {
	return &CPU{Scheme: crypto.SchemeSecp256k1, Sign: 23900 * time.Nanosecond, Verify: 33400 * time.Nanosecond, HashPerByte: 0.66, Measured: "defaults measured on a 2-core development machine"}
}

// DefaultCPUFor holds the default costs of a scheme. BLS12-381 (blst, one core of the 2-core
// development machine, idle): 0.34 ms per signature, 0.94 ms per verification, 1.03 ms per
// aggregate certificate of 267 signers, 0.09 ms to decode a signature (`go test -bench BLS ./crypto`).
func DefaultCPUFor(scheme string) *CPU {
	c := DefaultCPU()
	if scheme == crypto.SchemeBLS {
		c.Scheme, c.Sign, c.Verify, c.AggVerify, c.Decode = scheme, 340*time.Microsecond, 940*time.Microsecond, 1030*time.Microsecond, 90*time.Microsecond
	}
	return c
}

// MeasureCPU times signing, verifying and hashing on this machine (about a quarter of a second).
func MeasureCPU() *CPU { return MeasureCPUFor(crypto.SchemeSecp256k1) }

// MeasureCPUFor times a scheme's signing, verifying (and, for BLS, checking an aggregate
// certificate of 67 signers, whose cost hardly depends on their number) and Keccak on this machine.
func MeasureCPUFor(scheme string) *CPU {
	const signers = 67
	keys, ver, err := crypto.SimKeysFor(scheme, 1, signers)
	if err != nil {
		return DefaultCPUFor(scheme)
	}
	d := types.Keccak([]byte("cpu"))
	k := 200
	if scheme == crypto.SchemeBLS {
		k = 20
	}
	t0 := time.Now()
	var sig []byte
	for i := 0; i < k; i++ {
		sig = keys[0].Sign(d)
	}
	sign := time.Since(t0) / time.Duration(k)
	t0 = time.Now()
	for i := 0; i < k; i++ {
		ver.Verify(1, d, sig)
	}
	verify := time.Since(t0) / time.Duration(k)
	var aggVerify, decode time.Duration
	if agg, ok := crypto.AggregatorOf(ver); ok {
		fresh := make([][]byte, k)
		for i := range fresh {
			fresh[i] = keys[0].Sign(types.Keccak([]byte{byte(i), 'd'}))
		}
		t0 = time.Now()
		for _, sig := range fresh {
			crypto.Decodes(agg, sig)
		}
		decode = time.Since(t0) / time.Duration(k)
		sigs := make([][]byte, signers)
		var set bitmap.Bitmap
		for i := range sigs {
			sigs[i] = keys[i].Sign(d)
			set.Set(uint32(i))
		}
		if a, err := agg.Aggregate(sigs); err == nil {
			agg.VerifyAggregate(set, d, a) // the key sum, cached as replicas cache it
			t0 = time.Now()
			for i := 0; i < k; i++ {
				agg.VerifyAggregate(set, d, a)
			}
			aggVerify = time.Since(t0) / time.Duration(k)
		}
	}
	buf := make([]byte, 1<<20)
	t0 = time.Now()
	for i := 0; i < 16; i++ {
		types.IDHash(buf)
	}
	perByte := float64(time.Since(t0).Nanoseconds()) / float64(16*len(buf))
	return &CPU{Scheme: scheme, Sign: sign, Verify: verify, AggVerify: aggVerify, Decode: decode, HashPerByte: perByte, Measured: "measured on this machine at start"}
}

func (c *CPU) String() string {
	if c == nil {
		return "off"
	}
	agg := ""
	if c.AggVerify > 0 {
		agg = fmt.Sprintf(", aggregate certificate %v, decode %v", c.AggVerify, c.Decode)
	}
	return fmt.Sprintf("%s: sign %v, verify %v%s, hash %.2f ns/B (%s)", c.Scheme, c.Sign, c.Verify, agg, c.HashPerByte, c.Measured)
}

// receiveCost is what handling m, which came from from as size bytes, costs n's CPU.
func (c *CPU) receiveCost(n *Node, from types.NodeID, m types.Message, size int) time.Duration {
	if c == nil {
		return 0
	}
	w := n.sigsToVerify(from, m)
	return time.Duration(w.sigs)*c.Verify + time.Duration(w.aggs)*c.AggVerify + time.Duration(w.decodes)*c.Decode +
		time.Duration(float64(size)*c.HashPerByte)
}

// aggregates reports whether the costs are of a scheme whose certificates are one aggregate.
func (c *CPU) aggregates() bool { return c.Scheme == crypto.SchemeBLS }

// hashCost is what hashing size bytes costs.
func (c *CPU) hashCost(size int) time.Duration {
	if c == nil {
		return 0
	}
	return time.Duration(float64(size) * c.HashPerByte)
}

// signCost is what making m costs its sender: one signature when the sender signs it, and under
// an aggregating scheme one aggregate check for a certificate it formed from signatures it counted
// unchecked (the QC of its proposal, a proof, a TC).
func (c *CPU) signCost(self types.NodeID, m types.Message) time.Duration {
	if c == nil {
		return 0
	}
	formed := time.Duration(0)
	if c.aggregates() {
		formed = c.AggVerify
	}
	switch m := m.(type) {
	case *types.Vote, *types.Ack, *types.Timeout:
		return c.Sign
	case *types.Proof, *types.TC:
		return formed
	case *types.Block:
		if m.Proposer == self {
			return c.Sign + formed
		}
	case *types.MicroBlock:
		if m.Creator == self && m.Sender == self && m.Hops == 0 {
			return c.Sign
		}
	}
	return 0
}

// verifyWork is the signature checks handling a message takes: single signatures, aggregate
// certificates (one pairing check each, BLS), and signatures only decoded, their check left to
// the certificate that counts them.
type verifyWork struct{ sigs, aggs, decodes int }

// sigsToVerify counts the checks n must make to handle m. A certificate (QC, TC, proof) n has
// verified before costs nothing again, as the replicas' verification cache makes it.
func (n *Node) sigsToVerify(from types.NodeID, m types.Message) verifyWork {
	var w verifyWork
	// one is a vote's, ack's or timeout's signature: checked, or, when the scheme aggregates and
	// the signer sent it, decoded for the aggregate that checks it (consensus.Deferral; Streamlet
	// checks each vote, as it echoes them).
	one := func(signer types.NodeID, vote bool) {
		if n.sim.cpu.aggregates() && from == signer && (!vote || n.sim.opts.Spec.Engine != config.EngineStreamlet) {
			w.decodes++
		} else {
			w.sigs++
		}
	}
	cert := func(digest types.Hash, signers []uint64, sigs [][]byte) {
		if len(sigs) == 0 {
			return
		}
		k := crypto.CertKeyOf(digest, signers, sigs)
		if n.verified[k] {
			return
		}
		if n.verified == nil || len(n.verified) >= 1<<16 {
			n.verified = make(map[crypto.CertKey]bool)
		}
		n.verified[k] = true
		if len(sigs) == 1 && len(sigs[0]) == types.BLSSigSize && bitmapCount(signers) > 1 {
			w.aggs++
			return
		}
		w.sigs += len(sigs)
	}
	qc := func(q *types.QC) {
		if q != nil {
			cert(types.VoteDigest(q.View, q.BlockID), q.Signers, q.Sigs)
		}
	}
	proof := func(p *types.Proof) {
		if p != nil {
			cert(types.AckDigest(p.MBID, p.View), p.Signers, p.Sigs)
		}
	}
	block := func(b *types.Block) {
		if b == nil {
			return
		}
		w.sigs++
		qc(b.QC)
		if b.TC != nil {
			cert(types.TimeoutDigest(b.TC.View), b.TC.Signers, b.TC.Sigs)
		}
		if b.Payload != nil {
			for _, r := range b.Payload.Refs {
				proof(r.Proof)
			}
		}
	}
	switch m := m.(type) {
	case *types.Block:
		block(m)
	case *types.BlockResponse:
		block(m.Block)
	case *types.Vote:
		one(m.Voter, true)
	case *types.Ack:
		one(m.Signer, false)
	case *types.MicroBlock, *types.LBForward:
		w.sigs++
	case *types.Timeout:
		one(m.Sender, false)
		qc(m.HighQC)
		if m.Vote != nil {
			w.sigs++
		}
	case *types.TC:
		if m.View >= n.View {
			cert(types.TimeoutDigest(m.View), m.Signers, m.Sigs)
		} // else the engine drops it unchecked: n left that view already, by a TC of its own
	case *types.Proof:
		proof(m)
	case *types.FetchResponse:
		w.sigs += len(m.MBs)
	case *types.Snapshot:
		block(m.Block)
		qc(m.Cert)
	}
	return w
}

func bitmapCount(words []uint64) int {
	n := 0
	for _, x := range words {
		n += bits.OnesCount64(x)
	}
	return n
}

// cpuJob is work waiting for a replica's CPU: its cost, the incarnation it belongs to, and what
// runs when it is done.
type cpuJob struct {
	cost time.Duration
	gen  uint64
	f    func()
}

// process runs f on n's CPU after cost: at once when the CPU is idle and the cost is zero (always
// without a CPU model), else when the CPU gets to it. The CPU serves the consensus lane before
// the data lane, each in order, and never interrupts a job, as a replica's verification workers
// and event loop take consensus messages (votes, acks, proofs, timeouts) before the mempool's: a
// backlog of microblocks to hash does not delay the votes behind it.
func (s *Sim) process(n *Node, lane types.Lane, cost time.Duration, f func()) {
	if cost == 0 && !n.cpuBusy {
		f() // an idle CPU has nothing queued
		return
	}
	n.cpuQueue[lane] = append(n.cpuQueue[lane], cpuJob{cost: cost, gen: n.gen, f: f})
	if !n.cpuBusy {
		s.nextJob(n)
	}
}

// nextJob starts the next job on n's idle CPU, the consensus lane's first.
func (s *Sim) nextJob(n *Node) {
	for l := range n.cpuQueue {
		q := n.cpuQueue[l]
		if len(q) == 0 {
			continue
		}
		j := q[0]
		q[0] = cpuJob{}
		n.cpuQueue[l] = q[1:]
		if len(n.cpuQueue[l]) == 0 {
			n.cpuQueue[l] = q[:0] // reuse the array once the lane drained
		}
		n.cpuBusy = true
		s.busy[n.ID-1] += j.cost
		s.At(j.cost, func() {
			if n.gen == j.gen && n.alive() {
				j.f()
			}
			n.cpuBusy = false
			s.nextJob(n)
		})
		return
	}
}

// dropJobs forgets the work queued for an incarnation that ended (a crash); the job running
// finishes its time and is ignored.
func (n *Node) dropJobs() {
	for l := range n.cpuQueue {
		clear(n.cpuQueue[l])
		n.cpuQueue[l] = n.cpuQueue[l][:0]
	}
}
