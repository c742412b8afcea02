package bolt

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// errOwnerStalled means the owner stopped answering (not even pings) for
// the stall bound while this process waited. The calls waiting on it fail
// with an error matching backend.ErrUnavailable; a write among them may
// still land if the owner resumes. The next call attaches anew.
var errOwnerStalled = errors.New("bolt owner process stopped answering")

// remoteAtt is the attachment of a process that reaches the bolt file
// through the owner's socket.
type remoteAtt struct {
	c     net.Conn
	sock  string
	hooks *shareHooks
	wmu   sync.Mutex
	enc   *gob.Encoder
	dec   *gob.Decoder

	lastHeard atomic.Int64 // unix nanoseconds of the last frame read

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *reply
	watches map[uint64]chan backend.Version
	dead    chan struct{} // closed when the connection is gone
	isDead  bool
	cause   error // why it is gone: errOwnerGone or a stall

	readDone chan struct{}
	pingDone chan struct{}
}

// dialOwner connects to the owner's socket, checks that the owner runs as
// this user, and says hello. An error matching errRefused or
// ErrPeerRefused means the owner will not serve this process (or this
// process will not use it); any other error means no owner answered (yet).
func dialOwner(ctx context.Context, sock, path string, caps backend.Capabilities, h *shareHooks) (*remoteAtt, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, err
	}
	if err := checkPeer(c, sock, true, h); err != nil {
		_ = c.Close() // nothing was sent
		return nil, err
	}
	r := &remoteAtt{c: c, sock: sock, hooks: h, enc: gob.NewEncoder(c), dec: gob.NewDecoder(bufio.NewReader(c)),
		pending: map[uint64]chan *reply{}, watches: map[uint64]chan backend.Version{},
		dead: make(chan struct{}), readDone: make(chan struct{}), pingDone: make(chan struct{})}
	deadline := time.Now().Add(h.stall)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	var rep reply
	err = r.enc.Encode(&request{Op: wireHello, Key: path, Value: []byte(shareProto)})
	if err == nil {
		err = r.dec.Decode(&rep)
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	if rep.Err != nil {
		_ = c.Close()
		if rep.Err.Code == codePeerRefused {
			return nil, fmt.Errorf("the owner on %s refused this process: %w", sock, decodeError(ctx, rep.Err))
		}
		return nil, fmt.Errorf("%w: %s", errRefused, rep.Err.Msg)
	}
	if rep.Caps == nil || *rep.Caps != caps {
		_ = c.Close()
		return nil, fmt.Errorf("%w: it opened %s with limits %+v, this process wants %+v (use the same store URI parameters)",
			errRefused, path, rep.Caps, caps)
	}
	_ = c.SetDeadline(time.Time{})
	r.lastHeard.Store(time.Now().UnixNano())
	go r.read()
	go r.keepalive()
	return r, nil
}

// read dispatches replies until the connection ends.
func (r *remoteAtt) read() {
	defer close(r.readDone)
	for {
		rep := new(reply)
		if err := r.dec.Decode(rep); err != nil {
			r.kill(errOwnerGone)
			return
		}
		r.lastHeard.Store(time.Now().UnixNano())
		if rep.Pong {
			continue
		}
		r.mu.Lock()
		if rep.Event {
			if ch := r.watches[rep.ID]; ch != nil {
				backend.Offer(ch, backend.Version(rep.Version))
			}
		} else if ch := r.pending[rep.ID]; ch != nil {
			delete(r.pending, rep.ID)
			ch <- rep // the channel has room: a request has one reply
		}
		r.mu.Unlock()
	}
}

// keepalive pings the owner and gives the connection up when nothing has
// come from the owner for the stall bound: calls then fail instead of
// waiting forever on an owner that stopped (SIGSTOP, a debugger, swap).
func (r *remoteAtt) keepalive() {
	defer close(r.pingDone)
	t := time.NewTicker(r.hooks.pingEach)
	defer t.Stop()
	for {
		select {
		case <-r.dead:
			return
		case <-t.C:
		}
		if silent := time.Since(time.Unix(0, r.lastHeard.Load())); silent > r.hooks.stall {
			r.kill(fmt.Errorf("%w: nothing from %s for %v: %w", errOwnerStalled, r.sock, silent.Round(time.Millisecond), backend.ErrUnavailable))
			return
		}
		_ = r.send(&request{Op: wirePing})
	}
}

// kill marks the connection dead for cause and ends every watch.
func (r *remoteAtt) kill(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isDead {
		return
	}
	r.isDead = true
	r.cause = cause
	close(r.dead)
	_ = r.c.Close()
	for id, ch := range r.watches {
		close(ch)
		delete(r.watches, id)
	}
}

// deadErr is the error of a call that found the connection dead: gone
// (resend; for a write, the outcome is unknown) or stalled.
func (r *remoteAtt) deadErr(write bool) error {
	r.mu.Lock()
	cause := r.cause
	r.mu.Unlock()
	if errors.Is(cause, errOwnerStalled) {
		return cause
	}
	if write {
		return errOutcomeUnknown
	}
	return errOwnerGone
}

func (r *remoteAtt) alive() bool {
	select {
	case <-r.dead:
		return false
	default:
		return true
	}
}

