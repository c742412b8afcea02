package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bolt"
	"github.com/stickypub/stickypub/conformance"
	"go.uber.org/goleak"
)

// openLockOnly opens a bolt file the plain way, holding its lock without
// sharing it.
func openLockOnly(path string) (*bolt.Store, error) { return bolt.Open(path) }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// openShared opens a sharedBolt on uri; the test closes it.
func openShared(t *testing.T, uri string) *sharedBolt {
	t.Helper()
	s, err := openTestShared(t.Context(), uri)
	if err != nil {
		t.Fatalf("open %s: %v", uri, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openTestShared(ctx context.Context, uri string) (*sharedBolt, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, err
	}
	return openSharedBolt(ctx, uri, u, discard)
}

func isOwner(s *sharedBolt) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.att.(*ownerAtt)
	return ok
}

// sharedHarness gives every handle its own sharedBolt on one file, as
// separate processes would have: the first to open is the owner, the others
// go through its socket, and closing the owner hands the file over.
type sharedHarness struct{ uri string }

func (h sharedHarness) NewStore(ctx context.Context) (backend.Store, error) {
	return openTestShared(ctx, h.uri)
}

func (sharedHarness) Close() {}

// TestSharedConformance holds sharedBolt, in both roles and across
// handovers, to the backend contract.
func TestSharedConformance(t *testing.T) {
	conformance.RunContract(t, func(_ context.Context, t *testing.T) (conformance.Harness, error) {
		return sharedHarness{uri: "bolt:" + filepath.Join(t.TempDir(), "c.db") + "?maxvalue=262144"}, nil
	})
}

// TestSharedProtocol runs the protocol suite on a remote handle (every
// call goes through the owner's socket).
func TestSharedProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	conformance.RunProtocol(t, func(ctx context.Context, t *testing.T) (conformance.Harness, error) {
		uri := "bolt:" + filepath.Join(t.TempDir(), "p.db")
		owner, err := openTestShared(ctx, uri)
		if err != nil {
			return nil, err
		}
		return &remoteOnlyHarness{uri: uri, owner: owner}, nil
	})
}

// remoteOnlyHarness keeps an owner open so that every handle it gives is
// remote.
type remoteOnlyHarness struct {
	uri   string
	owner *sharedBolt
}

func (h *remoteOnlyHarness) NewStore(ctx context.Context) (backend.Store, error) {
	return openTestShared(ctx, h.uri)
}

func (h *remoteOnlyHarness) Close() { _ = h.owner.Close() }

