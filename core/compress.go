package core

// zstd compression of large segments ('Z' records).

import (
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compressed segments. A segment whose encoding is at least
// compressMinSize bytes is stored zstd-compressed when that saves at least
// an eighth: tag 'Z', the uncompressed length, then one zstd frame holding
// the raw encoding ('T', or 'M' for a format-2 segment). Readers accept
// both forms, so segments written before compression existed still read. Signatures cover the payloads, not the
// stored bytes, and the blob digest covers the stored bytes, so both
// checks are unchanged.
const (
	segmentZTag     = 0x5A // 'Z'
	compressMinSize = 512
	// maxSegmentRaw bounds the uncompressed size of a compressed segment,
	// so a forged blob cannot make a reader allocate without limit; a
	// larger segment is stored uncompressed.
	maxSegmentRaw = 256 << 20
	// maxZstdRatio is more than any valid zstd frame expands: a raw or RLE
	// block of at most 128 KiB costs at least 4 bytes. A 'Z' record whose
	// length field claims more than this many times its frame is refused
	// before anything is allocated, so the length field cannot make a
	// reader allocate more than the frame could really hold.
	maxZstdRatio = 32 << 10
)

// zstdCodec is created once: the encoder and decoder are safe for
// concurrent EncodeAll/DecodeAll calls and keep no per-call state, and a
// single-goroutine encoder with fixed options writes the same bytes for the
// same input, so a retried batch writes the same blob.
var zstdCodec = sync.OnceValue(func() (c struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}) {
	var err error
	if c.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1)); err != nil {
		panic(err) // only on invalid options
	}
	if c.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxSegmentRaw),
		// DecodeAll stops at cap(dst) (the length field, checked against
		// the frame's size) instead of trusting the frame's own header.
		zstd.WithDecodeAllCapLimit(true)); err != nil {
		panic(err)
	}
	return c
})

// compressSegment returns the stored form of a segment's raw encoding.
func compressSegment(raw []byte) []byte {
	if len(raw) < compressMinSize || len(raw) > maxSegmentRaw {
		return raw
	}
	var e encoder
	e.byte(segmentZTag)
	e.uvarint(uint64(len(raw)))
	out := zstdCodec().enc.EncodeAll(raw, e.b)
	if len(out) > len(raw)-len(raw)/8 {
		return raw
	}
	return out
}

// decompressSegment returns the raw encoding of a stored 'Z' segment.
func decompressSegment(b []byte) ([]byte, error) {
	d := decoder{b: b}
	d.byte()
	n := d.uvarint()
	if d.err != nil {
		return nil, malformed("compressed segment: %v", d.err)
	}
	if n < compressMinSize || n > maxSegmentRaw || n > uint64(len(d.b))*maxZstdRatio {
		return nil, malformed("compressed segment of %d bytes in %d", n, len(d.b))
	}
	raw, err := zstdCodec().dec.DecodeAll(d.b, make([]byte, 0, n))
	if err != nil {
		return nil, malformed("compressed segment: %v", err)
	}
	if uint64(len(raw)) != n {
		return nil, malformed("compressed segment holds %d bytes, says %d", len(raw), n)
	}
	return raw, nil
}
