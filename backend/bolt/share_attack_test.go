package bolt

import (
	"bufio"
	"encoding/gob"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// hooksWith returns the real sharing hooks changed by f.
func hooksWith(f func(h *shareHooks)) Option {
	h := defaultShareHooks()
	f(&h)
	return withShareHooks(h)
}

// foreignPeers makes every socket peer look like it runs as another user.
func foreignPeers(h *shareHooks) {
	h.peerUID = func(*net.UnixConn) (int, error) { return h.uid + 1000, nil }
}

// TestSharedUnsafeDir: a socket directory someone else could enter or
// replace is refused before anything is opened, with a *SocketDirError,
// and left as it was.
func TestSharedUnsafeDir(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		opts  []Option
	}{
		{"group and others may enter", func(t *testing.T, dir string) {
			mustMkdir(t, dir, 0o700)
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"others may write", func(t *testing.T, dir string) {
			mustMkdir(t, dir, 0o700)
			if err := os.Chmod(dir, 0o777|fs.ModeSticky); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"symbolic link to a private directory", func(t *testing.T, dir string) {
			target := filepath.Join(t.TempDir(), "elsewhere")
			mustMkdir(t, target, 0o700)
			if err := os.Symlink(target, dir); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"not a directory", func(t *testing.T, dir string) {
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"another user's directory", func(t *testing.T, dir string) {
			mustMkdir(t, dir, 0o700)
		}, []Option{hooksWith(func(h *shareHooks) {
			h.fileUID = func(fs.FileInfo) (int, error) { return h.uid + 1000, nil }
		})}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "u.db")
			dir := path + shareDirSuffix
			tc.setup(t, dir)
			before, err := os.Lstat(dir)
			if err != nil {
				t.Fatal(err)
			}
			s, err := OpenShared(testCtx(t), path, tc.opts...)
			if err == nil {
				_ = s.Close()
				t.Fatal("opened with an unsafe socket directory")
			}
			var de *SocketDirError
			if !errors.As(err, &de) || !errors.Is(err, ErrUnsafeSocketDir) || de.Dir != dir {
				t.Fatalf("got %v, want a *SocketDirError for %s", err, dir)
			}
			t.Logf("refused: %v", err)
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the bolt file was created: %v", err)
			}
			after, err := os.Lstat(dir)
			if err != nil || after.Mode() != before.Mode() {
				t.Fatalf("directory changed: %v -> %v (%v)", before.Mode(), after.Mode(), err)
			}
		})
	}
}

func mustMkdir(t *testing.T, dir string, perm os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, perm); err != nil {
		t.Fatal(err)
	}
}

// fakeOwner listens on a file's socket while a plain Store holds the file's
// lock, as an impostor (or a stalled owner) would. It records what clients
// send.
type fakeOwner struct {
	ln       *net.UnixListener
	lock     *Store
	answer   bool          // answer the hello like an owner
	requests chan *request // every request after the hello
	bytes    chan int      // bytes a connection sent before it ended
	conns    chan net.Conn
}

func startFakeOwner(t *testing.T, path string, answer bool) *fakeOwner {
	t.Helper()
	lock, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lock.Close() })
	h := defaultShareHooks()
	dir, sock, err := socketPlace(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := ensurePrivateDir(dir, &h); err != nil {
		t.Fatal(err)
	}
	ln, err := listenPrivate(sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeOwner{ln: ln, lock: lock, answer: answer, requests: make(chan *request, 1000),
		bytes: make(chan int, 10), conns: make(chan net.Conn, 10)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns <- c
			go f.serve(c, lock.Capabilities())
		}
	}()
	t.Cleanup(func() { f.stop(); <-done })
	return f
}