func TestSharedHandover(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := t.Context()
	dir := t.TempDir()
	uri := "bolt:" + filepath.Join(dir, "h.db")
	a := openShared(t, uri)
	b := openShared(t, uri)
	if !isOwner(a) || isOwner(b) {
		t.Fatalf("owner: a %v, b %v", isOwner(a), isOwner(b))
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.Watch(wctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	v1, err := a.CompareAndPut(ctx, "k", 0, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	select {
	case v := <-w:
		if v != v1 {
			t.Fatalf("watch got %d, want %d", v, v1)
		}
		t.Logf("remote watch notified %v after the owner's commit returned", time.Since(began))
	case <-time.After(2 * time.Second):
		t.Fatal("remote watch not notified")
	}

	// The owner leaves: b takes the file over, keeps its watch (which says
	// "re-read") and continues the versions.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, "k"); !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	e, err := b.Get(ctx, "k")
	if err != nil || string(e.Value) != "one" || e.Version != v1 {
		t.Fatalf("b.Get after handover: %+v %v", e, err)
	}
	if !isOwner(b) {
		t.Fatal("b did not take the file over")
	}
	select {
	case v := <-w:
		if v != 0 && v != v1 {
			t.Fatalf("watch after handover got %d", v)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("watch got no re-read hint after the handover")
	}
	c := openShared(t, uri)
	v2, err := c.CompareAndPut(ctx, "k", v1, []byte("two"))
	if err != nil || v2 <= v1 {
		t.Fatalf("c.CompareAndPut: %d %v", v2, err)
	}
	select {
	case v := <-w:
		if v != v2 {
			t.Fatalf("watch got %d, want %d", v, v2)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("watch not notified of c's write")
	}
	var ce *backend.ConflictError
	if _, err := c.CompareAndPut(ctx, "k", v1, []byte("stale")); !errors.As(err, &ce) || !ce.Known || ce.Current.Version != v2 || string(ce.Current.Value) != "two" {
		t.Fatalf("stale CompareAndPut through the socket: %v (%+v)", err, ce)
	}
	// Update through the socket.
	v3, err := c.Update(ctx, "k", func(cur backend.Entry) ([]byte, error) {
		return append(cur.Value, '!'), nil
	})
	if e, _ := b.Get(ctx, "k"); err != nil || e.Version != v3 || string(e.Value) != "two!" {
		t.Fatalf("Update: %d %v; now %+v", v3, err, e)
	}
	cancel()
	for range w {
	}
	_ = c.Close()
	_ = b.Close()
}

// TestSharedResolve checks how a CompareAndPut whose owner died before
// answering is settled from the next owner's state.
func TestSharedResolve(t *testing.T) {
	ctx := t.Context()
	s := openShared(t, "bolt:"+filepath.Join(t.TempDir(), "r.db"))
	v1, err := s.CompareAndPut(ctx, "k", 0, []byte("mine"))
	if err != nil {
		t.Fatal(err)
	}
	if v, done, err := s.resolve(ctx, "k", 0, []byte("mine")); !done || err != nil || v != v1 {
		t.Errorf("write that happened: %d %v %v", v, done, err)
	}
	if _, done, err := s.resolve(ctx, "k", v1, []byte("other")); done || err != nil {
		t.Errorf("write that did not happen: done %v %v", done, err)
	}
	if _, done, err := s.resolve(ctx, "k", 0, []byte("other")); !done || !errors.Is(err, backend.ErrConflict) {
		t.Errorf("lost race: done %v %v", done, err)
	}
	if _, done, err := s.resolve(ctx, "absent", 0, []byte("x")); done || err != nil {
		t.Errorf("create that did not happen: done %v %v", done, err)
	}
}

// TestSharedStaleSocket: the socket of an owner that was killed is
// replaced by the next owner; a file that is not a socket is left alone.
func TestSharedStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	ln, err := net.Listen("unix", path+".sock")
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = ln.Close() // a dead owner's socket
	a := openShared(t, "bolt:"+path)
	b := openShared(t, "bolt:"+path)
	if !isOwner(a) || isOwner(b) {
		t.Fatalf("owner: a %v, b %v", isOwner(a), isOwner(b))
	}
	_ = b.Close()
	_ = a.Close()
	if _, err := os.Lstat(path + ".sock"); !os.IsNotExist(err) {
		t.Fatalf("socket left after the owner closed: %v", err)
	}

	// A regular file in the way: the owner works alone, others time out.
	if err := os.WriteFile(path+".sock", []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := openShared(t, "bolt:"+path)
	if _, err := c.CompareAndPut(t.Context(), "k", 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	_, err = openTestShared(t.Context(), "bolt:"+path+"?timeout=200ms")
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("second handle without a socket: %v", err)
	}
	if b, err := os.ReadFile(path + ".sock"); err != nil || string(b) != "mine" {
		t.Fatalf("the file in the way was touched: %q %v", b, err)
	}
}

// TestSharedRefusesOtherLimits: a process asking for other limits than the
// owner's is refused at once rather than failing later.
func TestSharedRefusesOtherLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	openShared(t, "bolt:"+path)
	began := time.Now()
	_, err := openTestShared(t.Context(), "bolt:"+path+"?maxvalue=1000")
	if !errors.Is(err, errRefused) || time.Since(began) > 500*time.Millisecond {
		t.Fatalf("got %v after %v, want a prompt refusal", err, time.Since(began))
	}
}

// TestSharedCancel: a call whose context ends while it waits at the owner
// returns the context's error.
func TestSharedCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	openShared(t, "bolt:"+path)
	b := openShared(t, "bolt:"+path)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.CompareAndPut(ctx, "k", 0, []byte("v")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if _, err := b.Get(t.Context(), "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("a cancelled write changed something: %v", err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	for i := 0; ctx.Err() == nil; i++ {
		_, _ = b.CompareAndPut(ctx, "k", backend.Version(i), []byte("v"))
	}
	if _, err := b.Get(t.Context(), "k"); err != nil && !errors.Is(err, backend.ErrNotFound) {
		t.Fatal(err)
	}
}
