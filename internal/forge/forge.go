// Package forge writes forged records into a store on purpose, the way an
// attacker with write access to it could, for the conformance suite's
// attack tests: subscribers must never deliver such records, and must
// count them. The client never uses it. It lives outside core's API and
// reaches core's record writers only through internal/forgehook.
package forge

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/backoff"
	"github.com/stickypub/stickypub/internal/forgehook"
)

// Forger writes deliberately invalid records as one identity.
type Forger struct {
	w   forgehook.Writer
	id  *core.Identity
	pid core.PublisherID
}

// New returns a forger that writes to store as identity id, on topics of
// ordering order (give the topic's; core.OrderDefault picks the store's
// default, as core.New does).
func New(store backend.Store, id *core.Identity, order core.Ordering) (*Forger, error) {
	w, err := forgehook.Core.NewWriter(store, id, uint8(order))
	if err != nil {
		return nil, fmt.Errorf("forge: %w", err)
	}
	return &Forger{w: w, id: id, pid: id.ID()}, nil
}

// Close releases the forger.
func (f *Forger) Close(ctx context.Context) error { return f.w.Close(ctx) }

// BadSignature publishes, as the forger, a message whose signature does
// not verify (its payload was changed after signing). It returns the
// forger's publisher ID.
func (f *Forger) BadSignature(ctx context.Context, topic string, seq uint64, payload []byte) (core.PublisherID, error) {
	now := f.w.Now()
	sg := &forgehook.Segment{Publisher: f.id.PublicKey(), First: seq, Base: 1, Msgs: []forgehook.Msg{{Time: now, Payload: payload}}}
	forgehook.Core.SignSegment(f.id, topic, sg, nil)
	sg.Msgs[0].Payload = append([]byte("forged:"), payload...)
	ref, err := f.w.PutBlob(ctx, forgehook.Core.EncodeSegment(sg))
	if err != nil {
		return core.PublisherID{}, err
	}
	// The head carries the altered segment's header: it does not verify
	// either.
	return f.pid, f.publishHead(ctx, topic, forgehook.Core.SegmentHead(topic, sg, ref), ref, seq)
}

// Impersonate announces a message that claims to come from victim but is
// signed with the forger's key, and writes a head record under the
// forger's key that claims to be the victim's (carrying that segment's
// header and signature).
func (f *Forger) Impersonate(ctx context.Context, topic string, victim ed25519.PublicKey, seq uint64, payload []byte) error {
	now := f.w.Now()
	sg := &forgehook.Segment{Publisher: victim, First: seq, Base: 1, Msgs: []forgehook.Msg{{Time: now, Payload: payload}}}
	forgehook.Core.SignSegment(f.id, topic, sg, nil)
	ref, err := f.w.PutBlob(ctx, forgehook.Core.EncodeSegment(sg))
	if err != nil {
		return err
	}
	if err := f.w.Announce(ctx, topic, core.PublisherIDOf(victim), ref, seq, now); err != nil {
		return err
	}
	return f.publishHead(ctx, topic, forgehook.Core.SegmentHead(topic, sg, ref), ref, seq)
}

// Garbage publishes, as the forger, a "segment" that is not one, under a
// head record that carries the header and signature of a real segment of
// the forger's (never stored) and names the garbage as its segment.
func (f *Forger) Garbage(ctx context.Context, topic string, seq uint64, junk []byte) error {
	ref, err := f.w.PutBlob(ctx, junk)
	if err != nil {
		return err
	}
	sg := &forgehook.Segment{Publisher: f.id.PublicKey(), First: seq, Base: 1, Msgs: []forgehook.Msg{{Time: f.w.Now(), Payload: junk}}}
	forgehook.Core.SignSegment(f.id, topic, sg, nil)
	return f.publishHead(ctx, topic, forgehook.Core.SegmentHead(topic, sg, ref), ref, seq)
}

// GarbageV1 is Garbage under a format-1 head record (signed over the
// garbage's reference), as builds before format 2 wrote them.
func (f *Forger) GarbageV1(ctx context.Context, topic string, seq uint64, junk []byte) error {
	ref, err := f.w.PutBlob(ctx, junk)
	if err != nil {
		return err
	}
	return f.publishHead(ctx, topic, forgehook.Core.HeadRecord(f.id, topic, 1, seq, ref, nil), ref, seq)
}

// GarbageHead writes junk as the forger's head record and announces it.
func (f *Forger) GarbageHead(ctx context.Context, topic string, seq uint64, junk []byte) error {
	return f.publishHead(ctx, topic, junk, [32]byte{}, seq)
}

// ForgePolicy overwrites topic's write-access policy with one signed by
// the forger's key, allowing allowed (raw: junk instead, if not nil).
func (f *Forger) ForgePolicy(ctx context.Context, topic string, allowed []core.PublisherID, raw []byte) error {
	rec := raw
	if rec == nil {
		ids := make([][16]byte, len(allowed))
		for i, a := range allowed {
			ids[i] = a
		}
		rec = forgehook.Core.Policy(f.id, topic, 1<<40, ids)
	}
	return f.overwrite(ctx, forgehook.Core.PolicyKey(topic), rec)
}

// publishHead writes head bytes under the forger's head key and announces
// (forger, seg, seq) in the coordinator.
func (f *Forger) publishHead(ctx context.Context, topic string, head []byte, seg [32]byte, seq uint64) error {
	if err := f.overwrite(ctx, forgehook.Core.HeadKey(topic, f.pid), head); err != nil {
		return err
	}
	return f.w.Announce(ctx, topic, f.pid, seg, seq, f.w.Now())
}

// overwrite writes rec under key whatever is there, as anyone with write
// access can. Like a real writer it rides out transient errors and the
// conflicts an ambiguous earlier attempt causes (fault-injecting stores).
func (f *Forger) overwrite(ctx context.Context, key string, rec []byte) error {
	store := f.w.Store()
	for attempt := 0; ; attempt++ {
		var expect backend.Version
		e, err := store.Get(ctx, key)
		if err == nil {
			if bytes.Equal(e.Value, rec) {
				return nil // an earlier attempt landed
			}
			expect = e.Version
		}
		if err == nil || errors.Is(err, backend.ErrNotFound) {
			if _, err = store.CompareAndPut(ctx, key, expect, rec); err == nil {
				return nil
			}
		}
		if !errors.Is(err, backend.ErrUnavailable) && !errors.Is(err, backend.ErrConflict) || attempt == 20 {
			return fmt.Errorf("forge: overwrite %q: %w", key, err)
		}
		if err := backoff.Jitter(ctx, attempt); err != nil {
			return err
		}
	}
}
