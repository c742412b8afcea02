package core

// The binary encoder and decoder every record uses (varints,
// length-prefixed bytes, bounded collection counts).
//
// The decoder accepts only the encoder's canonical form: minimal varints,
// and (checked by the record decoders) map entries in strictly increasing
// key order. So for every record kind, bytes that decode are exactly
// encode(decode(bytes)) (core/decode_roundtrip_fuzz_test.go), and two
// implementations cannot read one record two ways (duplicate keys).

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// errShort is returned by the decoder when a record ends early.
var errShort = errors.New("record truncated")

// errNonCanonical is returned by the decoder for a varint with redundant
// bytes (the encoder always writes the shortest form).
var errNonCanonical = errors.New("non-minimal varint")

// encoder appends a compact binary encoding: unsigned varints and
// length-prefixed byte strings. Every stored record starts with a one-byte
// tag and version so formats can evolve.
type encoder struct{ b []byte }

func (e *encoder) byte(v byte)      { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) raw(p []byte)     { e.b = append(e.b, p...) }
func (e *encoder) bytes(p []byte) {
	e.uvarint(uint64(len(p)))
	e.b = append(e.b, p...)
}
func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// decoder reads what encoder wrote. The first error sticks; callers check
// err once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	if n > 1 && d.b[n-1] == 0 {
		d.fail(errNonCanonical)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	if n > 1 && d.b[n-1] == 0 {
		d.fail(errNonCanonical)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) raw(n int) []byte {
	if d.err != nil || n < 0 || len(d.b) < n {
		d.fail(errShort)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail(errShort)
		return nil
	}
	return d.raw(int(n))
}

// count reads a collection length and rejects one that cannot fit in the
// remaining bytes (each element needs at least min bytes), so a malformed
// record cannot make the decoder allocate without bound.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/max(min, 1)) {
		d.fail(fmt.Errorf("collection of %d elements in %d bytes", n, len(d.b)))
		return 0
	}
	return int(n)
}

// pid reads a publisher ID that must sort strictly after prev (the keys of
// an encoded map: sorted, no duplicates); first says there is no prev.
func (d *decoder) pid(prev PublisherID, first bool) PublisherID {
	var p PublisherID
	copy(p[:], d.raw(len(p)))
	if d.err == nil && !first && comparePID(prev, p) >= 0 {
		d.fail(fmt.Errorf("map key %s not after %s", p, prev))
	}
	return p
}

// done reports the sticky error, or an error if bytes are left over.
func (d *decoder) done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return nil
}
