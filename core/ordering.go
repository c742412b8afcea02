package core

// Topic orderings: TopicOrder and PublisherOrder, the option that picks
// one, and the check that a topic keeps the one it was created with.

import (
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
)

// Ordering is the delivery-order guarantee of a topic. It is fixed by the
// first client that writes the topic's coordinator and recorded there;
// a client of the other ordering gets ErrOrderingMismatch on that topic.
//
// Both orderings deliver every message exactly once, each publisher's
// messages in sequence order, and the same messages to every subscriber,
// early or late. They differ in how messages of different publishers
// interleave, and in what a publish costs under contention.
type Ordering uint8

const (
	// OrderDefault picks TopicOrder on linearizable stores and
	// PublisherOrder on the others.
	OrderDefault Ordering = iota
	// TopicOrder: one total order of all messages of the topic, the same
	// for every subscriber. Every batch is announced in the topic's
	// coordinator, the one record every publisher writes, so independent
	// publishers contend for it (one compare-and-put wins per round).
	// Needs a linearizable store.
	TopicOrder
	// PublisherOrder: each publisher's messages in sequence order, with
	// no order across publishers (subscribers interleave publishers as
	// they find their messages). A publish writes only the publisher's own
	// records; the coordinator is written once per publisher and topic
	// (registration) and when its activity lease is renewed (every 5
	// minutes of publishing), so independent publishers do not contend.
	// The only ordering on stores that are not linearizable (the DHTs).
	PublisherOrder
)

// String returns "topic", "publisher" or "default".
func (o Ordering) String() string {
	switch o {
	case TopicOrder:
		return "topic"
	case PublisherOrder:
		return "publisher"
	case OrderDefault:
		return "default"
	}
	return fmt.Sprintf("Ordering(%d)", uint8(o))
}

// ParseOrdering parses "topic", "publisher" or "default" (or "").
func ParseOrdering(s string) (Ordering, error) {
	switch s {
	case "topic":
		return TopicOrder, nil
	case "publisher":
		return PublisherOrder, nil
	case "", "default":
		return OrderDefault, nil
	}
	return 0, fmt.Errorf("core: unknown ordering %q (want topic or publisher)", s)
}

// ErrOrderingMismatch: the topic's coordinator was created with the other
// ordering than the client's (see WithOrdering).
var ErrOrderingMismatch = errors.New("core: topic ordering mismatch")

// ErrOrderingUnsupported: TopicOrder was asked of a store that is not
// linearizable.
var ErrOrderingUnsupported = errors.New("core: ordering not supported by the store")

// WithOrdering sets the ordering of the topics the client creates, and the
// one it expects of existing topics (default OrderDefault: TopicOrder on
// linearizable stores, PublisherOrder on the others). Clients of a Hub use
// the hub's ordering: give it to NewHub.
func WithOrdering(o Ordering) Option { return func(opts *options) { opts.ordering = o } }

// resolveOrdering returns the ordering an engine on a store with caps uses.
func resolveOrdering(o Ordering, caps backend.Capabilities) (Ordering, error) {
	linear := caps.Consistency >= backend.Linearizable
	switch o {
	case OrderDefault:
		if linear {
			return TopicOrder, nil
		}
		return PublisherOrder, nil
	case TopicOrder:
		if !linear {
			return 0, fmt.Errorf("%w: topic order needs a linearizable store, this one is %v (use PublisherOrder)",
				ErrOrderingUnsupported, caps.Consistency)
		}
		return o, nil
	case PublisherOrder:
		return o, nil
	}
	return 0, fmt.Errorf("core: unknown ordering %d", uint8(o))
}

// Ordering returns the ordering the client uses.
func (c *Client) Ordering() Ordering { return c.eng.order }

// newCoord returns an empty coordinator of the engine's ordering.
func (e *engine) newCoord() *coordState {
	st := newCoordState()
	st.Order = e.order
	return st
}

// checkOrder refuses a coordinator of the other ordering.
func (e *engine) checkOrder(st *coordState) error {
	if st.Order != e.order {
		return fmt.Errorf("%w: the topic was created in %s order, this client uses %s order (core.WithOrdering)",
			ErrOrderingMismatch, st.Order, e.order)
	}
	return nil
}
