package backend

import (
	"fmt"
	"time"
)

// Consistency is the strongest guarantee a store makes about concurrent
// compare-and-puts. Levels are ordered: a greater value is stronger.
type Consistency int

// Consistency levels, weakest first.
const (
	// ConsistencyUnknown is the zero value; adapters must declare a level.
	ConsistencyUnknown Consistency = iota
	// Eventual: last writer wins; two writers may both see success at the
	// same version and one of them is later replaced. Reads may be stale.
	Eventual
	// PerNodeCAS: each storing node applies compare-and-put atomically, but
	// different nodes may disagree for a while (BEP44 cas).
	PerNodeCAS
	// Linearizable: every operation appears to take effect atomically at one
	// instant between its call and its return.
	Linearizable
)

// String implements fmt.Stringer.
func (c Consistency) String() string {
	switch c {
	case Eventual:
		return "eventual"
	case PerNodeCAS:
		return "per-node-cas"
	case Linearizable:
		return "linearizable"
	default:
		return fmt.Sprintf("unknown(%d)", int(c))
	}
}

// The smallest limits an adapter may declare and still carry the protocol.
const (
	// MinKeySize is the longest key core writes (47 bytes; see
	// docs/protocol.md), rounded up: an adapter must accept keys this long.
	MinKeySize = 64
	// MinValueSize is the smallest MaxValueSize core accepts. Values larger
	// than an adapter's limit are split into chunks by core, so a small
	// limit costs round trips, not correctness (BEP44 allows about 1000).
	MinValueSize = 256
)

// Capabilities is what a store declares about itself.
type Capabilities struct {
	// Consistency of CompareAndPut and Get.
	Consistency Consistency
	// MaxKeySize is the longest key in bytes, 0 for no limit. The protocol
	// in core needs keys of up to MinKeySize bytes; an adapter must accept
	// at least that many.
	MaxKeySize int
	// MaxValueSize is the largest value in bytes, 0 for no limit (core then
	// caps its own values at 4 MiB). It must be at least MinValueSize: core
	// refuses a store with a smaller limit and chunks anything larger than
	// the limit.
	MaxValueSize int
	// Persistent reports whether data survives a restart of the engine
	// (for Redis: as the server is configured). Every store must keep data
	// across closing one handle and opening another while the engine runs.
	Persistent bool
	// RecordLifetime is how long a stored record survives after its last
	// write on an engine that expires records by itself (DHTs: BEP44 items
	// live about two hours on storing nodes, libp2p records MaxRecordAge).
	// Zero means records never expire on their own. A client that must keep
	// a record (its head, its segments within retention) re-writes the same
	// bytes well before this lifetime passes; a record that nobody refreshes
	// may vanish, and readers then see ErrNotFound.
	RecordLifetime time.Duration
}

// CheckKey validates key against caps and returns an error matching
// ErrInvalidKey when it is empty or longer than MaxKeySize.
func CheckKey(key string, caps Capabilities) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if caps.MaxKeySize > 0 && len(key) > caps.MaxKeySize {
		return fmt.Errorf("%w: key of %d bytes exceeds the limit of %d", ErrInvalidKey, len(key), caps.MaxKeySize)
	}
	return nil
}

// CheckValue validates value against caps and returns an error matching
// ErrTooLarge when it is longer than MaxValueSize.
func CheckValue(value []byte, caps Capabilities) error {
	if caps.MaxValueSize > 0 && len(value) > caps.MaxValueSize {
		return fmt.Errorf("%w: value of %d bytes exceeds the limit of %d", ErrTooLarge, len(value), caps.MaxValueSize)
	}
	return nil
}
