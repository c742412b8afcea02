package core

// Records generated from fuzz bytes, for the round-trip properties of
// every stored record (decode_roundtrip_fuzz_test.go): each builder reads
// its fields from the bytes and returns a record the encoder can write and
// the decoder must read back as it was.

import (
	"testing"
)

// gen reads record fields from fuzz bytes (zeros once they run out).
type gen struct{ b []byte }

func (g *gen) byte() byte {
	if len(g.b) == 0 {
		return 0
	}
	v := g.b[0]
	g.b = g.b[1:]
	return v
}

// u64 reads 0 to 8 bytes, so small and large values both come up.
func (g *gen) u64() uint64 {
	var v uint64
	for range g.byte() % 9 {
		v = v<<8 | uint64(g.byte())
	}
	return v
}

func (g *gen) i64() int64 { return int64(g.u64()) }

// n reads a count in [0, most].
func (g *gen) n(most int) int { return int(g.byte()) % (most + 1) }

func (g *gen) fill(p []byte) {
	for i := range p {
		p[i] = g.byte()
	}
}

func (g *gen) pid() (p PublisherID) { g.fill(p[:]); return p }
func (g *gen) ref() (r Ref)         { g.fill(r[:]); return r }

// bytes reads a slice of [0, most] bytes (never nil, as the decoder
// returns them).
func (g *gen) bytes(most int) []byte {
	p := make([]byte, g.n(most))
	g.fill(p)
	return p
}

// identity derives a signing key from the bytes.
func (g *gen) identity(t testing.TB) *Identity {
	seed := make([]byte, 32)
	g.fill(seed)
	id, err := IdentityFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// anns reads up to most valid announcements (From in [1, To]), of a few
// publishers so that some repeat; nil for none, as decoded.
func (g *gen) anns(most int) []announcement {
	pubs := []PublisherID{g.pid(), g.pid(), g.pid()}
	var out []announcement
	for range g.n(most) {
		from := max(1, g.u64()>>1)
		out = append(out, announcement{Pub: pubs[g.byte()%3], Seg: g.ref(), From: from, To: from + g.u64()>>1, Time: g.i64()})
	}
	return out
}

func (g *gen) expiries(most int) map[PublisherID]int64 {
	m := map[PublisherID]int64{}
	for range g.n(most) {
		m[g.pid()] = g.i64()
	}
	return m
}

func (g *gen) coordState() *coordState {
	s := newCoordState()
	s.SnapCount = g.u64() >> 1
	s.RetainFrom = g.u64() % (s.SnapCount + 1)
	s.ReclaimedTo = g.u64() % (s.RetainFrom + 1)
	s.Snap, s.Registry, s.OldRegistry = g.ref(), g.ref(), g.ref()
	s.Window = g.anns(6)
	s.Count = s.SnapCount + uint64(len(s.Window))
	s.Subs = g.expiries(4)
	s.Active = g.expiries(4)
	if g.byte()&1 == 1 {
		s.Order = PublisherOrder
	}
	s.rebuildHot()
	return s
}

func (g *gen) snapshot() *snapshot {
	return &snapshot{Prev: g.ref(), From: g.u64(), Anns: g.anns(6), Msgs: g.u64(), MaxTime: g.i64()}
}

func (g *gen) regRoot() *regRoot {
	r := &regRoot{Bits: g.byte() % 9, Shards: map[byte]Ref{}}
	for range g.n(6) {
		r.Shards[g.byte()] = g.ref()
	}
	return r
}

// regShard reads a shard whose publishers all belong to it.
func (g *gen) regShard() *regShard {
	s := &regShard{Bits: g.byte() % 9, Heads: map[PublisherID]uint64{}}
	if s.Bits > 0 {
		s.Prefix = g.byte() >> (8 - s.Bits)
	}
	for range g.n(6) {
		p := g.pid()
		if s.Bits > 0 {
			low := byte(1<<(8-s.Bits) - 1)
			p[0] = s.Prefix<<(8-s.Bits) | p[0]&low
		}
		s.Heads[p] = g.u64()
	}
	return s
}

// head reads a format-1 head record or, half the time, the format-2 head
// of a format-3 segment it signs, which, half of those times, carries the
// segment (format 3).
func (g *gen) head(t testing.TB, topic string) *headRecord {
	if g.byte()&1 == 0 {
		last := g.u64() >> 1
		return newHeadRecordV1(g.identity(t), topic, 1+g.u64()%(last+1), last, g.ref())
	}
	sg := &segment{Publisher: nil, Prev: g.ref(), First: 1 + g.u64()>>2, Msgs: make([]segMsg, 1+g.n(4))}
	for i := range sg.Msgs {
		sg.Msgs[i] = segMsg{Time: g.i64(), TTL: g.i64(), Payload: g.bytes(20)}
	}
	sg.Base = 1 + g.u64()%(sg.last()+1)
	id := g.identity(t)
	sg.Publisher = id.PublicKey()
	root := sg.sign(id, topic, nil)
	if g.byte()&1 == 0 {
		data := sg.encode()
		return segmentHead(sg, root, digest(data)).withInline(data)
	}
	return segmentHead(sg, root, g.ref())
}

func (g *gen) subRecord(t testing.TB, topic string) *subRecord {
	id := g.identity(t)
	r := &subRecord{Subscriber: id.PublicKey(), Expires: g.i64()}
	r.Sig = id.sign(subSigned(topic, r.Expires))
	return r
}

func (g *gen) durRecord(t testing.TB, topic string) *durRecord {
	id := g.identity(t)
	r := &durRecord{Subscriber: id.PublicKey(), Name: string(g.bytes(20)), Expires: g.i64(), Acked: g.bytes(40), Mark: g.bytes(40)}
	r.Sig = id.sign(durSigned(topic, r))
	return r
}

// cursor reads a cursor, sometimes with a delta over its full map.
func (g *gen) cursor() Cursor {
	topic := make([]byte, 22)
	g.fill(topic)
	c := Cursor{topic: string(topic), ordered: g.byte()&1 == 1, index: g.u64(), full: map[PublisherID]uint64{}}
	for range g.n(4) {
		c.full[g.pid()] = max(1, g.u64())
	}
	if n := g.n(3); n > 0 {
		c.delta = map[PublisherID]uint64{}
		for range n {
			c.delta[g.pid()] = max(1, g.u64())
		}
	}
	return c
}
