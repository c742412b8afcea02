package core

// Topic write-access policies from a client: creating, changing and
// reading them, and the check before publishing.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// policyRefresh is how long a subscription trusts the policy it read
// before reading it again (a change takes effect within this, plus a poll).
const policyRefresh = time.Second

// policy is the key of a topic's write-access policy.
func (k topicKeys) policy() string { return "p/" + k.id }

// WithTopicOwner pins the owner of topic's policy: a policy signed by any
// other key is rejected as forged (ErrForgedPolicy). Without a pin, the
// first owner this client sees is trusted (trust on first use). Pinning
// does not close a topic that has no policy.
func WithTopicOwner(topic string, owner ed25519.PublicKey) Option {
	return func(o *options) {
		if o.owners == nil {
			o.owners = map[string]ed25519.PublicKey{}
		}
		o.owners[topic] = slices.Clone(owner)
	}
}

// policies is a client's view of topic policies.
type policies struct {
	mu sync.Mutex
	// The first topic's view inline, a map only from the second on: many
	// clients follow one topic, and a Go map of one entry costs ~250 bytes.
	firstTopic string
	first      *policyView
	known      map[string]*policyView
}

// view returns the view of topic, nil if none (create: a new one). The
// caller holds mu.
func (p *policies) view(topic string, create bool) *policyView {
	if p.first != nil && p.firstTopic == topic {
		return p.first
	}
	if v := p.known[topic]; v != nil || !create {
		return v
	}
	v := &policyView{}
	if p.first == nil {
		p.firstTopic, p.first = topic, v
	} else {
		put(&p.known, topic, v)
	}
	return v
}

// policyView is what a client knows of one topic's policy.
type policyView struct {
	good     *Policy // the newest policy that verified (nil: none seen)
	read     int64   // when it was last read (unix nanoseconds; 0: never)
	rejected []byte  // the last record rejected (reported once)
}

// readPolicy returns the topic's policy in force for this client (nil: the
// topic has none), reading the store at most every maxAge. A record that
// does not verify, changes owner or goes back in version is reported
// (EventInvalid, ErrForgedPolicy) and the last good policy stays; with none
// known, the error is returned (fail closed).
func (c *Client) readPolicy(ctx context.Context, tk topicKeys, maxAge time.Duration) (*Policy, error) {
	c.pols.mu.Lock()
	v := c.pols.view(tk.name, true)
	if maxAge > 0 && v.read != 0 && c.eng.now().UnixNano()-v.read < int64(maxAge) {
		p := v.good
		c.pols.mu.Unlock()
		return p, nil
	}
	c.pols.mu.Unlock()

	var e backend.Entry
	err := retryIO(ctx, func() (err error) { e, err = c.eng.store.Get(ctx, tk.policy()); return err })
	c.pols.mu.Lock()
	defer c.pols.mu.Unlock()
	switch {
	case errors.Is(err, backend.ErrNotFound):
		if v.good != nil && c.eng.caps.Consistency >= backend.Linearizable {
			c.policyRejected(tk, v, nil, fmt.Errorf("%w: %q: the policy record is gone; keeping version %d", ErrForgedPolicy, tk.name, v.good.Version))
		}
		v.read = c.eng.now().UnixNano()
		return v.good, nil
	case err != nil:
		return nil, fmt.Errorf("core: read the policy of %q: %w", tk.name, err)
	}
	p, err := decodePolicy(tk.name, e.Value)
	if err == nil {
		owner := c.opts.owners[tk.name]
		if owner == nil && v.good != nil {
			owner = v.good.Owner
		}
		switch {
		case owner != nil && !bytes.Equal(owner, p.Owner):
			err = fmt.Errorf("%w: %q: signed by %s, the owner is %s", ErrForgedPolicy, tk.name, PublisherIDOf(p.Owner), PublisherIDOf(owner))
		case v.good != nil && p.Version < v.good.Version && c.eng.caps.Consistency < backend.Linearizable:
			p = v.good // a stale read on a weak store: keep the newer one
		case v.good != nil && p.Version < v.good.Version:
			err = fmt.Errorf("%w: %q: version %d after version %d", ErrForgedPolicy, tk.name, p.Version, v.good.Version)
		}
	}
	if err != nil {
		c.policyRejected(tk, v, e.Value, err)
		v.read = c.eng.now().UnixNano()
		if v.good == nil {
			return nil, err
		}
		return v.good, nil
	}
	v.good, v.read = p, c.eng.now().UnixNano()
	return p, nil
}

// policyRejected reports a rejected policy record once (c.pols.mu held).
func (c *Client) policyRejected(tk topicKeys, v *policyView, rec []byte, err error) {
	if rec != nil && bytes.Equal(rec, v.rejected) {
		return
	}
	v.rejected = slices.Clone(rec)
	c.stats.invalid.Add(1)
	c.emit(Event{Kind: EventInvalid, Topic: tk.name, Err: err})
	c.opts.logger.Warn("stickypub: topic policy rejected", "topic", tk.name, "err", err)
}

// TopicPolicy returns topic's write-access policy (nil if it has none).
func (c *Client) TopicPolicy(ctx context.Context, topic string) (*Policy, error) {
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	return c.readPolicy(ctx, newTopicKeys(topic), 0)
}

