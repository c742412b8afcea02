package core

// The engine: the state clients of one store share (blob cache, registry
// cache, announcers that group-commit coordinator updates), and Hub.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// engine is the part of a client that works on a topic's shared objects
// (coordinator, snapshots, blobs). Clients of one Hub share an engine, so
// their coordinator updates are group-committed together.
type engine struct {
	store      backend.Store
	caps       backend.Capabilities
	cfg        options
	blobs      *blobStore
	maxValue   int
	foldWindow int
	// ordered (TopicOrder): every batch is announced in the coordinator,
	// which fixes one order of all messages. Otherwise (PublisherOrder) the
	// coordinator is only the publisher registry and subscribers read head
	// records.
	ordered bool
	order   Ordering // TopicOrder (ordered) or PublisherOrder
	retries atomic.Uint64
	// reclaimed counts snapshots whose history was deleted.
	reclaimed atomic.Uint64
	reg       *regCache

	ctx    context.Context // cancelled by close; bounds announcer work
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	announcers map[string]*announcer
	written    map[string]writtenCoord // last coordinator written per topic
	pushes     map[string]*topicPush   // the shared coordinator watch per topic
	decoded    map[string]decodedCoord // the coordinator polls last decoded per topic
	reads      map[string]*coordReads  // grouped coordinator reads per topic
}

// writtenCoord is a coordinator state this engine wrote, and its version.
type writtenCoord struct {
	st *coordState
	v  backend.Version
}

func newEngine(store backend.Store, o options) (*engine, error) {
	if store == nil {
		return nil, fmt.Errorf("core: nil store")
	}
	caps := store.Capabilities()
	maxValue := caps.MaxValueSize
	if maxValue <= 0 || maxValue > 4<<20 {
		maxValue = 4 << 20
	}
	if maxValue < backend.MinValueSize {
		return nil, fmt.Errorf("core: backend value limit %d is below the protocol's minimum of %d bytes", maxValue, backend.MinValueSize)
	}
	fw := o.foldWindow
	if fw == 0 {
		fw = min(64, max(4, maxValue/2/60))
	}
	order, err := resolveOrdering(o.ordering, caps)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &engine{
		store: store, caps: caps, cfg: o, blobs: newBlobStore(store, maxValue, o.cacheBytes),
		maxValue: maxValue, foldWindow: fw, reg: newRegCache(), ordered: order == TopicOrder, order: order,
		ctx: ctx, cancel: cancel, announcers: map[string]*announcer{}, written: map[string]writtenCoord{},
		pushes: map[string]*topicPush{}, decoded: map[string]decodedCoord{}, reads: map[string]*coordReads{},
	}, nil
}

func (e *engine) now() time.Time { return e.cfg.now() }

// close cancels pending announcer work and waits for it.
func (e *engine) close() {
	e.cancel()
	e.wg.Wait()
}

// announcer group-commits the coordinator updates of one topic: while one
// update is in flight, every request that arrives is queued, and the next
// update merges them all (the merge is commutative and idempotent, so one
// compare-and-put can carry any number of announcements).
type announcer struct {
	e       *engine
	tk      topicKeys
	mu      sync.Mutex
	pending []*annRequest
	running bool
}

type annRequest struct {
	op   coordOp
	done chan annResult
}

type annResult struct {
	st  *coordState
	err error
}

