package core

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
)

// compressible is a JSON-like payload of n bytes.
func compressible(n int) []byte {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"order":%d,"status":"shipped","items":["widget","gadget"]},`, i)
	}
	return []byte(b.String()[:n])
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// testSegment returns a signed format-3 segment of payloads from seq 1.
func testSegment(t *testing.T, payloads ...[]byte) *segment {
	id, err := GenerateIdentity()
	require.NoError(t, err)
	s := &segment{Publisher: id.PublicKey(), First: 1, Base: 1}
	for _, p := range payloads {
		s.Msgs = append(s.Msgs, segMsg{Time: 42, Payload: p})
	}
	s.sign(id, "t", nil)
	return s
}

func TestSegmentCompression(t *testing.T) {
	for _, c := range []struct {
		name       string
		seg        *segment
		compressed bool
	}{
		{"compressible", testSegment(t, compressible(64<<10), compressible(1000)), true},
		{"incompressible", testSegment(t, random(t, 64<<10)), false},
		{"small", testSegment(t, compressible(100)), false},
		{"format 2 compressible", format2(t, testSegment(t, compressible(64<<10), compressible(1000))), true},
		{"format 2 small", format2(t, testSegment(t, compressible(100))), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw, stored := c.seg.encodeRaw(), c.seg.encode()
			if c.compressed {
				require.Equal(t, byte(segmentZTag), stored[0])
				assert.Less(t, len(stored), len(raw)/4)
			} else {
				assert.Equal(t, raw, stored, "stored uncompressed when compression does not pay")
			}
			assert.Equal(t, stored, c.seg.encode(), "deterministic: a retried batch writes the same blob")
			for _, b := range [][]byte{stored, raw} { // old uncompressed segments still read
				got, err := decodeSegment(b)
				require.NoError(t, err)
				assert.Equal(t, c.seg, got)
				_, err = verifySegment("t", got)
				require.NoError(t, err)
			}
		})
	}
}

// format2 turns s into a format-2 segment ('M': no Base), signed again by
// a new key.
func format2(t *testing.T, s *segment) *segment {
	id, err := GenerateIdentity()
	require.NoError(t, err)
	s.Base, s.Publisher = 0, id.PublicKey()
	s.sign(id, "t", nil)
	require.Equal(t, byte(segmentTagV2), s.encodeRaw()[0])
	return s
}

func TestCompressedSegmentBadInput(t *testing.T) {
	stored := testSegment(t, compressible(8<<10)).encode()
	require.Equal(t, byte(segmentZTag), stored[0])
	_, rawLen := decodeUvarintAt(stored[1:])
	body := stored[1+rawLen:]
	for name, b := range map[string][]byte{
		"truncated":        stored[:len(stored)/2],
		"no length":        {segmentZTag},
		"length too small": append(append([]byte{segmentZTag}, uvarintBytes(100)...), body...),
		"length too large": append(append([]byte{segmentZTag}, uvarintBytes(maxSegmentRaw+1)...), body...),
		"length mismatch":  append(append([]byte{segmentZTag}, uvarintBytes(9000)...), body...),
		"garbage frame":    append(append([]byte{segmentZTag}, uvarintBytes(9000)...), random(t, 200)...),
		"compressed junk":  zstdCodec().enc.EncodeAll(random(t, 600), append([]byte{segmentZTag}, uvarintBytes(600)...)),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeSegment(b)
			assert.ErrorIs(t, err, ErrMalformed)
		})
	}
}

func uvarintBytes(n uint64) []byte {
	var e encoder
	e.uvarint(n)
	return e.b
}

func decodeUvarintAt(b []byte) (uint64, int) {
	d := decoder{b: b}
	v := d.uvarint()
	return v, len(b) - len(d.b)
}

// countingStore counts the blob writes (keys x/...) and their bytes.
type countingStore struct {
	backend.Store
	mu           sync.Mutex
	blobs, bytes int
}

func (c *countingStore) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	v, err := c.Store.CompareAndPut(ctx, key, expect, value)
	if err == nil && strings.HasPrefix(key, "x/") {
		c.mu.Lock()
		c.blobs++
		c.bytes += len(value)
		c.mu.Unlock()
	}
	return v, err
}

// TestCompressionFewerChunks: on a store of 1000-byte values (BEP44's
// limit) a large compressible message takes far fewer chunks than its
// uncompressed segment would, an incompressible one exactly as many; both
// reach a subscriber unchanged.
func TestCompressionFewerChunks(t *testing.T) {
	ctx := testCtx(t)
	for _, c := range []struct {
		name    string
		payload []byte
		fewer   bool
	}{
		{"compressible", compressible(64 << 10), true},
		{"incompressible", random(t, 64<<10), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Before: the uncompressed segment, chunked as core chunks it.
			before := &countingStore{Store: memory.NewSpace(memory.Options{MaxValueSize: 1000}).Open()}
			defer before.Close()
			seg := testSegment(t, c.payload)
			_, err := newBlobStore(before, 1000, 0).put(ctx, seg.encodeRaw())
			require.NoError(t, err)

			// After: published through a client.
			space := memory.NewSpace(memory.Options{MaxValueSize: 1000})
			after := &countingStore{Store: space.Open()}
			defer after.Close()
			pub := newClient(t, after)
			_, err = pub.Publish(ctx, "z", c.payload)
			require.NoError(t, err)
			sub := newClient(t, space.Open())
			s, err := sub.Subscribe(ctx, "z", FromStart())
			require.NoError(t, err)
			got := receive(t, ctx, sub, s, 1)
			assert.Equal(t, c.payload, got[0].Payload)

			t.Logf("%s 64 KiB payload on 1000-byte values: uncompressed segment %d blob writes, %d bytes; stored %d blob writes, %d bytes",
				c.name, before.blobs, before.bytes, after.blobs, after.bytes)
			if c.fewer {
				assert.Less(t, after.blobs*4, before.blobs)
				assert.Less(t, after.bytes*4, before.bytes)
			} else {
				assert.Equal(t, before.blobs, after.blobs)
				assert.InDelta(t, before.bytes, after.bytes, 8, "same segment size up to varint widths")
			}
		})
	}
}
