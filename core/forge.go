package core

// Forger: writes forged records on purpose, for the conformance suite's
// attack tests.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"

	"github.com/stickypub/stickypub/backend"
)

// Forger writes deliberately invalid records into a store the way an
// attacker with write access to it could. The conformance suite uses it to
// check that subscribers never deliver such records and count them; the
// client never uses it.
type Forger struct {
	c *Client
}

// NewForger returns a forger that writes to store as identity id, through
// a client made with opts (give the topic's WithOrdering).
func NewForger(store backend.Store, id *Identity, opts ...Option) (*Forger, error) {
	c, err := New(store, id, opts...)
	if err != nil {
		return nil, err
	}
	return &Forger{c: c}, nil
}

// BadSignature publishes, as the forger, a message whose signature does
// not verify (its payload was changed after signing). It returns the
// forger's publisher ID.
func (f *Forger) BadSignature(ctx context.Context, topic string, seq uint64, payload []byte) (PublisherID, error) {
	id := f.c.id
	now := f.c.eng.now().UnixNano()
	sg := &segment{Publisher: id.PublicKey(), First: seq, Msgs: []segMsg{{Time: now, Payload: payload}}}
	sg.sign(id, topic, nil)
	sg.Msgs[0].Payload = append([]byte("forged:"), payload...)
	ref, err := f.putBlob(ctx, sg.encode())
	if err != nil {
		return PublisherID{}, err
	}
	return f.c.pid, f.publishHead(ctx, topic, f.c.pid, newHeadRecord(id, topic, 1, seq, ref).encode(), ref, seq)
}

// Impersonate announces a message that claims to come from victim but is
// signed with the forger's key, and writes a head record under the
// forger's key that claims to be the victim's.
func (f *Forger) Impersonate(ctx context.Context, topic string, victim ed25519.PublicKey, seq uint64, payload []byte) error {
	now := f.c.eng.now().UnixNano()
	sg := &segment{Publisher: victim, First: seq, Msgs: []segMsg{{Time: now, Payload: payload}}}
	sg.sign(f.c.id, topic, nil)
	ref, err := f.putBlob(ctx, sg.encode())
	if err != nil {
		return err
	}
	ann := announcement{Pub: PublisherIDOf(victim), Seg: ref, To: seq, Time: now}
	if _, err := f.c.eng.announce(ctx, newTopicKeys(topic), coordOp{anns: []announcement{ann}}); err != nil {
		return err
	}
	head := newHeadRecord(f.c.id, topic, 1, seq, ref)
	head.Publisher = victim
	return f.publishHead(ctx, topic, f.c.pid, head.encode(), ref, seq)
}

// Garbage publishes, as the forger, a "segment" that is not one.
func (f *Forger) Garbage(ctx context.Context, topic string, seq uint64, junk []byte) error {
	ref, err := f.putBlob(ctx, junk)
	if err != nil {
		return err
	}
	return f.publishHead(ctx, topic, f.c.pid, newHeadRecord(f.c.id, topic, 1, seq, ref).encode(), ref, seq)
}

// GarbageHead writes junk as the forger's head record and announces it.
func (f *Forger) GarbageHead(ctx context.Context, topic string, seq uint64, junk []byte) error {
	return f.publishHead(ctx, topic, f.c.pid, junk, Ref{}, seq)
}

// publishHead writes head bytes under pid's head key and announces (pid,
// seg, seq) in the coordinator.
func (f *Forger) publishHead(ctx context.Context, topic string, pid PublisherID, head []byte, seg Ref, seq uint64) error {
	tk := newTopicKeys(topic)
	if err := f.overwrite(ctx, tk.head(pid), head); err != nil {
		return err
	}
	_, err := f.c.eng.announce(ctx, tk, coordOp{anns: []announcement{{Pub: pid, Seg: seg, To: seq, Time: f.c.eng.now().UnixNano()}}})
	return err
}

// overwrite writes rec under key whatever is there, as anyone with write
// access can. Like a real writer it rides out transient errors and the
// conflicts an ambiguous earlier attempt causes (fault-injecting stores).
func (f *Forger) overwrite(ctx context.Context, key string, rec []byte) error {
	for attempt := 0; ; attempt++ {
		var expect backend.Version
		e, err := f.c.eng.store.Get(ctx, key)
		if err == nil {
			if bytes.Equal(e.Value, rec) {
				return nil // an earlier attempt landed
			}
			expect = e.Version
		}
		if err == nil || errors.Is(err, backend.ErrNotFound) {
			if _, err = f.c.eng.store.CompareAndPut(ctx, key, expect, rec); err == nil {
				return nil
			}
		}
		if !retryable(err) && !errors.Is(err, backend.ErrConflict) || attempt == 20 {
			return err
		}
		if err := sleepJitter(ctx, attempt); err != nil {
			return err
		}
	}
}

// putBlob stores data as a blob, riding out transient errors.
func (f *Forger) putBlob(ctx context.Context, data []byte) (ref Ref, err error) {
	err = retryIO(ctx, func() error { ref, err = f.c.eng.blobs.put(ctx, data); return err })
	return ref, err
}

// Close releases the forger.
func (f *Forger) Close(ctx context.Context) error { return f.c.Close(ctx) }

// ForgePolicy overwrites topic's write-access policy with one signed by
// the forger's key, allowing allowed (raw: junk instead, if not nil).
func (f *Forger) ForgePolicy(ctx context.Context, topic string, allowed []PublisherID, raw []byte) error {
	rec := raw
	if rec == nil {
		rec = encodePolicy(f.c.id, topic, 1<<40, allowed)
	}
	return f.overwrite(ctx, newTopicKeys(topic).policy(), rec)
}
