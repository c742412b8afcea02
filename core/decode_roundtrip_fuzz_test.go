package core

// FuzzRoundTrip: decode(encode(x)) == x for generated records of every kind
// read from a store (coordinator, snapshot, registry root and shard, head,
// subscription and durable records, cursors). Segments and policies have
// theirs in FuzzDecoders and policy_test.go.

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
)

// recordKinds names the kinds FuzzRoundTrip generates (kind % len).
var recordKinds = []string{"coordinator", "snapshot", "registry-root", "registry-shard", "head", "subscription", "durable", "cursor"}

// FuzzRoundTrip builds a record of kind from data, encodes it, and checks
// that it decodes to the same value and that its encoding is canonical
// (re-encoding the decoded value gives the same bytes).
func FuzzRoundTrip(f *testing.F) {
	for kind := range recordKinds {
		f.Add(byte(kind), []byte{})
		f.Add(byte(kind), bytes.Repeat([]byte{0xff}, 200))
		f.Add(byte(kind), []byte("\x03\x01\x02\x03\x08\x80\x00\x00\x00\x00\x00\x00\x01\x05\x02\x07\x07\x07\x09\x01\x01\x01\x01\x01\x01\x01\x01"))
	}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		g := &gen{b: data}
		const topic = "fuzz/topic"
		name := recordKinds[int(kind)%len(recordKinds)]
		var want, got any
		var enc []byte
		var err error
		var reenc func() []byte
		switch name {
		case "coordinator":
			x := g.coordState()
			enc = x.encode()
			var y *coordState
			y, err = decodeCoordState(enc)
			want, got, reenc = x, y, func() []byte { return y.encode() }
		case "snapshot":
			x := g.snapshot()
			enc = x.encode()
			var y *snapshot
			y, err = decodeSnapshot(enc)
			want, got, reenc = x, y, func() []byte { return y.encode() }
		case "registry-root":
			x := g.regRoot()
			enc = encodeRegRoot(topic, x)
			var y *regRoot
			y, err = decodeRegRoot(topic, enc)
			want, got, reenc = x, y, func() []byte { return encodeRegRoot(topic, y) }
		case "registry-shard":
			x := g.regShard()
			enc = encodeRegShard(topic, x)
			var y *regShard
			y, err = decodeRegShard(topic, enc)
			want, got, reenc = x, y, func() []byte { return encodeRegShard(topic, y) }
		case "head":
			x := g.head(t, topic)
			enc = x.encode()
			var y *headRecord
			y, err = decodeHead(topic, enc)
			if err == nil && x.inline != nil {
				// A decoded format-3 head holds the segment it carries,
				// whose messages give the root (not held in Root).
				require.Equal(t, x.Root, y.rootFor(topic))
				carried := *x
				carried.Root, carried.iseg = [32]byte{}, y.iseg
				x = &carried
			}
			want, got, reenc = x, y, func() []byte { return y.encode() }
		case "subscription":
			x := g.subRecord(t, topic)
			enc = x.encode()
			var y *subRecord
			y, err = decodeSubRecord(topic, enc)
			want, got, reenc = x, y, func() []byte { return y.encode() }
		case "durable":
			x := g.durRecord(t, topic)
			enc = x.encode()
			var y *durRecord
			y, err = decodeDurRecord(topic, enc)
			want, got, reenc = x, y, func() []byte { return y.encode() }
		case "cursor":
			x := g.cursor()
			enc, err = x.MarshalBinary()
			require.NoError(t, err)
			var y Cursor
			y, err = UnmarshalCursor(enc)
			// The binary form merges delta into full.
			want, got = Cursor{topic: x.topic, ordered: x.ordered, index: x.index, full: x.nexts()}, y
			reenc = func() []byte { b, _ := y.MarshalBinary(); return b }
		}
		require.NoError(t, err, "%s %s does not decode", name, hex.EncodeToString(enc))
		require.Equal(t, want, got, "%s %s decodes to another value", name, hex.EncodeToString(enc))
		require.Equal(t, enc, reenc(), "%s: re-encoding the decoded value gives other bytes", name)
	})
}
