package core

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// rfc6962Root is the Merkle tree hash of RFC 6962 written as the RFC
// defines it (split at the largest power of two below the size), the
// reference merkleRoot's level-by-level computation must agree with.
func rfc6962Root(leaves [][32]byte) [32]byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return nodeHash(rfc6962Root(leaves[:k]), rfc6962Root(leaves[k:]))
}

func testLeaves(n int) [][32]byte {
	leaves := make([][32]byte, n)
	for i := range leaves {
		leaves[i] = sha256.Sum256(fmt.Appendf(nil, "leaf %d", i))
	}
	return leaves
}

func TestMerkleTreeAndPaths(t *testing.T) {
	for n := 1; n <= 70; n++ {
		leaves := testLeaves(n)
		root := merkleRoot(leaves)
		require.Equal(t, rfc6962Root(leaves), root, "size %d", n)
		for i := range n {
			path := merklePath(leaves, i)
			got, err := rootFromPath(leaves[i], uint64(i), uint64(n), path)
			require.NoError(t, err, "size %d leaf %d", n, i)
			require.Equal(t, root, got, "size %d leaf %d", n, i)
			// Another leaf, another position, a longer or shorter path:
			// never the root.
			if n > 1 {
				other := (i + 1) % n
				got, err = rootFromPath(leaves[other], uint64(i), uint64(n), path)
				require.True(t, err != nil || got != root, "size %d: leaf %d passed as %d", n, other, i)
				got, err = rootFromPath(leaves[i], uint64(other), uint64(n), path)
				require.True(t, err != nil || got != root, "size %d: leaf %d at position %d", n, i, other)
			}
			_, err = rootFromPath(leaves[i], uint64(i), uint64(n), append(path, root))
			require.Error(t, err)
			if len(path) > 0 {
				_, err = rootFromPath(leaves[i], uint64(i), uint64(n), path[:len(path)-1])
				require.Error(t, err)
			}
		}
		_, err := rootFromPath(leaves[0], uint64(n), uint64(n), nil)
		require.Error(t, err)
	}
	// An interior node is not a leaf: the two-leaf root cannot be passed
	// off as a one-leaf tree of a message.
	two := testLeaves(2)
	assert.NotEqual(t, two[0], nodeHash(two[0], two[1]))
}

// signedTestSegment returns a format-3 segment of n messages signed by id
// on "t", with Base first-1 (at least 1).
func signedTestSegment(t *testing.T, id *Identity, first uint64, n int) *segment {
	t.Helper()
	sg := &segment{Publisher: id.PublicKey(), Prev: Ref{7}, First: first, Base: max(first-1, 1)}
	for i := range n {
		sg.Msgs = append(sg.Msgs, segMsg{Time: int64(1000 + i), TTL: int64(i), Payload: fmt.Appendf(nil, "m%d", i)})
	}
	sg.sign(id, "t", nil)
	return sg
}

