package edbatch

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"testing"

	"filippo.io/edwards25519"
	"github.com/stretchr/testify/require"
)

// rfc8032 are the first test vectors of RFC 8032 §7.1 (seed, key,
// message, signature).
var rfc8032 = []struct{ seed, pub, msg, sig string }{
	{
		"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
		"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
		"",
		"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
	},
	{
		"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
		"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
		"72",
		"92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
	},
	{
		"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
		"fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
		"af82",
		"6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
	},
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

func TestRFC8032Vectors(t *testing.T) {
	var b Batch
	for i, v := range rfc8032 {
		seed, pub, msg, sig := unhex(t, v.seed), unhex(t, v.pub), unhex(t, v.msg), unhex(t, v.sig)
		key := ed25519.NewKeyFromSeed(seed)
		require.Equal(t, pub, []byte(key.Public().(ed25519.PublicKey)), "vector %d key", i)
		require.Equal(t, sig, ed25519.Sign(key, msg), "vector %d signature", i)
		require.True(t, Verify(pub, msg, sig), "vector %d", i)
		bad := append([]byte(nil), sig...)
		bad[5] ^= 1
		require.False(t, Verify(pub, msg, bad), "vector %d altered", i)
		b.Add(pub, msg, sig)
	}
	require.True(t, b.Verify())
}

// signed is one signature made for a test.
type signed struct{ pub, msg, sig []byte }

// signMany makes n signatures by keys distinct keys, used in turn.
func signMany(t testing.TB, n, keys int) []signed {
	t.Helper()
	privs := make([]ed25519.PrivateKey, keys)
	for i := range privs {
		_, privs[i], _ = ed25519.GenerateKey(rand.Reader)
	}
	out := make([]signed, n)
	for i := range out {
		k := privs[i%keys]
		msg := fmt.Appendf(nil, "message %d", i)
		out[i] = signed{k.Public().(ed25519.PublicKey), msg, ed25519.Sign(k, msg)}
	}
	return out
}

func batchOf(ss []signed) *Batch {
	var b Batch
	for _, s := range ss {
		b.Add(s.pub, s.msg, s.sig)
	}
	return &b
}

func TestBatchAllGood(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 16, 65} {
		for _, keys := range []int{1, 3, n} {
			if keys == 0 {
				continue
			}
			b := batchOf(signMany(t, n, keys))
			require.Equal(t, n, b.Len())
			require.True(t, b.Verify(), "n=%d keys=%d", n, keys)
			for i, ok := range b.VerifyEach() {
				require.True(t, ok, "n=%d keys=%d: %d", n, keys, i)
			}
		}
	}
}

// TestBatchOneBad puts one bad signature at every position among good
// ones: the batch fails, and VerifyEach rejects that one only.
func TestBatchOneBad(t *testing.T) {
	const n = 17
	good := signMany(t, n, 5)
	spoil := map[string]func(s *signed){
		"sig bit":       func(s *signed) { s.sig = flip(s.sig, 40) },
		"R bit":         func(s *signed) { s.sig = flip(s.sig, 3) },
		"message":       func(s *signed) { s.msg = append(append([]byte(nil), s.msg...), 'x') },
		"other key":     func(s *signed) { s.pub = good[(n+1)/2].pub; s.msg = []byte("not by that key") },
		"short sig":     func(s *signed) { s.sig = s.sig[:63] },
		"s not reduced": func(s *signed) { s.sig = addL(s.sig) },
	}
	for name, f := range spoil {
		for at := range n {
			ss := append([]signed(nil), good...)
			f(&ss[at])
			require.False(t, ed25519.Verify(ss[at].pub, ss[at].msg, ss[at].sig), "%s: the test's bad signature", name)
			b := batchOf(ss)
			require.False(t, b.Verify(), "%s at %d", name, at)
			each := b.VerifyEach()
			for i, ok := range each {
				require.Equal(t, i != at, ok, "%s at %d: signature %d", name, at, i)
			}
		}
	}
}

func TestBatchManyBad(t *testing.T) {
	ss := signMany(t, 40, 40)
	for i := range ss {
		if i%3 == 0 {
			ss[i].sig = flip(ss[i].sig, 50)
		}
	}
	for i, ok := range batchOf(ss).VerifyEach() {
		require.Equal(t, i%3 != 0, ok, "signature %d", i)
	}
}

func flip(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x10
	return out
}

// ell is the group order ℓ, little-endian.
var ell = [32]byte{
	0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
	0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
}

// addL returns sig with s + ℓ in place of s (the same scalar, not
// reduced; it fits in 32 bytes for every s < ℓ).
func addL(sig []byte) []byte {
	out := append([]byte(nil), sig...)
	carry := 0
	for i := range 32 {
		v := int(out[32+i]) + int(ell[i]) + carry
		out[32+i], carry = byte(v), v>>8
	}
	return out
}

