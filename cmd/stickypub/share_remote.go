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
				offer(ch, backend.Version(rep.Version))
			}
		} else if ch := r.pending[rep.ID]; ch != nil {
			delete(r.pending, rep.ID)
			ch <- rep // buffered, one reply per request
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
	val := rep.Value
	if val == nil {
		val = []byte{} // gob sends an empty value as absent
	}
	return backend.Entry{Value: val, Version: backend.Version(rep.Version)}, nil
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
