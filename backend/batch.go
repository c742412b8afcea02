package backend

// Batcher: several writes in one atomic step, for callers that would
// otherwise pay one commit per record.

import "context"

// Put is one compare-and-put of a Batcher batch: store Value under Key if
// the key's current version is Expect (0: the key must not exist).
type Put struct {
	Key    string
	Expect Version
	Value  []byte
}

// Batcher is implemented by stores that can apply compare-and-puts of
// several keys together with an Update of one more key in one atomic step
// (bolt: one transaction, group-committed with concurrent writers). A
// caller that writes a record and then the record pointing at it pays one
// commit instead of one per record. Callers without it write the records
// one by one.
type Batcher interface {
	// UpdateWith applies puts and the update of key by fn atomically:
	// either everything lands or nothing does. Keys must be distinct (key
	// included), else the error matches ErrInvalidKey.
	//
	// If a put's key is not at its Expect version, nothing is written and
	// the error matches ErrConflict; where the engine returns it cheaply it
	// is a *ConflictError for that put's key. fn is called as for
	// Updater.Update, after the puts' versions were checked; an error from
	// fn writes nothing and is returned wrapped, except ErrSkipUpdate,
	// which leaves key unchanged while the puts still land. A value over
	// the store's limit fails the whole batch with ErrTooLarge. A store that
	// can batch some key sets but not this one (keys on different shards)
	// writes nothing and returns an error matching ErrNoBatch.
	//
	// On success it returns the version of key (its current one after
	// ErrSkipUpdate) and the new version of each put, in order. The errors
	// that promise nothing changed are those of CompareAndPut.
	UpdateWith(ctx context.Context, puts []Put, key string, fn UpdateFunc) (Version, []Version, error)
}
