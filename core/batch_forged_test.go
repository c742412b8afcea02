package core_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/forge"
)

// A subscriber's poll verifies the segments of many publishers as one
// batch of signatures: a forged segment among them (a publisher whose
// segment's payload was changed after signing) is not delivered and is
// counted, and every real message of the other publishers arrives.
func TestForgedSegmentInABatch(t *testing.T) {
	for _, order := range []core.Ordering{core.TopicOrder, core.PublisherOrder} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			store := memory.New()
			defer store.Close()
			client := func(id *core.Identity) *core.Client {
				if id == nil {
					var err error
					id, err = core.GenerateIdentity()
					require.NoError(t, err)
				}
				c, err := core.New(store, id, core.WithOrdering(order))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close(context.Background()) })
				return c
			}
			const pubs, each = 12, 3
			var clients []*core.Client
			for range pubs {
				clients = append(clients, client(nil))
			}
			forged := 0
			for seq := 1; seq <= each; seq++ {
				for i, c := range clients {
					_, err := c.Publish(ctx, "t", fmt.Appendf(nil, "p%d m%d", i, seq))
					require.NoError(t, err)
				}
				// A forger's segment lands between the real ones.
				id, err := core.GenerateIdentity()
				require.NoError(t, err)
				fg, err := forge.New(store, id, order)
				require.NoError(t, err)
				_, err = fg.BadSignature(ctx, "t", 1, []byte("forged"))
				require.NoError(t, err)
				require.NoError(t, fg.Close(ctx))
				forged++
			}
			sc := client(nil)
			sub, err := sc.Subscribe(ctx, "t", core.FromStart(), core.WithoutPush())
			require.NoError(t, err)
			got := map[string]bool{}
			for len(got) < pubs*each {
				_, _ = sc.Poll(ctx, "t")
				select {
				case m := <-sub.Messages():
					require.False(t, strings.Contains(string(m.Payload), "forged"), "delivered %q", m.Payload)
					require.False(t, got[string(m.Payload)], "twice: %q", m.Payload)
					got[string(m.Payload)] = true
				case <-time.After(5 * time.Millisecond):
				case <-ctx.Done():
					t.Fatalf("received %d of %d", len(got), pubs*each)
				}
			}
			_, err = sc.Poll(ctx, "t")
			require.NoError(t, err)
			for {
				select {
				case m := <-sub.Messages():
					t.Fatalf("delivered %q", m.Payload)
				default:
				}
				break
			}
			require.GreaterOrEqual(t, sc.Stats().Invalid, uint64(forged), "forged segments counted")
		})
	}
}
