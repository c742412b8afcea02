package gateway

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/core"
)

// TestResumeWithLastEventID: a follower that disconnects and reconnects
// with the id of the last event it got (what EventSource does) receives
// exactly the messages after it: none lost, none twice, in topic order.
func TestResumeWithLastEventID(t *testing.T) {
	e := newEnv(t, nil)
	ctx := testCtx(t)
	topic := "resume"
	// A second publisher writes to the store directly.
	id, err := core.GenerateIdentity()
	require.NoError(t, err)
	other, err := core.New(e.gw.cfg.Store, id)
	require.NoError(t, err)
	defer func() { require.NoError(t, other.Close(ctx)) }()
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			e.publish(t, topic, fmt.Sprint("gw", i))
			_, err := other.Publish(ctx, topic, fmt.Appendf(nil, "other%d", i))
			require.NoError(t, err)
		}
	}
	key := func(m Message) string { return fmt.Sprintf("%s/%d/%s", m.Publisher, m.Seq, m.Payload) }

	live := e.openSSE(t, topicPath(topic)+"/events")
	publish(0, 5)
	var seen []string
	var last sseEvent
	for range 4 {
		last = live.next(t)
		require.NotEmpty(t, last.ID, "every message event has an id")
		m := last.message(t)
		assert.Equal(t, last.ID, m.Cursor)
		seen = append(seen, key(m))
	}
	live.close()
	publish(5, 8) // while disconnected

	// Both ways of resuming: the header and the query parameter.
	total := 16
	for _, how := range []string{"header", "query"} {
		t.Run(how, func(t *testing.T) {
			var s *sse
			if how == "header" {
				s = e.openSSE(t, topicPath(topic)+"/events", "Last-Event-ID", last.ID)
			} else {
				s = e.openSSE(t, topicPath(topic)+"/events?from="+last.ID)
			}
			full := e.openSSE(t, topicPath(topic)+"/events?from=start")
			var all []string
			for range total {
				all = append(all, key(full.next(t).message(t)))
			}
			require.Equal(t, seen, all[:4], "the live stream saw the topic order")
			var resumed []string
			for range total - 4 {
				resumed = append(resumed, key(s.next(t).message(t)))
			}
			assert.Equal(t, all[4:], resumed, "resumed right after the last event: no loss, no duplicate")
			// And it goes on live.
			e.publish(t, topic, "after-"+how)
			assert.Equal(t, "after-"+how, s.next(t).message(t).Payload)
			assert.Equal(t, "after-"+how, full.next(t).message(t).Payload)
			total++
		})
	}

	// A cursor of another topic is refused.
	code, body := e.do(t, http.MethodGet, topicPath("elsewhere")+"/events", "", nil, "Last-Event-ID", last.ID)
	assert.Equal(t, http.StatusBadRequest, code, string(body))
	assert.Contains(t, string(body), "cursor")
}
