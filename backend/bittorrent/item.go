package bittorrent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// MaxEncodedValue is BEP44's limit on the bencoded "v" field of an item.
const MaxEncodedValue = 1000

// MaxSalt is BEP44's limit on the salt of a mutable item.
const MaxSalt = 64

// MaxValueSize is the largest value the adapter stores: a value is carried
// as one bencoded byte string ("996:" + 996 bytes = 1000 bytes), with no
// other framing.
const MaxValueSize = MaxEncodedValue - 4

// Target is the DHT key of a mutable item: SHA-1(public key ‖ salt).
type Target [sha1.Size]byte

// MutableTarget returns the BEP44 target of the mutable item of pub and salt.
func MutableTarget(pub ed25519.PublicKey, salt []byte) Target {
	h := sha1.New()
	h.Write(pub)
	h.Write(salt)
	var t Target
	h.Sum(t[:0])
	return t
}

// SignedBuffer returns the bytes a BEP44 mutable item's signature covers:
// the bencoded dictionary entries salt (only when non-empty), seq and v,
// concatenated without the surrounding "d" and "e":
//
//	4:salt<len>:<salt>3:seqi<seq>e1:v<bencoded v>
func SignedBuffer(salt []byte, seq int64, encodedV []byte) []byte {
	b := make([]byte, 0, len(salt)+len(encodedV)+40)
	if len(salt) > 0 {
		b = append(b, "4:salt"...)
		b = strconv.AppendInt(b, int64(len(salt)), 10)
		b = append(b, ':')
		b = append(b, salt...)
	}
	b = append(b, "3:seqi"...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, "e1:v"...)
	return append(b, encodedV...)
}

// EncodeValue bencodes value as a byte string, the form of "v" this adapter
// writes.
func EncodeValue(value []byte) []byte {
	b := strconv.AppendInt(make([]byte, 0, len(value)+5), int64(len(value)), 10)
	b = append(b, ':')
	return append(b, value...)
}

// errNotByteString reports a "v" that is not exactly one bencoded byte string.
var errNotByteString = errors.New("v is not a single bencoded byte string")

// DecodeValue parses a bencoded "v" that must be exactly one byte string
// (canonical length, no trailing bytes) and returns a copy of its content.
func DecodeValue(encoded []byte) ([]byte, error) {
	colon := bytes.IndexByte(encoded, ':')
	if colon <= 0 || colon > 7 {
		return nil, errNotByteString
	}
	digits := encoded[:colon]
	if len(digits) > 1 && digits[0] == '0' {
		return nil, errNotByteString // not canonical
	}
	n, err := strconv.Atoi(string(digits))
	if err != nil || n < 0 || digits[0] == '+' || digits[0] == '-' {
		return nil, errNotByteString
	}
	if len(encoded)-colon-1 != n {
		return nil, fmt.Errorf("%w: length %d, %d bytes follow", errNotByteString, n, len(encoded)-colon-1)
	}
	return append(make([]byte, 0, n), encoded[colon+1:]...), nil
}

// item is one signed mutable item as it travels: the signature covers
// salt, seq and the bencoded value (the cas of a put is not signed).
type item struct {
	Seq      int64
	EncodedV []byte
	Sig      [ed25519.SignatureSize]byte
}

// signItem signs encodedV at seq under salt with key.
func signItem(key ed25519.PrivateKey, salt []byte, seq int64, encodedV []byte) item {
	it := item{Seq: seq, EncodedV: encodedV}
	copy(it.Sig[:], ed25519.Sign(key, SignedBuffer(salt, seq, encodedV)))
	return it
}

// verify reports whether it carries a valid signature by pub under salt.
func (it item) verify(pub ed25519.PublicKey, salt []byte) bool {
	return ed25519.Verify(pub, SignedBuffer(salt, it.Seq, it.EncodedV), it.Sig[:])
}

// sameAs reports whether two items are the same signed item.
func (it item) sameAs(o item) bool {
	return it.Seq == o.Seq && bytes.Equal(it.EncodedV, o.EncodedV) && it.Sig == o.Sig
}

// verifyCache remembers recently verified items, so that the same signed
// item answered by every node of a read (and read again by later polls) is
// verified once. It is bounded: when full it starts over.
type verifyCache struct {
	mu sync.Mutex
	ok map[[sha256.Size]byte]struct{}
}

// verifyCacheSize bounds a verifyCache.
const verifyCacheSize = 8192

// check reports whether it carries a valid signature by pub under salt.
func (c *verifyCache) check(it item, salt []byte, pub ed25519.PublicKey) bool {
	// The key is the hash of exactly what was verified: the signed buffer
	// (salt, seq, v), the key and the signature.
	h := sha256.New()
	h.Write(pub)
	h.Write(it.Sig[:])
	h.Write(SignedBuffer(salt, it.Seq, it.EncodedV))
	var key [sha256.Size]byte
	h.Sum(key[:0])
	c.mu.Lock()
	_, hit := c.ok[key]
	c.mu.Unlock()
	if hit {
		return true
	}
	if !it.verify(pub, salt) {
		return false
	}
	c.mu.Lock()
	if c.ok == nil || len(c.ok) >= verifyCacheSize {
		c.ok = make(map[[sha256.Size]byte]struct{})
	}
	c.ok[key] = struct{}{}
	c.mu.Unlock()
	return true
}
