package core

// The hooks core lends the attack helper (internal/forge, through
// internal/forgehook): nothing here is exported, and only the module's own
// packages can reach the hook.

import (
	"context"
	"crypto/ed25519"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/forgehook"
)

func init() {
	forgehook.Core = forgehook.Hooks{
		NewWriter: func(store backend.Store, id forgehook.Identity, ordering uint8) (forgehook.Writer, error) {
			c, err := New(store, id.(*Identity), WithOrdering(Ordering(ordering)))
			if err != nil {
				return nil, err
			}
			return forgeWriter{c}, nil
		},
		SignSegment: func(signer forgehook.Identity, topic string, s *forgehook.Segment, root *[32]byte) {
			sg := fromHookSegment(s)
			if root == nil {
				sg.sign(signer.(*Identity), topic, nil)
			} else {
				sg.Sig = signer.(*Identity).sign(sg.signed(topic, *root))
			}
			s.Sig = sg.Sig
		},
		Leaves:        func(topic string, s *forgehook.Segment) [][32]byte { return fromHookSegment(s).leaves(topic) },
		EncodeSegment: func(s *forgehook.Segment) []byte { return fromHookSegment(s).encode() },
		HeadRecord: func(signer forgehook.Identity, topic string, base, last uint64, seg [32]byte, claim ed25519.PublicKey) []byte {
			h := newHeadRecordV1(signer.(*Identity), topic, base, last, seg)
			if claim != nil {
				h.Publisher = claim
			}
			return h.encode()
		},
		SegmentHead: func(topic string, s *forgehook.Segment, seg [32]byte) []byte {
			sg := fromHookSegment(s)
			return segmentHead(sg, merkleRoot(sg.leaves(topic)), seg).encode()
		},
		Policy: func(owner forgehook.Identity, topic string, version uint64, allowed [][16]byte) []byte {
			ids := make([]PublisherID, len(allowed))
			for i, a := range allowed {
				ids[i] = a
			}
			return encodePolicy(owner.(*Identity), topic, version, ids)
		},
		HeadKey:      func(topic string, pub [16]byte) string { return newTopicKeys(topic).head(pub) },
		PolicyKey:    func(topic string) string { return newTopicKeys(topic).policy() },
		CarryingHead: func(data []byte) []byte { return (&headRecord{V2: true, inline: data}).encode() },
		DecodeHead: func(topic string, rec []byte) (uint64, [32]byte, error) {
			h, err := decodeHead(topic, rec)
			if err != nil {
				return 0, [32]byte{}, err
			}
			return h.Last, h.Seg, nil
		},
		CarriedSegment: func(rec []byte) []byte {
			if h, err := decodeHeadUnverified(rec); err == nil {
				return h.inline
			}
			return nil
		},
		DecodeSegment: func(data []byte) (*forgehook.Segment, error) {
			sg, err := decodeSegment(data)
			if err != nil {
				return nil, err
			}
			out := &forgehook.Segment{Publisher: sg.Publisher, Prev: sg.Prev, First: sg.First, Base: sg.Base, Sig: sg.Sig}
			for _, m := range sg.Msgs {
				out.Msgs = append(out.Msgs, forgehook.Msg{Time: m.Time, TTL: m.TTL, Payload: m.Payload})
			}
			return out, nil
		},
		BlobKey: func(ref [32]byte) string { return blobKey(ref) },
		RefOfKey: func(key string) ([32]byte, bool) {
			ref, ok := refOfKey(key)
			return ref, ok
		},
	}
}

func fromHookSegment(s *forgehook.Segment) *segment {
	sg := &segment{Publisher: s.Publisher, Prev: s.Prev, First: s.First, Base: s.Base, Sig: s.Sig, Msgs: make([]segMsg, len(s.Msgs))}
	for i, m := range s.Msgs {
		sg.Msgs[i] = segMsg{Time: m.Time, TTL: m.TTL, Payload: m.Payload}
	}
	return sg
}

// forgeWriter is a client seen through forgehook.Writer.
type forgeWriter struct{ c *Client }

func (w forgeWriter) Now() int64           { return w.c.eng.now().UnixNano() }
func (w forgeWriter) Store() backend.Store { return w.c.eng.store }

func (w forgeWriter) PutBlob(ctx context.Context, data []byte) (ref [32]byte, err error) {
	err = retryIO(ctx, func() error { ref, err = w.c.eng.blobs.put(ctx, data); return err })
	return ref, err
}

func (w forgeWriter) Announce(ctx context.Context, topic string, pub [16]byte, seg [32]byte, to uint64, time int64) error {
	ann := announcement{Pub: pub, Seg: seg, To: to, Time: time}
	_, err := w.c.eng.announce(ctx, newTopicKeys(topic), coordOp{anns: []announcement{ann}})
	return err
}

func (w forgeWriter) GetBlob(ctx context.Context, ref [32]byte) ([]byte, error) {
	return w.c.eng.blobs.get(ctx, ref)
}

func (w forgeWriter) Close(ctx context.Context) error { return w.c.Close(ctx) }
