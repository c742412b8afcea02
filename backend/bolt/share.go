package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/backoff"
	"github.com/stickypub/stickypub/internal/hints"
)

// Shared is a bolt store that several processes can use at once (bbolt
// itself lets only one process open a file). Open one with OpenShared, or
// through the registry with the URI parameter share=1:
//
//   - The first process to open the file becomes its owner. It keeps the
//     file open and serves the other processes on a Unix socket in a
//     private directory beside the file (see docs/sharing.md).
//   - A process that finds the file locked connects to that socket and sends
//     its Get, CompareAndPut, Delete and Watch calls to the owner, which
//     runs them on its own Store. All writes therefore go through one bolt
//     handle (one group commit, linearizable), and the owner's change
//     notifications reach every process.
//   - Both ends check that the other runs as the same user (SO_PEERCRED);
//     the socket's directory must be this user's alone (mode 0700).
//   - When the owner exits, the connected processes attach again: one of
//     them opens the file and becomes the owner, the others connect to it.
//     Calls the old owner had not started are sent again; watches are
//     re-established and report a change (version 0, "re-read").
//   - An owner that stops answering (its process stopped, say) is given up
//     after a bound: calls waiting on it fail with an error matching
//     backend.ErrUnavailable instead of hanging.
//
// The owner answers a call that its closing store did not take with "owner
// closing", which guarantees that nothing was done, so it is safe to resend.
// Only if the owner dies while a CompareAndPut is in flight is the outcome
// unknown; the call then reads the key from the next owner and reports
// success if it holds the value written with a newer version, or a
// conflict carrying the entry it finds.
//
// Shared implements backend.Store, backend.Watcher, backend.Deleter,
// backend.Updater and backend.Lister and is safe for concurrent use.
type Shared struct {
	path   string // absolute path of the file
	dir    string // the socket's private directory
	sock   string // the owner's socket
	cfg    config
	hooks  *shareHooks
	caps   backend.Capabilities
	budget time.Duration // how long one attachment attempt may take
	logger *slog.Logger

	sem       chan struct{} // one attachment attempt at a time
	closeCh   chan struct{}
	errClosed error
	wg        sync.WaitGroup // watch goroutines
	hints     hints.Cache    // UpdateWith's last entries per key (share_batch.go)

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
	del(ctx context.Context, key string, expect backend.Version) error
	watch(ctx context.Context, key string) (<-chan backend.Version, error)
	list(ctx context.Context, prefix string, after []byte) ([]string, error)
	close() error
}

// Compile-time checks of the interfaces Shared implements.
var (
	_ backend.Store   = (*Shared)(nil)
	_ backend.Watcher = (*Shared)(nil)
	_ backend.Updater = (*Shared)(nil)
	_ backend.Deleter = (*Shared)(nil)
)

// OpenShared opens the bolt file at path for sharing with other processes
// and attaches to it at once, as its owner or through the owner. The
// options are those of Open (WithReadOnly excepted), plus WithLogger; the
// lock timeout bounds each attachment attempt. Every process sharing a file
// must use the same value limit: an owner refuses a process that declares
// another one. A socket directory that is not private fails with a
// *SocketDirError, an owner of another user with a *PeerError.
func OpenShared(ctx context.Context, path string, opts ...Option) (*Shared, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if deadline, ok := ctx.Deadline(); ok {
		cfg.lockTimeout = min(cfg.lockTimeout, max(time.Until(deadline), time.Millisecond))
	}
	return openShared(ctx, path, cfg)
}

// openShared opens a Shared store with a complete configuration.
func openShared(ctx context.Context, path string, cfg config) (*Shared, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("bolt: empty path")
	}
	if cfg.readOnly {
		return nil, errors.New("bolt: a shared store cannot be read-only")
	}
	abs, err := canonicalPath(path)
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	hooks := cfg.hooks
	if hooks == nil {
		h := defaultShareHooks()
		hooks = &h
	}
	logger := cfg.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir, sock, err := socketPlace(abs)
	if err != nil {
		return nil, fmt.Errorf("bolt %s: %w", abs, err)
	}
	s := &Shared{
		path: abs, dir: dir, sock: sock, cfg: cfg, hooks: hooks, budget: cfg.lockTimeout, logger: logger,
		caps: backend.Capabilities{Consistency: backend.Linearizable, MaxKeySize: MaxKeySize,
			MaxValueSize: cfg.maxValueSize, Persistent: true},
		sem: make(chan struct{}, 1), closeCh: make(chan struct{}),
		errClosed: fmt.Errorf("bolt %s: %w", abs, backend.ErrClosed),
	}
	if _, _, err := s.current(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Path returns the absolute path of the shared file.
func (s *Shared) Path() string { return s.path }

// Socket returns the path of the socket the owner of the file listens on.
func (s *Shared) Socket() string { return s.sock }

// IsOwner reports whether this process holds the file now (and serves the
// others) rather than reaching it through the owner's socket.
func (s *Shared) IsOwner() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.att.(*ownerAtt)
	return ok
}

