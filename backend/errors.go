package backend

import (
	"errors"
	"fmt"
)

// Sentinel errors shared by every adapter. Adapters wrap them with %w so that
// callers test with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("backend: key not found")
	// ErrConflict: a compare-and-put's expected version did not match.
	ErrConflict = errors.New("backend: version conflict")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("backend: store closed")
	// ErrInvalidKey: the key is empty, too long or otherwise unusable.
	ErrInvalidKey = errors.New("backend: invalid key")
	// ErrTooLarge: the value exceeds the store's MaxValueSize.
	ErrTooLarge = errors.New("backend: value too large")
	// ErrUnavailable: the engine cannot be reached (network, locked file,
	// server down). The operation may be retried.
	ErrUnavailable = errors.New("backend: engine unavailable")
	// ErrCorrupt: data found under the store's namespace does not decode
	// (wrong type, foreign data, truncated record).
	ErrCorrupt = errors.New("backend: corrupt stored data")
	// ErrSkipUpdate is returned by an UpdateFunc to leave the key unchanged.
	ErrSkipUpdate = errors.New("backend: skip update")
	// ErrNoBatch: Batcher.UpdateWith cannot apply this particular batch in
	// one atomic step (Redis Cluster: its keys are in more than one hash
	// slot). Nothing was written; the caller writes the records one by one.
	ErrNoBatch = errors.New("backend: batch cannot be applied in one step")
	// ErrUnknownScheme: Open was given a URI whose scheme no adapter registered.
	ErrUnknownScheme = errors.New("backend: unknown URI scheme")
	// ErrBadURI: Open was given a URI it cannot parse or whose parameters are invalid.
	ErrBadURI = errors.New("backend: malformed store URI")
)

// ConflictError is returned by CompareAndPut on a version mismatch. It
// matches ErrConflict with errors.Is.
type ConflictError struct {
	// Key is the key whose version did not match.
	Key string
	// Expected is the version the caller expected.
	Expected Version
	// Current is the entry found, valid only when Known is true. A Known
	// entry with Version 0 means the key does not exist.
	Current Entry
	// Known reports whether Current was returned by the engine.
	Known bool
}

// Error implements error.
func (e *ConflictError) Error() string {
	if !e.Known {
		return fmt.Sprintf("backend: version conflict on %q: expected %d", e.Key, e.Expected)
	}
	return fmt.Sprintf("backend: version conflict on %q: expected %d, found %d", e.Key, e.Expected, e.Current.Version)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// CurrentEntry extracts the current entry carried by a conflict error. It
// reports false when err carries none.
func CurrentEntry(err error) (Entry, bool) {
	var ce *ConflictError
	if errors.As(err, &ce) && ce.Known {
		return ce.Current, true
	}
	return Entry{}, false
}