// Every byte of a segment is covered by its one signature: any change to
// the header, to a message or to the list of messages fails verification
// with ErrBadSignature, and nothing is returned.
func TestSegmentSignatureCoversEverything(t *testing.T) {
	id, err := GenerateIdentity()
	require.NoError(t, err)
	other, err := GenerateIdentity()
	require.NoError(t, err)
	msgs, err := verifySegment("t", signedTestSegment(t, id, 5, 6))
	require.NoError(t, err)
	require.Len(t, msgs, 6)
	for i, m := range msgs {
		assert.EqualValues(t, 5+i, m.Seq)
		assert.Equal(t, fmt.Appendf(nil, "m%d", i), m.Payload)
	}
	for name, change := range map[string]func(sg *segment) string{
		"payload":      func(sg *segment) string { sg.Msgs[2].Payload = []byte("x"); return "t" },
		"time":         func(sg *segment) string { sg.Msgs[0].Time++; return "t" },
		"ttl":          func(sg *segment) string { sg.Msgs[5].TTL++; return "t" },
		"first":        func(sg *segment) string { sg.First++; return "t" },
		"prev":         func(sg *segment) string { sg.Prev[0]++; return "t" },
		"base":         func(sg *segment) string { sg.Base++; return "t" },
		"format 2":     func(sg *segment) string { sg.Base = 0; return "t" },
		"topic":        func(sg *segment) string { return "u" },
		"truncated":    func(sg *segment) string { sg.Msgs = sg.Msgs[:5]; return "t" },
		"extended":     func(sg *segment) string { sg.Msgs = append(sg.Msgs, sg.Msgs[0]); return "t" },
		"reordered":    func(sg *segment) string { sg.Msgs[1], sg.Msgs[2] = sg.Msgs[2], sg.Msgs[1]; return "t" },
		"dropped head": func(sg *segment) string { sg.Msgs = sg.Msgs[1:]; sg.First++; return "t" },
		"signature":    func(sg *segment) string { sg.Sig[10] ^= 1; return "t" },
		"other key":    func(sg *segment) string { sg.sign(other, "t", nil); return "t" },
		"spliced": func(sg *segment) string {
			next := signedTestSegment(t, id, sg.last()+1, 3)
			sg.Msgs = append(sg.Msgs, next.Msgs...)
			return "t"
		},
	} {
		t.Run(name, func(t *testing.T) {
			sg := signedTestSegment(t, id, 5, 6)
			topic := change(sg)
			// The change survives the stored encoding.
			sg, err := decodeSegment(sg.encode())
			require.NoError(t, err)
			msgs, err := verifySegment(topic, sg)
			require.ErrorIs(t, err, ErrBadSignature)
			require.Nil(t, msgs)
		})
	}
}

// A segment in format 1 (a signature per message) is rejected as
// malformed, as are trailing bytes and a missing signature.
func TestSegmentFormat1Rejected(t *testing.T) {
	id, err := GenerateIdentity()
	require.NoError(t, err)
	var e encoder
	e.byte(segmentTagV1)
	e.raw(id.PublicKey())
	e.raw(make([]byte, 32))
	e.uvarint(1)
	e.uvarint(1)
	e.varint(1)
	e.varint(0)
	e.bytes([]byte("p"))
	e.raw(make([]byte, 64))
	_, err = decodeSegment(e.b)
	require.ErrorIs(t, err, ErrMalformed)
	_, err = decodeSegment(compressSegment(append(e.b, bytes.Repeat([]byte{0}, 600)...)))
	require.ErrorIs(t, err, ErrMalformed)
	good := signedTestSegment(t, id, 1, 2).encodeRaw()
	_, err = decodeSegment(good[:len(good)-1])
	require.ErrorIs(t, err, ErrMalformed)
	_, err = decodeSegment(append(good, 0))
	require.ErrorIs(t, err, ErrMalformed)
}

// A delivered message exports with a proof that verifies alone, and that
// fails for any other message, position, topic, key or path.
func TestMessageProof(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store)
	publishBatches(t, ctx, store, pub, "t", 2, 5) // seqs 1-5, 6-10
	sc := newClient(t, store)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	msgs := receive(t, ctx, sc, sub, 10)
	for _, m := range msgs {
		p, err := m.Proof()
		require.NoError(t, err)
		require.NoError(t, p.Verify())
		b, err := p.MarshalBinary()
		require.NoError(t, err)
		got, err := VerifyProof(b)
		require.NoError(t, err)
		assert.Equal(t, m.Seq, got.Seq)
		assert.Equal(t, m.Payload, got.Payload)
		assert.Equal(t, m.Time.UnixNano(), got.Time.UnixNano())
		assert.Equal(t, m.Signature, got.Signature)
		assert.True(t, bytes.Equal(pub.Identity().PublicKey(), got.Publisher))
	}
	p, err := msgs[7].Proof()
	require.NoError(t, err)
	assert.EqualValues(t, 6, p.First)
	assert.EqualValues(t, 5, p.Count)
	assert.EqualValues(t, 1, p.Base, "format 3: the segment's Base")
	for name, change := range map[string]func(q *Proof){
		"payload":   func(q *Proof) { q.Payload = []byte("other") },
		"seq":       func(q *Proof) { q.Seq++ },
		"topic":     func(q *Proof) { q.Topic = "u" },
		"ttl":       func(q *Proof) { q.TTL++ },
		"time":      func(q *Proof) { q.Time = q.Time.Add(1) },
		"count":     func(q *Proof) { q.Count++ },
		"first":     func(q *Proof) { q.First--; q.Seq-- },
		"prev":      func(q *Proof) { q.Prev[3] ^= 1 },
		"base":      func(q *Proof) { q.Base++ },
		"no base":   func(q *Proof) { q.Base = 0 },
		"path":      func(q *Proof) { q.Path[0][0] ^= 1 },
		"key":       func(q *Proof) { q.Publisher = sc.Identity().PublicKey() },
		"signature": func(q *Proof) { q.Signature = bytes.Clone(q.Signature); q.Signature[0] ^= 1 },
		"no path":   func(q *Proof) { q.Path = nil },
		"outside":   func(q *Proof) { q.Seq = q.First + q.Count },
	} {
		t.Run(name, func(t *testing.T) {
			q := *p
			q.Path = append([][32]byte(nil), p.Path...)
			change(&q)
			require.Error(t, q.Verify())
			b, err := q.MarshalBinary()
			require.NoError(t, err)
			_, err = VerifyProof(b)
			require.Error(t, err)
		})
	}
	b, err := p.MarshalBinary()
	require.NoError(t, err)
	for i := range b {
		_, err := VerifyProof(b[:i])
		require.ErrorIs(t, err, ErrMalformed, "truncated at %d", i)
	}
	_, err = (&Message{Seq: 1}).Proof()
	require.ErrorIs(t, err, ErrNoProof)
}

