package core

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx is a context bounded for one test.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newClient makes a client with a fresh identity, closed at cleanup.
func newClient(t *testing.T, store backend.Store, opts ...Option) *Client {
	t.Helper()
	id, err := GenerateIdentity()
	require.NoError(t, err)
	return newClientAs(t, store, id, opts...)
}

func newClientAs(t *testing.T, store backend.Store, id *Identity, opts ...Option) *Client {
	t.Helper()
	c, err := New(store, id, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// newHub makes a hub on store, closed at cleanup (after the clients made
// later, which close first).
func newHub(t *testing.T, store backend.Store) *Hub {
	t.Helper()
	h, err := NewHub(store)
	require.NoError(t, err)
	t.Cleanup(h.Close)
	return h
}

func newMem(t *testing.T) *memory.Store {
	s := memory.New()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// receive reads n messages from sub, polling c meanwhile.
func receive(t *testing.T, ctx context.Context, c *Client, sub *Subscription, n int) []*Message {
	t.Helper()
	var got []*Message
	for len(got) < n {
		_, _ = c.Poll(ctx, sub.Topic())
		select {
		case m := <-sub.Messages():
			got = append(got, m)
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("received %d of %d", len(got), n)
		}
	}
	return got
}
