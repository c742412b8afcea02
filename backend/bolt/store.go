package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/stickypub/stickypub/backend"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrReadOnly: a write to a store opened WithReadOnly.
var ErrReadOnly = errors.New("bolt: store opened read-only")

// Compile-time checks of the interfaces Store implements.
var (
	_ backend.Store   = (*Store)(nil)
	_ backend.Watcher = (*Store)(nil)
	_ backend.Deleter = (*Store)(nil)
	_ backend.Updater = (*Store)(nil)
)

// Store is a backend.Store kept in one bbolt file. It also implements
// backend.Watcher, backend.Deleter, backend.Updater and backend.Lister. It
// is safe for concurrent use. See the package documentation for the file
// layout and the group commit.
type Store struct {
	db        *bbolt.DB
	path      string
	caps      backend.Capabilities
	dataName  []byte
	metaName  []byte
	errClosed error
	// errReadOnly is the error of every write to a read-only store.
	errReadOnly error
	readOnly    bool

	// mu guards pending, the taken and withdrawn flags of queued ops, and
	// the transition of closed to true.
	mu      sync.Mutex
	pending []*op
	closed  atomic.Bool

	kick          chan struct{} // buffered(1): "pending may be non-empty"
	quit          chan struct{} // closed by Close to stop the committer
	committerDone chan struct{} // closed when the committer has returned
	closeDone     chan struct{} // closed when Close has finished

	// Counters for Stats, written by the committer.
	commits    atomic.Uint64
	operations atomic.Uint64

	// wmu guards watchers and watchClosed.
	wmu         sync.Mutex
	watchers    map[string]map[*watcher]struct{}
	watchClosed bool
}

// Open opens (creating if needed) the bbolt file at path and starts its
// committer. It waits at most the lock timeout (DefaultLockTimeout unless
// WithLockTimeout) for a file locked by another Store or process, then fails
// with an error matching backend.ErrUnavailable. A file that holds foreign
// data fails with an error matching backend.ErrCorrupt.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("bolt: empty path")
	}
	if err := preflight(path); err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:  cfg.lockTimeout,
		NoSync:   cfg.noSync,
		MaxSize:  cfg.maxFileSize,
		ReadOnly: cfg.readOnly,
	})
	if err != nil {
		var pe *os.PathError
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("bolt: open %s: file still locked by another store or process after %v: %w: %w",
				path, cfg.lockTimeout, backend.ErrUnavailable, err)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			return nil, fmt.Errorf("bolt: open %s: %w", path, corruptFile("%v", err))
		case errors.As(err, &pe):
			err = pe.Err // "open PATH: " once, not twice
		}
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	s := &Store{
		db:   db,
		path: path,
		caps: backend.Capabilities{
			Consistency:  backend.Linearizable,
			MaxKeySize:   MaxKeySize,
			MaxValueSize: cfg.maxValueSize,
			Persistent:   true,
		},
		dataName:      []byte(dataBucketName),
		metaName:      []byte(metaBucketName),
		errClosed:     fmt.Errorf("bolt %s: %w", path, backend.ErrClosed),
		errReadOnly:   fmt.Errorf("bolt %s: %w", path, ErrReadOnly),
		readOnly:      cfg.readOnly,
		kick:          make(chan struct{}, 1),
		quit:          make(chan struct{}),
		committerDone: make(chan struct{}),
		closeDone:     make(chan struct{}),
		watchers:      make(map[string]map[*watcher]struct{}),
	}
	if err := s.initBuckets(); err != nil {
		_ = db.Close()
		return nil, err
	}
	go s.runCommitter()
	return s, nil
}

// initBuckets creates the buckets of a new file and checks the format marker
// of an existing one.
func (s *Store) initBuckets() error {
	if s.readOnly {
		if err := s.db.View(s.checkBuckets); err != nil {
			return fmt.Errorf("bolt: open %s: %w", s.path, err)
		}
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(s.metaName)
		if meta == nil {
			if k, _ := tx.Cursor().First(); k != nil {
				return fmt.Errorf("%w: the file holds buckets but no %q bucket: not a stickypub bolt file", backend.ErrCorrupt, metaBucketName)
			}
			var err error
			if meta, err = tx.CreateBucket(s.metaName); err != nil {
				return err
			}
			if err = meta.Put([]byte(formatKey), []byte(formatValue)); err != nil {
				return err
			}
			_, err = tx.CreateBucket(s.dataName)
			return err
		}
		return s.checkBuckets(tx)
	})
	if err != nil {
		return fmt.Errorf("bolt: open %s: %w", s.path, err)
	}
	return nil
}

// checkBuckets checks the format marker and the data bucket of a file.
func (s *Store) checkBuckets(tx *bbolt.Tx) error {
	meta, data := tx.Bucket(s.metaName), tx.Bucket(s.dataName)
	if meta == nil {
		return fmt.Errorf("%w: no %q bucket: not a stickypub bolt file", backend.ErrCorrupt, metaBucketName)
	}
	if got := meta.Get([]byte(formatKey)); string(got) != formatValue {
		return fmt.Errorf("%w: format marker is %q, want %q", backend.ErrCorrupt, got, formatValue)
	}
	if data == nil {
		return fmt.Errorf("%w: the %q bucket is missing", backend.ErrCorrupt, dataBucketName)
	}
	return nil
}

