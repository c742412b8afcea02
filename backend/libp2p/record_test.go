package libp2p

import (
	"encoding/binary"
	"hash/crc32"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// TestRecordNonce: two calls writing the same value at the same version
// are different writes (a node that took one refuses the other), while
// every copy of one call (a resend, a repair copy) is the same write.
func TestRecordNonce(t *testing.T) {
	v := validator{maxValue: DefaultMaxValueSize}
	stored := record{version: 3, expect: 2, nonce: newNonce(), value: []byte("7")}
	other := stored
	other.nonce = newNonce()
	require.NotEqual(t, stored.nonce, other.nonce)

	got, err := decodeRecord(stored.encode(), DefaultMaxValueSize)
	require.NoError(t, err)
	assert.True(t, got.sameWrite(stored), "round trip")
	assert.Equal(t, stored.nonce, got.nonce)

	sel := func(in, st record) int {
		i, err := v.Select("k", [][]byte{in.encode(), st.encode()})
		require.NoError(t, err)
		return i
	}
	assert.Equal(t, 0, sel(stored, stored), "identical re-put (a retry of the same call)")
	assert.Equal(t, 0, sel(stored.withFlags(flagRepair), stored), "repair copy of the same write")
	assert.Equal(t, 1, sel(other, stored), "another call with the same bytes at the same version")
	assert.Equal(t, 1, sel(other.withFlags(flagRepair), stored), "a repair copy of another call at the same version")
	next := record{version: 4, expect: 3, nonce: newNonce(), value: []byte("8")}
	assert.Equal(t, 0, sel(next, stored), "the next version")
	assert.True(t, stored.sameState(other), "readers see one state")
	assert.False(t, stored.sameWrite(other))
}

// TestRecordFormat1: records written before the nonce (format 1) still
// decode, with a zero nonce; a format 2 record without a nonce is garbage.
func TestRecordFormat1(t *testing.T) {
	b := []byte{recordMagic, recordFormat1, 0}
	b = binary.AppendUvarint(b, 5)
	b = binary.AppendUvarint(b, 4)
	b = append(b, "old"...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	r, err := decodeRecord(b, 0)
	require.NoError(t, err)
	assert.Equal(t, record{version: 5, expect: 4, value: []byte("old")}, r)

	short := []byte{recordMagic, recordFormat, 0, 1, 0, 1, 2}
	short = binary.BigEndian.AppendUint32(short, crc32.Checksum(short, crcTable))
	_, err = decodeRecord(short, 0)
	assert.ErrorIs(t, err, errBadRecord)
}

// TestAmbiguousWrites: a call that retries a write without a verdict
// (same version and value) takes its nonce, once; any other call to the key
// forgets it.
func TestAmbiguousWrites(t *testing.T) {
	var a ambiguousWrites
	w := record{version: 2, expect: 1, nonce: newNonce(), value: []byte("x")}
	a.remember("k", w)
	n, ok := a.take("k", record{version: 2, expect: 1, value: []byte("x")})
	assert.True(t, ok)
	assert.Equal(t, w.nonce, n)
	_, ok = a.take("k", w)
	assert.False(t, ok, "taken once")

	a.remember("k", w)
	_, ok = a.take("k", record{version: 2, expect: 1, value: []byte("y")})
	assert.False(t, ok, "another value")
	_, ok = a.take("k", w)
	assert.False(t, ok, "forgotten by the other call")
}

// TestSameBytesTwoWriters: on a swarm, two handles that write the same
// bytes at the same expected version are two writes: exactly one succeeds
// and the other gets a conflict carrying it (what the contract's counter
// stress needs to lose no increment).
func TestSameBytesTwoWriters(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	sw := newTestSwarm(t, ctx, 5, nil)
	a := openStore(t, ctx, sw, nil)
	b := openStore(t, ctx, sw, nil)
	c := openStore(t, ctx, sw, nil)
	v, err := a.CompareAndPut(ctx, "n", 0, []byte("1"))
	require.NoError(t, err)
	// One after the other: the second is refused.
	v2, err := b.CompareAndPut(ctx, "n", v, []byte("2"))
	require.NoError(t, err)
	_, err = c.CompareAndPut(ctx, "n", v, []byte("2"))
	require.ErrorIs(t, err, backend.ErrConflict)
	cur, ok := backend.CurrentEntry(err)
	require.True(t, ok, "the conflict carries the current entry")
	assert.Equal(t, backend.Entry{Value: []byte("2"), Version: v2}, cur)

	// At once, a few rounds: at most one of the two wins each round (both
	// may lose, if the winner's write took longer to show than the loser
	// waited for it; never both win).
	total := 0
	for round := range 5 {
		e, err := a.Get(ctx, "n")
		require.NoError(t, err)
		val := []byte{'a' + byte(round)}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, st := range []*Store{b, c} {
			wg.Go(func() { _, errs[i] = st.CompareAndPut(ctx, "n", e.Version, val) })
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
				continue
			}
			require.ErrorIs(t, err, backend.ErrConflict, "round %d", round)
		}
		require.LessOrEqual(t, wins, 1, "round %d: two writes of one version succeeded", round)
		total += wins
		if wins == 1 {
			e, err := a.Get(ctx, "n")
			require.NoError(t, err)
			assert.Equal(t, val, e.Value, "round %d", round)
		}
	}
	require.NotZero(t, total, "no round had a winner")
}