// TestMalformed: keys and signatures of the wrong size, a key and an R
// that do not decode, a non-canonical s: rejected alone and in a batch,
// as crypto/ed25519 rejects them.
func TestMalformed(t *testing.T) {
	good := signMany(t, 1, 1)[0]
	notOnCurve := offCurve(t)
	cases := map[string]signed{
		"empty key":     {nil, good.msg, good.sig},
		"short key":     {good.pub[:31], good.msg, good.sig},
		"long key":      {append(append([]byte(nil), good.pub...), 0), good.msg, good.sig},
		"empty sig":     {good.pub, good.msg, nil},
		"long sig":      {good.pub, good.msg, append(append([]byte(nil), good.sig...), 0)},
		"key off curve": {notOnCurve, good.msg, good.sig},
		"R off curve":   {good.pub, good.msg, append(append([]byte(nil), notOnCurve...), good.sig[32:]...)},
		"s + ℓ":         {good.pub, good.msg, addL(good.sig)},
		"s all ones":    {good.pub, good.msg, append(append([]byte(nil), good.sig[:32]...), allOnes()...)},
	}
	for name, c := range cases {
		if len(c.pub) == ed25519.PublicKeySize {
			require.False(t, ed25519.Verify(c.pub, c.msg, c.sig), name)
		}
		require.False(t, Verify(c.pub, c.msg, c.sig), name)
		b := batchOf([]signed{good, c, good})
		require.False(t, b.Verify(), name)
		require.Equal(t, []bool{true, false, true}, b.VerifyEach(), name)
	}
}

func allOnes() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = 0xff
	}
	return b
}

// offCurve returns 32 bytes that do not decode to a point.
func offCurve(t testing.TB) []byte {
	t.Helper()
	for y := byte(2); y < 255; y++ {
		b := make([]byte, 32)
		b[0] = y
		if _, err := new(edwards25519.Point).SetBytes(b); err != nil {
			return b
		}
	}
	t.Fatal("no small y off the curve")
	return nil
}

// key is a test signing key as its scalar.
type key struct {
	a   *edwards25519.Scalar
	pub []byte
}

func newKey(t testing.TB) key {
	t.Helper()
	var seed [64]byte
	_, _ = rand.Read(seed[:])
	a, err := edwards25519.NewScalar().SetUniformBytes(seed[:])
	require.NoError(t, err)
	return key{a, new(edwards25519.Point).ScalarBaseMult(a).Bytes()}
}

// signWithR signs msg with nonce point R = [r]B + extra (extra nil: none)
// and the R encoding enc (nil: canonical), s = r + k·a.
func (k key) signWithR(t testing.TB, msg []byte, extra *edwards25519.Point, enc func([]byte) []byte) []byte {
	t.Helper()
	var nonce [64]byte
	_, _ = rand.Read(nonce[:])
	r, err := edwards25519.NewScalar().SetUniformBytes(nonce[:])
	require.NoError(t, err)
	R := new(edwards25519.Point).ScalarBaseMult(r)
	if extra != nil {
		R.Add(R, extra)
	}
	rb := R.Bytes()
	if enc != nil {
		rb = enc(rb)
	}
	return k.finish(t, msg, rb, r)
}

// finish completes a signature of msg with the R encoding rb and nonce r:
// rb ‖ s, s = r + k·a with k = SHA-512(rb ‖ A ‖ msg).
func (k key) finish(t testing.TB, msg, rb []byte, r *edwards25519.Scalar) []byte {
	t.Helper()
	h := sha512.New()
	h.Write(rb)
	h.Write(k.pub)
	h.Write(msg)
	kk, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	require.NoError(t, err)
	s := edwards25519.NewScalar().MultiplyAdd(kk, k.a, r)
	return append(append([]byte(nil), rb...), s.Bytes()...)
}

// order8 returns a point of order 8: [ℓ]P for points P until one is.
func order8(t testing.TB) *edwards25519.Point {
	t.Helper()
	ellMinus1 := ell
	ellMinus1[0]--
	lm1, err := edwards25519.NewScalar().SetCanonicalBytes(ellMinus1[:])
	require.NoError(t, err)
	id := edwards25519.NewIdentityPoint()
	for i := range 1000 {
		var b [32]byte
		b[0], b[1] = byte(i), byte(i>>8)
		b[2] = 7
		p, err := new(edwards25519.Point).SetBytes(b[:])
		if err != nil {
			continue
		}
		tp := new(edwards25519.Point).ScalarMult(lm1, p)
		tp.Add(tp, p) // [ℓ]P: P's torsion component
		q := new(edwards25519.Point).Add(tp, tp)
		q.Add(q, q) // [4]T
		if q.Equal(id) == 0 {
			e := new(edwards25519.Point).MultByCofactor(tp)
			require.Equal(t, 1, e.Equal(id))
			return tp
		}
	}
	t.Fatal("no point of order 8 found")
	return nil
}