// Stats counts the work of a Store's group commit since Open.
type Stats struct {
	// Commits is the number of read-write transactions the committer ran
	// (failed ones included).
	Commits uint64
	// Operations is the number of queued writes (CompareAndPut, Delete and
	// Update calls) those transactions carried. Operations/Commits is the
	// mean batch size.
	Operations uint64
}

// Stats returns the group-commit counters.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Operations: s.operations.Load()}
}

// Path returns the path of the bbolt file.
func (s *Store) Path() string { return s.path }

// Capabilities implements backend.Store: linearizable, persistent, keys up
// to MaxKeySize bytes and values up to the configured maximum.
func (s *Store) Capabilities() backend.Capabilities { return s.caps }

// Get implements backend.Store with one read-only transaction.
func (s *Store) Get(ctx context.Context, key string) (backend.Entry, error) {
	if err := ctx.Err(); err != nil {
		return backend.Entry{}, err
	}
	if s.closed.Load() {
		return backend.Entry{}, s.errClosed
	}
	if err := backend.CheckKey(key, s.caps); err != nil {
		return backend.Entry{}, err
	}
	var e backend.Entry
	err := s.db.View(func(tx *bbolt.Tx) error {
		data := tx.Bucket(s.dataName)
		if data == nil {
			return fmt.Errorf("%w: the %q bucket is missing", backend.ErrCorrupt, dataBucketName)
		}
		cur, err := lookup(data, []byte(key))
		if err != nil {
			return err
		}
		e = cloneEntry(cur)
		return nil
	})
	switch {
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return backend.Entry{}, s.errClosed
	case err != nil:
		return backend.Entry{}, fmt.Errorf("bolt: get %s: %w", quoteKey(key), err)
	case e.Version == 0:
		return backend.Entry{}, fmt.Errorf("bolt: get %s: %w", quoteKey(key), backend.ErrNotFound)
	}
	return e, nil
}

// CompareAndPut implements backend.Store. The write goes through the group
// commit; a mismatch returns a *backend.ConflictError carrying the current
// entry (Known is true; Version 0 means the key does not exist).
func (s *Store) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.closed.Load() {
		return 0, s.errClosed
	}
	if err := backend.CheckKey(key, s.caps); err != nil {
		return 0, err
	}
	if err := backend.CheckValue(value, s.caps); err != nil {
		return 0, err
	}
	if s.readOnly {
		return 0, s.errReadOnly
	}
	return s.submit(ctx, &op{kind: opCAS, key: key, kb: []byte(key), expect: expect, rec: newRecord(value)})
}

// Delete implements backend.Deleter. It removes key if its version equals
// expect; otherwise it fails with a *backend.ConflictError, or an error
// matching backend.ErrNotFound when the key does not exist. The version
// counter is not rewound, so a later create gets a greater version.
func (s *Store) Delete(ctx context.Context, key string, expect backend.Version) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return s.errClosed
	}
	if err := backend.CheckKey(key, s.caps); err != nil {
		return err
	}
	if s.readOnly {
		return s.errReadOnly
	}
	_, err := s.submit(ctx, &op{kind: opDelete, key: key, kb: []byte(key), expect: expect})
	return err
}

// Update implements backend.Updater. fn runs exactly once, inside the group
// commit transaction, on a private copy of the current entry, so concurrent
// updates of one key never conflict: each sees the result of the one before.
// fn must be quick and must not call this Store's write methods (the
// committer would wait for itself). An error from fn fails only this call
// (wrapped, so errors.Is works); backend.ErrSkipUpdate returns the current
// version without writing; a value larger than MaxValueSize fails with
// backend.ErrTooLarge. If fn panics, the other operations of the batch are
// unaffected, nothing is written for this call, and Update re-panics in the
// caller's goroutine.
func (s *Store) Update(ctx context.Context, key string, fn backend.UpdateFunc) (backend.Version, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.closed.Load() {
		return 0, s.errClosed
	}
	if err := backend.CheckKey(key, s.caps); err != nil {
		return 0, err
	}
	if fn == nil {
		return 0, errors.New("bolt: Update with nil UpdateFunc")
	}
	if s.readOnly {
		return 0, s.errReadOnly
	}
	return s.submit(ctx, &op{kind: opUpdate, key: key, kb: []byte(key), fn: fn})
}

// Close implements backend.Store. Operations still queued fail with an error
// matching backend.ErrClosed, the batch being committed (if any) completes,
// watch channels are closed and the file is released. Close is idempotent:
// later calls wait for the first to finish and return nil. Every call after
// Close fails with an error matching backend.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		<-s.closeDone
		return nil
	}
	s.closed.Store(true)
	queued := s.pending
	s.pending = nil
	for _, o := range queued {
		if o.withdrawn {
			continue
		}
		o.taken = true
		o.err = s.errClosed
		close(o.done)
	}
	s.mu.Unlock()

	close(s.quit)
	<-s.committerDone
	s.closeWatchers()
	err := s.db.Close()
	close(s.closeDone)
	if err != nil {
		return fmt.Errorf("bolt: close %s: %w", s.path, err)
	}
	return nil
}
