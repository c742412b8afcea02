package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// cancelled returns a context derived from the fixture's that is already
// cancelled.
func (f *fixture) cancelled() context.Context {
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	return ctx
}

// watcher, deleter and updater return the optional interface of st or skip
// the test.
// optional returns st as its optional interface I (named name), or skips
// the test when st does not implement it.
func optional[I any](t *testing.T, st backend.Store, name string) I {
	t.Helper()
	i, ok := st.(I)
	if !ok {
		t.Skipf("store does not implement backend.%s", name)
	}
	return i
}

func watcher(t *testing.T, st backend.Store) backend.Watcher {
	return optional[backend.Watcher](t, st, "Watcher")
}

func deleter(t *testing.T, st backend.Store) backend.Deleter {
	return optional[backend.Deleter](t, st, "Deleter")
}

func updater(t *testing.T, st backend.Store) backend.Updater {
	return optional[backend.Updater](t, st, "Updater")
}

func batcher(t *testing.T, st backend.Store) backend.Batcher {
	return optional[backend.Batcher](t, st, "Batcher")
}

// setString is an UpdateFunc that stores s whatever the current entry.
func setString(s string) backend.UpdateFunc {
	return func(backend.Entry) ([]byte, error) { return []byte(s), nil }
}

func (s *suite) testContextGet(t *testing.T) {
	f := s.setup(t, basicTimeout)
	v := f.put(f.store, "k", 0, []byte("x"))
	_, err := f.store.Get(f.cancelled(), "k")
	require.ErrorIs(t, err, context.Canceled, "Get of an existing key with a cancelled context")
	_, err = f.store.Get(f.cancelled(), "missing")
	require.ErrorIs(t, err, context.Canceled, "Get of a missing key with a cancelled context")
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("x"), Version: v})
}

func (s *suite) testContextCAS(t *testing.T) {
	f := s.setup(t, basicTimeout)
	_, err := f.store.CompareAndPut(f.cancelled(), "k", 0, []byte("x"))
	require.ErrorIs(t, err, context.Canceled, "create with a cancelled context")
	f.mustNotExist(f.store, "k")

	v := f.put(f.store, "k", 0, []byte("x"))
	_, err = f.store.CompareAndPut(f.cancelled(), "k", v, []byte("y"))
	require.ErrorIs(t, err, context.Canceled, "update with a cancelled context")
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("x"), Version: v})
}

func (s *suite) testContextDeadline(t *testing.T) {
	f := s.setup(t, basicTimeout)
	v := f.put(f.store, "k", 0, []byte("x"))
	ctx, cancel := context.WithDeadline(f.ctx, time.Now().Add(-time.Second))
	defer cancel()
	_, err := f.store.Get(ctx, "k")
	require.ErrorIs(t, err, context.DeadlineExceeded, "Get with an expired deadline")
	_, err = f.store.CompareAndPut(ctx, "k", v, []byte("y"))
	require.ErrorIs(t, err, context.DeadlineExceeded, "CompareAndPut with an expired deadline")
	_, err = f.store.CompareAndPut(ctx, "new", 0, []byte("y"))
	require.ErrorIs(t, err, context.DeadlineExceeded, "create with an expired deadline")
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("x"), Version: v})
	f.mustNotExist(f.store, "new")
}

func (s *suite) testContextWatch(t *testing.T) {
	f := s.setup(t, basicTimeout)
	w := watcher(t, f.store)
	ch, err := w.Watch(f.cancelled(), "k")
	require.ErrorIs(t, err, context.Canceled, "Watch with a cancelled context")
	require.Nil(t, ch, "Watch returned a channel along with an error")
}

func (s *suite) testContextDelete(t *testing.T) {
	f := s.setup(t, basicTimeout)
	d := deleter(t, f.store)
	v := f.put(f.store, "k", 0, []byte("x"))
	err := d.Delete(f.cancelled(), "k", v)
	require.ErrorIs(t, err, context.Canceled, "Delete with a cancelled context")
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("x"), Version: v})
}

