package core

// The durable position record (d/<topic>/<durable>): its encoding, signature,
// reading (inline or in a blob), and the positions every durable subscriber
// of a topic holds, which bound reclaiming.

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// durableID names the durable subscription (subscriber key, name).
func durableID(pub ed25519.PublicKey, name string) PublisherID {
	sum := sha256.Sum256(append(append([]byte("stickypub/durable/v1\x00"), pub...), name...))
	var id PublisherID
	copy(id[:], sum[:16])
	return id
}

// durKey is where durable subscription id of topic k keeps its record:
// d/<topic>/<id>, written only by that subscriber.
func (k topicKeys) durable(id PublisherID) string { return "d/" + k.id + "/" + id.String() }

// durRecord is a durable subscriber's signed position: Acked is where a
// restart resumes, Mark is how far delivery may have gone (everything up to
// it may have been delivered: a restart flags it Redelivered).
type durRecord struct {
	Subscriber ed25519.PublicKey
	Name       string
	Expires    int64 // unix nanoseconds; 0: deleted
	Acked      []byte
	Mark       []byte
	Sig        []byte
}

func durSigned(topic string, r *durRecord) []byte {
	var e encoder
	e.raw([]byte("stickypub/durable/v1\x00"))
	e.str(topic)
	e.str(r.Name)
	e.varint(r.Expires)
	e.bytes(r.Acked)
	e.bytes(r.Mark)
	return e.b
}

func (r *durRecord) encode() []byte {
	var e encoder
	e.byte(durTag)
	e.raw(r.Subscriber)
	e.str(r.Name)
	e.varint(r.Expires)
	e.bytes(r.Acked)
	e.bytes(r.Mark)
	e.raw(r.Sig)
	return e.b
}

func decodeDurRecord(topic string, b []byte) (*durRecord, error) {
	d := decoder{b: b}
	if tag := d.byte(); tag != durTag {
		return nil, malformed("durable record tag %#x", tag)
	}
	r := &durRecord{Subscriber: ed25519.PublicKey(d.raw(ed25519.PublicKeySize))}
	r.Name = string(d.bytes())
	r.Expires = d.varint()
	r.Acked = d.bytes()
	r.Mark = d.bytes()
	r.Sig = d.raw(ed25519.SignatureSize)
	if err := d.done(); err != nil {
		return nil, malformed("durable record: %v", err)
	}
	if !ed25519.Verify(r.Subscriber, durSigned(topic, r), r.Sig) {
		return nil, fmt.Errorf("%w: durable record", ErrBadSignature)
	}
	return r, nil
}

// readDurable reads and verifies the durable record under key (resolving a
// blob reference). It returns the entry too, for compare-and-put.
func (e *engine) readDurable(ctx context.Context, tk topicKeys, id PublisherID) (*durRecord, backend.Entry, error) {
	ent, err := e.store.Get(ctx, tk.durable(id))
	if err != nil {
		return nil, backend.Entry{}, err
	}
	return e.decodeDurable(ctx, tk, id, ent)
}

// readDurableNewest is readDurable for the record's own writer: on a store
// that is not linearizable it reads several times and keeps the newest
// version, since resuming from a stale position would deliver again what
// was acknowledged (and a stale mark would not flag what was delivered).
func (e *engine) readDurableNewest(ctx context.Context, tk topicKeys, id PublisherID) (*durRecord, backend.Entry, error) {
	reads := 1
	if e.caps.Consistency < backend.Linearizable {
		reads = 3
	}
	var best backend.Entry
	var bestErr error = backend.ErrNotFound
	for attempt := 0; reads > 0; attempt++ {
		ent, err := e.store.Get(ctx, tk.durable(id))
		if err != nil && retryable(err) {
			if err := sleepJitter(ctx, attempt+4); err != nil {
				return nil, backend.Entry{}, err
			}
			continue
		}
		reads--
		switch {
		case err == nil && ent.Version > best.Version:
			best, bestErr = ent, nil
		case err != nil && !errors.Is(err, backend.ErrNotFound):
			return nil, backend.Entry{}, err
		}
	}
	if bestErr != nil {
		return nil, backend.Entry{}, bestErr
	}
	return e.decodeDurable(ctx, tk, id, best)
}

func (e *engine) decodeDurable(ctx context.Context, tk topicKeys, id PublisherID, ent backend.Entry) (*durRecord, backend.Entry, error) {
	var err error
	v := ent.Value
	if len(v) == 33 && v[0] == durRefTag {
		if v, err = e.blobs.get(ctx, Ref(v[1:])); err != nil {
			return nil, ent, fmt.Errorf("core: durable record blob: %w", err)
		}
	}
	r, err := decodeDurRecord(tk.name, v)
	if err == nil && durableID(r.Subscriber, r.Name) != id {
		err = malformed("durable record under %s is for another subscriber or name", id)
	}
	return r, ent, err
}

// DurablePosition is the stored position of one durable subscriber of a
// topic, as the reclaimer needs it.
type durablePosition struct {
	ID      PublisherID
	Expires time.Time
	Acked   Cursor
}

// durablePositions returns the positions of the durable subscribers
// registered in st.Subs whose records are live. Entries of st.Subs without
// a durable record are ordinary subscribers and are skipped. An error means
// some position could not be read: the caller must then reclaim nothing.
func (e *engine) durablePositions(ctx context.Context, tk topicKeys, st *coordState) ([]durablePosition, error) {
	var out []durablePosition
	now := e.now().UnixNano()
	for _, id := range sortedPIDs(st.Subs) {
		r, _, err := e.readDurable(ctx, tk, id)
		if errors.Is(err, backend.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("core: durable position %s on %q: %w", id, tk.name, err)
		}
		if r.Expires == 0 || r.Expires < now || len(r.Acked) == 0 {
			continue
		}
		cur, err := UnmarshalCursor(r.Acked)
		if err != nil {
			return nil, fmt.Errorf("core: durable position %s on %q: %w", id, tk.name, err)
		}
		out = append(out, durablePosition{ID: id, Expires: time.Unix(0, r.Expires), Acked: cur})
	}
	return out, nil
}

// durableFloor is what the reclaimer must keep for the durable subscribers
// of a topic: in ordered mode the lowest announcement index any of them
// still needs (the snapshot holding it must stay readable, since resuming
// reads the heads at that index) and, per publisher named in nexts, a lower
// next seq that one of them still needs inside that index; in unordered
// mode, per publisher, the lowest next seq any of them still needs (a
// publisher absent from nexts is named by no durable cursor: every durable
// subscriber would deliver it from seq 1). ok is false when there is no live
// durable subscriber.
func (e *engine) durableFloor(ctx context.Context, tk topicKeys, st *coordState) (index uint64, nexts map[PublisherID]uint64, ok bool, err error) {
	ps, err := e.durablePositions(ctx, tk, st)
	if err != nil || len(ps) == 0 {
		return 0, nil, false, err
	}
	nexts = map[PublisherID]uint64{}
	index = ps[0].Acked.index
	for _, p := range ps {
		index = min(index, p.Acked.index)
		for pub, n := range p.Acked.nexts() {
			if cur, seen := nexts[pub]; !seen || n < cur {
				nexts[pub] = n
			}
		}
	}
	if !e.ordered {
		// A publisher that a durable cursor does not name starts at 1 for it.
		for pub := range nexts {
			for _, p := range ps {
				if _, named := p.Acked.next(pub); !named {
					nexts[pub] = 1
				}
			}
		}
	}
	return index, nexts, true, nil
}

const (
	durTag    = 'D'
	durRefTag = 'E' // the record is in a blob (larger than a value)
)
