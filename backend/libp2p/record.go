package libp2p

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Record layout (the value of a DHT record in the project's namespace):
//
//	magic 's' | format 2 | flags | uvarint version | uvarint expect | nonce (8 bytes) | value | crc32c
//
// The CRC covers every byte before it, so random bytes under our keys are
// recognised as garbage rather than decoded into a record. The nonce is
// drawn once per CompareAndPut call: two calls never make the same record,
// so a node that took one refuses the other even when both write the same
// bytes at the same version (see record.sameWrite), while every copy of
// one call (resends, repairs, refreshes, a retry of an ambiguous write) is
// the same write. Format 1 (no nonce) still decodes, with a zero nonce.
const (
	recordMagic   = 's'
	recordFormat  = 2
	recordFormat1 = 1
	nonceSize     = 8
	// flagRepair marks a copy sent by read repair or refresh: a storing
	// node accepts it when it is newer than what the node holds, even
	// though it does not expect the node's version (the node missed
	// writes).
	flagRepair = 1 << 0
	// flagAbsent marks the synthetic "no record" a storing node compares
	// incoming records with (version 0). It is never sent in a put.
	flagAbsent = 1 << 1
	flagsKnown = flagRepair | flagAbsent
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord is the cause of every decode failure; callers wrap it in
// backend.ErrCorrupt where it reaches the API.
var errBadRecord = errors.New("not a stickypub record")

// record is one stored state of a key.
type record struct {
	version uint64
	expect  uint64
	flags   byte
	nonce   [nonceSize]byte
	value   []byte
}

func (r record) repair() bool { return r.flags&flagRepair != 0 }
func (r record) absent() bool { return r.flags&flagAbsent != 0 }

// sameWrite reports whether r and o are the same write (flags aside): an
// identical re-put, or a repair copy of it. Two CompareAndPut calls are
// never the same write, even with the same value (their nonces differ).
func (r record) sameWrite(o record) bool {
	return r.nonce == o.nonce && r.sameState(o)
}

// sameState reports whether r and o hold the same version and value,
// whichever calls wrote them: what a reader sees.
func (r record) sameState(o record) bool {
	return r.version == o.version && r.expect == o.expect && r.absent() == o.absent() && bytes.Equal(r.value, o.value)
}

// encode returns the wire form of r.
func (r record) encode() []byte {
	b := make([]byte, 0, 3+2*binary.MaxVarintLen64+nonceSize+len(r.value)+4)
	b = append(b, recordMagic, recordFormat, r.flags)
	b = binary.AppendUvarint(b, r.version)
	b = binary.AppendUvarint(b, r.expect)
	b = append(b, r.nonce[:]...)
	b = append(b, r.value...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// withFlags returns a copy of r with flags replaced.
func (r record) withFlags(f byte) record {
	r.flags = f
	return r
}

// decodeRecord parses and checks b. maxValue bounds the value (0: no
// bound). The returned value aliases b.
func decodeRecord(b []byte, maxValue int) (record, error) {
	if len(b) < 3+1+1+4 {
		return record{}, fmt.Errorf("%w: %d bytes is too short", errBadRecord, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return record{}, fmt.Errorf("%w: checksum mismatch", errBadRecord)
	}
	if body[0] != recordMagic || (body[1] != recordFormat && body[1] != recordFormat1) {
		return record{}, fmt.Errorf("%w: header %x", errBadRecord, body[:2])
	}
	r := record{flags: body[2]}
	if r.flags&^flagsKnown != 0 {
		return record{}, fmt.Errorf("%w: unknown flags %#x", errBadRecord, r.flags)
	}
	rest := body[3:]
	var n int
	if r.version, n = binary.Uvarint(rest); n <= 0 {
		return record{}, fmt.Errorf("%w: bad version", errBadRecord)
	}
	rest = rest[n:]
	if r.expect, n = binary.Uvarint(rest); n <= 0 {
		return record{}, fmt.Errorf("%w: bad expected version", errBadRecord)
	}
	rest = rest[n:]
	if body[1] == recordFormat {
		if len(rest) < nonceSize {
			return record{}, fmt.Errorf("%w: no nonce", errBadRecord)
		}
		copy(r.nonce[:], rest)
		rest = rest[nonceSize:]
	}
	r.value = rest
	switch {
	case r.absent():
		if r.version != 0 || r.expect != 0 || len(r.value) != 0 || r.repair() || r.nonce != [nonceSize]byte{} {
			return record{}, fmt.Errorf("%w: malformed absence marker", errBadRecord)
		}
	case r.expect == math.MaxUint64 || r.version != r.expect+1:
		return record{}, fmt.Errorf("%w: version %d does not follow expected version %d", errBadRecord, r.version, r.expect)
	case maxValue > 0 && len(r.value) > maxValue:
		return record{}, fmt.Errorf("%w: value of %d bytes exceeds the network's limit of %d", errBadRecord, len(r.value), maxValue)
	}
	return r, nil
}

// absentRecord is the marker a storing node compares incoming records with
// when it holds nothing for the key.
var absentRecord = record{flags: flagAbsent}.encode()

// validator is the record.Validator of the project's namespace. Every
// storing node of a network runs it: Validate checks the format and the
// value limit, and Select applies compare-and-put.
type validator struct {
	maxValue int
}

// Validate implements record.Validator.
func (v validator) Validate(_ string, value []byte) error {
	_, err := decodeRecord(value, v.maxValue)
	return err
}

// Select implements record.Validator. The DHT's value store calls it with
// exactly two values, [incoming, stored], under a per-key lock, and stores
// the incoming record only when Select returns 0. That is where each node
// applies compare-and-put: the incoming record wins if
//
//   - it expects the stored version (the stored record may be the absence
//     marker, version 0), or
//   - it is the same write as the stored one (an identical re-put, which
//     refreshes the record's receive time), or
//   - it is a repair copy newer than the stored record.
//
// With any other number of values (the library's own GetValue), Select
// picks the highest version, the first on ties.
func (v validator) Select(_ string, vals [][]byte) (int, error) {
	if len(vals) == 0 {
		return 0, errors.New("select from no values")
	}
	if len(vals) == 2 {
		in, errIn := decodeRecord(vals[0], v.maxValue)
		st, errSt := decodeRecord(vals[1], v.maxValue)
		switch {
		case errIn != nil:
			return 1, nil
		case errSt != nil:
			return 0, nil
		}
		if accepts(st, in) {
			return 0, nil
		}
		return 1, nil
	}
	best, bestVer := -1, uint64(0)
	for i, b := range vals {
		r, err := decodeRecord(b, v.maxValue)
		if err != nil || r.absent() {
			continue
		}
		if best < 0 || r.version > bestVer {
			best, bestVer = i, r.version
		}
	}
	if best < 0 {
		return 0, errors.New("no valid record among the values")
	}
	return best, nil
}

// accepts is the per-node compare-and-put rule: does a node holding stored
// take incoming?
func accepts(stored, incoming record) bool {
	switch {
	case incoming.absent():
		return false
	case incoming.sameWrite(stored):
		return true
	case incoming.expect == stored.version:
		return true
	case incoming.repair() && incoming.version > stored.version:
		return true
	}
	return false
}
