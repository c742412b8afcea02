package edbatch

import (
	"crypto/ed25519"
	"fmt"
	"testing"
)

// BenchmarkVerify compares, per signature, crypto/ed25519.Verify, this
// package's single Verify and a batch of n signatures (distinct keys, and
// one key for all), reported as ns/sig. The keys repeat from one
// iteration to the next, so their decoding is cached as a subscriber's
// publishers' keys are.
func BenchmarkVerify(b *testing.B) {
	for _, n := range []int{1, 4, 16, 64, 256} {
		keySets := []int{n, 1}
		if n == 1 {
			keySets = keySets[:1]
		}
		for _, keys := range keySets {
			ss := signMany(b, n, keys)
			name := fmt.Sprintf("n=%d/keys=%d", n, keys)
			b.Run(name+"/crypto", func(b *testing.B) {
				for b.Loop() {
					for _, s := range ss {
						if !ed25519.Verify(s.pub, s.msg, s.sig) {
							b.Fatal("bad")
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sig")
			})
			b.Run(name+"/single", func(b *testing.B) {
				for b.Loop() {
					for _, s := range ss {
						if !Verify(s.pub, s.msg, s.sig) {
							b.Fatal("bad")
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sig")
			})
			b.Run(name+"/batch", func(b *testing.B) {
				var bt Batch
				for b.Loop() {
					bt.Reset()
					for _, s := range ss {
						bt.Add(s.pub, s.msg, s.sig)
					}
					if !bt.Verify() {
						b.Fatal("bad")
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sig")
			})
		}
	}
}
