package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bolt"
)

// A bolt file can be open in only one process at a time: bbolt holds an
// exclusive lock on it. sharedBolt lets several stickypub processes use one
// file at once, with push delivery between them:
//
//   - The first process to open the file becomes its owner. It keeps the
//     file open and serves the other processes on a Unix socket next to it
//     (<file>.sock).
//   - A process that finds the file locked connects to that socket and sends
//     its Get, CompareAndPut and Watch calls to the owner, which runs them
//     on its own store. All writes therefore go through one bolt handle (one
//     group commit, linearizable), and the owner's change notifications
//     reach every process: a subscriber learns of a publish by another
//     process within a round trip.
//   - When the owner exits, the connected processes attach again: one of
//     them opens the file and becomes the owner, the others connect to it.
//     Calls the old owner had not started are sent again; watches are
//     re-established and report a change (version 0, "re-read").
//
// The owner answers a call that its closing store did not take with "owner
// closing", which guarantees that nothing was done, so it is safe to resend.
// Only if the owner dies (is killed) while a CompareAndPut is in flight is
// the outcome unknown; the call then reads the key from the next owner and
// reports success if it holds the value written with a newer version, or a
// conflict carrying the entry it finds.
type sharedBolt struct {
	uri    string
	path   string // absolute path of the file
	sock   string // the owner's socket
	caps   backend.Capabilities
	budget time.Duration // how long one attachment attempt may take
	logger *slog.Logger

	sem       chan struct{} // one attachment attempt at a time
	closeCh   chan struct{}
	errClosed error
	wg        sync.WaitGroup // watch goroutines

	mu     sync.Mutex
	att    attachment
	gen    uint64 // counts attachments
	closed bool
}

// attachment is this process's current way to the file: ownerAtt or
// remoteAtt.
type attachment interface {
	alive() bool
	get(ctx context.Context, key string) (backend.Entry, error)
	cas(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error)
	watch(ctx context.Context, key string) (<-chan backend.Version, error)
	close() error
}

// Compile-time checks of the interfaces sharedBolt implements.
var (
	_ backend.Store   = (*sharedBolt)(nil)
	_ backend.Watcher = (*sharedBolt)(nil)
	_ backend.Updater = (*sharedBolt)(nil)
)

// openSharedBolt opens the bolt store named by uri (already parsed as u)
// as a sharedBolt and attaches to it at once, as owner or through the owner.
func openSharedBolt(ctx context.Context, uri string, u *url.URL, logger *slog.Logger) (*sharedBolt, error) {
	path, caps, budget, err := parseBoltURI(u)
	if err != nil {
		return nil, err
	}
	s := &sharedBolt{
		uri: uri, path: path, sock: socketPath(path), caps: caps, budget: budget, logger: logger,
		sem: make(chan struct{}, 1), closeCh: make(chan struct{}),
		errClosed: fmt.Errorf("bolt %s: %w", path, backend.ErrClosed),
	}
	if _, _, err := s.current(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// parseBoltURI finds the file a bolt URI names (as the bolt adapter does;
// see its package documentation), the limits the adapter will declare and
// the lock timeout. The adapter itself validates the URI when this process
// first tries to open the file, which is always the first step of
// attaching.
func parseBoltURI(u *url.URL) (string, backend.Capabilities, time.Duration, error) {
	caps := backend.Capabilities{Consistency: backend.Linearizable, MaxKeySize: bolt.MaxKeySize,
		MaxValueSize: bolt.DefaultMaxValueSize, Persistent: true}
	budget := bolt.DefaultLockTimeout
	bad := func(format string, args ...any) (string, backend.Capabilities, time.Duration, error) {
		return "", caps, 0, fmt.Errorf("%w: %s: %s", backend.ErrBadURI, u.Redacted(), fmt.Sprintf(format, args...))
	}
	var p string
	switch {
	case u.Opaque != "":
		var err error
		if p, err = url.PathUnescape(u.Opaque); err != nil {
			return bad("path: %v", err)
		}
	case u.Host != "":
		p = u.Host + u.Path
	default:
		p = u.Path
	}
	if p == "" || p == "/" {
		return bad("no file path")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	if v := q.Get("maxvalue"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return bad("maxvalue=%q: want a positive byte count", v)
		}
		caps.MaxValueSize = n
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return bad("timeout=%q: want a positive duration such as 2s", v)
		}
		budget = d
	}
	abs, err := filepath.Abs(filepath.FromSlash(p))
	if err != nil {
		return bad("path: %v", err)
	}
	// Name the file the same way in every process, whatever symbolic links
	// lead to it.
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	} else if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(dir, filepath.Base(abs)) // the file does not exist yet
	}
	return abs, caps, budget, nil
}

// maxSockPath is the longest socket path used as is; sun_path holds 108
// bytes on Linux and 104 on macOS.
const maxSockPath = 100

