package main

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// remoteAtt is the attachment of a process that reaches the bolt file
// through the owner's socket.
type remoteAtt struct {
	c   net.Conn
	wmu sync.Mutex
	enc *gob.Encoder
	dec *gob.Decoder

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *reply
	watches map[uint64]chan backend.Version
	dead    chan struct{} // closed when the connection is gone
	isDead  bool

	readDone chan struct{}
}

// dialOwner connects to the owner's socket and says hello. An error
// matching errRefused means the owner will not serve this process; any
// other error means no owner answered (yet).
func dialOwner(ctx context.Context, sock, path string, caps backend.Capabilities) (*remoteAtt, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, err
	}
	r := &remoteAtt{c: c, enc: gob.NewEncoder(c), dec: gob.NewDecoder(bufio.NewReader(c)),
		pending: map[uint64]chan *reply{}, watches: map[uint64]chan backend.Version{},
		dead: make(chan struct{}), readDone: make(chan struct{})}
	deadline := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	var rep reply
	err = r.enc.Encode(&request{Op: opHello, Key: path, Value: []byte(shareProto)})
	if err == nil {
		err = r.dec.Decode(&rep)
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	if rep.Err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("%w: %s", errRefused, rep.Err.Msg)
	}
	if rep.Caps == nil || *rep.Caps != caps {
		_ = c.Close()
		return nil, fmt.Errorf("%w: it opened %s with limits %+v, this process wants %+v (use the same store URI parameters)",
			errRefused, path, rep.Caps, caps)
	}
	_ = c.SetDeadline(time.Time{})
	go r.read()
	return r, nil
}

// read dispatches replies until the connection ends.
func (r *remoteAtt) read() {
	defer close(r.readDone)
	for {
		rep := new(reply)
		if err := r.dec.Decode(rep); err != nil {
			r.kill()
			return
		}
		r.mu.Lock()
		if rep.Event {
			if ch := r.watches[rep.ID]; ch != nil {
				backend.Offer(ch, backend.Version(rep.Version))
			}
		} else if ch := r.pending[rep.ID]; ch != nil {
			if !rep.Call {
				delete(r.pending, rep.ID)
			}
			// The channel has room: a request has one reply, and an update
			// answers its call before the owner sends anything more.
			ch <- rep
		}
		r.mu.Unlock()
	}
}

// kill marks the connection dead and ends every watch.
func (r *remoteAtt) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isDead {
		return
	}
	r.isDead = true
	close(r.dead)
	_ = r.c.Close()
	for id, ch := range r.watches {
		close(ch)
		delete(r.watches, id)
	}
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
	r.kill()
	<-r.readDone
	return nil
}

func (r *remoteAtt) send(req *request) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if err := r.enc.Encode(req); err != nil {
		r.kill()
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
// whether the operation was withdrawn or done, as a local store would.
// A lost connection gives errOwnerGone, or errOutcomeUnknown for a write
// that may have reached the owner.
func (r *remoteAtt) call(ctx context.Context, req *request) (*reply, error) {
	gone := errOwnerGone
	if req.Op == opCAS {
		gone = errOutcomeUnknown
	}
	id, ch, err := r.register()
	if err != nil {
		return nil, err
	}
	req.ID = id
	if err := r.send(req); err != nil {
		r.forget(id)
		return nil, gone
	}
	select {
	case rep := <-ch:
		return rep, nil
	case <-r.dead:
	case <-ctx.Done():
		_ = r.send(&request{ID: id, Op: opCancel})
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
		return nil, gone
	}
}

func (r *remoteAtt) get(ctx context.Context, key string) (backend.Entry, error) {
	rep, err := r.call(ctx, &request{Op: opGet, Key: key})
	if err != nil {
		return backend.Entry{}, err
	}
	if rep.Err != nil {
		return backend.Entry{}, decodeError(ctx, rep.Err)
	}
	return backend.Entry{Value: orEmpty(rep.Value), Version: backend.Version(rep.Version)}, nil
}

func (r *remoteAtt) cas(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	rep, err := r.call(ctx, &request{Op: opCAS, Key: key, Expect: uint64(expect), Value: value})
	if err != nil {
		return 0, err
	}
	if rep.Err != nil {
		return 0, decodeError(ctx, rep.Err)
	}
	return backend.Version(rep.Version), nil
}

// updateOutcome tells sharedBolt.Update what became of a remote update
// whose connection broke: if the function had produced a value, it may have
// been stored.
type updateOutcome struct {
	called bool
	base   backend.Version // the entry's version the function saw
	value  []byte          // what it returned, when it returned a value
	stored bool            // value is set
}

// update runs fn inside the owner's commit: the owner sends the current
// entry, fn runs here, and its result goes back to be stored.
func (r *remoteAtt) update(ctx context.Context, key string, fn backend.UpdateFunc, out *updateOutcome) (backend.Version, error) {
	id, ch, err := r.register()
	if err != nil {
		return 0, err
	}
	if err := r.send(&request{ID: id, Op: opUpdate, Key: key}); err != nil {
		r.forget(id)
		return 0, errOwnerGone
	}
	var (
		fnErr    error
		panicked any
		done     = ctx.Done()
	)
	for {
		select {
		case rep := <-ch:
			if rep.Call {
				res := &request{ID: id, Op: opUpdateResult}
				val, err, p := callFn(fn, backend.Entry{Value: orEmpty(rep.Value), Version: backend.Version(rep.Version)})
				out.called, out.base = true, backend.Version(rep.Version)
				switch {
				case p != nil:
					panicked, res.Result = p, resultError
				case errors.Is(err, backend.ErrSkipUpdate):
					res.Result = resultSkip
				case err != nil:
					fnErr, res.Result = err, resultError
				default:
					res.Value, out.value, out.stored = val, val, true
				}
				if err := r.send(res); err != nil {
					return 0, errOutcomeUnknown // the owner may have taken the value already
				}
				continue
			}
			if panicked != nil {
				panic(panicked)
			}
			if rep.Err != nil {
				if rep.Err.Code == codeFnError && fnErr != nil {
					return 0, fmt.Errorf("bolt: update %q: %w", key, fnErr)
				}
				return 0, decodeError(ctx, rep.Err)
			}
			return backend.Version(rep.Version), nil
		case <-r.dead:
			select {
			case rep := <-ch:
				if !rep.Call && rep.Err == nil {
					return backend.Version(rep.Version), nil
				}
			default:
			}
			r.forget(id)
			if out.stored {
				return 0, errOutcomeUnknown
			}
			return 0, errOwnerGone
		case <-done:
			done = nil
			_ = r.send(&request{ID: id, Op: opCancel})
		}
	}
}

// callFn runs fn, catching a panic so that the owner can be answered before
// it is raised again in the caller.
func callFn(fn backend.UpdateFunc, cur backend.Entry) (val []byte, err error, panicked any) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	val, err = fn(cur)
	return val, err, nil
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
			_ = r.send(&request{ID: id, Op: opUnwatch})
		}
	}
	if err := r.send(&request{ID: id, Op: opWatch, Key: key}); err != nil {
		r.forget(id)
		return nil, errOwnerGone
	}
	var rep *reply
	select {
	case rep = <-ack:
	case <-r.dead:
		return nil, errOwnerGone
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

// isGone reports whether err means the attachment is no longer usable.
func isGone(err error) bool {
	return errors.Is(err, errOwnerGone) || errors.Is(err, errOutcomeUnknown)
}
