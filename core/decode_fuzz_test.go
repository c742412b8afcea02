package core

// FuzzDecoders: arbitrary bytes to every decoder of store or peer bytes,
// which must not panic and must be canonical.

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// FuzzDecoders feeds arbitrary bytes to every decoder of bytes read from a
// store or a peer: malformed records must give an error, never a panic,
// and the decoders are canonical: bytes that decode are exactly the
// encoding of what they decode to (encode(decode(b)) == b), so a record
// has one reading. The decoders reject what the encoder never writes
// (non-minimal varints, map keys out of order or repeated). The one
// exception is a compressed ('Z') segment, whose zstd frame another
// compressor may write differently: its decompressed form must be
// canonical. FuzzRecordCost bounds what decoding costs. The seed corpus
// runs as a unit test; `go test -fuzz FuzzDecoders ./core` explores
// further.
func FuzzDecoders(f *testing.F) {
	id, err := IdentityFromSeed(make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	seg := &segment{Publisher: id.PublicKey(), First: 1, Msgs: []segMsg{{Time: 1, Payload: []byte("p")}, {Time: 2, TTL: 5, Payload: []byte("q")}, {Time: 3}}}
	seg.sign(id, "t", nil)
	big := &segment{Publisher: id.PublicKey(), First: 7, Msgs: []segMsg{{Time: 1, Payload: bytes.Repeat([]byte("compressible "), 100)}}}
	big.sign(id, "t", nil)
	seg3 := &segment{Publisher: id.PublicKey(), Prev: Ref{9}, First: 4, Base: 2, Msgs: []segMsg{{Time: 1, Payload: []byte("p")}, {Time: 2, TTL: 5}}}
	root3 := seg3.sign(id, "t", nil)
	big3 := &segment{Publisher: id.PublicKey(), First: 7, Base: 7, Msgs: []segMsg{{Time: 1, Payload: bytes.Repeat([]byte("compressible "), 100)}}}
	big3.sign(id, "t", nil)
	msgs3, err := verifySegment("t", seg3)
	if err != nil {
		f.Fatal(err)
	}
	proof3, err := msgs3[0].Proof()
	if err != nil {
		f.Fatal(err)
	}
	proof3Bytes, err := proof3.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
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
	for _, seed := range fuzzSeeds(f, id) {
		f.Add(seed)
	}
	for _, seed := range [][]byte{
		seg.encode(), big.encode(), seg3.encode(), big3.encode(), proofBytes, proof3Bytes, segmentHead(seg3, root3, Ref{5}).encode(),
		segmentHead(seg3, root3, digest(seg3.encode())).withInline(seg3.encode()).encode(), {headTagInline}, {headTagInline, 1, segmentTag},
		{segmentTag, 31: 0}, {headTag}, {proofTagV1}, st.encode(), snap.encode(), encodeRegShard("t", shard), encodeRegRoot("t", root),
		{}, {segmentTag}, {segmentTagV1}, {proofTag}, {coordInline, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		// Non-minimal varints (a count of 0 written in two bytes).
		{registryRootTag, 1, 't', 0, 0x80, 0x00}, {snapshotTag, 32: 0, 33: 0x80, 34: 0x00},
		// A registry shard naming one publisher twice.
		dupShard(id.ID()),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		canonical := func(kind string, enc []byte) {
			t.Helper()
			if !bytes.Equal(enc, b) {
				t.Fatalf("%s decoded from %s re-encodes as %s", kind, hex.EncodeToString(b), hex.EncodeToString(enc))
			}
		}
		if sg, err := decodeSegment(b); err == nil {
			// A decoded segment verifies or fails cleanly; its 'M'
			// encoding is b, or for a 'Z' segment what b decompresses to.
			_, _ = verifySegment("t", sg)
			raw := b
			if b[0] == segmentZTag {
				raw, err = decompressSegment(b)
				if err != nil {
					t.Fatalf("segment decoded but does not decompress: %v", err)
				}
			}
			if !bytes.Equal(sg.encodeRaw(), raw) {
				t.Fatalf("segment %s re-encodes as %s", hex.EncodeToString(raw), hex.EncodeToString(sg.encodeRaw()))
			}
			if again, err := decodeSegment(sg.encode()); err != nil || !bytes.Equal(again.encodeRaw(), raw) {
				t.Fatalf("segment does not round-trip through its stored form: %v", err)
			}
		}
		var p Proof
		if p.UnmarshalBinary(b) == nil {
			_ = p.Verify()
			if _, err := VerifyProof(b); err == nil && p.Verify() != nil {
				t.Fatal("VerifyProof accepted a proof that does not verify")
			}
			enc, err := p.MarshalBinary()
			if err != nil {
				t.Fatalf("decoded proof does not encode: %v", err)
			}
			canonical("proof", enc)
		}
		if st, err := decodeCoordState(b); err == nil {
			canonical("coordinator", st.encode())
		}
		if sn, err := decodeSnapshot(b); err == nil {
			canonical("snapshot", sn.encode())
		}
		if sh, err := decodeRegShard("t", b); err == nil {
			canonical("registry shard", encodeRegShard("t", sh))
		}
		if r, err := decodeRegRoot("t", b); err == nil {
			canonical("registry root", encodeRegRoot("t", r))
		}
		if h, err := decodeHeadUnverified(b); err == nil {
			canonical("head", h.encode())
			_, _ = decodeHead("t", b)
		}
		if r, err := decodeSubRecord("t", b); err == nil {
			canonical("subscription", r.encode())
		}
		if r, err := decodeDurRecord("t", b); err == nil {
			canonical("durable record", r.encode())
		}
		if c, err := UnmarshalCursor(b); err == nil {
			enc, err := c.MarshalBinary()
			if err != nil {
				t.Fatalf("decoded cursor does not encode: %v", err)
			}
			canonical("cursor", enc)
		}
		if pol, err := decodePolicy("t", b); err == nil {
			canonical("policy", encodeSignedPolicy(pol.Owner, pol.Version, pol.Allowed, b[len(b)-64:]))
		}
	})
}

// fuzzSeeds returns one valid record of each signed or cursor kind, for
// topic "t", signed by id.
func fuzzSeeds(f *testing.F, id *Identity) [][]byte {
	f.Helper()
	sub := &subRecord{Subscriber: id.PublicKey(), Expires: 1_700_000_000_000_000_000}
	sub.Sig = id.sign(subSigned("t", sub.Expires))
	cur := Cursor{topic: newTopicKeys("t").id, ordered: true, index: 5, full: map[PublisherID]uint64{id.ID(): 4, {1}: 2}}
	curBin, err := cur.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	dur := &durRecord{Subscriber: id.PublicKey(), Name: "billing", Expires: 1_700_000_300_000_000_000, Acked: curBin, Mark: curBin}
	dur.Sig = id.sign(durSigned("t", dur))
	return [][]byte{
		newHeadRecordV1(id, "t", 1, 3, Ref{}).encode(), sub.encode(), dur.encode(), curBin,
		encodePolicy(id, "t", 2, []PublisherID{id.ID(), {1}, {2}}),
	}
}

// dupShard returns a registry shard of topic "t" naming p twice.
func dupShard(p PublisherID) []byte {
	e := encoder{b: []byte{registryShardTag, 1, 't', 0, 0, 2}}
	e.raw(p[:])
	e.uvarint(3)
	e.raw(p[:])
	e.uvarint(4)
	return e.b
}
