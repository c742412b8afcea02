package edbatch

// The batch: collecting signatures, one multi-scalar multiplication for
// all of them, and bisection when it fails.

import (
	"crypto/ed25519"
	"crypto/rand"

	"filippo.io/edwards25519"
)

// Batch collects signatures to verify together. The zero value is an
// empty batch ready to use. A Batch is not safe for concurrent use.
type Batch struct {
	entries []entry
}

// entry is one signature added to a batch: ok is false when it failed to
// parse (it is invalid whatever the others are).
type entry struct {
	pub [32]byte
	e   parsed
	ok  bool
}

// Add adds pub's signature sig of msg to the batch. The batch keeps no
// reference to pub, msg or sig: the signature is parsed and k hashed now.
func (b *Batch) Add(pub ed25519.PublicKey, msg, sig []byte) {
	e, ok := parse(pub, msg, sig)
	var x entry
	copy(x.pub[:], pub)
	x.e, x.ok = e, ok
	b.entries = append(b.entries, x)
}

// Len is the number of signatures added.
func (b *Batch) Len() int { return len(b.entries) }

// Reset empties the batch, keeping its storage.
func (b *Batch) Reset() { b.entries = b.entries[:0] }

// Verify reports whether every signature in the batch is valid, with one
// multi-scalar multiplication. An empty batch is valid. A false result
// says that at least one is not; true is wrong only with probability
// about 2^-128 per call.
func (b *Batch) Verify() bool {
	return verifyAll(b.entries)
}

// VerifyEach reports, for each signature in the order added, whether it
// is valid. It checks the whole batch at once and, when that fails,
// halves it and checks each half, down to single signatures, so the
// result for each signature is the one Verify gives it alone (up to the
// batch's 2^-128 error) and one bad signature costs about 2·log2(n) batch
// checks instead of n single ones.
func (b *Batch) VerifyEach() []bool {
	out := make([]bool, len(b.entries))
	bisect(b.entries, out)
	return out
}

// bisect sets out[i] for each of es.
func bisect(es []entry, out []bool) {
	switch {
	case len(es) == 0:
		return
	case len(es) == 1:
		out[0] = es[0].ok && es[0].e.check()
		return
	case verifyAll(es):
		for i := range out {
			out[i] = true
		}
		return
	}
	h := len(es) / 2
	bisect(es[:h], out[:h])
	bisect(es[h:], out[h:])
}

// verifyAll checks the batch equation over es.
func verifyAll(es []entry) bool {
	for _, x := range es {
		if !x.ok {
			return false
		}
	}
	switch len(es) {
	case 0:
		return true
	case 1:
		return es[0].e.check()
	}
	zs := make([]byte, 16*len(es))
	if _, err := rand.Read(zs); err != nil {
		panic("edbatch: no randomness: " + err.Error()) // crypto/rand does not fail
	}
	// Points: B, then each R_i, then each distinct A. Scalars: Σ z_i s_i,
	// −z_i, −Σ z_i k_i over the signatures under that A.
	n := 1 + len(es) + len(es)
	scalars := make([]*edwards25519.Scalar, 1, n)
	points := make([]*edwards25519.Point, 1, n)
	bScalar := edwards25519.NewScalar()
	scalars[0], points[0] = bScalar, edwards25519.NewGeneratorPoint()
	keyAt := make(map[[32]byte]int, len(es))
	var aScalars []*edwards25519.Scalar
	var aPoints []*edwards25519.Point
	var buf [32]byte
	for i, x := range es {
		copy(buf[:16], zs[16*i:16*i+16])
		z, err := edwards25519.NewScalar().SetCanonicalBytes(buf[:])
		if err != nil {
			panic("edbatch: a 128-bit scalar is not canonical") // cannot happen
		}
		bScalar.MultiplyAdd(z, x.e.s, bScalar)
		zk := edwards25519.NewScalar().Multiply(z, x.e.k)
		scalars = append(scalars, edwards25519.NewScalar().Negate(z))
		points = append(points, x.e.r)
		if j, ok := keyAt[x.pub]; ok {
			aScalars[j].Subtract(aScalars[j], zk)
			continue
		}
		keyAt[x.pub] = len(aPoints)
		aScalars = append(aScalars, zk.Negate(zk))
		aPoints = append(aPoints, x.e.a)
	}
	scalars = append(scalars, aScalars...)
	points = append(points, aPoints...)
	q := new(edwards25519.Point).VarTimeMultiScalarMult(scalars, points)
	q.MultByCofactor(q)
	return q.Equal(edwards25519.NewIdentityPoint()) == 1
}
