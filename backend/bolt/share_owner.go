package bolt

import (
	"bufio"
	"context"
	"encoding/gob"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// ownerAtt is the attachment of the process that holds the bolt file: it
// uses the store directly and serves the other processes on the socket.
type ownerAtt struct {
	st     *Store
	path   string // the file, as this process names it
	sock   string
	caps   backend.Capabilities
	hooks  *shareHooks
	logger *slog.Logger

	ln         *net.UnixListener // nil when the file cannot be shared
	acceptDone chan struct{}

	mu      sync.Mutex
	closing bool
	conns   map[*serverConn]struct{}

	closeOnce sync.Once
	closeErr  error
}

// newOwner wraps st, which this process has just opened, and starts
// serving it on sock, whose directory the caller has checked. If the
// socket cannot be created the store still works for this process; other
// processes then wait for the file lock.
func newOwner(st *Store, path, sock string, hooks *shareHooks, logger *slog.Logger) *ownerAtt {
	o := &ownerAtt{st: st, path: path, sock: sock, caps: st.Capabilities(), hooks: hooks, logger: logger,
		acceptDone: make(chan struct{}), conns: map[*serverConn]struct{}{}}
	ln, err := listenPrivate(sock)
	if err != nil {
		logger.Warn("bolt file cannot be shared with other processes", "socket", sock, "err", err)
		close(o.acceptDone)
		return o
	}
	o.ln = ln
	logger.Debug("bolt file opened; serving other processes", "path", path, "socket", sock)
	go o.accept()
	return o
}

func (o *ownerAtt) alive() bool { return true }

func (o *ownerAtt) get(ctx context.Context, key string) (backend.Entry, error) {
	return o.st.Get(ctx, key)
}

func (o *ownerAtt) cas(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	return o.st.CompareAndPut(ctx, key, expect, value)
}

func (o *ownerAtt) del(ctx context.Context, key string, expect backend.Version) error {
	return o.st.Delete(ctx, key, expect)
}

func (o *ownerAtt) watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	return o.st.Watch(ctx, key)
}

// accept serves every connection until the listener is closed.
func (o *ownerAtt) accept() {
	defer close(o.acceptDone)
	for {
		c, err := o.ln.AcceptUnix()
		if err != nil {
			return
		}
		sc := &serverConn{o: o, c: c, enc: gob.NewEncoder(c), inflight: map[uint64]context.CancelFunc{},
			watches: map[uint64]context.CancelFunc{}, readDone: make(chan struct{})}
		sc.ctx, sc.cancel = context.WithCancel(context.Background())
		o.mu.Lock()
		if o.closing {
			o.mu.Unlock()
			_ = c.Close()
			continue
		}
		o.conns[sc] = struct{}{}
		o.mu.Unlock()
		go sc.serve()
	}
}

// close stops serving and closes the store. Requests the store has not
// taken yet are answered "owner closing" (the clients send them again to
// the next owner); the batch being committed completes and is answered.
// The listener is closed (and the socket removed) before the store
// releases the file lock, so the next owner's socket is never removed.
func (o *ownerAtt) close() error {
	o.closeOnce.Do(func() {
		o.mu.Lock()
		o.closing = true
		conns := make([]*serverConn, 0, len(o.conns))
		for sc := range o.conns {
			conns = append(conns, sc)
		}
		o.mu.Unlock()
		if o.ln != nil {
			_ = o.ln.Close()
		}
		<-o.acceptDone
		for _, sc := range conns {
			sc.stopTaking()
		}
		o.closeErr = o.st.Close()
		for _, sc := range conns {
			sc.finish()
		}
	})
	return o.closeErr
}

// serverConn is one client process connected to the owner.
type serverConn struct {
	o   *ownerAtt
	c   *net.UnixConn
	wmu sync.Mutex
	enc *gob.Encoder

	ctx    context.Context // ends when the connection does
	cancel context.CancelFunc

	mu       sync.Mutex
	stopped  bool // no new work is started
	inflight map[uint64]context.CancelFunc
	watches  map[uint64]context.CancelFunc
	wg       sync.WaitGroup
	readDone chan struct{}
}

// send writes one reply. A client that does not take it within the stall
// bound is dropped: no other client, and no writer, waits for it.
func (sc *serverConn) send(r *reply) {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	_ = sc.c.SetWriteDeadline(time.Now().Add(sc.o.hooks.stall))
	if err := sc.enc.Encode(r); err != nil {
		_ = sc.c.Close()
	}
}

// start registers one unit of work unless the owner is closing.
func (sc *serverConn) start() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.stopped {
		return false
	}
	sc.wg.Add(1)
	return true
}

func (sc *serverConn) stopTaking() {
	sc.mu.Lock()
	sc.stopped = true
	sc.mu.Unlock()
}

// finish waits for the work in progress (its replies are sent), then ends
// the connection.
func (sc *serverConn) finish() {
	sc.wg.Wait()
	_ = sc.c.Close()
	<-sc.readDone
}

