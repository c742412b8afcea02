package core

// Checking stored records offline (stickypub doctor): which keys decode.

import (
	"encoding/base64"
	"strings"
)

// CheckStoredRecord checks one record as a store holds it, by its key
// alone: a whole blob (x/...) must match the digest its key names, and a
// coordinator (c/...) must decode. What cannot be judged without more
// context passes: chunked blobs (their chunks are checked one by one),
// head and subscription records (their signatures cover the topic name,
// which the key only holds as a digest). Errors match ErrMalformed. Store
// checkers ("stickypub doctor") use it to say which records are damaged.
func CheckStoredRecord(key string, value []byte) error {
	switch {
	case strings.HasPrefix(key, "x/"):
		raw, err := base64.RawURLEncoding.DecodeString(key[2:])
		if err != nil || len(raw) != len(Ref{}) {
			return malformed("blob key %q does not name a digest", key)
		}
		if len(value) == 0 {
			return malformed("empty blob")
		}
		if value[0] == blobLeaf && digest(value[1:]) != Ref(raw) {
			return malformed("blob %s does not match its digest (damaged)", Ref(raw))
		}
		if value[0] != blobLeaf && value[0] != blobIndex && value[0] != blobIndirect {
			return malformed("blob %s has kind %#x", Ref(raw), value[0])
		}
	case strings.HasPrefix(key, "c/"):
		if len(value) > 0 && value[0] != coordBlob {
			if _, err := decodeCoordState(value); err != nil {
				return err
			}
		}
	}
	return nil
}
