package core

// Forger: the records a publisher that crashed leaves behind, for the
// orphan-sweep tests.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// CrashedSegment writes what a publisher with the forger's identity leaves
// when it crashes between writing a batch's segment and writing its head
// record: a valid, signed segment that continues the identity's log on
// topic (after its current head, or from seq 1) and that no head record
// points to. The messages carry time at (a publish in flight: now; a crash
// long ago: earlier). It returns the segment's store key.
func (f *Forger) CrashedSegment(ctx context.Context, topic string, at time.Time, payloads ...[]byte) (string, error) {
	if len(payloads) == 0 {
		return "", errors.New("core: CrashedSegment needs at least one payload")
	}
	id, tk := f.c.id, newTopicKeys(topic)
	first, prev := uint64(1), Ref{}
	e, err := f.c.eng.store.Get(ctx, tk.head(f.c.pid))
	switch {
	case err == nil:
		h, err := decodeHead(topic, e.Value)
		if err != nil {
			return "", fmt.Errorf("core: CrashedSegment: own head: %w", err)
		}
		first, prev = h.Last+1, h.Seg
	case !errors.Is(err, backend.ErrNotFound):
		return "", err
	}
	sg := &segment{Publisher: id.PublicKey(), Prev: prev, First: first}
	for _, p := range payloads {
		sg.Msgs = append(sg.Msgs, segMsg{Time: at.UnixNano(), Payload: p})
	}
	sg.sign(id, topic, nil)
	ref, err := f.putBlob(ctx, sg.encode())
	if err != nil {
		return "", err
	}
	return blobKey(ref), nil
}

// CompleteSegment finishes what CrashedSegment started, as the publisher
// would had it not crashed: it points the identity's head record on topic
// at the segment stored under key (the publish in flight completes). It
// does not announce.
func (f *Forger) CompleteSegment(ctx context.Context, topic, key string) error {
	ref, ok := refOfKey(key)
	if !ok {
		return fmt.Errorf("core: CompleteSegment: %q is not a blob key", key)
	}
	data, err := f.c.eng.blobs.get(ctx, ref)
	if err != nil {
		return err
	}
	sg, err := decodeSegment(data)
	if err != nil {
		return err
	}
	return f.overwrite(ctx, newTopicKeys(topic).head(f.c.pid), newHeadRecord(f.c.id, topic, 1, sg.last(), ref).encode())
}
