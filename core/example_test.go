package core_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/stickypub/stickypub/backend"
	_ "github.com/stickypub/stickypub/backend/bolt" // registers bolt: URIs
	"github.com/stickypub/stickypub/core"
)

// Example is the README's library example, word for word (a test keeps
// them identical): publish a message, then read the topic's history.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "stickypub-example") // your application's data directory
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := backend.Open(ctx, "bolt:"+filepath.Join(dir, "topics.db")) // or redis://…, mem:
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	id, _, err := core.LoadOrCreateIdentity(filepath.Join(dir, "identity.pem"))
	if err != nil {
		log.Fatal(err)
	}
	c, err := core.New(store, id)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)

	if _, err := c.Publish(ctx, "orders", []byte("order 1"), core.WithTTL(time.Hour)); err != nil {
		log.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, "orders", core.FromStart())
	if err != nil {
		log.Fatal(err)
	}
	for {
		select {
		case m := <-sub.Messages(): // verified, in order, exactly once
			fmt.Printf("%s #%d: %s\n", m.Topic, m.Seq, m.Payload)
			return // a real subscriber keeps reading
		case g := <-sub.Gaps(): // messages that can no longer be delivered
			fmt.Printf("gap: %d..%d (%s)\n", g.From, g.To, g.Reason)
		case <-ctx.Done():
			log.Fatal(ctx.Err())
		}
	}
	// Output:
	// orders #1: order 1
}
