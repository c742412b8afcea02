package core

// What decoding one record may cost: FuzzRecordCost bounds the bytes every
// decoder allocates by a multiple of the record's size, and
// TestRecordCostLengthFields tries records whose length fields lie.

import (
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// Decoding a record may allocate at most costPerByte times its size plus
// costSlack (the decoded structs and maps are bigger than their encoding:
// a segment message of 3 bytes is a 40-byte struct, and append and maps
// round up). A compressed segment may allocate that for the size its
// length field claims, which the decoder bounds by maxZstdRatio times the
// frame, plus the zstd decoder's own state.
const (
	costPerByte = 48
	costSlack   = 64 << 10
	zstdSlack   = 8 << 20
)

// allocated returns the bytes fn allocates (runtime.MemStats.TotalAlloc;
// the fuzz worker runs one input at a time).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// costBound is what decoding b may allocate.
func costBound(b []byte) uint64 {
	size := uint64(len(b))
	if len(b) > 1 && b[0] == segmentZTag {
		if claimed, n := binary.Uvarint(b[1:]); n > 0 {
			frame := uint64(len(b) - 1 - n)
			return costPerByte*min(claimed, frame*maxZstdRatio, maxSegmentRaw) + costPerByte*size + zstdSlack
		}
	}
	return costPerByte*size + costSlack
}

// decodeAll runs every decoder of store and peer bytes on b.
func decodeAll(b []byte) {
	_, _ = decodeSegment(b)
	var p Proof
	_ = p.UnmarshalBinary(b)
	_, _ = decodeCoordState(b)
	_, _ = decodeSnapshot(b)
	_, _ = decodeRegShard("t", b)
	_, _ = decodeRegRoot("t", b)
	_, _ = decodeHeadUnverified(b)
	_, _ = decodeSubRecord("t", b)
	_, _ = decodeDurRecord("t", b)
	_, _ = UnmarshalCursor(b)
	_, _ = decodePolicy("t", b)
}

// FuzzRecordCost checks that no decoder allocates more for a record than
// costBound allows, whatever its length fields say.
func FuzzRecordCost(f *testing.F) {
	for _, b := range lyingRecords(f) {
		f.Add(b)
	}
	decodeAll(compressSegment(make([]byte, 4096))) // the zstd decoder's first use
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, bound := allocated(func() { decodeAll(b) }), costBound(b); got > bound {
			t.Fatalf("decoding a record of %d bytes allocated %d (bound %d): %x", len(b), got, bound, b)
		}
	})
}

// lyingRecords returns small records whose length or count fields claim
// far more than they hold.
func lyingRecords(t testing.TB) [][]byte {
	huge := binary.AppendUvarint(nil, maxSegmentRaw)
	// A real frame of 600 bytes under a length field of 256 MiB.
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	small := enc.EncodeAll(make([]byte, 600), nil)
	require.NoError(t, enc.Close())
	return [][]byte{
		append(append([]byte{segmentZTag}, huge...), 0x28, 0xb5, 0x2f, 0xfd),
		append(append([]byte{segmentZTag}, huge...), small...),
		append([]byte{segmentTag}, make([]byte, 64)...),
		append(append([]byte{coordInline}, make([]byte, 98)...), 0xff, 0xff, 0xff, 0xff, 0x0f),
		append(append([]byte{snapshotTag}, make([]byte, 33)...), 0xff, 0xff, 0xff, 0xff, 0x0f),
		append([]byte{proofTag, 0xff, 0xff, 0xff, 0xff, 0x0f}, make([]byte, 8)...),
		{cursorTag, cursorVersion, cursorOrdered, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
}

// TestRecordCostLengthFields decodes records of a few bytes whose length
// fields claim up to 256 MiB: each must cost what its bytes allow, not
// what it claims.
func TestRecordCostLengthFields(t *testing.T) {
	decodeAll(compressSegment(make([]byte, 4096))) // the zstd decoder's first use
	for i, b := range lyingRecords(t) {
		got := allocated(func() { decodeAll(b) })
		require.LessOrEqual(t, got, costBound(b), "record %d (%d bytes) cost %d bytes", i, len(b), got)
		require.Less(t, got, uint64(8<<20), "record %d (%d bytes) cost %d bytes", i, len(b), got)
	}
}
