package core

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPolicyRoundTrip: a policy decodes to what was signed (sorted, without
// duplicates); any change to its bytes, or another topic, fails.
func TestPolicyRoundTrip(t *testing.T) {
	owner, err := GenerateIdentity()
	require.NoError(t, err)
	a, b := PublisherID{2}, PublisherID{1}
	rec := encodePolicy(owner, "t", 3, []PublisherID{a, b, a})
	p, err := decodePolicy("t", rec)
	require.NoError(t, err)
	require.Equal(t, []PublisherID{b, a}, p.Allowed)
	require.EqualValues(t, 3, p.Version)
	require.True(t, p.Allows(a))
	require.False(t, p.Allows(PublisherID{3}))
	_, err = decodePolicy("other", rec)
	require.ErrorIs(t, err, ErrForgedPolicy)
	for i := range rec {
		bad := bytes.Clone(rec)
		bad[i] ^= 0x40
		_, err := decodePolicy("t", bad)
		require.ErrorIs(t, err, ErrForgedPolicy, "byte %d changed", i)
	}
	id, err := ParsePublisherID(a.String())
	require.NoError(t, err)
	require.Equal(t, a, id)
	_, err = ParsePublisherID("short")
	require.Error(t, err)
}

// TestCoordinatorOrderingRoundTrip: the ordering survives encoding; a
// trailing byte other than the ordering mark is malformed.
func TestCoordinatorOrderingRoundTrip(t *testing.T) {
	for _, o := range []Ordering{TopicOrder, PublisherOrder} {
		st := newCoordState()
		st.Order = o
		got, err := decodeCoordState(st.encode())
		require.NoError(t, err)
		require.Equal(t, o, got.Order)
	}
	_, err := decodeCoordState(append(newCoordState().encode(), 'x'))
	require.ErrorIs(t, err, ErrMalformed)
}

// FuzzPolicy: arbitrary bytes never panic the policy decoder, and what it
// accepts verifies again to the same policy.
func FuzzPolicy(f *testing.F) {
	owner, err := IdentityFromSeed(make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(encodePolicy(owner, "t", 1, []PublisherID{{1}, {2}}))
	f.Add([]byte{policyTag})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePolicy("t", b)
		if err != nil {
			return
		}
		q, err := decodePolicy("t", bytes.Clone(b))
		require.NoError(t, err)
		require.Equal(t, p, q)
	})
}