// announce merges op into the topic coordinator through the topic's
// announcer and returns once it is visible. If ctx ends first, the update
// may still land; callers retry idempotently.
func (e *engine) announce(ctx context.Context, tk topicKeys, op coordOp) (*coordState, error) {
	e.mu.Lock()
	a, ok := e.announcers[tk.name]
	if !ok {
		a = &announcer{e: e, tk: tk}
		e.announcers[tk.name] = a
	}
	e.mu.Unlock()
	req := &annRequest{op: op, done: make(chan annResult, 1)}
	a.mu.Lock()
	if !a.running {
		// Nobody announcing: do it on this goroutine, for this request
		// only (whoever queues meanwhile is left to a goroutine), under
		// ctx and the engine's context both.
		a.running = true
		a.mu.Unlock()
		actx, cancel := withBoth(ctx, e.ctx)
		a.mergeAndAnnounce(actx, []*annRequest{req})
		cancel()
		a.mu.Lock()
		if len(a.pending) > 0 {
			e.wg.Go(a.run)
		} else {
			a.running = false
		}
		a.mu.Unlock()
		r := <-req.done
		return r.st, r.err
	}
	a.pending = append(a.pending, req)
	a.mu.Unlock()
	select {
	case r := <-req.done:
		return r.st, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *announcer) run() {
	for {
		a.mu.Lock()
		batch := a.pending
		a.pending = nil
		if len(batch) == 0 || a.e.ctx.Err() != nil {
			a.running = false
			a.mu.Unlock()
			for _, r := range batch {
				r.done <- annResult{err: fmt.Errorf("core: announce on %q: %w", a.tk.name, a.e.ctx.Err())}
			}
			return
		}
		a.mu.Unlock()
		a.mergeAndAnnounce(a.e.ctx, batch)
	}
}

// mergeAndAnnounce merges the requests of batch into one coordinator
// update, with the records they carry (coordOp.batch) in the same atomic
// step, and answers each with its outcome.
func (a *announcer) mergeAndAnnounce(ctx context.Context, batch []*annRequest) {
	var merged coordOp
	for _, r := range batch {
		merged.anns = append(merged.anns, r.op.anns...)
		for p, exp := range r.op.subs {
			if merged.subs == nil {
				merged.subs = map[PublisherID]int64{}
			}
			merged.subs[p] = exp
		}
		for p, exp := range r.op.active {
			if merged.active == nil {
				merged.active = map[PublisherID]int64{}
			}
			merged.active[p] = max(merged.active[p], exp)
		}
		if r.op.batch != nil {
			// The records of every request land with the merged update.
			if merged.batch == nil {
				merged.batch = &putBatch{}
			}
			merged.batch.puts = append(merged.batch.puts, r.op.batch.puts...)
		}
	}
	st, err := a.e.announceDirect(ctx, a.tk, merged)
	if err != nil && merged.batch != nil && len(batch) > 1 && (errors.Is(err, backend.ErrConflict) || errors.Is(err, errNoBatch) || errors.Is(err, backend.ErrNoBatch) || errors.Is(err, backend.ErrInvalidKey)) {
		// Nothing was written. One request's records may be the cause (a
		// conflict, a key twice): each goes again on its own, so that only
		// that one fails.
		for _, r := range batch {
			st, err := a.e.announceDirect(ctx, a.tk, r.op)
			r.done <- annResult{st: st, err: err}
		}
		return
	}
	if err == nil && merged.batch != nil {
		vers := merged.batch.vers
		for _, r := range batch {
			if r.op.batch != nil {
				n := len(r.op.batch.puts)
				r.op.batch.vers, vers = vers[:n:n], vers[n:]
			}
		}
	}
	for _, r := range batch {
		r.done <- annResult{st: st, err: err}
	}
}

// Hub lets several clients in one process (one per identity) share a store's
// coordinator traffic and blob cache: their announcements on a topic are
// group-committed into one coordinator update, which is what makes many
// publishers in one process cheap on a compare-and-put backend. Clients
// made with WithHub must use the hub's store. Close the hub after its
// clients.
type Hub struct{ e *engine }

// NewHub returns a hub on store. Of opts, the ones about shared state apply
// (WithRetention, WithFoldWindow, WithCacheBytes, WithClock, WithLogger,
// WithOrdering).
func NewHub(store backend.Store, opts ...Option) (*Hub, error) {
	e, err := newEngine(store, buildOptions(opts))
	if err != nil {
		return nil, err
	}
	return &Hub{e: e}, nil
}

// Close stops the hub's background work. Close the hub's clients first.
func (h *Hub) Close() { h.e.close() }

// WithHub makes the client share h's engine (see Hub). The engine options
// (WithRetention, WithFoldWindow, WithCacheBytes, WithClock,
// WithoutReclaim, WithDurableFloor, WithOrdering) are the hub's, given to
// NewHub: given to such a client they are ignored with a warning (a
// different ordering is an error).
func WithHub(h *Hub) Option { return func(o *options) { o.hub = h } }
