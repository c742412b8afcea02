package core

// The merge of an announcement whose publisher is not in the window.

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestApplyKnownIsOnlyALowerBound: a publisher's own idea of its announced
// head (known) may be behind the registry (a subscriber's head audit
// announced for it): the merge must not announce that range again, or a
// resumed subscriber delivers it twice. Seen as duplicates in the durable
// SIGKILL test.
func TestApplyKnownIsOnlyALowerBound(t *testing.T) {
	p := PublisherID{7}
	st := newCoordState()
	st.Registry = Ref{1} // folded: p is in the registry, not the window
	registry := func(q PublisherID) (uint64, error) {
		if q == p {
			return 583, nil
		}
		return 0, nil
	}
	changed, err := st.apply(coordOp{anns: []announcement{{Pub: p, Seg: Ref{2}, To: 583, known: 582}}}, 0, registry)
	require.NoError(t, err)
	require.False(t, changed, "583 is announced already")
	require.Empty(t, st.Window)

	changed, err = st.apply(coordOp{anns: []announcement{{Pub: p, Seg: Ref{3}, To: 585, known: 582}}}, 0, registry)
	require.NoError(t, err)
	require.True(t, changed)
	require.Equal(t, uint64(584), st.Window[0].From, "the range starts after the registry's head")

	// known above what the registry says (unordered mode: an expired
	// registry blob reads as "not registered"): the larger wins.
	st = newCoordState()
	st.Registry = Ref{1}
	_, err = st.apply(coordOp{anns: []announcement{{Pub: p, Seg: Ref{4}, To: 590, known: 586}}}, 0, registry)
	require.NoError(t, err)
	require.Equal(t, uint64(587), st.Window[0].From)
}
