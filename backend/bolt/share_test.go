package bolt

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/conformance"
)

// openSharedT opens a Shared store at path with opts; the test closes it.
func openSharedT(t *testing.T, path string, opts ...Option) *Shared {
	t.Helper()
	s, err := OpenShared(testCtx(t), path, opts...)
	if err != nil {
		t.Fatalf("open shared %s: %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// sharedHarness gives every handle its own Shared on one file, as separate
// processes would have: the first to open is the owner, the others go
// through its socket, and closing the owner hands the file over.
type sharedHarness struct{ path string }

func (h sharedHarness) NewStore(ctx context.Context) (backend.Store, error) {
	return OpenShared(ctx, h.path, WithMaxValueSize(256<<10))
}

func (sharedHarness) Close() {}

// remoteOnlyHarness keeps an owner open so that every handle it gives is
// remote: every call of the suites goes through the owner's socket.
type remoteOnlyHarness struct {
	path  string
	owner *Shared
}

// remoteOpts are the options of the remote-only harness: small values, and
// no fsync (the suites check the protocol over the socket, not durability;
// with fsync, 100 processes contending on one key pay one disk flush per
// winner, see docs/sharing.md).
var remoteOpts = []Option{WithMaxValueSize(256 << 10), WithNoSync(true)}

func (h *remoteOnlyHarness) NewStore(ctx context.Context) (backend.Store, error) {
	s, err := OpenShared(ctx, h.path, remoteOpts...)
	if err != nil {
		return nil, err
	}
	if s.IsOwner() {
		_ = s.Close()
		return nil, errors.New("a handle of the remote-only harness owns the file")
	}
	return s, nil
}

func (h *remoteOnlyHarness) Close() { _ = h.owner.Close() }

func remoteOnly(ctx context.Context, t *testing.T) (conformance.Harness, error) {
	path := filepath.Join(t.TempDir(), "r.db")
	owner, err := OpenShared(ctx, path, remoteOpts...)
	if err != nil {
		return nil, err
	}
	return &remoteOnlyHarness{path: path, owner: owner}, nil
}

// TestSharedContract holds Shared, in both roles and across handovers, to
// the backend contract. The engine is bolt's, whose contract TestConformance
// runs at full size: under -race this one runs reduced (every subtest,
// smaller workloads; see conformance.ContractOptions.Reduced).
func TestSharedContract(t *testing.T) {
	conformance.RunContractWith(t, func(_ context.Context, t *testing.T) (conformance.Harness, error) {
		return sharedHarness{path: filepath.Join(t.TempDir(), "c.db")}, nil
	}, conformance.ContractOptions{Reduced: true})
}

// TestSharedRemoteConformance runs the contract and protocol suites on
// remote handles only: every call goes through the owner's socket.
func TestSharedRemoteConformance(t *testing.T) {
	// The engine behind the socket is bolt's, whose full suites
	// TestConformance runs; under -race both run here reduced (every
	// subtest, in both orderings; 100 publishers still race through the
	// socket, with fewer messages each). Without -race, or with
	// STICKYPUB_FULL=1, the contract runs at full size and the protocol
	// with 20 messages per publisher of the 100.
	conformance.RunContractWith(t, remoteOnly, conformance.ContractOptions{Reduced: true})
	if testing.Short() {
		t.Log("protocol suite on remote handles skipped in -short mode")
		return
	}
	conformance.RunProtocolWith(t, remoteOnly, conformance.ProtocolOptions{HeavyMessages: 20, Reduced: true})
}

// TestSharedURI: share=1 through the registry gives a Shared store; the
// second handle reaches the first's file through the socket.
func TestSharedURI(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "u.db")
	a, err := backend.Open(ctx, "bolt://"+path+"?share=1")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := backend.Open(ctx, "bolt://"+path+"?share=true")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sa, okA := a.(*Shared)
	sb, okB := b.(*Shared)
	if !okA || !okB || !sa.IsOwner() || sb.IsOwner() {
		t.Fatalf("got %T and %T; want an owner and a remote *Shared", a, b)
	}
	v, err := b.CompareAndPut(ctx, "k", 0, []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := a.Get(ctx, "k"); err != nil || e.Version != v || string(e.Value) != "v" {
		t.Fatalf("owner reads %+v %v", e, err)
	}
	if _, err := backend.Open(ctx, "bolt://"+path+"?share=1&readonly=true"); !errors.Is(err, backend.ErrBadURI) {
		t.Fatalf("share with readonly: %v", err)
	}
	u, _ := url.Parse("bolt://" + path + "?share=1")
	if f, err := ResolveURI(u); err != nil || f.Path != sa.Path() || f.LockTimeout != DefaultLockTimeout {
		t.Fatalf("ResolveURI %+v %v, want %q", f, err, sa.Path())
	}
}

func TestSharedHandover(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "h.db")
	a := openSharedT(t, path)
	b := openSharedT(t, path)
	if !a.IsOwner() || b.IsOwner() {
		t.Fatalf("owner: a %v, b %v", a.IsOwner(), b.IsOwner())
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.Watch(wctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	next := func(why string) backend.Version {
		t.Helper()
		select {
		case v := <-w:
			return v
		case <-ctx.Done():
			t.Fatalf("watch: %s: no notification", why)
			return 0
		}
	}
	v1, err := a.CompareAndPut(ctx, "k", 0, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if v := next("owner's write"); v != v1 {
		t.Fatalf("watch got %d, want %d", v, v1)
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
	if !b.IsOwner() {
		t.Fatal("b did not take the file over")
	}
	if v := next("handover"); v != 0 && v != v1 {
		t.Fatalf("watch after handover got %d", v)
	}
	c := openSharedT(t, path)
	v2, err := c.CompareAndPut(ctx, "k", v1, []byte("two"))
	if err != nil || v2 <= v1 {
		t.Fatalf("c.CompareAndPut: %d %v", v2, err)
	}
	if v := next("c's write"); v != v2 {
		t.Fatalf("watch got %d, want %d", v, v2)
	}
	var ce *backend.ConflictError
	if _, err := c.CompareAndPut(ctx, "k", v1, []byte("stale")); !errors.As(err, &ce) || !ce.Known || ce.Current.Version != v2 || string(ce.Current.Value) != "two" {
		t.Fatalf("stale CompareAndPut through the socket: %v (%+v)", err, ce)
	}
	v3, err := c.Update(ctx, "k", func(cur backend.Entry) ([]byte, error) {
		return append(cur.Value, '!'), nil
	})
	if e, _ := b.Get(ctx, "k"); err != nil || e.Version != v3 || string(e.Value) != "two!" {
		t.Fatalf("Update: %d %v; now %+v", v3, err, e)
	}
	if err := c.Delete(ctx, "k", v3); err != nil {
		t.Fatalf("Delete through the socket: %v", err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
	cancel()
	for range w {
	}
}

// TestSharedResolve checks how a CompareAndPut whose owner died before
// answering is settled from the next owner's state.
func TestSharedResolve(t *testing.T) {
	ctx := testCtx(t)
	s := openSharedT(t, filepath.Join(t.TempDir(), "r.db"))
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

// TestSharedPrivateSocket: the owner's socket is 0600 in a 0700 directory
// beside the file; a dead owner's socket is replaced; a file that is not a
// socket is left alone (the owner then works alone and says so).
func TestSharedPrivateSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	dir, sock, err := socketPlace(path)
	if err != nil || dir != path+shareDirSuffix {
		t.Fatalf("socketPlace: %q %q %v", dir, sock, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = ln.Close() // a dead owner's socket
	a := openSharedT(t, path)
	b := openSharedT(t, path)
	if !a.IsOwner() || b.IsOwner() {
		t.Fatalf("owner: a %v, b %v", a.IsOwner(), b.IsOwner())
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, sock: 0o600} {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: mode %v %v, want %#o", p, fi.Mode(), err, want)
		}
	}
	_ = b.Close()
	_ = a.Close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after the owner closed: %v", err)
	}

	// A regular file in the way: the owner works alone, others time out.
	if err := os.WriteFile(sock, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := openSharedT(t, path)
	if _, err := c.CompareAndPut(testCtx(t), "k", 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	_, err = OpenShared(testCtx(t), path, WithLockTimeout(200*time.Millisecond))
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("second handle without a socket: %v", err)
	}
	if b, err := os.ReadFile(sock); err != nil || string(b) != "mine" {
		t.Fatalf("the file in the way was touched: %q %v", b, err)
	}
}

// TestSharedSocketPlace: a path too long for a socket moves it under
// $XDG_RUNTIME_DIR or the user's cache directory, never to a shared
// temporary directory.
func TestSharedSocketPlace(t *testing.T) {
	long := filepath.Join("/x", string(repeat('d', 120)), "f.db")
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	if _, _, err := socketPlace(long); !errors.Is(err, ErrUnsafeSocketDir) {
		t.Fatalf("long path with neither XDG_RUNTIME_DIR nor HOME: %v", err)
	}
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	if dir, _, err := socketPlace(long); err != nil || filepath.Dir(dir) != cache {
		t.Fatalf("long path with a cache directory: %q %v", dir, err)
	}
	rt := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", rt)
	dir, sock, err := socketPlace(long)
	if err != nil || filepath.Dir(dir) != rt || filepath.Dir(sock) != dir {
		t.Fatalf("long path with XDG_RUNTIME_DIR: %q %q %v", dir, sock, err)
	}
	// The whole way: the owner and a client meet under XDG_RUNTIME_DIR.
	deep := filepath.Join(t.TempDir(), string(repeat('d', 110)))
	if err := os.Mkdir(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(deep, "f.db")
	a := openSharedT(t, path)
	b := openSharedT(t, path)
	if !a.IsOwner() || b.IsOwner() || filepath.Dir(filepath.Dir(a.Socket())) != rt {
		t.Fatalf("owner %v %v, socket %s", a.IsOwner(), b.IsOwner(), a.Socket())
	}
	if _, err := b.CompareAndPut(testCtx(t), "k", 0, nil); err != nil {
		t.Fatal(err)
	}
}

func repeat(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

// TestSharedRefusesOtherLimits: a process asking for other limits than the
// owner's is refused (not left to wait for the lock).
func TestSharedRefusesOtherLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	openSharedT(t, path)
	_, err := OpenShared(testCtx(t), path, WithMaxValueSize(1000), WithLockTimeout(30*time.Second))
	if !errors.Is(err, errRefused) {
		t.Fatalf("got %v, want a refusal", err)
	}
}

// TestSharedCancel: a call whose context ends while it waits at the owner
// returns the context's error, and every acknowledged write is stored.
func TestSharedCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	openSharedT(t, path)
	b := openSharedT(t, path)
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if _, err := b.CompareAndPut(ctx, "k", 0, []byte("v")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if _, err := b.Get(testCtx(t), "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("a cancelled write changed something: %v", err)
	}
	// Writes racing a short deadline: each either lands and is
	// acknowledged, or fails with the context's error (its outcome then
	// unknown, as the contract allows). What is acknowledged is stored.
	ctx, cancel = context.WithTimeout(testCtx(t), 20*time.Millisecond)
	defer cancel()
	var last backend.Version
	acked, failed := 0, 0
	for ctx.Err() == nil || acked+failed == 0 {
		v, err := b.CompareAndPut(ctx, "k", last, []byte("v"))
		switch {
		case err == nil:
			if v <= last {
				t.Fatalf("acknowledged version %d after %d", v, last)
			}
			last, acked = v, acked+1
		case errors.Is(err, context.DeadlineExceeded):
			failed++
		case errors.Is(err, backend.ErrConflict):
			// A write cancelled in flight landed after all: read it back.
			e, gerr := b.Get(testCtx(t), "k")
			if gerr != nil || e.Version <= last {
				t.Fatalf("conflict at %d, but the key is %+v %v", last, e, gerr)
			}
			last = e.Version
		default:
			t.Fatalf("write %d: unexpected error %v", acked+failed, err)
		}
	}
	e, err := b.Get(testCtx(t), "k")
	if acked > 0 && (err != nil || e.Version < last) {
		t.Fatalf("last acknowledged version %d, the key holds %+v %v", last, e, err)
	}
	t.Logf("%d acknowledged, %d cut short by the deadline", acked, failed)
}
