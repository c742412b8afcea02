package bittorrent

import (
	"errors"
	"fmt"
	"net"
)

// ErrReadOnly is returned by CompareAndPut on a handle opened with only the
// namespace's public key: only holders of the private key can write.
var ErrReadOnly = errors.New("bittorrent: read-only store (namespace opened without its private key)")

// ErrNoQuorum matches the error of an operation that did not hear from
// enough storing nodes. It also matches backend.ErrUnavailable, so callers
// retry it.
var ErrNoQuorum = errors.New("bittorrent: no quorum of storing nodes")

// BadItemKind says what was wrong with an item a node returned.
type BadItemKind int

// The kinds of bad items a peer can answer with. None is ever delivered.
const (
	// BadSignature: the signature does not verify under the namespace key.
	BadSignature BadItemKind = iota
	// WrongKey: the item is signed by (or claims) another public key.
	WrongKey
	// WrongTarget: the item does not belong to the requested target.
	WrongTarget
	// Oversize: the bencoded v exceeds 1000 bytes.
	Oversize
	// Malformed: v is not a single bencoded byte string, or seq is missing.
	Malformed
	numBadKinds
)

// String implements fmt.Stringer.
func (k BadItemKind) String() string {
	switch k {
	case BadSignature:
		return "bad signature"
	case WrongKey:
		return "wrong key"
	case WrongTarget:
		return "wrong target"
	case Oversize:
		return "oversize v"
	case Malformed:
		return "malformed"
	default:
		return fmt.Sprintf("BadItemKind(%d)", int(k))
	}
}

// BadItemError describes one item a node answered with that failed
// verification. It is counted in Stats and logged; it never fails an
// operation that honest nodes can complete.
type BadItemError struct {
	// Node is the address of the node that sent it.
	Node net.Addr
	// Kind is what was wrong.
	Kind BadItemKind
}

// Error implements error.
func (e *BadItemError) Error() string {
	return fmt.Sprintf("bittorrent: node %v answered with a bad item: %v", e.Node, e.Kind)
}

// PutRefusedError describes a put a node refused with a KRPC error other
// than a conflict (301/302).
type PutRefusedError struct {
	Node net.Addr
	Code int
	Msg  string
}

// Error implements error.
func (e *PutRefusedError) Error() string {
	return fmt.Sprintf("bittorrent: node %v refused a put: %d %s", e.Node, e.Code, e.Msg)
}