func (r *remoteAtt) close() error {
	r.kill(errOwnerGone)
	<-r.readDone
	<-r.pingDone
	return nil
}

// send writes one request; an owner that does not take it within the
// stall bound is given up.
func (r *remoteAtt) send(req *request) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_ = r.c.SetWriteDeadline(time.Now().Add(r.hooks.stall))
	if err := r.enc.Encode(req); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			r.kill(fmt.Errorf("%w: %s took no request for %v: %w", errOwnerStalled, r.sock, r.hooks.stall, backend.ErrUnavailable))
		} else {
			r.kill(errOwnerGone)
		}
		return err
	}
	return nil
}

// register allocates a request ID and its reply slot.
func (r *remoteAtt) register() (uint64, chan *reply, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isDead {
		return 0, nil, errOwnerGone
	}
	r.nextID++
	ch := make(chan *reply, 1)
	r.pending[r.nextID] = ch
	return r.nextID, ch, nil
}

func (r *remoteAtt) forget(id uint64) {
	r.mu.Lock()
	delete(r.pending, id)
	r.mu.Unlock()
}

// call sends req and waits for its reply. If ctx ends first, the owner is
// asked to cancel and the call still waits for the answer, which then says
// whether the operation was withdrawn or done, as a local store would; an
// owner that does not answer is given up after the stall bound. A lost
// connection gives errOwnerGone, or errOutcomeUnknown for a write that may
// have reached the owner; a stalled owner gives errOwnerStalled.
func (r *remoteAtt) call(ctx context.Context, req *request) (*reply, error) {
	write := req.Op == wireCAS || req.Op == wireDelete || req.Op == wireBatch
	id, ch, err := r.register()
	if err != nil {
		return nil, err
	}
	req.ID = id
	if err := r.send(req); err != nil {
		r.forget(id)
		if errors.Is(r.deadErr(false), errOwnerStalled) {
			return nil, r.deadErr(false)
		}
		return nil, errOwnerGone // not sent whole: the owner drops a broken frame
	}
	select {
	case rep := <-ch:
		return rep, nil
	case <-r.dead:
	case <-ctx.Done():
		_ = r.send(&request{ID: id, Op: wireCancel})
		select {
		case rep := <-ch:
			return rep, nil
		case <-r.dead:
		}
	}
	select { // the reply may have arrived just before the connection ended
	case rep := <-ch:
		return rep, nil
	default:
		r.forget(id)
		return nil, r.deadErr(write)
	}
}

func (r *remoteAtt) get(ctx context.Context, key string) (backend.Entry, error) {
	rep, err := r.call(ctx, &request{Op: wireGet, Key: key})
	if err != nil {
		return backend.Entry{}, err
	}
	if rep.Err != nil {
		return backend.Entry{}, decodeError(ctx, rep.Err)
	}
	return backend.Entry{Value: orEmpty(rep.Value), Version: backend.Version(rep.Version)}, nil
}

func (r *remoteAtt) cas(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	rep, err := r.call(ctx, &request{Op: wireCAS, Key: key, Expect: uint64(expect), Value: value})
	if err != nil {
		return 0, err
	}
	if rep.Err != nil {
		return 0, decodeError(ctx, rep.Err)
	}
	return backend.Version(rep.Version), nil
}

func (r *remoteAtt) del(ctx context.Context, key string, expect backend.Version) error {
	rep, err := r.call(ctx, &request{Op: wireDelete, Key: key, Expect: uint64(expect)})
	if err != nil {
		return err
	}
	return decodeError(ctx, rep.Err)
}

// orEmpty turns the nil that gob makes of an empty value back into one.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// watch asks the owner to forward the change notifications of key. The
// channel is closed when ctx ends or the connection does.
func (r *remoteAtt) watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	id, ack, err := r.register()
	if err != nil {
		return nil, err
	}
	ch := make(chan backend.Version, 1)
	r.mu.Lock()
	r.watches[id] = ch
	r.mu.Unlock()
	unwatch := func() {
		r.mu.Lock()
		_, ok := r.watches[id]
		if ok {
			delete(r.watches, id)
			close(ch)
		}
		r.mu.Unlock()
		if ok {
			_ = r.send(&request{ID: id, Op: wireUnwatch})
		}
	}
	if err := r.send(&request{ID: id, Op: wireWatch, Key: key}); err != nil {
		r.forget(id)
		return nil, r.deadErr(false)
	}
	var rep *reply
	select {
	case rep = <-ack:
	case <-r.dead:
		return nil, r.deadErr(false)
	case <-ctx.Done():
		r.forget(id)
		unwatch()
		return nil, ctx.Err()
	}
	if rep.Err != nil {
		r.mu.Lock()
		delete(r.watches, id)
		r.mu.Unlock()
		return nil, decodeError(ctx, rep.Err)
	}
	context.AfterFunc(ctx, unwatch)
	return ch, nil
}

// isGone reports whether err means the attachment is no longer usable and
// the call can be sent to the next one.
func isGone(err error) bool {
	return errors.Is(err, errOwnerGone) || errors.Is(err, errOutcomeUnknown)
}