// socketPath is where the owner of the file at path listens: next to the
// file, or, when that path is too long for a socket, in the temporary
// directory under a name derived from the file's path.
func socketPath(path string) string {
	if s := path + ".sock"; len(s) <= maxSockPath {
		return s
	}
	sum := sha256.Sum256([]byte(path))
	return filepath.Join(os.TempDir(), "stickypub-"+hex.EncodeToString(sum[:10])+".sock")
}

// current returns the live attachment, attaching anew when there is none.
// The generation changes with every new attachment.
func (s *sharedBolt) current(ctx context.Context) (attachment, uint64, error) {
	s.mu.Lock()
	a, gen, closed := s.att, s.gen, s.closed
	s.mu.Unlock()
	if closed {
		return nil, 0, s.errClosed
	}
	if a != nil && a.alive() {
		return a, gen, nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	case <-s.closeCh:
		return nil, 0, s.errClosed
	}
	defer func() { <-s.sem }()
	s.mu.Lock()
	a, gen, closed = s.att, s.gen, s.closed
	if closed {
		s.mu.Unlock()
		return nil, 0, s.errClosed
	}
	if a != nil && a.alive() { // another caller attached meanwhile
		s.mu.Unlock()
		return a, gen, nil
	}
	s.att = nil
	s.mu.Unlock()
	if a != nil {
		_ = a.close()
	}
	a, err := s.attach(ctx)
	if err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = a.close()
		return nil, 0, s.errClosed
	}
	s.att = a
	s.gen++
	gen = s.gen
	s.mu.Unlock()
	return a, gen, nil
}

// attach opens the file if no other process holds it, or else connects to
// the process that does. It keeps trying for the URI's lock timeout.
func (s *sharedBolt) attach(ctx context.Context) (attachment, error) {
	actx, cancel := context.WithTimeout(ctx, s.budget)
	defer cancel()
	var lastErr error
	locked := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.logger.Debug("bolt file still locked", "path", s.path, "last_err", lastErr)
		return fmt.Errorf("bolt %s: still locked after %v by a process that does not share it (nothing answers on %s): %w",
			s.path, s.budget, s.sock, backend.ErrUnavailable)
	}
	for {
		o, err := s.tryOwn(actx)
		if err == nil {
			return o, nil
		}
		if actx.Err() != nil {
			return nil, locked()
		}
		if !errors.Is(err, backend.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err // a bad URI, foreign data, no permission...
		}
		lastErr = err
		r, err := dialOwner(actx, s.sock, s.path, s.caps)
		if err == nil {
			s.logger.Debug("bolt file is held by another process; using it through its socket", "socket", s.sock)
			return r, nil
		}
		if errors.Is(err, errRefused) {
			return nil, fmt.Errorf("bolt %s: %w", s.path, err)
		}
		t := time.NewTimer(time.Duration(5+rand.IntN(20)) * time.Millisecond)
		select {
		case <-t.C:
		case <-s.closeCh:
			t.Stop()
			return nil, s.errClosed
		case <-actx.Done():
			t.Stop()
			return nil, locked()
		}
	}
}

// tryOwn opens the file if its lock is free, without waiting for it.
func (s *sharedBolt) tryOwn(ctx context.Context) (*ownerAtt, error) {
	// The adapter waits for the lock at most until the context's deadline,
	// and bbolt tries once when that is under its 50ms retry step.
	octx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	st, err := backend.Open(octx, s.uri)
	if err != nil {
		return nil, err
	}
	eng, ok := st.(boltEngine)
	if !ok {
		_ = st.Close()
		return nil, fmt.Errorf("bolt adapter store %T lacks Watch or Update", st)
	}
	if got := st.Capabilities(); got != s.caps {
		_ = st.Close()
		return nil, fmt.Errorf("bolt adapter declares %+v, expected %+v", got, s.caps)
	}
	return newOwner(eng, s.path, s.sock, s.logger), nil
}

// drop forgets a if it is still the current attachment.
func (s *sharedBolt) drop(a attachment) {
	s.mu.Lock()
	cur := s.att == a
	if cur {
		s.att = nil
	}
	s.mu.Unlock()
	if cur {
		_ = a.close()
	}
}

// check validates a call before anything is sent.
func (s *sharedBolt) check(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return s.errClosed
	}
	return backend.CheckKey(key, s.caps)
}

// Capabilities implements backend.Store: those of the bolt adapter.
func (s *sharedBolt) Capabilities() backend.Capabilities { return s.caps }

// Get implements backend.Store.
func (s *sharedBolt) Get(ctx context.Context, key string) (backend.Entry, error) {
	if err := s.check(ctx, key); err != nil {
		return backend.Entry{}, err
	}
	for {
		a, _, err := s.current(ctx)
		if err != nil {
			return backend.Entry{}, err
		}
		e, err := a.get(ctx, key)
		if !isGone(err) {
			return e, err
		}
		s.drop(a)
	}
}

