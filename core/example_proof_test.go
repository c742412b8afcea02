package core_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/core"
)

// ExampleMessage_Proof exports a delivered message with its proof, which
// anyone can verify alone: no store, no other message of its batch.
func ExampleMessage_Proof() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := core.GenerateIdentity()
	if err != nil {
		log.Fatal(err)
	}
	store := memory.New()
	defer store.Close()
	c, err := core.New(store, id)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.PublishBatch(ctx, "orders", [][]byte{[]byte("order 1"), []byte("order 2"), []byte("order 3")}); err != nil {
		log.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, "orders", core.FromStart())
	if err != nil {
		log.Fatal(err)
	}
	<-sub.Messages()
	m := <-sub.Messages()
	proof, err := m.Proof()
	if err != nil {
		log.Fatal(err)
	}
	exported, err := proof.MarshalBinary() // hand these bytes to anyone
	if err != nil {
		log.Fatal(err)
	}

	got, err := core.VerifyProof(exported) // needs nothing else
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s #%d: %s (one of %d messages signed together)\n", got.Topic, got.Seq, got.Payload, got.Count)
	fmt.Println("signed by this identity:", core.PublisherIDOf(got.Publisher) == id.ID())
	// Output:
	// orders #2: order 2 (one of 3 messages signed together)
	// signed by this identity: true
}