// A message of a format-2 segment (stored before format 3) still exports
// with a format-1 proof ('P', no Base) that verifies alone.
func TestMessageProofFormat2(t *testing.T) {
	id, err := GenerateIdentity()
	require.NoError(t, err)
	sg := signedTestSegment(t, id, 5, 3)
	sg.Base = 0
	sg.sign(id, "t", nil)
	sg, err = decodeSegment(sg.encode())
	require.NoError(t, err)
	require.Zero(t, sg.Base)
	msgs, err := verifySegment("t", sg)
	require.NoError(t, err)
	for _, m := range msgs {
		p, err := m.Proof()
		require.NoError(t, err)
		require.Zero(t, p.Base)
		b, err := p.MarshalBinary()
		require.NoError(t, err)
		require.Equal(t, byte(proofTagV1), b[0])
		got, err := VerifyProof(b)
		require.NoError(t, err)
		require.Equal(t, m.Payload, got.Payload)
		q := *p
		q.Base = 1 // claimed to be format 3: another signed string
		require.ErrorIs(t, q.Verify(), ErrBadSignature)
	}
}

// Retry recognizes a batch already in the log by content (the messages'
// leaf hashes), not by signatures: the same message is acknowledged with
// its seq, another payload or time at that seq is ErrConcurrentPublisher.
func TestRetryComparesContent(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(m *pendingMsg)
		err    error
	}{
		{"same", func(*pendingMsg) {}, nil},
		{"other payload", func(m *pendingMsg) { m.payload = []byte("TWO") }, ErrConcurrentPublisher},
		{"other time", func(m *pendingMsg) { m.time++ }, ErrConcurrentPublisher},
		{"other ttl", func(m *pendingMsg) { m.ttl++ }, ErrConcurrentPublisher},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t)
			store := &breakable{Store: newMem(t), failPrefix: "c/", failErr: backend.ErrClosed}
			pub := newClient(t, store)
			_, err := pub.Publish(ctx, "t", []byte("one"))
			require.NoError(t, err)
			store.failing.Store(true)
			_, err = pub.Publish(ctx, "t", []byte("two"))
			require.ErrorIs(t, err, ErrOutcomeUnknown)
			store.failing.Store(false)
			var pe *PublishError
			require.ErrorAs(t, err, &pe)
			m := pe.msgs[0]
			again := &pendingMsg{seq: m.seq, time: m.time, ttl: m.ttl, payload: m.payload, req: m.req}
			c.change(again)
			pe.msgs = []*pendingMsg{again}
			rs, err := pub.Retry(ctx, pe)
			if c.err != nil {
				require.ErrorIs(t, err, c.err)
				return
			}
			require.NoError(t, err)
			require.EqualValues(t, 2, rs[0].Seq)
		})
	}
}
