package conformance_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/conformance"
	"github.com/stickypub/stickypub/core"
)

// TestRefreshOnExpiringStore: on a store whose records expire (the fault
// wrapper with a record lifetime, as a DHT), a running publisher keeps its
// head record and segments alive by refreshing them, so a subscriber that
// arrives several lifetimes later still receives everything; what nobody
// refreshes expires.
func TestRefreshOnExpiringStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const lifetime = 1500 * time.Millisecond
	store := conformance.Faulty(memory.New(), conformance.FaultConfig{RecordLifetime: lifetime, MaxValueSize: 1000})
	defer store.Close()
	newClient := func(opts ...core.Option) *core.Client {
		id, err := core.GenerateIdentity()
		require.NoError(t, err)
		c, err := core.New(store, id, append([]core.Option{core.WithVerifyInterval(100 * time.Millisecond)}, opts...)...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	live := newClient()
	var want [][]byte
	for i := range 5 {
		p := bytes.Repeat([]byte{byte('a' + i)}, 500+i*700) // some chunked
		want = append(want, p)
		_, err := live.Publish(ctx, "expiring", p)
		require.NoError(t, err)
	}
	stopped := newClient()
	_, err := stopped.Publish(ctx, "expiring", []byte("nobody refreshes this"))
	require.NoError(t, err)
	require.NoError(t, stopped.Close(ctx))

	time.Sleep(3 * lifetime)
	require.Positive(t, live.Stats().Refreshes, "the publisher never refreshed its records")
	require.Positive(t, conformance.Tally(store).Expired, "nothing expired: the test proves nothing")

	sc := newClient()
	sub, err := sc.Subscribe(ctx, "expiring", core.FromStart(), core.WithoutPush())
	require.NoError(t, err)
	var got [][]byte
	for len(got) < len(want) {
		_, _ = sc.Poll(ctx, "expiring")
	drain:
		for {
			select {
			case m := <-sub.Messages():
				require.Equal(t, live.Identity().ID(), m.PublisherID, "a record nobody refreshed outlived its lifetime")
				got = append(got, m.Payload)
			default:
				break drain
			}
		}
		select {
		case <-ctx.Done():
			require.FailNow(t, fmt.Sprintf("received %d of %d refreshed messages", len(got), len(want)))
		case <-time.After(20 * time.Millisecond):
		}
	}
	require.Equal(t, want, got)
	_, _ = sc.Poll(ctx, "expiring")
	require.Empty(t, sub.Messages(), "a record nobody refreshed outlived its lifetime")
	require.Zero(t, sc.Stats().Invalid)
}
