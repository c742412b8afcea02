package bolt

import (
	"encoding/gob"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// TestSharedStalledOwner: an owner that holds the file but stops answering
// fails the calls waiting on it (no write acknowledged) instead of hanging
// them; once it is gone, a client takes the file over.
func TestSharedStalledOwner(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "st.db")
	fake := startFakeOwner(t, path, true)
	fast := hooksWith(func(h *shareHooks) { h.pingEach, h.stall = 10*time.Millisecond, 300*time.Millisecond })
	s := openSharedT(t, path, fast, WithLockTimeout(10*time.Second))
	if s.IsOwner() {
		t.Fatal("took the file from a live owner")
	}
	_, err := s.CompareAndPut(ctx, "k", 0, []byte("lost"))
	if err == nil || !errors.Is(err, backend.ErrUnavailable) || errors.Is(err, backend.ErrConflict) {
		t.Fatalf("write to a stalled owner: %v", err)
	}
	t.Logf("write to a stalled owner: %v", err)
	select {
	case req := <-fake.requests:
		if req.Op != wireCAS {
			t.Fatalf("the stalled owner got %+v first", req)
		}
	default:
		t.Fatal("the write never reached the stalled owner")
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("read from a stalled owner: %v", err)
	}

	// The stalled owner goes away: the next call takes the file over. The
	// write that was never acknowledged was never stored either.
	fake.stop()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("after the takeover: %v", err)
	}
	if !s.IsOwner() {
		t.Fatal("the client did not take the file over")
	}
	if _, err := s.CompareAndPut(ctx, "k", 0, []byte("mine")); err != nil {
		t.Fatal(err)
	}
}

// TestSharedStalledClient: a client that stops reading does not stall the
// owner's writers or other clients, and is dropped.
func TestSharedStalledClient(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "sc.db")
	owner := openSharedT(t, path, hooksWith(func(h *shareHooks) { h.stall = 300 * time.Millisecond }))
	other := openSharedT(t, path, hooksWith(func(h *shareHooks) { h.pingEach = 10 * time.Millisecond }))
	big := make([]byte, 200<<10)
	if _, err := owner.CompareAndPut(ctx, "big", 0, big); err != nil {
		t.Fatal(err)
	}

	// The stalled client: says hello, watches a key, asks for the big value
	// many times, and never reads another byte.
	c, err := net.Dial("unix", owner.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	enc, dec := gob.NewEncoder(c), gob.NewDecoder(c)
	var rep reply
	if err := enc.Encode(&request{Op: wireHello, Key: path, Value: []byte(shareProto)}); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&rep); err != nil || rep.Err != nil {
		t.Fatalf("hello: %+v %v", rep, err)
	}
	_ = enc.Encode(&request{ID: 1, Op: wireWatch, Key: "k"})
	for i := range 20 {
		_ = enc.Encode(&request{ID: uint64(2 + i), Op: wireGet, Key: "big"})
	}

	// Writers in both processes go on.
	var v backend.Version
	for i := range 50 {
		w := backend.Store(owner)
		if i%2 == 1 {
			w = other
		}
		nv, err := w.CompareAndPut(ctx, "k", v, []byte{byte(i)})
		if err != nil {
			t.Fatalf("write %d while a client is stalled: %v", i, err)
		}
		v = nv
	}
	nv, err := other.Update(ctx, "k", func(cur backend.Entry) ([]byte, error) { return append(cur.Value, '+'), nil })
	if err != nil || nv <= v {
		t.Fatalf("update while a client is stalled: %d %v", nv, err)
	}

	// The owner drops the stalled client: reading what is left ends.
	readDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		readDone <- err
	}()
	select {
	case err := <-readDone:
		t.Logf("stalled client dropped (%v)", err)
	case <-ctx.Done():
		t.Fatal("the owner never dropped a client that stopped reading")
	}
}

// TestSharedUpdateOutsideCommit: a remote Update's function runs in the
// client, outside the owner's write transaction. While it is blocked, the
// owner's writers go on; the function then runs again on their result.
func TestSharedUpdateOutsideCommit(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "uo.db")
	owner := openSharedT(t, path)
	client := openSharedT(t, path)
	entered, release := make(chan struct{}), make(chan struct{})
	var seen []string
	res := make(chan error, 1)
	go func() {
		_, err := client.Update(ctx, "k", func(cur backend.Entry) ([]byte, error) {
			seen = append(seen, string(cur.Value))
			if len(seen) == 1 {
				close(entered)
				<-release
			}
			return append(cur.Value, '+'), nil
		})
		res <- err
	}()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("update function never ran")
	}
	// The client's function is blocked; the owner's commits are not.
	if _, err := owner.CompareAndPut(ctx, "k", 0, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Update(ctx, "other", func(backend.Entry) ([]byte, error) { return []byte("x"), nil }); err != nil {
		t.Fatal(err)
	}
	close(release)
	select {
	case err := <-res:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("update never returned")
	}
	e, err := owner.Get(ctx, "k")
	if err != nil || string(e.Value) != "owner+" || len(seen) != 2 || seen[1] != "owner" {
		t.Fatalf("final %q %v; the function saw %q", e.Value, err, seen)
	}
}
