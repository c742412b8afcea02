package conformance

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/core"
)

// testOrderingMismatch: a topic keeps the ordering it was created with. A
// client of the other ordering is refused with core.ErrOrderingMismatch at
// its first publish or subscribe, before it writes anything, and the
// topic's own subscribers receive exactly its own publishers' messages. On
// a store that is not linearizable, asking for TopicOrder fails at
// core.New with core.ErrOrderingUnsupported.
func (s *suite) testOrderingMismatch(t *testing.T) {
	f := s.setup(t, basicTimeout)
	id, err := core.GenerateIdentity()
	require.NoError(t, err)
	if !f.linearizable() {
		f.skipFaultCheck() // core.New refuses before any store operation
		_, err := core.New(f.store, id, core.WithOrdering(core.TopicOrder))
		require.ErrorIs(t, err, core.ErrOrderingUnsupported, "TopicOrder on a store that is not linearizable")
		return
	}
	for _, tc := range []struct {
		name         string
		created, odd core.Ordering
	}{
		{"CreatedInTopicOrder", core.TopicOrder, core.PublisherOrder},
		{"CreatedInPublisherOrder", core.PublisherOrder, core.TopicOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := testTopic(t)
			owner := f.client(f.store, core.WithOrdering(tc.created))
			const n = 3
			for i := 1; i <= n; i++ {
				_, err := owner.Publish(f.ctx, topic, []byte(payloadOf(0, uint64(i))))
				require.NoError(t, err)
			}
			odd := f.client(f.store, core.WithOrdering(tc.odd))
			_, err := odd.Publish(f.ctx, topic, []byte("must not be written"))
			require.ErrorIs(t, err, core.ErrOrderingMismatch, "publish in %s order to a topic created in %s order", tc.odd, tc.created)
			_, err = odd.Subscribe(f.ctx, topic, core.FromStart())
			require.ErrorIs(t, err, core.ErrOrderingMismatch, "subscribe in %s order to a topic created in %s order", tc.odd, tc.created)

			reader := f.client(f.store, core.WithOrdering(tc.created))
			sub := f.subscribe(reader, topic, n, core.FromStart(), core.WithoutPush())
			f.checkExact(reader, f.collect(reader, sub, n), []*core.Client{owner}, n, payloadOf)
		})
	}
}
