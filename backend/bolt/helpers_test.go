package bolt

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every test.
const testTimeout = 60 * time.Second

// testCtx returns a context that ends with the test or after testTimeout.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// tempPath returns a fresh database path in a per-test directory.
func tempPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "store.db")
}

// openAt opens a store at path and closes it when the test ends.
func openAt(t testing.TB, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(path, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newStore opens a store in a fresh directory.
func newStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	return openAt(t, tempPath(t), opts...)
}

// blocker holds the committer inside an Update function so that tests can
// queue operations deterministically into the next batch.
type blocker struct {
	release chan struct{}
	result  chan error
}

// blockCommitter starts an Update on key whose function waits until
// release; it returns once the committer is inside that function.
func blockCommitter(t *testing.T, ctx context.Context, s *Store, key string) *blocker {
	t.Helper()
	b := &blocker{release: make(chan struct{}), result: make(chan error, 1)}
	started := make(chan struct{})
	go func() {
		_, err := s.Update(ctx, key, func(cur backend.Entry) ([]byte, error) {
			close(started)
			<-b.release
			return []byte("blocker"), nil
		})
		b.result <- err
	}()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("committer never ran the blocking update")
	}
	return b
}

// unblock releases the committer and returns the blocking Update's error.
func (b *blocker) unblock(t *testing.T, ctx context.Context) error {
	t.Helper()
	close(b.release)
	select {
	case err := <-b.result:
		return err
	case <-ctx.Done():
		t.Fatal("blocking update never returned")
		return nil
	}
}

// waitQueued waits until at least n live operations are queued.
func waitQueued(t *testing.T, ctx context.Context, s *Store, n int) {
	t.Helper()
	for {
		s.mu.Lock()
		live := 0
		for _, o := range s.pending {
			if !o.withdrawn {
				live++
			}
		}
		s.mu.Unlock()
		if live >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("only %d of %d operations got queued", live, n)
		case <-time.After(time.Millisecond):
		}
	}
}

// result is the outcome of an asynchronous store call.
type result struct {
	ver backend.Version
	err error
}

// async runs f in a goroutine and returns a channel with its result.
func async(f func() (backend.Version, error)) <-chan result {
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	return ch
}

// await waits for an async result.
func await(t *testing.T, ctx context.Context, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		t.Fatal("operation did not return")
		return result{}
	}
}
