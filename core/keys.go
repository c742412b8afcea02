package core

// The key layout of the store, and blob references.

import (
	"crypto/sha256"
	"encoding/base64"
)

// Key layout. Every key is short (at most 47 bytes) so that it fits the
// smallest backend key limit (BEP44 salts are at most 64 bytes):
//
//	c/<topic>             coordinator of a topic (multi-writer, merged)
//	h/<topic>/<pub>       head of one publisher's log (single writer, signed)
//	s/<topic>/<sub>       subscription record (single writer, signed, TTL)
//	x/<sha256>            immutable content-addressed blob (segments,
//	                      snapshots, chunks, large coordinators)
//
// <topic> is a 16-byte digest of the topic name and <pub>/<sub> a 16-byte
// digest of a public key, both in unpadded URL-safe base64 (22 bytes).
type topicKeys struct {
	name  string
	id    string
	coord string
}

func newTopicKeys(name string) topicKeys {
	sum := sha256.Sum256([]byte("stickypub/topic/v1\x00" + name))
	id := base64.RawURLEncoding.EncodeToString(sum[:16])
	return topicKeys{name: name, id: id, coord: "c/" + id}
}

func (k topicKeys) head(p PublisherID) string { return "h/" + k.id + "/" + p.String() }
func (k topicKeys) sub(p PublisherID) string  { return "s/" + k.id + "/" + p.String() }

// blobKey is where the blob with digest ref lives.
func blobKey(ref Ref) string { return "x/" + base64.RawURLEncoding.EncodeToString(ref[:]) }

// Ref is the SHA-256 digest of a blob's content.
type Ref [32]byte

// IsZero reports whether r is the zero reference (no blob).
func (r Ref) IsZero() bool { return r == Ref{} }

// String returns a short printable form.
func (r Ref) String() string { return base64.RawURLEncoding.EncodeToString(r[:6]) }