// CreateTopic gives topic a write-access policy owned by the client's
// identity, allowing exactly the publishers listed (list the client's own
// ID to publish itself). It fails with ErrPolicyExists if the topic has one.
func (c *Client) CreateTopic(ctx context.Context, topic string, allowed ...PublisherID) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	tk := newTopicKeys(topic)
	rec := encodePolicy(c.id, topic, 1, allowed)
	// A transient error may follow a write that landed: the retry then
	// meets our own record, which the conflict shows.
	err := retryIO(ctx, func() error { _, err := c.eng.store.CompareAndPut(ctx, tk.policy(), 0, rec); return err })
	if errors.Is(err, backend.ErrConflict) {
		cur, ok := backend.CurrentEntry(err)
		if !ok {
			cur, _ = c.eng.store.Get(ctx, tk.policy())
		}
		if !bytes.Equal(cur.Value, rec) {
			return fmt.Errorf("%w: %q", ErrPolicyExists, topic)
		}
		err = nil // an earlier attempt of ours landed
	}
	if err != nil {
		return fmt.Errorf("core: create the policy of %q: %w", topic, err)
	}
	_, err = c.readPolicy(ctx, tk, 0)
	return err
}

// Allow adds publishers to topic's policy; only its owner may.
func (c *Client) Allow(ctx context.Context, topic string, ids ...PublisherID) error {
	return c.changePolicy(ctx, topic, func(cur []PublisherID) []PublisherID { return append(cur, ids...) })
}

// Deny removes publishers from topic's policy; only its owner may.
// Subscribers stop delivering their messages (those not delivered yet
// included) once they read the new version.
func (c *Client) Deny(ctx context.Context, topic string, ids ...PublisherID) error {
	return c.changePolicy(ctx, topic, func(cur []PublisherID) []PublisherID {
		return slices.DeleteFunc(slices.Clone(cur), func(p PublisherID) bool { return slices.Contains(ids, p) })
	})
}

// knownPolicy returns the newest policy of tk this client has verified
// (nil: none).
func (c *Client) knownPolicy(tk topicKeys) *Policy {
	c.pols.mu.Lock()
	defer c.pols.mu.Unlock()
	if v := c.pols.view(tk.name, false); v != nil {
		return v.good
	}
	return nil
}

// weakPolicyReads is how many times changePolicy reads a policy that a
// store below Linearizable says is missing before it believes it.
const weakPolicyReads = 8

// changePolicy writes the next version of topic's policy with the allowed
// list change returns, by compare-and-put from the version it read.
func (c *Client) changePolicy(ctx context.Context, topic string, change func([]PublisherID) []PublisherID) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	tk := newTopicKeys(topic)
	for attempt := 0; ; attempt++ {
		e, err := c.eng.store.Get(ctx, tk.policy())
		weak := c.eng.caps.Consistency < backend.Linearizable
		switch {
		case errors.Is(err, backend.ErrNotFound) && (!weak || attempt >= weakPolicyReads):
			return fmt.Errorf("%w: %q (CreateTopic first)", ErrNoPolicy, topic)
		case errors.Is(err, backend.ErrNotFound) || (err != nil && retryable(err)):
			// A transient error, or on a weak store a stale read that
			// does not show the policy yet: read again.
			if err := sleepJitter(ctx, attempt); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("core: read the policy of %q: %w", topic, err)
		}
		cur, err := decodePolicy(topic, e.Value)
		if err != nil {
			return err
		}
		if known := c.knownPolicy(tk); known != nil && known.Version > cur.Version && bytes.Equal(known.Owner, cur.Owner) {
			// A stale read on a weak store: build on the newer policy
			// this client has seen, so that the change does not undo
			// another or repeat a version number (the compare-and-put
			// from the stale version conflicts and is retried anyway).
			cur = known
		}
		if !bytes.Equal(cur.Owner, c.id.PublicKey()) {
			return fmt.Errorf("%w: %q is owned by %s", ErrNotOwner, topic, PublisherIDOf(cur.Owner))
		}
		rec := encodePolicy(c.id, topic, cur.Version+1, change(cur.Allowed))
		_, err = c.eng.store.CompareAndPut(ctx, tk.policy(), e.Version, rec)
		if err == nil {
			_, err = c.readPolicy(ctx, tk, 0)
			return err
		}
		if !errors.Is(err, backend.ErrConflict) && !retryable(err) {
			return fmt.Errorf("core: write the policy of %q: %w", topic, err)
		}
		if err := sleepJitter(ctx, attempt); err != nil {
			return err
		}
	}
}

// withheld counts publisher p's messages up to to as denied, each once.
func (s *Subscription) withheld(p PublisherID, to uint64) {
	if s.denied == nil {
		s.denied = map[PublisherID]uint64{}
	}
	from := max(s.denied[p]+1, s.next(p))
	if to >= from {
		s.c.stats.denied.Add(to - from + 1)
		s.denied[p] = to
	}
}

// checkAllowed fails with ErrNotAllowed if topic's policy does not allow
// the client to publish (before it writes anything).
func (c *Client) checkAllowed(ctx context.Context, tk topicKeys) error {
	p, err := c.readPolicy(ctx, tk, 0)
	if err != nil {
		return err
	}
	if !p.Allows(c.pid) {
		return fmt.Errorf("%w: %s may not publish on %q (owner %s)", ErrNotAllowed, c.pid, tk.name, PublisherIDOf(p.Owner))
	}
	return nil
}
