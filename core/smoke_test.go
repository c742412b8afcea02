package core

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stretchr/testify/require"
)

func TestSmokePublishSubscribe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := memory.New()
	defer store.Close()

	const pubs, per = 10, 100
	var wg sync.WaitGroup
	clients := make([]*Client, pubs)
	for i := range pubs {
		id, err := GenerateIdentity()
		require.NoError(t, err)
		clients[i], err = New(store, id)
		require.NoError(t, err)
	}
	for i := range pubs {
		wg.Go(func() {
			for j := range per {
				_, err := clients[i].Publish(ctx, "t", fmt.Appendf(nil, "%d-%d", i, j))
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
	id, _ := GenerateIdentity()
	sub, err := New(store, id)
	require.NoError(t, err)
	s, err := sub.Subscribe(ctx, "t", FromStart(), WithBuffer(pubs*per))
	require.NoError(t, err)
	seen := map[string]bool{}
	for len(seen) < pubs*per {
		select {
		case m := <-s.Messages():
			k := string(m.Payload)
			require.False(t, seen[k], "duplicate %s", k)
			seen[k] = true
		case <-ctx.Done():
			t.Fatalf("got %d of %d", len(seen), pubs*per)
		}
	}
	info, err := sub.Info(ctx, "t")
	require.NoError(t, err)
	require.Len(t, info.Publishers, pubs)
	require.EqualValues(t, pubs*per, info.RetainedMessages)
	t.Logf("stats %+v info anns=%d", sub.Stats(), info.Announcements)
	for _, c := range clients {
		require.NoError(t, c.Close(ctx))
	}
	require.NoError(t, sub.Close(ctx))
}
