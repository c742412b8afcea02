package libp2p

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/stickypub/stickypub/backend"
)

// Store is one handle onto a private Kademlia network: a libp2p node (a
// client by default) that reads and writes the project's records on the
// storing nodes. It implements backend.Store and backend.Watcher.
type Store struct {
	opts Options
	caps backend.Capabilities
	n    *node
	log  *slog.Logger

	// ctx ends at Close; background work (late sends, repairs,
	// refreshes, watches, hints) runs under it and is waited for by wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	once   sync.Once

	tracked   *tracker
	hints     *hinter
	suspects  suspects
	ambiguous ambiguousWrites
	recent    recentRepairs
	stats     counters
	// repairs bounds concurrent background repair sends.
	repairs chan struct{}
}

// tableRefresh is how often a LookupTable handle refreshes its routing
// table.
const tableRefresh = 10 * time.Second

// tableSettle is how long a LookupTable handle waits, in Open, for its
// routing table to grow when it does not yet hold every server it was told
// of (some may be gone). Generous: the table takes a server only after a
// request to it, which on a loaded machine can take a while, and a handle
// whose table misses a server may take another replica set than the
// others (the wait ends as soon as the table is full).
const tableSettle = 2 * time.Second

// Stats are a handle's counters since it was opened.
type Stats struct {
	// Corrupt counts answers from peers that were not valid records of
	// the project (garbage, wrong key, bad checksum).
	Corrupt uint64
	// Repairs counts repair copies sent by Get to stale or empty replicas.
	Repairs uint64
	// Refreshes counts records re-put before they expire.
	Refreshes uint64
	// Unconfirmed counts records Get ignored because too few replicas
	// returned them (see Options.Agree).
	Unconfirmed uint64
	// RefusedDials counts dials the address filter refused.
	RefusedDials uint64
	// Gets and Puts count Get and CompareAndPut calls; Conflicts and
	// Unavailable count the puts that ended so.
	Gets, Puts, Conflicts, Unavailable uint64
	// Suspected counts the leaders this handle found refusing writes they
	// should take (or hiding a write no read quorum shows) and skipped.
	Suspected uint64
}

type counters struct {
	corrupt, repairs, refreshes, unconfirmed atomic.Uint64
	gets, puts, conflicts, unavailable       atomic.Uint64
	suspected                                atomic.Uint64
}

