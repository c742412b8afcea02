package bolt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"

	"github.com/stickypub/stickypub/backend"
	bbolt "go.etcd.io/bbolt"
)

// opKind says what a queued op does.
type opKind uint8

const (
	opCAS opKind = iota + 1
	opDelete
	opUpdate
	opBatch // puts, then an update (UpdateWith)
)

// op is one write queued for the committer.
type op struct {
	kind   opKind
	key    string
	kb     []byte             // key bytes, prepared by the caller
	expect backend.Version    // opCAS, opDelete
	rec    []byte             // opCAS: record with an unset version header
	fn     backend.UpdateFunc // opUpdate, opBatch
	puts   []*op              // opBatch: the compare-and-puts (opCAS ops)

	// Guarded by Store.mu.
	taken     bool // the committer owns the op: the caller must wait for done
	withdrawn bool // the caller gave up before the committer took it

	// Written by the committer (or Close) before done is closed.
	ver     backend.Version
	err     error
	changed bool   // the op wrote or deleted the key (for watchers)
	panicV  any    // what fn panicked with, if it did
	stack   []byte // where it did
	done    chan struct{}
}

// submit queues o and waits for its result, or withdraws it when ctx ends
// before the committer has taken it.
func (s *Store) submit(ctx context.Context, o *op) (backend.Version, error) {
	o.done = make(chan struct{})
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return 0, s.errClosed
	}
	s.pending = append(s.pending, o)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default: // a kick is already pending; the committer will see o
	}

	select {
	case <-o.done:
	case <-ctx.Done():
		s.mu.Lock()
		if !o.taken {
			o.withdrawn = true
			s.mu.Unlock()
			return 0, ctx.Err()
		}
		s.mu.Unlock()
		<-o.done // taken: the real result decides
	}
	if o.panicV != nil {
		panic(fmt.Sprintf("bolt: UpdateFunc for key %s panicked: %v\n\ncommitter goroutine stack:\n%s", quoteKey(o.key), o.panicV, o.stack))
	}
	return o.ver, o.err
}

// runCommitter is the single committer goroutine.
func (s *Store) runCommitter() {
	stopped := false
	defer func() {
		if stopped {
			close(s.committerDone)
			return
		}
		// Only runtime.Goexit inside an UpdateFunc (t.FailNow, say) gets
		// here; commit has answered that batch. Carry on in a new goroutine,
		// and kick it in case operations are queued.
		select {
		case s.kick <- struct{}{}:
		default:
		}
		go s.runCommitter()
	}()
	var spare []*op
	for {
		select {
		case <-s.quit:
			stopped = true
			return
		case <-s.kick:
		}
		s.gather()
		batch := s.take(spare)
		if len(batch) > 0 {
			s.commit(batch)
		}
		clear(batch)
		spare = batch[:0]
	}
}

// maxGatherYields bounds the scheduler yields of gather.
const maxGatherYields = 8

// gather lets the callers just answered by the previous commit run and queue
// their next operation before the committer takes a batch, so that batches
// stay full under load instead of alternating between big and tiny. It
// yields the processor while the queue keeps growing, at most
// maxGatherYields times. These are scheduler yields, not a timer: a lone
// writer is delayed by two yields (microseconds), never by a sleep.
func (s *Store) gather() {
	prev := -1
	for range maxGatherYields {
		runtime.Gosched()
		s.mu.Lock()
		n := len(s.pending)
		s.mu.Unlock()
		if n == prev {
			return
		}
		prev = n
	}
}

// take removes every queued op from the queue, marks it taken and drops the
// withdrawn ones. spare becomes the next queue buffer.
func (s *Store) take(spare []*op) []*op {
	s.mu.Lock()
	defer s.mu.Unlock()
	batch := s.pending
	s.pending = spare
	n := 0
	for _, o := range batch {
		if o.withdrawn {
			continue
		}
		o.taken = true
		batch[n] = o
		n++
	}
	clear(batch[n:])
	return batch[:n]
}

