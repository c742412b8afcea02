package core

// The subscription record (s/<topic>/<subscriber>): encoding, signature,
// writing and renewing it.

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// Renew extends the subscription record's TTL from now.
func (c *Client) Renew(ctx context.Context, topic string) error {
	c.mu.Lock()
	s, ok := c.subs.get(topic)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotSubscribed, topic)
	}
	if err := s.writeRecord(ctx, c.eng.now().Add(s.ttl)); err != nil {
		c.stats.failures.Add(1)
		c.emit(Event{Kind: EventSubscribeError, Topic: topic, Err: err})
		return err
	}
	c.emit(Event{Kind: EventRenewed, Topic: topic})
	return nil
}

// subRecord is a subscriber's signed statement that it follows a topic
// until Expires (0: unsubscribed).
type subRecord struct {
	Subscriber ed25519.PublicKey
	Expires    int64
	Sig        []byte
}

func subSigned(topic string, expires int64) []byte {
	var e encoder
	e.raw([]byte("stickypub/sub/v1\x00"))
	e.str(topic)
	e.varint(expires)
	return e.b
}

func (r *subRecord) encode() []byte {
	var e encoder
	e.byte(subTag)
	e.raw(r.Subscriber)
	e.varint(r.Expires)
	e.raw(r.Sig)
	return e.b
}

func decodeSubRecord(topic string, b []byte) (*subRecord, error) {
	d := decoder{b: b}
	if tag := d.byte(); tag != subTag {
		return nil, malformed("subscription tag %#x", tag)
	}
	r := &subRecord{Subscriber: ed25519.PublicKey(d.raw(ed25519.PublicKeySize))}
	r.Expires = d.varint()
	r.Sig = d.raw(ed25519.SignatureSize)
	if err := d.done(); err != nil {
		return nil, malformed("subscription: %v", err)
	}
	if !ed25519.Verify(r.Subscriber, subSigned(topic, r.Expires), r.Sig) {
		return nil, fmt.Errorf("%w: subscription record", ErrBadSignature)
	}
	return r, nil
}

// writeRecord stores the signed subscription record (zero expires:
// unsubscribed) and merges the subscriber set in the coordinator.
func (s *Subscription) writeRecord(ctx context.Context, expires time.Time) error {
	c := s.c
	s.recMu.Lock()
	defer s.recMu.Unlock()
	if s.opts.noRecord {
		return nil
	}
	exp := int64(0)
	if !expires.IsZero() {
		exp = expires.UnixNano()
	}
	rec := (&subRecord{Subscriber: c.id.PublicKey(), Expires: exp, Sig: c.id.sign(subSigned(s.tk.name, exp))}).encode()
	key := s.tk.sub(c.pid)
	for attempt := 0; ; attempt++ {
		v, err := c.eng.store.CompareAndPut(ctx, key, s.recVer, rec)
		if err == nil {
			s.recVer = v
			break
		}
		if retryable(err) {
			if err := sleepJitter(ctx, attempt+4); err != nil {
				return err
			}
			continue
		}
		if !errors.Is(err, backend.ErrConflict) {
			return fmt.Errorf("core: write subscription record for %q: %w", s.tk.name, err)
		}
		cur, ok := backend.CurrentEntry(err)
		if !ok {
			if cur, err = c.eng.store.Get(ctx, key); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return fmt.Errorf("core: read subscription record for %q: %w", s.tk.name, err)
			}
		}
		s.recVer = cur.Version
		if err := sleepJitter(ctx, attempt); err != nil {
			return err
		}
	}
	op := coordOp{subs: map[PublisherID]int64{c.pid: exp}}
	if d := s.dur; d != nil {
		// A durable subscription is registered under its durable ID, with
		// the durable record's expiry; Close leaves it registered.
		op.subs = map[PublisherID]int64{}
		switch {
		case exp != 0:
			dexp := c.eng.now().Add(d.ttl).UnixNano()
			if err := d.setExpiry(ctx, dexp); err != nil {
				return err
			}
			op.subs[d.id] = dexp
		case !s.keep:
			if err := d.setExpiry(ctx, 0); err != nil {
				return err
			}
			op.subs[d.id] = 0
		}
	}
	if len(op.subs) > 0 {
		if _, err := c.eng.announce(ctx, *s.tk, op); err != nil {
			return err
		}
	}
	s.expires = expires
	return nil
}

const subTag = 'U'