// TestTorsionR is the documented divergence: a signature whose R has a
// small-order component (made with the private key) fails crypto/ed25519's
// cofactorless check and passes the cofactored one, alone and in a batch
// alike, whatever the batch's random coefficients.
func TestTorsionR(t *testing.T) {
	k := newKey(t)
	tor := order8(t)
	msg := []byte("torsion")
	sig := k.signWithR(t, msg, tor, nil)
	require.False(t, ed25519.Verify(k.pub, msg, sig), "crypto/ed25519 rejects it")
	require.True(t, Verify(k.pub, msg, sig), "the cofactored equation accepts it")
	honest := k.signWithR(t, msg, nil, nil)
	require.True(t, ed25519.Verify(k.pub, msg, honest), "the test's own signing")
	others := signMany(t, 6, 3)
	for range 20 { // the z_i are random: the result must not depend on them
		b := batchOf(append(others, signed{k.pub, msg, sig}, signed{k.pub, msg, sig}))
		require.True(t, b.Verify())
	}
	// A forger without the key gains nothing: altering an honest signature
	// by a torsion point in R changes k, and s no longer fits.
	forged := append(new(edwards25519.Point).Add(mustPoint(t, honest[:32]), tor).Bytes(), honest[32:]...)
	require.False(t, Verify(k.pub, msg, forged))
}

func mustPoint(t testing.TB, b []byte) *edwards25519.Point {
	t.Helper()
	p, err := new(edwards25519.Point).SetBytes(b)
	require.NoError(t, err)
	return p
}

// TestNonCanonicalR: R encoded with y ≥ p, or with a sign bit on x = 0,
// is rejected as crypto/ed25519 rejects it, although the equation holds
// for the decoded point.
func TestNonCanonicalR(t *testing.T) {
	k := newKey(t)
	msg := []byte("identity R")
	ident := edwards25519.NewIdentityPoint()
	// Signatures with R = identity (nonce r = 0), built directly.
	sigWith := func(rb []byte) []byte { return k.finish(t, msg, rb, edwards25519.NewScalar()) } // r = 0: R = identity
	canon := ident.Bytes()
	sig := sigWith(canon)
	require.True(t, ed25519.Verify(k.pub, msg, sig), "canonical identity R")
	require.True(t, Verify(k.pub, msg, sig), "canonical identity R")

	signBit := append([]byte(nil), canon...)
	signBit[31] |= 0x80
	yPlusP := append([]byte(nil), p[:]...) // y = p + 1 ≡ 1
	yPlusP[0]++
	for name, rb := range map[string][]byte{"sign bit on x=0": signBit, "y = p+1": yPlusP} {
		require.Equal(t, 1, mustPoint(t, rb).Equal(ident), "%s decodes to the identity", name)
		s := sigWith(rb)
		require.False(t, ed25519.Verify(k.pub, msg, s), name)
		require.False(t, Verify(k.pub, msg, s), name)
		require.False(t, batchOf([]signed{{k.pub, msg, s}}).Verify(), name)
		require.Equal(t, []bool{false, true}, batchOf([]signed{{k.pub, msg, s}, {k.pub, msg, sig}}).VerifyEach(), name)
	}
}

// TestSmallOrderKey: a key of small order signs anything for anyone under
// the cofactored equation (R = identity, s = 0). crypto/ed25519 does not
// reject such keys either: there the same forgery works for about one
// message in 8 (R must equal −[k]A, one of 8 points), so no key that was
// safe under crypto/ed25519 becomes forgeable here.
func TestSmallOrderKey(t *testing.T) {
	pub := order8(t).Bytes()
	sig := append(edwards25519.NewIdentityPoint().Bytes(), make([]byte, 32)...)
	forgedCrypto := 0
	for i := range 64 {
		msg := fmt.Appendf(nil, "anything %d", i)
		require.True(t, Verify(pub, msg, sig))
		if ed25519.Verify(pub, msg, sig) {
			forgedCrypto++
		}
	}
	require.Positive(t, forgedCrypto, "crypto/ed25519 accepts some of these too")
}

// TestAgreesWithCryptoEd25519 compares the single and batch results with
// crypto/ed25519 over good signatures and random alterations (none of
// which can carry a torsion-only difference).
func TestAgreesWithCryptoEd25519(t *testing.T) {
	ss := signMany(t, 64, 8)
	var buf [3]byte
	for i := range ss {
		_, _ = rand.Read(buf[:])
		switch buf[0] % 4 {
		case 1:
			ss[i].sig = flip(ss[i].sig, int(buf[1])%64)
		case 2:
			ss[i].msg = flip(ss[i].msg, int(buf[1])%len(ss[i].msg))
		case 3:
			ss[i].pub = flip(ss[i].pub, int(buf[1])%32)
		}
	}
	each := batchOf(ss).VerifyEach()
	for i, s := range ss {
		want := ed25519.Verify(s.pub, s.msg, s.sig)
		require.Equal(t, want, Verify(s.pub, s.msg, s.sig), "single %d", i)
		require.Equal(t, want, each[i], "batch %d", i)
	}
}

func TestResetReuses(t *testing.T) {
	b := batchOf(signMany(t, 4, 2))
	b.Add([]byte("short"), nil, nil)
	require.False(t, b.Verify())
	b.Reset()
	require.Zero(t, b.Len())
	require.True(t, b.Verify())
	for _, s := range signMany(t, 3, 3) {
		b.Add(s.pub, s.msg, s.sig)
	}
	require.True(t, b.Verify())
}