func (s *suite) testContextUpdate(t *testing.T) {
	f := s.setup(t, basicTimeout)
	u := updater(t, f.store)
	_, err := u.Update(f.cancelled(), "new", setString("y"))
	require.ErrorIs(t, err, context.Canceled, "Update of a missing key with a cancelled context")
	f.mustNotExist(f.store, "new")
	v := f.put(f.store, "k", 0, []byte("x"))
	_, err = u.Update(f.cancelled(), "k", setString("y"))
	require.ErrorIs(t, err, context.Canceled, "Update with a cancelled context")
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("x"), Version: v})
}

// closedStore opens a handle, writes "k" through it and closes it. It
// returns the closed handle and the entry of "k".
func (f *fixture) closedStore() (backend.Store, backend.Entry) {
	f.t.Helper()
	st := f.open()
	v := f.put(st, "k", 0, []byte("x"))
	require.NoError(f.t, st.Close(), "Close")
	return st, backend.Entry{Value: []byte("x"), Version: v}
}

func (s *suite) testClosedGet(t *testing.T) {
	f := s.setup(t, basicTimeout)
	st, _ := f.closedStore()
	_, err := st.Get(f.ctx, "k")
	require.ErrorIs(t, err, backend.ErrClosed, "Get after Close")
	_, err = st.Get(f.ctx, "missing")
	require.ErrorIs(t, err, backend.ErrClosed, "Get of a missing key after Close")
}

func (s *suite) testClosedCAS(t *testing.T) {
	f := s.setup(t, basicTimeout)
	st, e := f.closedStore()
	_, err := st.CompareAndPut(f.ctx, "k", e.Version, []byte("y"))
	require.ErrorIs(t, err, backend.ErrClosed, "CompareAndPut after Close")
	_, err = st.CompareAndPut(f.ctx, "new", 0, []byte("y"))
	require.ErrorIs(t, err, backend.ErrClosed, "create after Close")
	f.mustGet(f.store, "k", e)
	f.mustNotExist(f.store, "new")
}

func (s *suite) testClosedWatch(t *testing.T) {
	f := s.setup(t, basicTimeout)
	watcher(t, f.store)
	st, _ := f.closedStore()
	ch, err := st.(backend.Watcher).Watch(f.ctx, "k")
	require.ErrorIs(t, err, backend.ErrClosed, "Watch after Close")
	require.Nil(t, ch, "Watch returned a channel along with an error")
}

func (s *suite) testClosedDelete(t *testing.T) {
	f := s.setup(t, basicTimeout)
	deleter(t, f.store)
	st, e := f.closedStore()
	err := st.(backend.Deleter).Delete(f.ctx, "k", e.Version)
	require.ErrorIs(t, err, backend.ErrClosed, "Delete after Close")
	f.mustGet(f.store, "k", e)
}

func (s *suite) testClosedUpdate(t *testing.T) {
	f := s.setup(t, basicTimeout)
	updater(t, f.store)
	st, e := f.closedStore()
	_, err := st.(backend.Updater).Update(f.ctx, "k", setString("y"))
	require.ErrorIs(t, err, backend.ErrClosed, "Update after Close")
	f.mustGet(f.store, "k", e)
}

func (s *suite) testClosedTwice(t *testing.T) {
	f := s.setup(t, basicTimeout)
	st, _ := f.closedStore()
	err := st.Close()
	if err != nil {
		// Idempotent: a second Close changes nothing; nil is best, but
		// reporting ErrClosed again is tolerated.
		require.ErrorIs(t, err, backend.ErrClosed, "second Close")
	}
}

func (s *suite) testClosedOtherHandle(t *testing.T) {
	f := s.setup(t, basicTimeout)
	// Closing one handle leaves the namespace and other handles alone.
	_, e := f.closedStore()
	f.mustGet(f.store, "k", e)
	v := f.put(f.store, "k", e.Version, []byte("after"))
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("after"), Version: v})
	f.mustNotExist(f.store, "missing")
}
