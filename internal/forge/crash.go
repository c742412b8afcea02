package forge

// What a publisher that crashed leaves behind, for the orphan-sweep tests.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/forgehook"
)

// CrashedSegment writes what a publisher with the forger's identity leaves
// when it crashes between writing a batch's segment and writing its head
// record: a valid, signed segment that continues the identity's log on
// topic (after its current head, or from seq 1) and that no head record
// points to. The messages carry time at (a publish in flight: now; a crash
// long ago: earlier). It returns the segment's store key.
func (f *Forger) CrashedSegment(ctx context.Context, topic string, at time.Time, payloads ...[]byte) (string, error) {
	if len(payloads) == 0 {
		return "", errors.New("forge: CrashedSegment needs at least one payload")
	}
	hooks := forgehook.Core
	first, prev := uint64(1), [32]byte{}
	e, err := f.w.Store().Get(ctx, hooks.HeadKey(topic, f.pid))
	switch {
	case err == nil:
		last, seg, err := hooks.DecodeHead(topic, e.Value)
		if err != nil {
			return "", fmt.Errorf("forge: CrashedSegment: own head: %w", err)
		}
		first, prev = last+1, seg
	case !errors.Is(err, backend.ErrNotFound):
		return "", err
	}
	sg := &forgehook.Segment{Publisher: f.id.PublicKey(), Prev: prev, First: first, Base: 1}
	for _, p := range payloads {
		sg.Msgs = append(sg.Msgs, forgehook.Msg{Time: at.UnixNano(), Payload: p})
	}
	hooks.SignSegment(f.id, topic, sg, nil)
	ref, err := f.w.PutBlob(ctx, hooks.EncodeSegment(sg))
	if err != nil {
		return "", err
	}
	return hooks.BlobKey(ref), nil
}

// CompleteSegment finishes what CrashedSegment started, as the publisher
// would had it not crashed: it points the identity's head record on topic
// at the segment stored under key (the publish in flight completes). It
// does not announce.
func (f *Forger) CompleteSegment(ctx context.Context, topic, key string) error {
	hooks := forgehook.Core
	ref, ok := hooks.RefOfKey(key)
	if !ok {
		return fmt.Errorf("forge: CompleteSegment: %q is not a blob key", key)
	}
	data, err := f.w.GetBlob(ctx, ref)
	if err != nil {
		return err
	}
	sg, err := hooks.DecodeSegment(data)
	if err != nil {
		return err
	}
	return f.overwrite(ctx, hooks.HeadKey(topic, f.pid), hooks.SegmentHead(topic, sg, ref))
}
