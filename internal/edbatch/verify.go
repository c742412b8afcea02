package edbatch

// Parsing one signature and the single verification.

import (
	"crypto/ed25519"
	"crypto/sha512"

	"filippo.io/edwards25519"
)

// parsed is one signature ready for a verification equation.
type parsed struct {
	a, r *edwards25519.Point // a is shared (decodeKey): never modified
	s, k *edwards25519.Scalar
}

// p is the field prime 2^255 − 19, little-endian.
var p = [32]byte{
	0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
}

// canonicalPoint reports whether b, which decodes to a curve point, is
// that point's canonical encoding: its y below p, and no sign bit on a
// point whose x is zero (y = ±1, the only such points).
func canonicalPoint(b []byte) bool {
	var y [32]byte
	copy(y[:], b)
	sign := y[31] >> 7
	y[31] &= 0x7f
	for i := 31; i >= 0; i-- { // y < p, compared from the top byte down
		if y[i] != p[i] {
			if y[i] > p[i] {
				return false
			}
			break
		}
		if i == 0 {
			return false // y == p
		}
	}
	if sign == 0 {
		return true
	}
	var one, minusOne [32]byte
	one[0] = 1
	minusOne = p
	minusOne[0]--
	return y != one && y != minusOne
}

// parse decodes pub and sig and hashes k for msg. ok is false when the
// signature cannot verify whatever the equation says: a key or signature
// of the wrong size, a non-canonical s or R, a point that does not decode.
func parse(pub ed25519.PublicKey, msg, sig []byte) (parsed, bool) {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return parsed{}, false
	}
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(sig[32:])
	if err != nil {
		return parsed{}, false
	}
	if !canonicalPoint(sig[:32]) {
		return parsed{}, false
	}
	r, err := new(edwards25519.Point).SetBytes(sig[:32])
	if err != nil {
		return parsed{}, false
	}
	a, err := decodeKey(pub)
	if err != nil {
		return parsed{}, false
	}
	h := sha512.New()
	h.Write(sig[:32])
	h.Write(pub)
	h.Write(msg)
	var d [64]byte
	k, err := new(edwards25519.Scalar).SetUniformBytes(h.Sum(d[:0]))
	if err != nil {
		return parsed{}, false // cannot happen: the digest is 64 bytes
	}
	return parsed{a: a, r: r, s: s, k: k}, true
}

// Verify reports whether sig is pub's signature of msg under the
// package's acceptance rule (cofactored, see the package doc): it accepts
// every signature crypto/ed25519.Verify accepts, and also those whose
// difference from the cofactorless equation is a small-order point.
func Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	e, ok := parse(pub, msg, sig)
	if !ok {
		return false
	}
	return e.check()
}

// check evaluates the cofactored equation for one signature:
// [8]([s]B − [k]A − R) = 0.
func (e parsed) check() bool {
	minusK := new(edwards25519.Scalar).Negate(e.k)
	q := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(minusK, e.a, e.s)
	q.Subtract(q, e.r)
	q.MultByCofactor(q)
	return q.Equal(edwards25519.NewIdentityPoint()) == 1
}
