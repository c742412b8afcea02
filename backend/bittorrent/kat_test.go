package bittorrent

import (
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"testing"

	"filippo.io/edwards25519"
	"github.com/anacrolix/dht/v2/bep44"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test vectors published in BEP44 ("test vectors" section). The spec
// lists the 64-byte private key in its expanded form (the SHA-512 of a seed
// that is not published: clamped scalar ‖ nonce prefix), so its first half
// is not an RFC 8032 seed: ed25519.NewKeyFromSeed of it gives another key.
// The signatures are reproduced below by signing with the expanded key.
const (
	katPrivate   = "e06d3183d14159228433ed599221b80bd0a5ce8352e4bdf0262f76786ef1c74db7e7a9fea2c0eb269d61e3b38e450a22e754941ac78479d6c54e1faf6037881d"
	katPublic    = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548"
	katSig       = "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01"
	katSaltSig   = "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17ddf9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08"
	katTarget    = "4a533d47ec9c7d95b1ad75f576cffc641853b750"
	katSaltTgt   = "411eba73b6f087ca51a3795d9c8c938d365e32c1"
	katSaltValue = "foobar"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// expandedSign is Ed25519 signing (RFC 8032 §5.1.6) from an expanded
// private key h = scalar ‖ prefix, which is what BEP44 publishes.
func expandedSign(t *testing.T, h, pub, msg []byte) []byte {
	t.Helper()
	s, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	require.NoError(t, err)
	mh := sha512.New()
	mh.Write(h[32:])
	mh.Write(msg)
	r, err := edwards25519.NewScalar().SetUniformBytes(mh.Sum(nil))
	require.NoError(t, err)
	R := new(edwards25519.Point).ScalarBaseMult(r)
	kh := sha512.New()
	kh.Write(R.Bytes())
	kh.Write(pub)
	kh.Write(msg)
	k, err := edwards25519.NewScalar().SetUniformBytes(kh.Sum(nil))
	require.NoError(t, err)
	S := edwards25519.NewScalar().MultiplyAdd(k, s, r)
	return append(R.Bytes(), S.Bytes()...)
}

func TestKnownAnswerKey(t *testing.T) {
	// The published public key is the published (expanded) private
	// key's scalar times the base point.
	h := unhex(t, katPrivate)
	s, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	require.NoError(t, err)
	pub := new(edwards25519.Point).ScalarBaseMult(s).Bytes()
	assert.Equal(t, katPublic, hex.EncodeToString(pub))
	// And the first half is not a seed of that key.
	other := ed25519.NewKeyFromSeed(h[:32]).Public().(ed25519.PublicKey)
	assert.NotEqual(t, katPublic, hex.EncodeToString(other))
}

// TestSignerMatchesExpandedForm checks that this package's signer (a
// standard seed key) and the expanded-key signer agree, so that the
// vectors' exact bytes below speak for signItem.
func TestSignerMatchesExpandedForm(t *testing.T) {
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	digest := sha512.Sum512(key.Seed())
	msg := SignedBuffer([]byte("salt"), 7, EncodeValue([]byte("value")))
	it := signItem(key, []byte("salt"), 7, EncodeValue([]byte("value")))
	assert.Equal(t, it.Sig[:], expandedSign(t, digest[:], key.Public().(ed25519.PublicKey), msg))
}

func TestKnownAnswerEncoding(t *testing.T) {
	assert.Equal(t, "12:Hello World!", string(EncodeValue([]byte("Hello World!"))))
	assert.Equal(t, "3:seqi1e1:v12:Hello World!", string(SignedBuffer(nil, 1, EncodeValue([]byte("Hello World!")))))
	assert.Equal(t, "4:salt6:foobar3:seqi1e1:v12:Hello World!", string(SignedBuffer([]byte(katSaltValue), 1, EncodeValue([]byte("Hello World!")))))
}

func TestKnownAnswerSignatures(t *testing.T) {
	h := unhex(t, katPrivate)
	pub := ed25519.PublicKey(unhex(t, katPublic))
	v := EncodeValue([]byte("Hello World!"))
	for _, tc := range []struct {
		name, salt, sig, target string
	}{
		{"no salt", "", katSig, katTarget},
		{"salt foobar", katSaltValue, katSaltSig, katSaltTgt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			salt := []byte(tc.salt)
			sig := expandedSign(t, h, pub, SignedBuffer(salt, 1, v))
			assert.Equal(t, tc.sig, hex.EncodeToString(sig), "signature")
			var it item
			it.Seq, it.EncodedV = 1, v
			copy(it.Sig[:], sig)
			tgt := MutableTarget(pub, salt)
			assert.Equal(t, tc.target, hex.EncodeToString(tgt[:]), "target")
			assert.True(t, it.verify(pub, salt))
			// The published signature verifies with our buffer, and the
			// library (another implementation of the same spec) agrees.
			assert.True(t, ed25519.Verify(pub, SignedBuffer(salt, 1, v), unhex(t, tc.sig)))
			assert.True(t, bep44.Verify(pub, salt, 1, v, unhex(t, tc.sig)))
			// Any change to seq, value or salt breaks it.
			assert.False(t, ed25519.Verify(pub, SignedBuffer(salt, 2, v), it.Sig[:]))
			assert.False(t, ed25519.Verify(pub, SignedBuffer(append(salt, 'x'), 1, v), it.Sig[:]))
		})
	}
}

func TestDecodeValue(t *testing.T) {
	for _, ok := range []string{"0:", "1:x", "12:Hello World!"} {
		_, err := DecodeValue([]byte(ok))
		assert.NoError(t, err, ok)
	}
	for _, bad := range []string{"", ":", "01:x", "1:", "2:x", "1:xy", "i1e", "l1:xe", "-1:", "+1:x", "x:y"} {
		_, err := DecodeValue([]byte(bad))
		assert.Error(t, err, bad)
	}
}

func TestKeySalt(t *testing.T) {
	short := keySalt(nil, "k")
	assert.Equal(t, []byte{0, saltInline, 'k'}, short)
	long := make([]byte, 100)
	for i := range long {
		long[i] = 'a'
	}
	s1 := keySalt(nil, string(long))
	assert.Len(t, s1, 2+32)
	assert.LessOrEqual(t, len(s1), MaxSalt)
	// Longest inline key and shortest hashed one.
	in := keySalt([]byte("ns"), string(long[:60]))
	assert.Len(t, in, 64)
	assert.Equal(t, saltInline, in[3])
	h := keySalt([]byte("ns"), string(long[:61]))
	assert.Equal(t, saltHashed, h[3])
	// A key equal to a digest's bytes stays apart from the hashed key.
	assert.NotEqual(t, s1, keySalt(nil, string(s1[2:])))
	// Prefixes of different lengths never collide.
	assert.NotEqual(t, keySalt([]byte("a"), "\x00xk"), keySalt([]byte("a\x00x"), "k"))
}
