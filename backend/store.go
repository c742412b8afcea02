package backend

import "context"

// Version identifies one stored state of a key. Versions of a key strictly
// increase with every successful write and are never handed out twice. The
// zero Version means "the key does not exist".
type Version uint64

// Entry is a stored value together with the version that wrote it.
type Entry struct {
	Value   []byte
	Version Version
}

// Store is the compare-and-put key/value contract.
//
// Implementations must be safe for concurrent use. A call that returns an
// error changes nothing, with two exceptions: below Linearizable, what the
// declared Consistency allows (see Capabilities); and on any level, a write
// whose outcome the adapter could not learn (the engine went away after the
// request was sent, or the caller's context ended while it was in flight).
// Such an error must not match ErrConflict, ErrInvalidKey, ErrTooLarge or
// ErrClosed (those promise that nothing changed); the write may or may not
// have landed, and a caller that must know reads the key again. Adapters
// that can tell (a write token, as the Redis adapter keeps) should resolve
// the ambiguity themselves and report the real outcome.
type Store interface {
	// Get returns the current value and version of key, or an error matching
	// ErrNotFound when the key does not exist.
	Get(ctx context.Context, key string) (Entry, error)

	// CompareAndPut stores value under key only if the key's current version
	// equals expect; expect == 0 means the key must not exist. On success it
	// returns the new version, which is greater than expect. On mismatch it
	// returns an error matching ErrConflict; where the engine returns it
	// cheaply, the error is a *ConflictError that carries the current entry.
	CompareAndPut(ctx context.Context, key string, expect Version, value []byte) (Version, error)

	// Capabilities declares what this store promises.
	Capabilities() Capabilities

	// Close releases the store. Every later call fails with ErrClosed.
	// Close is idempotent.
	Close() error
}

// Watcher is implemented by stores that can notify about changes.
//
// Notifications are hints: they may be coalesced or, on some engines, lost.
// The receiver must Get the key to learn its state; the version is the truth.
type Watcher interface {
	// Watch returns a channel that receives the new version of key after key
	// changes, or 0 when the version is not known (a delete, or a
	// reconnect after which the receiver must re-read). The channel is closed when
	// ctx is done or the store is closed. Sends never block the writer: a
	// slow receiver sees coalesced notifications.
	Watch(ctx context.Context, key string) (<-chan Version, error)
}

// Deleter is implemented by stores that can remove keys.
type Deleter interface {
	// Delete removes key if its current version equals expect, and fails with
	// ErrConflict otherwise (ErrNotFound if it does not exist). Versions are
	// not reused after a delete: a later create gets a greater version.
	Delete(ctx context.Context, key string, expect Version) error
}

// UpdateFunc computes the next value of a key from its current entry
// (Version 0 when the key does not exist). It is called at least once and
// possibly several times, and must have no side effects. Returning
// ErrSkipUpdate leaves the key as it is.
type UpdateFunc func(current Entry) ([]byte, error)

// Updater is implemented by stores that can run a read-modify-write
// atomically on the engine side, which lets them coalesce many concurrent
// updates of one hot key into a single commit (bolt runs fn inside its
// group-commit transaction). Callers without it use a Get/CompareAndPut loop.
type Updater interface {
	// Update applies fn to the current entry of key and stores the result
	// atomically, returning the resulting version. If fn returns
	// ErrSkipUpdate, Update returns the current version (0 if the key does
	// not exist) and a nil error without writing.
	Update(ctx context.Context, key string, fn UpdateFunc) (Version, error)
}

// ListFunc receives one page of keys from Lister.List. The slice is the
// callee's only until it returns. Returning an error stops the listing,
// and List returns that error.
type ListFunc func(keys []string) error

// Lister is implemented by stores that can enumerate their keys. Core uses
// it to find records that nothing points to any more (a segment written by
// a publisher that crashed before its head record named it).
//
// Consistency: every key that starts with prefix and exists for the whole
// call is passed to fn at least once. A key created or deleted while List
// runs may or may not be passed; a key may be passed more than once (an
// engine's scan may repeat keys); keys come in no particular order. List
// never passes a key that does not start with prefix, nor one that did not
// exist at some moment during the call (deleted keys and tombstones are
// not listed). The empty prefix lists every key of the store's namespace
// (for adapters with a namespace prefix of their own, such as Redis, only
// that namespace, with the adapter's prefix removed).
type Lister interface {
	// List calls fn with successive pages of keys that start with prefix
	// (each page non-empty and of adapter-chosen size) until every key is
	// listed, fn returns an error, or ctx ends. fn may call the store.
	List(ctx context.Context, prefix string, fn ListFunc) error
}
