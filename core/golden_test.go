package core

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// updateGolden rewrites core/testdata/golden (go test ./core -run Golden -update).
var updateGolden = flag.Bool("update", false, "rewrite the golden record files")

// goldenRecords builds one record of each kind from fixed inputs (a fixed
// seed: Ed25519 signatures are deterministic), with a decoder check each.
func goldenRecords(t *testing.T) map[string]struct {
	enc    []byte
	decode func([]byte) error
} {
	t.Helper()
	id, err := IdentityFromSeed(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	const topic = "golden/topic"
	pid := id.ID()
	seg := Ref{1, 2, 3}
	st := newCoordState()
	_, err = st.apply(coordOp{anns: []announcement{{Pub: pid, Seg: seg, To: 3, Time: 1_700_000_000_000_000_000}},
		subs: map[PublisherID]int64{pid: 1_700_000_100_000_000_000}}, 0, nil)
	require.NoError(t, err)
	po := st.clone()
	po.Order = PublisherOrder
	po.Active = map[PublisherID]int64{pid: 1_700_000_200_000_000_000}
	head := newHeadRecordV1(id, topic, 1, 3, seg)
	sub := &subRecord{Subscriber: id.PublicKey(), Expires: 1_700_000_100_000_000_000}
	sub.Sig = id.sign(subSigned(topic, sub.Expires))
	cur := Cursor{topic: newTopicKeys(topic).id, ordered: true, index: 5, full: map[PublisherID]uint64{pid: 4}}
	curBin, err := cur.MarshalBinary()
	require.NoError(t, err)
	dur := &durRecord{Subscriber: id.PublicKey(), Name: "billing", Expires: 1_700_000_300_000_000_000, Acked: curBin, Mark: curBin}
	dur.Sig = id.sign(durSigned(topic, dur))
	tid := newTopicKeys(topic).id
	sg := &segment{Publisher: id.PublicKey(), Prev: Ref{4}, First: 2, Msgs: []segMsg{
		{Time: 1_700_000_000_000_000_000, Payload: []byte("first")},
		{Time: 1_700_000_000_000_000_001, TTL: int64(3600e9), Payload: []byte("second")}}}
	sg.sign(id, topic, nil)
	sg3 := &segment{Publisher: id.PublicKey(), Prev: Ref{4}, First: 2, Base: 2, Msgs: sg.Msgs}
	root3 := sg3.sign(id, topic, nil)
	head2 := segmentHead(sg3, root3, seg)
	sg3Bytes := sg3.encode()
	head3 := segmentHead(sg3, root3, digest(sg3Bytes)).withInline(sg3Bytes)
	type rec = struct {
		enc    []byte
		decode func([]byte) error
	}
	return map[string]rec{
		"coordinator-topic-order": {st.encode(), func(b []byte) error {
			got, err := decodeCoordState(b)
			if err == nil && (got.Count != 1 || got.Order != TopicOrder) {
				t.Errorf("coordinator: %+v", got)
			}
			return err
		}},
		"coordinator-publisher-order": {po.encode(), func(b []byte) error {
			got, err := decodeCoordState(b)
			if err == nil && got.Order != PublisherOrder {
				t.Errorf("coordinator order %v", got.Order)
			}
			return err
		}},
		"snapshot": {(&snapshot{From: 0, Anns: st.Window, Msgs: 3, MaxTime: 1_700_000_000_000_000_000}).encode(),
			func(b []byte) error { _, err := decodeSnapshot(b); return err }},
		"head": {head.encode(), func(b []byte) error {
			h, err := decodeHead(topic, b)
			if err == nil && (h.Last != 3 || h.Seg != seg) {
				t.Errorf("head: %+v", h)
			}
			return err
		}},
		"head-v2": {head2.encode(), func(b []byte) error {
			h, err := decodeHead(topic, b)
			if err == nil && (h.Last != 3 || h.Base != 2 || h.Seg != seg || !h.V2) {
				t.Errorf("head v2: %+v", h)
			}
			if err == nil {
				err = h.bindSegment(sg3, root3)
			}
			return err
		}},
		"head-v3": {head3.encode(), func(b []byte) error {
			h, err := decodeHead(topic, b)
			if err == nil && (h.Last != 3 || h.Base != 2 || h.Seg != digest(sg3Bytes) || !h.V2 || h.iseg == nil) {
				t.Errorf("head v3: %+v", h)
			}
			if err == nil {
				err = h.bindSegment(sg3, root3)
			}
			return err
		}},
		"segment-v3": {sg3.encode(), func(b []byte) error {
			got, err := decodeSegment(b)
			if err == nil {
				var msgs []*Message
				if msgs, err = verifySegment(topic, got); err == nil && (string(msgs[1].Payload) != "second" || got.Base != 2) {
					t.Errorf("segment v3: %+v", got)
				}
			}
			return err
		}},
		"segment": {sg.encode(), func(b []byte) error {
			got, err := decodeSegment(b)
			if err == nil {
				var msgs []*Message
				if msgs, err = verifySegment(topic, got); err == nil && string(msgs[1].Payload) != "second" {
					t.Errorf("segment: %+v", msgs[1])
				}
			}
			return err
		}},
		"subscription": {sub.encode(), func(b []byte) error { _, err := decodeSubRecord(topic, b); return err }},
		"durable":      {dur.encode(), func(b []byte) error { _, err := decodeDurRecord(topic, b); return err }},
		"cursor":       {curBin, func(b []byte) error { _, err := UnmarshalCursor(b); return err }},
		"policy": {encodePolicy(id, topic, 2, []PublisherID{pid}), func(b []byte) error {
			_, err := decodePolicy(topic, b)
			return err
		}},
		"registry-root": {encodeRegRoot(tid, &regRoot{Bits: 0, Shards: map[byte]Ref{0: {9}}}),
			func(b []byte) error { _, err := decodeRegRoot(tid, b); return err }},
		"registry-shard": {encodeRegShard(tid, &regShard{Bits: 0, Heads: map[PublisherID]uint64{pid: 3}}),
			func(b []byte) error { _, err := decodeRegShard(tid, b); return err }},
	}
}

// TestGoldenRecords: each record kind's encoding is byte-for-byte the
// checked-in one (testdata/golden/<kind>.hex), and the checked-in bytes
// decode. A failure means the wire format changed: if on purpose, bump the
// record's tag or format, document it in docs/protocol.md ("Record
// layouts") and run with -update.
func TestGoldenRecords(t *testing.T) {
	for name, r := range goldenRecords(t) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", "golden", name+".hex")
			if *updateGolden {
				require.NoError(t, os.WriteFile(path, []byte(hex.EncodeToString(r.enc)+"\n"), 0o644))
			}
			raw, err := os.ReadFile(path)
			require.NoError(t, err, "golden file (run with -update to create it)")
			want, err := hex.DecodeString(strings.TrimSpace(string(raw)))
			require.NoError(t, err)
			require.Equal(t, hex.EncodeToString(want), hex.EncodeToString(r.enc), "the %s encoding changed", name)
			require.NoError(t, r.decode(want), "the golden %s does not decode", name)
		})
	}
}

// withInline makes h, a format-2 head whose segment's stored bytes are
// data, carry them (format 3).
func (h *headRecord) withInline(data []byte) *headRecord {
	h.inline = data
	return h
}
