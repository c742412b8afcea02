package forge

// Forger.ForgeHead: a real publisher's head record replaced by one that
// carries a real signature but points or claims elsewhere (format 2), or
// carries an altered segment (format 3).

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/forgehook"
)

// HeadForgery is a way to forge a publisher's head record from what the
// store shows of its log (see Forger.ForgeHead).
type HeadForgery int

const (
	// HeadRepointed carries the header and signature of the publisher's
	// newest segment, but names the segment before it: the reference is
	// the one field of a format-2 head the signature does not cover.
	HeadRepointed HeadForgery = iota
	// HeadBaseRaised carries the newest segment's header with its Base
	// raised to its last seq (a retention floor that would skip the
	// publisher's messages) under the real signature.
	HeadBaseRaised
	// HeadLastRaised carries the newest segment's header with one more
	// message counted (a Last the log does not reach) under the real
	// signature.
	HeadLastRaised
	// HeadOtherKey claims the publisher's key but carries a header the
	// forger signed with its own key.
	HeadOtherKey
	// HeadCarriesAltered is a format-3 head record carrying the
	// publisher's newest segment with its last message's payload changed
	// (the real signature kept): its reference, the digest of what it
	// carries, names no stored segment.
	HeadCarriesAltered
)

// HeadForgeries lists every HeadForgery.
var HeadForgeries = []HeadForgery{HeadRepointed, HeadBaseRaised, HeadLastRaised, HeadOtherKey, HeadCarriesAltered}

// String names the forgery.
func (h HeadForgery) String() string {
	switch h {
	case HeadRepointed:
		return "repointed"
	case HeadBaseRaised:
		return "base raised"
	case HeadLastRaised:
		return "last raised"
	case HeadOtherKey:
		return "other key"
	case HeadCarriesAltered:
		return "carries altered"
	}
	return fmt.Sprintf("head forgery(%d)", int(h))
}

// ErrNoHead: the publisher has no head record to forge from (or, for
// HeadRepointed, no segment before its newest one).
var ErrNoHead = errors.New("forge: nothing to forge the head record from")

// ForgeHead overwrites publisher pub's head record on topic with a forgery
// built from its real newest segment, as how says, and returns a function
// that writes the original record back. The publisher must not publish on
// topic meanwhile (its next head write would conflict).
func (f *Forger) ForgeHead(ctx context.Context, topic string, pub core.PublisherID, how HeadForgery) (restore func(context.Context) error, err error) {
	hooks := forgehook.Core
	key := hooks.HeadKey(topic, pub)
	e, err := f.w.Store().Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("forge: head of %s: %w", pub, err)
	}
	orig := slices.Clone(e.Value)
	_, ref, err := hooks.DecodeHead(topic, orig)
	if err != nil {
		return nil, fmt.Errorf("forge: head of %s: %w", pub, err)
	}
	// The head may carry its segment, stored nowhere else yet.
	data := hooks.CarriedSegment(orig)
	if data == nil {
		if data, err = f.w.GetBlob(ctx, ref); err != nil {
			return nil, fmt.Errorf("forge: newest segment of %s: %w", pub, err)
		}
	}
	sg, err := hooks.DecodeSegment(data)
	if err != nil {
		return nil, err
	}
	if sg.Base == 0 {
		return nil, fmt.Errorf("%w: %s's newest segment is format 2", ErrNoHead, pub)
	}
	last := sg.First + uint64(len(sg.Msgs)) - 1
	var rec []byte
	switch how {
	case HeadRepointed:
		if sg.Prev == [32]byte{} {
			return nil, fmt.Errorf("%w: %s has one segment", ErrNoHead, pub)
		}
		rec = hooks.SegmentHead(topic, sg, sg.Prev)
	case HeadBaseRaised:
		sg.Base = last
		rec = hooks.SegmentHead(topic, sg, ref)
	case HeadLastRaised:
		sg.Msgs = append(sg.Msgs, forgehook.Msg{Time: sg.Msgs[len(sg.Msgs)-1].Time, Payload: []byte("forged")})
		rec = hooks.SegmentHead(topic, sg, ref)
	case HeadOtherKey:
		hooks.SignSegment(f.id, topic, sg, nil)
		rec = hooks.SegmentHead(topic, sg, ref)
	case HeadCarriesAltered:
		m := &sg.Msgs[len(sg.Msgs)-1]
		m.Payload = append(slices.Clone(m.Payload), "forged"...)
		rec = hooks.CarryingHead(hooks.EncodeSegment(sg))
	default:
		return nil, fmt.Errorf("forge: unknown head forgery %d", int(how))
	}
	if err := f.overwrite(ctx, key, rec); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return f.overwrite(ctx, key, orig) }, nil
}
