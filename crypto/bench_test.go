package crypto

import (
	"testing"

	"github.com/stratusbft/stratus/types"
)

func BenchmarkSign(b *testing.B) {
	signers, _ := SimKeys(1, 1)
	d := types.Keccak([]byte("digest"))
	for i := 0; i < b.N; i++ {
		signers[0].Sign(d)
	}
}

func BenchmarkVerify(b *testing.B) {
	signers, v := SimKeys(1, 1)
	d := types.Keccak([]byte("digest"))
	sig := signers[0].Sign(d)
	for i := 0; i < b.N; i++ {
		if !v.Verify(1, d, sig) {
			b.Fatal("invalid")
		}
	}
}

// BenchmarkVerifyCached: what a replica pays for a signature another replica of the process (or
// its own verification pool) already checked.
func BenchmarkVerifyCached(b *testing.B) {
	signers, v := SimKeys(1, 1)
	c := NewCache(v)
	d := types.Keccak([]byte("digest"))
	sig := signers[0].Sign(d)
	c.Verify(1, d, sig)
	for i := 0; i < b.N; i++ {
		if !c.Verify(1, d, sig) {
			b.Fatal("invalid")
		}
	}
}

// The two signature schemes side by side: make bench reports sign and verify costs of each.
func BenchmarkScheme(b *testing.B) {
	d := types.Keccak([]byte("digest"))
	for _, scheme := range Schemes {
		signers, v, err := SimKeysFor(scheme, 1, 1)
		if err != nil {
			b.Fatal(err)
		}
		sig := signers[0].Sign(d)
		b.Run(scheme+"/sign", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				signers[0].Sign(d)
			}
		})
		b.Run(scheme+"/verify", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if !v.Verify(1, d, sig) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