func (f *fakeOwner) serve(c net.Conn, caps backend.Capabilities) {
	if !f.answer {
		n, _ := io.Copy(io.Discard, c)
		f.bytes <- int(n)
		return
	}
	dec := gob.NewDecoder(bufio.NewReader(c))
	enc := gob.NewEncoder(c)
	var hello request
	if dec.Decode(&hello) != nil || enc.Encode(&reply{Caps: &caps}) != nil {
		return
	}
	for {
		req := new(request)
		if dec.Decode(req) != nil {
			return
		}
		if req.Op != wirePing {
			f.requests <- req // and never answer: the owner has stopped
		}
	}
}

// stop closes the listener and every connection, then releases the lock:
// the impostor or stalled owner is gone.
func (f *fakeOwner) stop() {
	_ = f.ln.Close()
	for {
		select {
		case c := <-f.conns:
			_ = c.Close()
		default:
			_ = f.lock.Close()
			return
		}
	}
}

// TestSharedRefusesForeignOwner: a client refuses an owner that runs as
// another user, sending it nothing at all.
func TestSharedRefusesForeignOwner(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "f.db")
	fake := startFakeOwner(t, path, false)
	_, err := OpenShared(ctx, path, hooksWith(foreignPeers), WithLockTimeout(30*time.Second))
	var pe *PeerError
	if !errors.As(err, &pe) || !errors.Is(err, ErrPeerRefused) || !pe.PeerIsOwner || pe.PeerUID == pe.WantUID {
		t.Fatalf("got %v, want a *PeerError about the owner", err)
	}
	t.Logf("refused: %v", err)
	select {
	case n := <-fake.bytes:
		if n != 0 {
			t.Fatalf("the client sent %d bytes to a foreign owner", n)
		}
	case <-ctx.Done():
		t.Fatal("the client kept its connection to a foreign owner open")
	}
}

// TestSharedRefusesForeignClient: an owner refuses a client that runs as
// another user, whatever it sends; a write it sends at once is not stored,
// and the client learns why it was refused.
func TestSharedRefusesForeignClient(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "o.db")
	owner := openSharedT(t, path, hooksWith(foreignPeers))

	// An attacker that does not wait for the hello's answer.
	c, err := net.Dial("unix", owner.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	enc := gob.NewEncoder(c)
	for _, req := range []*request{
		{Op: wireHello, Key: path, Value: []byte(shareProto)},
		{ID: 1, Op: wireCAS, Key: "k", Value: []byte("attacker")},
		{ID: 2, Op: wireWatch, Key: "k"},
	} {
		if err := enc.Encode(req); err != nil {
			break // the owner may have closed the connection already
		}
	}
	dec := gob.NewDecoder(bufio.NewReader(c))
	var rep reply
	if err := dec.Decode(&rep); err != nil || rep.Err == nil || rep.Err.Code != codePeerRefused {
		t.Fatalf("first reply to a foreign client: %+v %v", rep, err)
	}
	for {
		var more reply
		if err := dec.Decode(&more); err != nil {
			break // the connection ends after the refusal
		}
		t.Fatalf("a foreign client got a second reply: %+v", more)
	}
	if _, err := owner.Get(ctx, "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("a foreign client's write was stored: %v", err)
	}

	// A real client refused the same way fails at once with a clear error
	// rather than waiting for the lock.
	_, err = OpenShared(ctx, path, WithLockTimeout(30*time.Second))
	if !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("client of an owner that refuses it: %v", err)
	}
	t.Logf("refused: %v", err)
}

// TestSharedPeerCredentials: without hooks, both ends see this process's
// own uid through the kernel (SO_PEERCRED).
func TestSharedPeerCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	openSharedT(t, path)
	b := openSharedT(t, path)
	if b.IsOwner() {
		t.Fatal("second handle owns the file")
	}
	b.mu.Lock()
	r := b.att.(*remoteAtt)
	b.mu.Unlock()
	uid, err := peerUID(r.c.(*net.UnixConn))
	if err != nil || uid != os.Geteuid() {
		t.Fatalf("peer uid %d %v, want %d", uid, err, os.Geteuid())
	}
}
