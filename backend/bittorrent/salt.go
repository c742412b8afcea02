package bittorrent

import (
	"crypto/sha256"
	"fmt"
)

// Salt tags: a key short enough is carried inline, a longer one as its
// SHA-256. The tag keeps the two forms apart, so a short key can never be
// mistaken for the digest of a long one.
const (
	saltInline byte = 0
	saltHashed byte = 1
)

// MaxSaltPrefix is the longest namespace salt prefix.
const MaxSaltPrefix = 16

// DefaultMaxKeySize is the longest key a store accepts. Keys are never
// truncated: one that does not fit the salt inline is hashed.
const DefaultMaxKeySize = 512

// KeySalt returns the BEP44 salt under which key is stored in the
// namespace with the given salt prefix (see keySalt).
func KeySalt(prefix []byte, key string) []byte { return keySalt(prefix, key) }

// keySalt derives the BEP44 salt of key under the namespace prefix:
//
//	len(prefix) ‖ prefix ‖ 0x00 ‖ key          when that fits 64 bytes
//	len(prefix) ‖ prefix ‖ 0x01 ‖ SHA-256(key) otherwise
//
// The length byte keeps namespaces with different prefixes apart; the tag
// keeps inline keys apart from digests.
func keySalt(prefix []byte, key string) []byte {
	head := 2 + len(prefix)
	salt := make([]byte, 0, MaxSalt)
	salt = append(salt, byte(len(prefix)))
	salt = append(salt, prefix...)
	if head+len(key) <= MaxSalt {
		salt = append(salt, saltInline)
		return append(salt, key...)
	}
	sum := sha256.Sum256([]byte(key))
	salt = append(salt, saltHashed)
	return append(salt, sum[:]...)
}

// checkPrefix validates a namespace salt prefix.
func checkPrefix(prefix []byte) error {
	if len(prefix) > MaxSaltPrefix {
		return fmt.Errorf("salt prefix of %d bytes exceeds %d", len(prefix), MaxSaltPrefix)
	}
	return nil
}
