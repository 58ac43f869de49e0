package simnet

import (
	"fmt"
	"time"

	"github.com/stratusbft/stratus/crypto"
	"github.com/stratusbft/stratus/types"
)

// CPU models each replica as a single server: a message it receives waits for the CPU, then
// costs a signature verification per signature it carries plus hashing per byte; a message it
// signs costs a signature before it leaves; a client submission costs hashing its bytes. Without
// a CPU model (nil) replicas compute in no time and only the network limits them.
type CPU struct {
	Sign        time.Duration // one secp256k1 signature
	Verify      time.Duration // one secp256k1 verification
	HashPerByte float64       // Keccak-256, nanoseconds per byte
	Measured    string        // where the costs come from, for the output
}

// DefaultCPU holds the costs measured on the 2-core development machine: 23.9 µs per signature
// and 33.4 µs per verification (`go test -bench 'Sign|Verify' ./crypto`), 2.6 ns per hashed byte
// (Keccak-256 of 1 MiB blocks, what `-cpu measure` times).
func DefaultCPU() *CPU {
	return &CPU{Sign: 23900 * time.Nanosecond, Verify: 33400 * time.Nanosecond, HashPerByte: 2.6, Measured: "defaults measured on a 2-core development machine"}
}

// MeasureCPU times signing, verifying and hashing on this machine (about a quarter of a second).
func MeasureCPU() *CPU {
	signers, ver := crypto.SimKeys(1, 1)
	d := types.Keccak([]byte("cpu"))
	const k = 200
	t0 := time.Now()
	var sig []byte
	for i := 0; i < k; i++ {
		sig = signers[0].Sign(d)
	}
	sign := time.Since(t0) / k
	t0 = time.Now()
	for i := 0; i < k; i++ {
		ver.Verify(1, d, sig)
	}
	verify := time.Since(t0) / k
	buf := make([]byte, 1<<20)
	t0 = time.Now()
	for i := 0; i < 16; i++ {
		types.Keccak(buf)
	}
	perByte := float64(time.Since(t0).Nanoseconds()) / float64(16*len(buf))
	return &CPU{Sign: sign, Verify: verify, HashPerByte: perByte, Measured: "measured on this machine at start"}
}

func (c *CPU) String() string {
	if c == nil {
		return "off"
	}
	return fmt.Sprintf("sign %v, verify %v, hash %.2f ns/B (%s)", c.Sign, c.Verify, c.HashPerByte, c.Measured)
}

// receiveCost is what handling m, which came as size bytes, costs n's CPU.
func (c *CPU) receiveCost(n *Node, m types.Message, size int) time.Duration {
	if c == nil {
		return 0
	}
	return time.Duration(n.sigsToVerify(m))*c.Verify + time.Duration(float64(size)*c.HashPerByte)
}

// hashCost is what hashing size bytes costs.
func (c *CPU) hashCost(size int) time.Duration {
	if c == nil {
		return 0
	}
	return time.Duration(float64(size) * c.HashPerByte)
}

// signCost is what making m costs its sender: one signature when the sender signs it.
func (c *CPU) signCost(self types.NodeID, m types.Message) time.Duration {
	if c == nil {
		return 0
	}
	switch m := m.(type) {
	case *types.Vote, *types.Ack, *types.Timeout:
		return c.Sign
	case *types.Block:
		if m.Proposer == self {
			return c.Sign
		}
	case *types.MicroBlock:
		if m.Creator == self && m.Sender == self && m.Hops == 0 {
			return c.Sign
		}
	}
	return 0
}

// sigsToVerify counts the signatures n must verify to handle m. A certificate (QC, TC, proof)
// n has verified before costs nothing again, as the replicas' verification cache makes it.
func (n *Node) sigsToVerify(m types.Message) int {
	cert := func(digest types.Hash, signers []uint64, sigs [][]byte) int {
		if len(sigs) == 0 {
			return 0
		}
		k := crypto.CertKeyOf(digest, signers, sigs)
		if n.verified[k] {
			return 0
		}
		if n.verified == nil || len(n.verified) >= 1<<16 {
			n.verified = make(map[crypto.CertKey]bool)
		}
		n.verified[k] = true
		return len(sigs)
	}
	qc := func(q *types.QC) int {
		if q == nil {
			return 0
		}
		return cert(types.VoteDigest(q.View, q.BlockID), q.Signers, q.Sigs)
	}
	proof := func(p *types.Proof) int {
		if p == nil {
			return 0
		}
		return cert(types.AckDigest(p.MBID, p.Epoch), p.Signers, p.Sigs)
	}
	block := func(b *types.Block) int {
		if b == nil {
			return 0
		}
		k := 1 + qc(b.QC)
		if b.TC != nil {
			k += cert(types.TimeoutDigest(b.TC.View), b.TC.Signers, b.TC.Sigs)
		}
		if b.Payload != nil {
			for _, r := range b.Payload.Refs {
				k += proof(r.Proof)
			}
		}
		return k
	}
	switch m := m.(type) {
	case *types.Block:
		return block(m)
	case *types.BlockResponse:
		return block(m.Block)
	case *types.Vote, *types.Ack, *types.MicroBlock, *types.LBForward:
		return 1
	case *types.Timeout:
		k := 1 + qc(m.HighQC)
		if m.Vote != nil {
			k++
		}
		return k
	case *types.TC:
		return cert(types.TimeoutDigest(m.View), m.Signers, m.Sigs)
	case *types.Proof:
		return proof(m)
	case *types.FetchResponse:
		return len(m.MBs)
	case *types.Snapshot:
		return block(m.Block) + qc(m.Cert)
	}
	return 0
}

// process runs f on n's CPU after cost: at once when the CPU is idle and the cost is zero (always
// without a CPU model), else when the CPU has finished what it had and then this.
func (s *Sim) process(n *Node, cost time.Duration, f func()) {
	now := s.Now()
	if cost == 0 && n.cpuFree <= now {
		f()
		return
	}
	start := max(now, n.cpuFree)
	n.cpuFree = start + cost
	s.busy[n.ID-1] += cost
	gen := n.gen
	s.at(n.cpuFree-now, func() {
		if n.gen == gen && n.alive() {
			f()
		}
	})
}
