package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// InstrumentStore returns s with every operation timed in the
// store_operation_duration_seconds histogram (labels backend=name, op,
// result) and lost compare-and-puts counted in store_conflicts_total. The
// result has exactly the optional interfaces (Watcher, Updater, Deleter)
// that s has, and Batcher when s has it beside Updater or in the Redis
// adapter's set, so the client behaves the same; Lister (the orphan sweep)
// is kept for the sets of the module's adapters (all five: bolt, memory;
// Watcher, Deleter, Batcher and Lister: Redis). Closing it closes s.
func (c *Collector) InstrumentStore(s backend.Store, name string) backend.Store {
	in := &instrumented{s: s, c: c, name: name}
	w, isW := s.(backend.Watcher)
	u, isU := s.(backend.Updater)
	d, isD := s.(backend.Deleter)
	b, isB := s.(backend.Batcher)
	l, isL := s.(backend.Lister)
	wt, ut, dt, bt, lt := watchFwd{w}, updateFwd{u, in}, deleteFwd{d, in}, batchFwd{b, in}, listFwd{l, in}
	switch {
	case isW && isU && isD && isB && isL: // bolt, memory
		return struct {
			*instrumented
			watchFwd
			updateFwd
			deleteFwd
			batchFwd
			listFwd
		}{in, wt, ut, dt, bt, lt}
	case isW && isD && isB && isL && !isU: // Redis
		return struct {
			*instrumented
			watchFwd
			deleteFwd
			batchFwd
			listFwd
		}{in, wt, dt, bt, lt}
	case isW && isD && isL && !isU: // Redis before it batched, or wrapped without Batcher
		return struct {
			*instrumented
			watchFwd
			deleteFwd
			listFwd
		}{in, wt, dt, lt}
	case isW && isU && isD && isB:
		return struct {
			*instrumented
			watchFwd
			updateFwd
			deleteFwd
			batchFwd
		}{in, wt, ut, dt, bt}
	case isW && isU && isB:
		return struct {
			*instrumented
			watchFwd
			updateFwd
			batchFwd
		}{in, wt, ut, bt}
	case isU && isD && isB:
		return struct {
			*instrumented
			updateFwd
			deleteFwd
			batchFwd
		}{in, ut, dt, bt}
	case isU && isB:
		return struct {
			*instrumented
			updateFwd
			batchFwd
		}{in, ut, bt}
	case isW && isU && isD:
		return struct {
			*instrumented
			watchFwd
			updateFwd
			deleteFwd
		}{in, wt, ut, dt}
	case isW && isU:
		return struct {
			*instrumented
			watchFwd
			updateFwd
		}{in, wt, ut}
	case isW && isD:
		return struct {
			*instrumented
			watchFwd
			deleteFwd
		}{in, wt, dt}
	case isU && isD:
		return struct {
			*instrumented
			updateFwd
			deleteFwd
		}{in, ut, dt}
	case isW:
		return struct {
			*instrumented
			watchFwd
		}{in, wt}
	case isU:
		return struct {
			*instrumented
			updateFwd
		}{in, ut}
	case isD:
		return struct {
			*instrumented
			deleteFwd
		}{in, dt}
	}
	return in
}

type instrumented struct {
	s    backend.Store
	c    *Collector
	name string
}

// observe records one operation that started at start.
func (in *instrumented) observe(op string, start time.Time, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, backend.ErrConflict):
		result = "conflict"
		in.c.conflicts.WithLabelValues(in.name).Inc()
	case errors.Is(err, backend.ErrNotFound):
		result = "not_found"
	default:
		result = "error"
	}
	in.c.storeOps.WithLabelValues(in.name, op, result).Observe(time.Since(start).Seconds())
}

func (in *instrumented) Get(ctx context.Context, key string) (backend.Entry, error) {
	start := time.Now()
	e, err := in.s.Get(ctx, key)
	in.observe("get", start, err)
	return e, err
}

func (in *instrumented) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	start := time.Now()
	v, err := in.s.CompareAndPut(ctx, key, expect, value)
	in.observe("compare_and_put", start, err)
	return v, err
}

func (in *instrumented) Capabilities() backend.Capabilities { return in.s.Capabilities() }

func (in *instrumented) Close() error { return in.s.Close() }

// watchFwd forwards Watch untimed (a watch lives as long as its context).
type watchFwd struct{ w backend.Watcher }

func (f watchFwd) Watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	return f.w.Watch(ctx, key)
}

type updateFwd struct {
	u  backend.Updater
	in *instrumented
}

func (f updateFwd) Update(ctx context.Context, key string, fn backend.UpdateFunc) (backend.Version, error) {
	start := time.Now()
	v, err := f.u.Update(ctx, key, fn)
	f.in.observe("update", start, err)
	return v, err
}

type deleteFwd struct {
	d  backend.Deleter
	in *instrumented
}

func (f deleteFwd) Delete(ctx context.Context, key string, expect backend.Version) error {
	start := time.Now()
	err := f.d.Delete(ctx, key, expect)
	f.in.observe("delete", start, err)
	return err
}

type batchFwd struct {
	b  backend.Batcher
	in *instrumented
}

func (f batchFwd) UpdateWith(ctx context.Context, puts []backend.Put, key string, fn backend.UpdateFunc) (backend.Version, []backend.Version, error) {
	start := time.Now()
	v, vers, err := f.b.UpdateWith(ctx, puts, key, fn)
	f.in.observe("update_with", start, err)
	return v, vers, err
}

type listFwd struct {
	l  backend.Lister
	in *instrumented
}

func (f listFwd) List(ctx context.Context, prefix string, fn backend.ListFunc) error {
	start := time.Now()
	err := f.l.List(ctx, prefix, fn)
	f.in.observe("list", start, err)
	return err
}
