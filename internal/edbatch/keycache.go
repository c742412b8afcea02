package edbatch

// Decoded public keys, kept: a subscriber verifies the same publishers'
// keys over and over, and decoding a point (a square root in the field)
// is about a sixth of a batch's cost per signature.

import (
	"sync"

	"filippo.io/edwards25519"
)

// keyCacheSize bounds the decoded keys kept (about 200 bytes each); the
// cache is emptied when it is full.
const keyCacheSize = 4096

var keyCache struct {
	sync.Mutex
	m map[[32]byte]*edwards25519.Point
}

// decodeKey returns pub's point, decoded once and shared: callers never
// modify it.
func decodeKey(pub []byte) (*edwards25519.Point, error) {
	var k [32]byte
	copy(k[:], pub)
	keyCache.Lock()
	a, ok := keyCache.m[k]
	keyCache.Unlock()
	if ok {
		return a, nil
	}
	a, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, err
	}
	keyCache.Lock()
	if len(keyCache.m) >= keyCacheSize || keyCache.m == nil {
		keyCache.m = make(map[[32]byte]*edwards25519.Point)
	}
	keyCache.m[k] = a
	keyCache.Unlock()
	return a, nil
}