// serve checks the client's credentials and hello, then serves its
// requests until the connection ends. A client that sends nothing (not even
// a ping) for the stall bound is dropped.
func (sc *serverConn) serve() {
	defer func() {
		sc.cancel()
		sc.wg.Wait()
		_ = sc.c.Close()
		sc.o.mu.Lock()
		delete(sc.o.conns, sc)
		sc.o.mu.Unlock()
		close(sc.readDone)
	}()
	if err := checkPeer(sc.c, sc.o.sock, false, sc.o.hooks); err != nil {
		// Nothing the client sent is read; it learns why it was refused.
		sc.o.logger.Warn("bolt owner refused a process", "err", err)
		sc.send(&reply{Err: &wireError{Code: codePeerRefused, Msg: err.Error()}})
		return
	}
	dec := gob.NewDecoder(bufio.NewReader(sc.c))
	_ = sc.c.SetReadDeadline(time.Now().Add(sc.o.hooks.stall))
	var hello request
	if err := dec.Decode(&hello); err != nil || hello.Op != wireHello {
		return
	}
	if werr := sc.o.checkHello(&hello); werr != nil {
		sc.send(&reply{ID: hello.ID, Err: werr})
		return
	}
	caps := sc.o.caps
	sc.send(&reply{ID: hello.ID, Caps: &caps})
	for {
		var req request // fresh: gob leaves fields absent from the stream untouched
		_ = sc.c.SetReadDeadline(time.Now().Add(sc.o.hooks.stall))
		if err := dec.Decode(&req); err != nil {
			return
		}
		switch req.Op {
		case wireGet, wireCAS, wireDelete, wireList, wireBatch:
			if !sc.start() {
				sc.send(&reply{ID: req.ID, Err: &wireError{Code: codeOwnerClosing, Msg: "bolt owner process is closing"}})
				continue
			}
			ctx, cancel := context.WithCancel(sc.ctx)
			sc.mu.Lock()
			sc.inflight[req.ID] = cancel
			sc.mu.Unlock()
			go sc.do(ctx, &req)
		case wirePing:
			sc.send(&reply{ID: req.ID, Pong: true})
		case wireCancel:
			sc.mu.Lock()
			if cancel := sc.inflight[req.ID]; cancel != nil {
				cancel()
			}
			sc.mu.Unlock()
		case wireWatch:
			if !sc.start() {
				sc.send(&reply{ID: req.ID, Err: &wireError{Code: codeOwnerClosing, Msg: "bolt owner process is closing"}})
				continue
			}
			sc.watch(&req)
		case wireUnwatch:
			sc.mu.Lock()
			if cancel := sc.watches[req.ID]; cancel != nil {
				cancel()
			}
			sc.mu.Unlock()
		default:
			return // a client that speaks something else is dropped
		}
	}
}

// checkHello accepts a client of the same protocol that names the same file.
func (o *ownerAtt) checkHello(h *request) *wireError {
	if string(h.Value) != shareProto {
		return refusal("protocol %q, want %q", h.Value, shareProto)
	}
	if h.Key != o.path {
		a, errA := os.Stat(h.Key)
		b, errB := os.Stat(o.path)
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			return refusal("this process serves %s, not %s", o.path, h.Key)
		}
	}
	return nil
}

// do runs one Get, CompareAndPut, Delete, list page or batch and answers it.
func (sc *serverConn) do(ctx context.Context, req *request) {
	defer sc.wg.Done()
	r := &reply{ID: req.ID}
	switch req.Op {
	case wireGet:
		e, err := sc.o.st.Get(ctx, req.Key)
		r.Version, r.Value, r.Err = uint64(e.Version), e.Value, encodeError(err)
	case wireCAS:
		v, err := sc.o.st.CompareAndPut(ctx, req.Key, backend.Version(req.Expect), req.Value)
		r.Version, r.Err = uint64(v), encodeError(err)
	case wireDelete:
		r.Err = encodeError(sc.o.st.Delete(ctx, req.Key, backend.Version(req.Expect)))
	case wireList:
		keys, err := sc.o.st.listPage(ctx, req.Key, req.Value)
		r.Keys, r.Err = keys, encodeError(err)
	case wireBatch:
		v, vers, err := sc.o.serveBatch(ctx, req)
		r.Version, r.Versions, r.Err = uint64(v), vers, encodeError(err)
	}
	sc.mu.Lock()
	if cancel := sc.inflight[req.ID]; cancel != nil {
		cancel()
		delete(sc.inflight, req.ID)
	}
	sc.mu.Unlock()
	sc.send(r)
}

// watch starts forwarding the change notifications of one key.
func (sc *serverConn) watch(req *request) {
	ctx, cancel := context.WithCancel(sc.ctx)
	ch, err := sc.o.st.Watch(ctx, req.Key)
	if err != nil {
		cancel()
		sc.wg.Done()
		sc.send(&reply{ID: req.ID, Err: encodeError(err)})
		return
	}
	sc.mu.Lock()
	sc.watches[req.ID] = cancel
	sc.mu.Unlock()
	sc.send(&reply{ID: req.ID})
	id := req.ID
	go func() {
		defer sc.wg.Done()
		defer func() {
			sc.mu.Lock()
			delete(sc.watches, id)
			sc.mu.Unlock()
			cancel()
		}()
		for v := range ch {
			sc.send(&reply{ID: id, Event: true, Version: uint64(v)})
		}
	}()
}