// Open starts a client node, joins the network through opts.Bootstrap and
// returns a handle on it. Records are stored by the network's server nodes
// (Swarm, or `stickypub swarm`), never by the handle.
func Open(ctx context.Context, opts Options) (*Store, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg := nodeConfig{
		network:   o.Network,
		listen:    o.Listen,
		maxValue:  o.MaxValueSize,
		recordAge: o.RecordLifetime,
		gater:     newDialGater(o.AllowDial, nil),
		logger:    o.Logger,
	}
	if o.KeyFile != "" {
		if cfg.priv, err = LoadOrCreateKey(o.KeyFile); err != nil {
			return nil, err
		}
	}
	n, err := newNode(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := newStore(o, n)
	if err := s.join(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// New returns a handle that uses an existing host (which it does not
// close). The host should refuse dials outside the network (a connection
// gater); opts.Listen, KeyFile and AllowDial do not apply.
// opts.Bootstrap peers are connected as in Open.
func New(ctx context.Context, h host.Host, opts Options) (*Store, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg := nodeConfig{
		network: o.Network, host: h, maxValue: o.MaxValueSize,
		recordAge: o.RecordLifetime, logger: o.Logger,
	}
	if o.Lookup == LookupTable {
		cfg.extraOptions = append(cfg.extraOptions, dht.RoutingTableRefreshPeriod(tableRefresh))
	}
	n, err := newNode(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := newStore(o, n)
	if err := s.join(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func newStore(o Options, n *node) *Store {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		opts: o, caps: o.capabilities(), n: n, log: o.Logger,
		ctx: ctx, cancel: cancel,
		tracked: newTracker(o.MaxTracked),
		repairs: make(chan struct{}, 32),
	}
	s.hints = newHinter(s)
	if o.RefreshInterval > 0 {
		s.wg.Go(s.refreshLoop)
	}
	return s
}

// join connects the bootstrap peers and waits until the routing table
// knows at least one server (and, with LookupTable, has refreshed).
func (s *Store) join(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	var infos []peer.AddrInfo
	for _, b := range s.opts.Bootstrap {
		a, err := ma.NewMultiaddr(b)
		if err != nil {
			return fmt.Errorf("%w: bootstrap %q: %v", backend.ErrBadURI, b, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return fmt.Errorf("%w: bootstrap %q: %v", backend.ErrBadURI, b, err)
		}
		infos = append(infos, *ai)
	}
	if len(infos) == 0 {
		return fmt.Errorf("%w: no bootstrap peers", backend.ErrUnavailable)
	}
	ok, err := s.n.connect(ctx, infos)
	if ok == 0 {
		return fmt.Errorf("%w: no bootstrap peer reachable: %v", backend.ErrUnavailable, err)
	}
	if err := s.n.waitTable(ctx, 1); err != nil {
		return fmt.Errorf("%w: %v", backend.ErrUnavailable, err)
	}
	if s.opts.Lookup == LookupTable {
		// Replica sets come from the table, so it must hold every server
		// before the first write (so that writes go where later reads
		// look). One FIND_NODE to each bootstrap peer returns the k (20)
		// servers closest to this node, which on a network of at most k
		// servers is all of them (the library's table refresh finds them
		// too, in a dozen lookups: most of the time an Open took).
		want, err := s.discover(ctx, infos)
		if err != nil {
			return fmt.Errorf("%w: joining the network: %v", backend.ErrUnavailable, err)
		}
		if err := s.n.waitFull(ctx, want, tableSettle); err != nil {
			return fmt.Errorf("%w: %v", backend.ErrUnavailable, err)
		}
		return nil
	}
	// A refresh looks up the neighbourhood, filling the table with
	// servers beyond the bootstrap peers.
	select {
	case err := <-s.n.dht.RefreshRoutingTable():
		if err != nil {
			s.log.Debug("routing table refresh", "err", err)
		}
	case <-ctx.Done():
		return fmt.Errorf("%w: joining the network: %v", backend.ErrUnavailable, ctx.Err())
	}
	return nil
}

// discover asks the bootstrap peers for the servers closest to this node,
// connects them, and returns how many servers it knows of (the bootstrap
// peers among them).
func (s *Store) discover(ctx context.Context, boot []peer.AddrInfo) (int, error) {
	var (
		mu    sync.Mutex
		known = make(map[peer.ID]peer.AddrInfo)
		wg    sync.WaitGroup
	)
	for _, b := range boot {
		known[b.ID] = b
	}
	for _, b := range boot {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, s.opts.RPCTimeout)
			defer cancel()
			ps, err := s.n.msgr.GetClosestPeers(rctx, b.ID, s.n.id())
			if err != nil {
				s.log.Debug("libp2p: asking a bootstrap peer for servers", "peer", b.ID, "err", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range ps {
				if p.ID != s.n.id() && len(p.Addrs) > 0 {
					known[p.ID] = *p
				}
			}
		})
	}
	wg.Wait()
	delete(known, s.n.id())
	var more []peer.AddrInfo
	for id, ai := range known {
		if s.n.host.Network().Connectedness(id) != network.Connected {
			more = append(more, ai)
		}
	}
	if _, err := s.n.connect(ctx, more); err != nil {
		// Some servers may be gone; the table holds the others.
		s.log.Debug("libp2p: connecting servers", "err", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return len(known), nil
}

// Capabilities implements backend.Store.
func (s *Store) Capabilities() backend.Capabilities { return s.caps }

// Stats returns the handle's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Corrupt: s.stats.corrupt.Load(), Repairs: s.stats.repairs.Load(),
		Refreshes: s.stats.refreshes.Load(), Unconfirmed: s.stats.unconfirmed.Load(),
		RefusedDials: s.n.gater.refusedCount(),
		Gets:         s.stats.gets.Load(), Puts: s.stats.puts.Load(), Conflicts: s.stats.conflicts.Load(),
		Unavailable: s.stats.unavailable.Load(), Suspected: s.stats.suspected.Load(),
	}
}

// ID is the peer ID of the handle's node.
func (s *Store) ID() peer.ID { return s.n.id() }

// Host is the handle's libp2p host.
func (s *Store) Host() host.Host { return s.n.host }

// Close implements backend.Store: it stops background work, closes the
// handle's watches and its node (and host, unless given to New).
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.closed.Store(true)
		s.hints.flush()
		s.cancel()
		s.wg.Wait()
		err = s.n.close()
	})
	return err
}

// check validates the common arguments of an operation.
func (s *Store) check(ctx context.Context, key string) error {
	if s.closed.Load() {
		return backend.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return backend.CheckKey(key, s.caps)
}

// dhtKey is the record key of key: "/stickypub/<prefix>/<key>".
func (s *Store) dhtKey(key string) string {
	return "/" + namespace + "/" + url.PathEscape(s.opts.Prefix) + "/" + key
}

// Get implements backend.Store: it asks the replica set, needs a read
// quorum of answers, returns the highest version that enough replicas
// agree on (Options.Agree) and repairs replicas that are behind.
func (s *Store) Get(ctx context.Context, key string) (backend.Entry, error) {
	if err := s.check(ctx, key); err != nil {
		return backend.Entry{}, err
	}
	s.stats.gets.Add(1)
	dk := s.dhtKey(key)
	r, err := s.read(ctx, dk)
	if err != nil {
		return backend.Entry{}, fmt.Errorf("libp2p: get %q: %w", key, err)
	}
	if r.absent() {
		return backend.Entry{}, fmt.Errorf("%w: %q", backend.ErrNotFound, key)
	}
	return backend.Entry{Value: append([]byte{}, r.value...), Version: backend.Version(r.version)}, nil
}

// CompareAndPut implements backend.Store. The record (version expect+1,
// with a nonce of this call) goes to every replica; each applies
// compare-and-put; the write succeeds on a write quorum of distinct
// acceptances. Otherwise the refusing replicas are asked what they hold: a
// conflict carries that entry; too few answers is backend.ErrUnavailable
// (the write may still have landed on some replicas; retrying the same
// value at the same version on this handle is safe: the retry reuses the
// nonce, so replicas that took the first attempt take it again).
//
// Two calls that write the same value at the same version are two writes:
// at most one succeeds, the other gets a conflict carrying the first.
func (s *Store) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := s.check(ctx, key); err != nil {
		return 0, err
	}
	if err := backend.CheckValue(value, s.caps); err != nil {
		return 0, err
	}
	dk := s.dhtKey(key)
	if expect == math.MaxUint64 {
		// No version follows it; whatever is stored, this is a conflict.
		cur, err := s.read(ctx, dk)
		if err != nil {
			return 0, fmt.Errorf("libp2p: compare-and-put %q: %w", key, err)
		}
		return 0, &backend.ConflictError{Key: key, Expected: expect, Current: cur.entry(), Known: true}
	}
	rec := record{version: uint64(expect) + 1, expect: uint64(expect), value: value}
	var retry bool
	if rec.nonce, retry = s.ambiguous.take(dk, rec); !retry {
		rec.nonce = newNonce()
	}
	s.stats.puts.Add(1)
	cur, err := s.write(ctx, dk, rec)
	if err != nil && !errors.Is(err, backend.ErrConflict) {
		s.ambiguous.remember(dk, rec)
	}
	switch {
	case errors.Is(err, backend.ErrConflict):
		s.stats.conflicts.Add(1)
	case errors.Is(err, backend.ErrUnavailable):
		s.stats.unavailable.Add(1)
	}
	switch {
	case err == nil:
		s.hints.changed(dk, rec.version)
		return backend.Version(rec.version), nil
	case errors.Is(err, backend.ErrConflict):
		ce := &backend.ConflictError{Key: key, Expected: expect}
		if cur != nil {
			ce.Current, ce.Known = cur.entry(), true
		}
		return 0, fmt.Errorf("libp2p: %w", ce)
	default:
		return 0, fmt.Errorf("libp2p: compare-and-put %q: %w", key, err)
	}
}

// entry converts a decoded record into a backend.Entry (a copy).
func (r record) entry() backend.Entry {
	if r.absent() {
		return backend.Entry{}
	}
	return backend.Entry{Value: append([]byte{}, r.value...), Version: backend.Version(r.version)}
}

// randomPrefix returns a fresh key namespace name.
func randomPrefix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

var _ backend.Store = (*Store)(nil)

// sleepCtx waits d or until ctx ends, reporting whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// DHT is the handle's Kademlia node, for tools that use the library
// directly (benchmarks comparing with its own PutValue).
func (s *Store) DHT() *dht.IpfsDHT { return s.n.dht }

// RecordKey is the DHT record key under which key is stored.
func (s *Store) RecordKey(key string) string { return s.dhtKey(key) }

// CreateRecord encodes value as the record that creates a key (version
// 1), the value a direct library PutValue must carry to pass the
// network's validator.
func CreateRecord(value []byte) []byte {
	return record{version: 1, nonce: newNonce(), value: value}.encode()
}

// PutToOnePeer sends value (an encoded record, see CreateRecord) under key
// to the closest server in the handle's routing table, in one PUT_VALUE
// request: the library's raw per-peer put, for benchmarks.
func (s *Store) PutToOnePeer(ctx context.Context, key string, value []byte) error {
	dk := s.dhtKey(key)
	peers := s.n.dht.RoutingTable().NearestPeers(kb.ConvertKey(dk), 1)
	if len(peers) == 0 {
		return fmt.Errorf("%w: no server known", backend.ErrUnavailable)
	}
	return s.putTo(ctx, peers[0], dk, value)
}