// CompareAndPut implements backend.Store.
func (s *sharedBolt) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := s.check(ctx, key); err != nil {
		return 0, err
	}
	if err := backend.CheckValue(value, s.caps); err != nil {
		return 0, err
	}
	for {
		a, _, err := s.current(ctx)
		if err != nil {
			return 0, err
		}
		v, err := a.cas(ctx, key, expect, value)
		if !isGone(err) {
			return v, err
		}
		s.drop(a)
		if errors.Is(err, errOutcomeUnknown) {
			if v, done, err := s.resolve(ctx, key, expect, value); done {
				return v, err
			}
		}
	}
}

// resolve finds out what became of a CompareAndPut whose owner died before
// answering. done is false when the write certainly did not happen and can
// be sent again.
func (s *sharedBolt) resolve(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, bool, error) {
	e, err := s.Get(ctx, key)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		if expect == 0 {
			return 0, false, nil
		}
		return 0, true, &backend.ConflictError{Key: key, Expected: expect, Known: true}
	case err != nil:
		return 0, true, err
	case e.Version == expect:
		return 0, false, nil
	case e.Version > expect && bytes.Equal(e.Value, value):
		return e.Version, true, nil
	default:
		return 0, true, &backend.ConflictError{Key: key, Expected: expect, Known: true, Current: e}
	}
}

// Update implements backend.Updater. fn always runs inside the owner's
// commit transaction: in the owner's process directly, in the others
// through the socket (the owner sends the current entry and stores what fn
// returns), so concurrent updates of a key from every process coalesce into
// one commit, as with the bolt adapter itself. fn runs once, unless the
// owner went away in between; then it runs again on the next owner.
func (s *sharedBolt) Update(ctx context.Context, key string, fn backend.UpdateFunc) (backend.Version, error) {
	if err := s.check(ctx, key); err != nil {
		return 0, err
	}
	if fn == nil {
		return 0, errors.New("stickypub: Update with nil UpdateFunc")
	}
	for {
		a, _, err := s.current(ctx)
		if err != nil {
			return 0, err
		}
		var r *remoteAtt
		switch a := a.(type) {
		case *ownerAtt:
			return a.st.Update(ctx, key, fn)
		case *remoteAtt:
			r = a
		default:
			return 0, fmt.Errorf("stickypub: unknown attachment %T", a)
		}
		var out updateOutcome
		v, err := r.update(ctx, key, fn, &out)
		if !isGone(err) {
			return v, err
		}
		s.drop(a)
		if errors.Is(err, errOutcomeUnknown) && out.stored {
			e, gerr := s.Get(ctx, key)
			if gerr == nil && e.Version > out.base && bytes.Equal(e.Value, out.value) {
				return e.Version, nil // it was stored
			}
			// Otherwise run fn again on what the key holds now.
		}
	}
}

// Watch implements backend.Watcher. Notifications come from the owner's
// commits, so writes by every process sharing the file are seen. When the
// attachment changes, the watch moves to the new one and receives 0
// ("re-read"): changes in between may have gone unnoticed.
func (s *sharedBolt) Watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	if err := s.check(ctx, key); err != nil {
		return nil, err
	}
	a, gen, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	in, err := a.watch(ctx, key)
	if err != nil && !isGone(err) {
		return nil, err
	}
	out := make(chan backend.Version, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, s.errClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.follow(ctx, key, a, gen, in, out)
	return out, nil
}

// follow forwards one watch across attachments until ctx ends or the store
// is closed.
func (s *sharedBolt) follow(ctx context.Context, key string, a attachment, gen uint64, in <-chan backend.Version, out chan backend.Version) {
	defer s.wg.Done()
	defer close(out)
	for {
		if in != nil {
			for v := range in {
				backend.Offer(out, v)
			}
		}
		if ctx.Err() != nil || s.isClosed() {
			return
		}
		s.drop(a) // the channel ended: the attachment is gone
		for {
			var err error
			var g uint64
			if a, g, err = s.current(ctx); err == nil {
				if in, err = a.watch(ctx, key); err == nil {
					if g != gen {
						backend.Offer(out, 0)
						gen = g
					}
					break
				}
			}
			if ctx.Err() != nil || s.isClosed() {
				return
			}
			s.logger.Debug("watch: store unreachable, retrying", "key", key, "err", err)
			if a != nil && isGone(err) {
				s.drop(a)
			}
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			case <-s.closeCh:
				t.Stop()
				return
			}
		}
	}
}

func (s *sharedBolt) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close implements backend.Store. An owner stops serving (the other
// processes attach again) and releases the file.
func (s *sharedBolt) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.closeCh)
	s.mu.Unlock()
	s.sem <- struct{}{} // wait for an attachment attempt to give up
	s.mu.Lock()
	a := s.att
	s.att = nil
	s.mu.Unlock()
	<-s.sem
	var err error
	if a != nil {
		err = a.close()
	}
	s.wg.Wait()
	return err
}
