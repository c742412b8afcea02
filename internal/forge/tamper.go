package forge

// Forger.Tamper: genuine segments altered after signing (altered,
// truncated, reordered, spliced, wrong root, other key).

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/forgehook"
)

// Tampering is a way to alter a segment that its publisher really signed
// (see Forger.Tamper).
type Tampering int

const (
	// TamperAltered changes one message's payload.
	TamperAltered Tampering = iota
	// TamperTruncated drops the segment's last message.
	TamperTruncated
	// TamperReordered swaps the segment's first two messages.
	TamperReordered
	// TamperSpliced joins the messages of two consecutive signed segments
	// under the first one's header and signature.
	TamperSpliced
	// TamperWrongRoot has the publisher sign a root that is not the root
	// of the messages' tree (the hash of the plain list of leaves).
	TamperWrongRoot
	// TamperOtherKey signs the right root with the forger's key.
	TamperOtherKey
)

// Tamperings lists every Tampering.
var Tamperings = []Tampering{TamperAltered, TamperTruncated, TamperReordered, TamperSpliced, TamperWrongRoot, TamperOtherKey}

// String names the tampering.
func (t Tampering) String() string {
	switch t {
	case TamperAltered:
		return "altered"
	case TamperTruncated:
		return "truncated"
	case TamperReordered:
		return "reordered"
	case TamperSpliced:
		return "spliced"
	case TamperWrongRoot:
		return "wrong root"
	case TamperOtherKey:
		return "other key"
	}
	return fmt.Sprintf("tampering(%d)", int(t))
}

// Tamper writes a segment that claims victim's messages on topic from seq
// first on, and announces it for victim up to the last seq it claims,
// which it returns. The segment starts as one the victim really signed,
// holding payloads from first on (payloads need at least two, and an even
// number for TamperSpliced, which signs each half as one segment), and is
// then altered as how says, so that its signature no longer covers what
// it holds. The victim's identity stands in for an attacker that copies
// the signature of a real segment it saw (for example one written but not
// announced yet); the forger never writes a segment that verifies.
func (f *Forger) Tamper(ctx context.Context, topic string, victim *core.Identity, first uint64, payloads [][]byte, how Tampering) (uint64, error) {
	if len(payloads) < 2 || (how == TamperSpliced && len(payloads)%2 != 0) {
		return 0, fmt.Errorf("forge: tamper %s: %d payloads", how, len(payloads))
	}
	now := f.w.Now()
	genuine := func(first uint64, payloads [][]byte) *forgehook.Segment {
		sg := &forgehook.Segment{Publisher: victim.PublicKey(), First: first, Base: 1}
		for _, p := range payloads {
			sg.Msgs = append(sg.Msgs, forgehook.Msg{Time: now, Payload: p})
		}
		forgehook.Core.SignSegment(victim, topic, sg, nil)
		return sg
	}
	var sg *forgehook.Segment
	switch how {
	case TamperAltered:
		sg = genuine(first, payloads)
		sg.Msgs[len(sg.Msgs)/2].Payload = append([]byte("forged:"), sg.Msgs[len(sg.Msgs)/2].Payload...)
	case TamperTruncated:
		sg = genuine(first, payloads)
		sg.Msgs = sg.Msgs[:len(sg.Msgs)-1]
	case TamperReordered:
		sg = genuine(first, payloads)
		sg.Msgs[0], sg.Msgs[1] = sg.Msgs[1], sg.Msgs[0]
	case TamperSpliced:
		half := len(payloads) / 2
		sg = genuine(first, payloads[:half])
		second := genuine(first+uint64(half), payloads[half:])
		sg.Msgs = append(slices.Clip(sg.Msgs), second.Msgs...)
	case TamperWrongRoot:
		sg = genuine(first, payloads)
		h := sha256.New()
		for _, l := range forgehook.Core.Leaves(topic, sg) {
			h.Write(l[:])
		}
		var root [32]byte
		h.Sum(root[:0])
		forgehook.Core.SignSegment(victim, topic, sg, &root)
	case TamperOtherKey:
		sg = genuine(first, payloads)
		forgehook.Core.SignSegment(f.id, topic, sg, nil)
	default:
		return 0, fmt.Errorf("forge: unknown tampering %d", int(how))
	}
	ref, err := f.w.PutBlob(ctx, forgehook.Core.EncodeSegment(sg))
	if err != nil {
		return 0, err
	}
	last := sg.First + uint64(len(sg.Msgs)) - 1
	if err := f.w.Announce(ctx, topic, victim.ID(), ref, last, now); err != nil {
		return 0, err
	}
	return last, nil
}
