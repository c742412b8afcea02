package bittorrent

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/anacrolix/dht/v2"

	"github.com/stickypub/stickypub/backend"
)

// Store is a handle on one namespace of a BEP44 network: keys are mutable
// items under the namespace key, versions are their seq. It implements
// backend.Store and is safe for concurrent use.
type Store struct {
	opts Options
	caps backend.Capabilities
	srv  *dht.Server
	conn interface{ Close() error }

	// ctx ends when the handle closes; background repairs and the
	// republisher run under it.
	ctx    context.Context
	cancel context.CancelFunc
	// goMu orders spawning background work with Close.
	goMu   sync.Mutex
	wg     sync.WaitGroup
	closed atomic.Bool

	stats statCounters
	repub *republishSet
	views *viewCache
	// verified remembers items whose signatures checked out.
	verified verifyCache
	// dead lists nodes that stopped answering.
	dead deadNodes
	// contended paces writes to keys this handle keeps losing races on.
	contended contention
}

var _ backend.Store = (*Store)(nil)

// Open starts a handle: its own passive DHT server (BEP43 read-only, with
// a store that keeps nothing) bootstrapped from opts.Bootstrap.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	boot, err := resolveAddrs(o.Bootstrap)
	if err != nil {
		return nil, err
	}
	conn, err := listen(o.Listen, o.WrapConn)
	if err != nil {
		return nil, err
	}
	cfg := baseConfig(conn, boot, o.SendRate, o.QueryTimeout)
	cfg.Passive = true
	cfg.Store = nothingStore{}
	cfg.Exp = o.RecordLifetime
	srv, err := dht.NewServer(cfg)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("bittorrent: starting handle server: %w", err)
	}
	s := &Store{
		opts: o,
		caps: backend.Capabilities{
			Consistency:    backend.PerNodeCAS,
			MaxKeySize:     o.MaxKeySize,
			MaxValueSize:   MaxValueSize,
			Persistent:     false,
			RecordLifetime: o.RecordLifetime,
		},
		srv:   srv,
		conn:  conn,
		repub: newRepublishSet(),
		views: newViewCache(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.spawn(s.republishLoop)
	return s, nil
}

// Capabilities implements backend.Store.
func (s *Store) Capabilities() backend.Capabilities { return s.caps }

// ReadOnly reports whether the handle lacks the namespace's private key.
func (s *Store) ReadOnly() bool { return s.opts.PrivateKey == nil }

// PublicKey is the namespace key.
func (s *Store) PublicKey() ed25519.PublicKey { return s.opts.PublicKey }

// Close implements backend.Store. It stops republishing and background
// repairs and closes the handle's server.
func (s *Store) Close() error {
	s.goMu.Lock()
	already := s.closed.Swap(true)
	s.goMu.Unlock()
	if already {
		return nil
	}
	s.cancel()
	s.wg.Wait()
	s.srv.Close()
	return nil
}

// spawn runs fn in a goroutine that Close waits for, unless the handle is
// closed.
func (s *Store) spawn(fn func()) {
	s.goMu.Lock()
	defer s.goMu.Unlock()
	if s.closed.Load() {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// check is the precondition of every operation: closed, then a done
// context, then the key.
func (s *Store) check(ctx context.Context, key string) error {
	if s.closed.Load() {
		return backend.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return backend.CheckKey(key, s.caps)
}

// opContext ends when ctx does or the handle closes.
func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	octx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return octx, func() { stop(); cancel() }
}

// interrupted returns backend.ErrClosed when the handle closed and
// ctx.Err() when the caller's context ended, else nil.
func (s *Store) interrupted(ctx context.Context) error {
	if s.closed.Load() {
		return backend.ErrClosed
	}
	return ctx.Err()
}

// finish maps an operation's error after ctx or the handle ended.
func (s *Store) finish(ctx context.Context, err error) error {
	if ierr := s.interrupted(ctx); ierr != nil {
		return ierr
	}
	return err
}

// Get implements backend.Store: it reads the closest nodes (at least
// ReadQuorum must answer; on a recently found closest set only the
// ReadQuorum nearest are asked unless one of them fails), verifies every
// item, returns the highest seq and re-puts that signed item to the nodes
// asked that lack it or hold an older one.
func (s *Store) Get(ctx context.Context, key string) (backend.Entry, error) {
	if err := s.check(ctx, key); err != nil {
		return backend.Entry{}, err
	}
	s.stats.gets.Add(1)
	octx, cancel := s.opContext(ctx)
	defer cancel()
	salt := keySalt(s.opts.SaltPrefix, key)
	target := MutableTarget(s.opts.PublicKey, salt)
	v, err := s.read(octx, target, salt, s.opts.ReadQuorum, quorumFirst)
	if err != nil {
		return backend.Entry{}, s.finish(ctx, fmt.Errorf("bittorrent: get %q: %w", key, err))
	}
	best, ok := v.bestKnown(s)
	if !ok {
		return backend.Entry{}, fmt.Errorf("bittorrent: get %q: %w", key, backend.ErrNotFound)
	}
	value, err := DecodeValue(best.EncodedV)
	if err != nil { // verified items always decode; belt and braces
		return backend.Entry{}, fmt.Errorf("bittorrent: get %q: %w: %v", key, backend.ErrCorrupt, err)
	}
	s.repub.touch(target, salt, best)
	s.repairAsync(v, best)
	return backend.Entry{Value: value, Version: backend.Version(best.Seq)}, nil
}

// CompareAndPut implements backend.Store with BEP44's seq and cas: the new
// item has seq expect+1 and is put with cas expect (no cas when creating)
// to each of the closest nodes, and the write succeeds when WriteQuorum
// distinct nodes accept it. A stale expect is found in the read that
// fetches the write tokens and returns a *backend.ConflictError carrying
// the current item; a conflict reported by the nodes (301/302) returns one
// without it.
func (s *Store) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := s.check(ctx, key); err != nil {
		return 0, err
	}
	if err := backend.CheckValue(value, s.caps); err != nil {
		return 0, err
	}
	if s.ReadOnly() {
		return 0, fmt.Errorf("bittorrent: put %q: %w", key, ErrReadOnly)
	}
	s.stats.puts.Add(1)
	octx, cancel := s.opContext(ctx)
	defer cancel()
	salt := keySalt(s.opts.SaltPrefix, key)
	target := MutableTarget(s.opts.PublicKey, salt)
	if err := s.contended.wait(octx, target); err != nil {
		return 0, s.finish(ctx, err)
	}
	v, err := s.read(octx, target, salt, s.opts.WriteQuorum, askAll)
	if err != nil {
		return 0, s.finish(ctx, fmt.Errorf("bittorrent: put %q: %w", key, err))
	}
	cur, found := v.bestKnown(s)
	if (!found && expect != 0) || (found && backend.Version(cur.Seq) != expect) {
		s.contended.lost(target)
		ce := &backend.ConflictError{Key: key, Expected: expect, Known: true}
		if found {
			val, err := DecodeValue(cur.EncodedV)
			if err == nil {
				ce.Current = backend.Entry{Value: val, Version: backend.Version(cur.Seq)}
			} else {
				ce.Known = false
			}
		}
		return 0, ce
	}
	if expect >= math.MaxInt64 {
		return 0, &backend.ConflictError{Key: key, Expected: expect}
	}
	next := signItem(s.opts.PrivateKey, salt, int64(expect)+1, EncodeValue(value))
	res := s.putQuorum(octx, v, cur, found, next, int64(expect))
	if res.accepted >= s.opts.WriteQuorum {
		s.contended.won(target)
		s.repub.touch(target, salt, next)
		return backend.Version(next.Seq), nil
	}
	if err := s.interrupted(ctx); err != nil {
		return 0, err
	}
	if res.conflicts > 0 {
		s.contended.lost(target)
		return 0, fmt.Errorf("bittorrent: put %q: %d of %d nodes accepted, %d refused with a conflict: %w",
			key, res.accepted, res.sent, res.conflicts, &backend.ConflictError{Key: key, Expected: expect})
	}
	// Some of the closest nodes did not answer: find them afresh next time
	// rather than asking the same ones directly for ViewTTL.
	s.views.drop(target)
	s.stats.noQuorum.Add(1)
	return 0, fmt.Errorf("bittorrent: put %q: %d of %d nodes accepted (need %d): %w: %w",
		key, res.accepted, res.sent, s.opts.WriteQuorum, ErrNoQuorum, backend.ErrUnavailable)
}
