package core

import (
	"bytes"
	"testing"
)

// FuzzDecoders feeds arbitrary bytes to every record decoder: malformed
// records from a peer must give an error, never a panic or a huge
// allocation. The seed corpus runs as a unit test; `go test -fuzz
// FuzzDecoders ./core` explores further.
func FuzzDecoders(f *testing.F) {
	id, err := IdentityFromSeed(make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	seg := &segment{Publisher: id.PublicKey(), First: 1, Msgs: []segMsg{{Time: 1, Payload: []byte("p")}, {Time: 2, TTL: 5, Payload: []byte("q")}, {Time: 3}}}
	seg.sign(id, "t", nil)
	big := &segment{Publisher: id.PublicKey(), First: 7, Msgs: []segMsg{{Time: 1, Payload: bytes.Repeat([]byte("compressible "), 100)}}}
	big.sign(id, "t", nil)
	msgs, err := verifySegment("t", seg)
	if err != nil {
		f.Fatal(err)
	}
	proof, err := msgs[1].Proof()
	if err != nil {
		f.Fatal(err)
	}
	proofBytes, err := proof.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	st := newCoordState()
	_, _ = st.apply(coordOp{anns: []announcement{{Pub: id.ID(), To: 3}}, subs: map[PublisherID]int64{id.ID(): 9},
		active: map[PublisherID]int64{id.ID(): 7}}, 0, nil)
	snap := &snapshot{From: 0, Anns: st.Window, Msgs: 3}
	shard := &regShard{Bits: 8, Prefix: id.ID()[0], Heads: map[PublisherID]uint64{id.ID(): 3}}
	root := &regRoot{Bits: 8, Shards: map[byte]Ref{id.ID()[0]: {2}}}
	for _, seed := range [][]byte{
		seg.encode(), big.encode(), proofBytes, st.encode(), snap.encode(), encodeRegShard("t", shard), encodeRegRoot("t", root),
		newHeadRecord(id, "t", 1, 3, Ref{}).encode(),
		(&subRecord{Subscriber: id.PublicKey(), Sig: make([]byte, 64)}).encode(),
		{}, {segmentTag}, {segmentTagV1}, {proofTag}, {coordInline, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if sg, err := decodeSegment(b); err == nil {
			// A decoded segment verifies or fails cleanly, and re-encodes
			// to its 'M' encoding.
			_, _ = verifySegment("t", sg)
			if again, err := decodeSegment(sg.encodeRaw()); err != nil || again.last() != sg.last() {
				t.Fatalf("segment does not round-trip: %v", err)
			}
		}
		var p Proof
		if p.UnmarshalBinary(b) == nil {
			_ = p.Verify()
			if _, err := VerifyProof(b); err == nil && p.Verify() != nil {
				t.Fatal("VerifyProof accepted a proof that does not verify")
			}
		}
		_, _ = decodeCoordState(b)
		_, _ = decodeSnapshot(b)
		_, _ = decodeRegShard("t", b)
		_, _ = decodeRegRoot("t", b)
		_, _ = decodeHead("t", b)
		_, _ = decodeSubRecord("t", b)
	})
}
