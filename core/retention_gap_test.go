package core

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRetentionDropsWholePublisher: a publisher whose every announcement
// retention dropped before a FromNow subscriber's first poll, and which
// the subscriber therefore never met, is still reported as a gap with its
// full range (seen as a rare hang of conformance Protocol/Retention). Both
// with the dropped history readable and after it was reclaimed.
func TestRetentionDropsWholePublisher(t *testing.T) {
	for _, reclaim := range []bool{false, true} {
		t.Run(fmt.Sprintf("reclaimed=%v", reclaim), func(t *testing.T) {
			ctx := testCtx(t)
			st := newTrackStore()
			defer st.Close()
			opts := []Option{WithRetention(Retention{MaxMessages: 50}), WithFoldWindow(4)}
			if !reclaim {
				opts = append(opts, WithoutReclaim())
			}
			sc := newClient(t, st)
			sub, err := sc.Subscribe(ctx, "dropped", FromNow(), WithoutPush(), WithBuffer(1000))
			require.NoError(t, err)
			early := newClient(t, st, opts...)
			for i := range 5 {
				_, err := early.Publish(ctx, "dropped", fmt.Appendf(nil, "early %d", i))
				require.NoError(t, err)
			}
			late := newClient(t, st, opts...)
			for i := range 300 {
				_, err := late.Publish(ctx, "dropped", fmt.Appendf(nil, "late %d", i))
				require.NoError(t, err)
			}
			_, err = sc.Poll(ctx, "dropped")
			require.NoError(t, err)
			var gaps []Gap
			for len(sub.Gaps()) > 0 {
				gaps = append(gaps, <-sub.Gaps())
			}
			var early15 bool
			for _, g := range gaps {
				if g.Publisher == early.Identity().ID() {
					require.EqualValues(t, 1, g.From)
					require.EqualValues(t, 5, g.To)
					early15 = true
				}
			}
			require.True(t, early15, "the dropped publisher's messages were skipped silently; gaps: %+v", gaps)
		})
	}
}