// current returns the live attachment, attaching anew when there is none.
// The generation changes with every new attachment.
func (s *Shared) current(ctx context.Context) (attachment, uint64, error) {
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
// the process that does. It keeps trying for the lock timeout. The socket's
// directory is checked (and created) first, every time.
func (s *Shared) attach(ctx context.Context) (attachment, error) {
	if err := ensurePrivateDir(s.dir, s.hooks); err != nil {
		return nil, fmt.Errorf("bolt %s: %w", s.path, err)
	}
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
		o, err := s.tryOwn()
		if err == nil {
			return o, nil
		}
		if actx.Err() != nil {
			return nil, locked()
		}
		if !errors.Is(err, backend.ErrUnavailable) {
			return nil, err // foreign data, no permission...
		}
		lastErr = err
		r, err := dialOwner(actx, s.sock, s.path, s.caps, s.hooks)
		if err == nil {
			s.logger.Debug("bolt file is held by another process; using it through its socket", "socket", s.sock)
			return r, nil
		}
		if errors.Is(err, errRefused) || errors.Is(err, ErrPeerRefused) {
			return nil, fmt.Errorf("bolt %s: %w", s.path, err)
		}
		lastErr = err
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

// tryOwn opens the file if its lock is free, without waiting long for it
// (bbolt tries once when the timeout is under its 50ms retry step).
func (s *Shared) tryOwn() (*ownerAtt, error) {
	cfg := s.cfg
	cfg.lockTimeout = 20 * time.Millisecond
	st, err := Open(s.path, func(c *config) { *c = cfg })
	if err != nil {
		return nil, err
	}
	return newOwner(st, s.path, s.sock, s.hooks, s.logger), nil
}

// drop forgets a if it is still the current attachment.
func (s *Shared) drop(a attachment) {
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

// settle decides what a call does with err from attachment a: retry on a
// new attachment (true), or return err (false). An owner that stopped
// answering is dropped, so that the next call attaches anew.
func (s *Shared) settle(a attachment, err error) bool {
	if errors.Is(err, errOwnerStalled) {
		s.drop(a)
		return false
	}
	if isGone(err) {
		s.drop(a)
		return true
	}
	return false
}

// check validates a call before anything is sent.
func (s *Shared) check(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.isClosed() {
		return s.errClosed
	}
	return backend.CheckKey(key, s.caps)
}

// Capabilities implements backend.Store: those of the bolt adapter.
func (s *Shared) Capabilities() backend.Capabilities { return s.caps }

// Get implements backend.Store.
func (s *Shared) Get(ctx context.Context, key string) (backend.Entry, error) {
	if err := s.check(ctx, key); err != nil {
		return backend.Entry{}, err
	}
	for {
		a, _, err := s.current(ctx)
		if err != nil {
			return backend.Entry{}, err
		}
		e, err := a.get(ctx, key)
		if !s.settle(a, err) {
			return e, err
		}
	}
}

// CompareAndPut implements backend.Store.
func (s *Shared) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
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
		if !s.settle(a, err) {
			return v, err
		}
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
func (s *Shared) resolve(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, bool, error) {
	e, err := s.Get(ctx, key)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		if expect == 0 {
			return 0, false, nil
		}
		return 0, true, &backend.ConflictError{Key: key, Expected: expect, Known: true}
	case err != nil:
		return 0, true, fmt.Errorf("bolt %s: the owner went away during a write to %s, whose outcome is unknown: %w", s.path, quoteKey(key), err)
	case e.Version == expect:
		return 0, false, nil
	case e.Version > expect && bytes.Equal(e.Value, value):
		return e.Version, true, nil
	default:
		return 0, true, &backend.ConflictError{Key: key, Expected: expect, Known: true, Current: e}
	}
}

// Delete implements backend.Deleter. If the owner dies while the delete is
// in flight and the key then no longer exists, the outcome is unknown and
// the error matches backend.ErrUnavailable.
func (s *Shared) Delete(ctx context.Context, key string, expect backend.Version) error {
	if err := s.check(ctx, key); err != nil {
		return err
	}
	for {
		a, _, err := s.current(ctx)
		if err != nil {
			return err
		}
		err = a.del(ctx, key, expect)
		if !s.settle(a, err) {
			return err
		}
		if errors.Is(err, errOutcomeUnknown) {
			e, gerr := s.Get(ctx, key)
			if gerr == nil && e.Version == expect {
				continue // certainly not deleted: send it again
			}
			return fmt.Errorf("bolt %s: the owner went away during a delete of %s, whose outcome is unknown: %w",
				s.path, quoteKey(key), backend.ErrUnavailable)
		}
	}
}

// Update implements backend.Updater. In the owner's process fn runs inside
// the group commit, as with Store.Update. In the others it runs here, on
// the entry read through the owner, and the result is written with a
// CompareAndPut, again on a conflict: the owner's write transaction never
// waits for another process. fn may therefore run several times.
func (s *Shared) Update(ctx context.Context, key string, fn backend.UpdateFunc) (backend.Version, error) {
	if err := s.check(ctx, key); err != nil {
		return 0, err
	}
	if fn == nil {
		return 0, errors.New("bolt: Update with nil UpdateFunc")
	}
	for {
		a, _, err := s.current(ctx)
		if err != nil {
			return 0, err
		}
		if o, ok := a.(*ownerAtt); ok {
			v, err := o.st.Update(ctx, key, fn)
			if !errors.Is(err, backend.ErrClosed) || s.isClosed() {
				return v, err
			}
			s.drop(a) // the owner is closing: attach again
			continue
		}
		return s.updateRemote(ctx, key, fn)
	}
}

// updateRemote runs a read-modify-write loop through the owner: fn runs
// here on the entry read, and its result is written with a CompareAndPut.
// A conflict carries the current entry, on which fn runs again after a
// short random pause that grows with each conflict, so that many
// processes updating one hot key take turns instead of colliding in
// every commit. (If this process becomes the owner meanwhile, the loop
// goes on through its own store.)
func (s *Shared) updateRemote(ctx context.Context, key string, fn backend.UpdateFunc) (backend.Version, error) {
	cur, err := s.Get(ctx, key)
	if errors.Is(err, backend.ErrNotFound) {
		cur, err = backend.Entry{}, nil
	}
	if err != nil {
		return 0, err
	}
	for attempt := 0; ; attempt++ {
		val, err := fn(cur)
		if errors.Is(err, backend.ErrSkipUpdate) {
			return cur.Version, nil
		}
		if err != nil {
			return 0, fmt.Errorf("bolt: update %s: %w", quoteKey(key), err)
		}
		if val == nil {
			val = []byte{}
		}
		if err := backend.CheckValue(val, s.caps); err != nil {
			return 0, err
		}
		v, err := s.CompareAndPut(ctx, key, cur.Version, val)
		if !errors.Is(err, backend.ErrConflict) {
			return v, err
		}
		if e, ok := backend.CurrentEntry(err); ok {
			cur = e
		} else if cur, err = s.Get(ctx, key); errors.Is(err, backend.ErrNotFound) {
			cur = backend.Entry{}
		} else if err != nil {
			return 0, err
		}
		if err := backoff.Jitter(ctx, attempt); err != nil {
			return 0, err
		}
	}
}

// Watch implements backend.Watcher. Notifications come from the owner's
// commits, so writes by every process sharing the file are seen. When the
// attachment changes, the watch moves to the new one and receives 0
// ("re-read"): changes in between may have gone unnoticed.
func (s *Shared) Watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	if err := s.check(ctx, key); err != nil {
		return nil, err
	}
	a, gen, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	in, err := a.watch(ctx, key)
	if err != nil && !isGone(err) && !errors.Is(err, errOwnerStalled) {
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

// watchRetry is how long a watch waits before attaching again after a
// failed attempt.
const watchRetry = 100 * time.Millisecond

// follow forwards one watch across attachments until ctx ends or the store
// is closed.
func (s *Shared) follow(ctx context.Context, key string, a attachment, gen uint64, in <-chan backend.Version, out chan backend.Version) {
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
			if a != nil && (isGone(err) || errors.Is(err, errOwnerStalled)) {
				s.drop(a)
			}
			t := time.NewTimer(watchRetry)
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

func (s *Shared) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close implements backend.Store. An owner stops serving (the other
// processes attach again) and releases the file.
func (s *Shared) Close() error {
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