// commit applies batch in one read-write transaction, notifies watchers and
// answers every caller.
func (s *Store) commit(batch []*op) {
	s.commits.Add(1)
	s.operations.Add(uint64(len(batch)))
	completed := false
	defer func() {
		if completed {
			return
		}
		// An UpdateFunc called runtime.Goexit: bbolt's Update rolled the
		// transaction back while this goroutine unwound. Fail the batch.
		err := fmt.Errorf("bolt %s: batch of %d operations aborted (an UpdateFunc called runtime.Goexit), none applied", s.path, len(batch))
		for _, o := range batch {
			o.ver, o.err, o.changed = 0, err, false
			close(o.done)
		}
	}()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		data, meta := tx.Bucket(s.dataName), tx.Bucket(s.metaName)
		if data == nil || meta == nil {
			return fmt.Errorf("%w: the %q or %q bucket is missing", backend.ErrCorrupt, dataBucketName, metaBucketName)
		}
		for _, o := range batch {
			if o.kind == opBatch {
				if err := s.applyBatch(data, meta, o); err != nil {
					return err
				}
				continue
			}
			s.apply(data, meta, o)
		}
		return nil
	})
	completed = true
	if err != nil {
		err = fmt.Errorf("bolt %s: commit of a batch of %d operations failed, none applied: %w", s.path, len(batch), err)
		for _, o := range batch {
			o.ver, o.err, o.changed = 0, err, false
		}
	} else {
		s.notify(batch)
	}
	for _, o := range batch {
		close(o.done)
	}
}

// apply runs one op inside the batch transaction. Everything that can fail
// is checked before the single Put or Delete, so a failing op leaves the
// transaction exactly as it found it.
func (s *Store) apply(data, meta *bbolt.Bucket, o *op) {
	cur, err := lookup(data, o.kb)
	if err != nil {
		o.err = err
		return
	}
	switch o.kind {
	case opCAS:
		if cur.Version != o.expect {
			o.err = s.conflict(o, cur)
			return
		}
		o.ver, o.err = s.write(data, meta, o, cur.Version, o.rec)

	case opDelete:
		if cur.Version == 0 {
			o.err = fmt.Errorf("bolt: delete %s: %w", quoteKey(o.key), backend.ErrNotFound)
			return
		}
		if cur.Version != o.expect {
			o.err = s.conflict(o, cur)
			return
		}
		if err := data.Delete(o.kb); err != nil {
			o.err = fmt.Errorf("bolt: delete %s: %w", quoteKey(o.key), err)
			return
		}
		o.changed = true

	case opUpdate:
		value, panicked, err := s.callUpdate(o, cloneEntry(cur))
		switch {
		case panicked:
			return
		case errors.Is(err, backend.ErrSkipUpdate):
			o.ver = cur.Version
			return
		case err != nil:
			o.err = fmt.Errorf("bolt: update %s: %w", quoteKey(o.key), err)
			return
		}
		if err := backend.CheckValue(value, s.caps); err != nil {
			o.err = fmt.Errorf("bolt: update %s: %w", quoteKey(o.key), err)
			return
		}
		o.ver, o.err = s.write(data, meta, o, cur.Version, newRecord(value))

	default:
		o.err = fmt.Errorf("bolt: internal error: unknown op kind %d", o.kind)
	}
}

// callUpdate runs o.fn, turning a panic into a record on o that submit
// re-raises in the caller's goroutine. A runtime.Goexit cannot be stopped:
// it is recorded the same way, and commit and runCommitter recover from it.
func (s *Store) callUpdate(o *op, cur backend.Entry) (value []byte, panicked bool, err error) {
	returned := false
	defer func() {
		if returned {
			return
		}
		p := recover()
		if p == nil {
			p = "runtime.Goexit called inside the UpdateFunc (t.FailNow or similar off the test goroutine?)"
		}
		o.panicV, o.stack, panicked = p, debug.Stack(), true
	}()
	value, err = o.fn(cur)
	returned = true
	return value, false, err
}

// write stores rec under o's key with the next version of the persisted
// counter, which is always greater than curVer.
func (s *Store) write(data, meta *bbolt.Bucket, o *op, curVer backend.Version, rec []byte) (backend.Version, error) {
	next, err := meta.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("bolt: put %s: version counter: %w", quoteKey(o.key), err)
	}
	if next == 0 || next == math.MaxUint64 {
		// Saturate so that no later write in this or any transaction can
		// wrap around to versions already handed out.
		_ = meta.SetSequence(math.MaxUint64)
		return 0, corruptf(o.kb, "the version counter is exhausted")
	}
	if next <= uint64(curVer) {
		// Only reachable if the counter was damaged: never go backwards.
		next = uint64(curVer) + 1
		if err := meta.SetSequence(next); err != nil {
			return 0, fmt.Errorf("bolt: put %s: version counter: %w", quoteKey(o.key), err)
		}
	}
	v := backend.Version(next)
	setRecordVersion(rec, v)
	if err := data.Put(o.kb, rec); err != nil {
		return 0, fmt.Errorf("bolt: put %s: %w", quoteKey(o.key), err)
	}
	o.changed = true
	return v, nil
}

// conflict builds the ConflictError for o, with a copy of the current entry.
func (s *Store) conflict(o *op, cur backend.Entry) error {
	return &backend.ConflictError{Key: o.key, Expected: o.expect, Current: cloneEntry(cur), Known: true}
}
