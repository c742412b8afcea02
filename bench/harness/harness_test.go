package harness

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/core"
)

func TestRunCountsEveryMessage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	space := memory.NewSpace(memory.Options{})
	var opened atomic.Int64
	var last atomic.Int64
	cfg := Config{
		Backend: "mem", Publishers: []int{1, 3}, Messages: 20,
		Open: func(context.Context) (backend.Store, error) { opened.Add(1); return space.Open(), nil },
		Progress: func(done, total int64) {
			if done > last.Load() {
				last.Store(done)
			}
			assert.Equal(t, int64(2*(1+3)*20), total)
		},
	}
	res, err := Run(ctx, cfg)
	require.NoError(t, err)
	require.Len(t, res, 2)
	assert.Equal(t, int64(4), opened.Load(), "one store handle per publisher")
	assert.Equal(t, Total(cfg), last.Load(), "progress reached the total")
	for i, p := range []int{1, 3} {
		r := res[i]
		assert.Equal(t, p, r.Publishers)
		assert.Equal(t, p*20, r.Messages)
		assert.Positive(t, r.MsgsPerSec)
		assert.Positive(t, r.BaselineWritesPerSec)
		assert.InDelta(t, r.MsgsPerSec/r.BaselineWritesPerSec, r.Ratio, 1e-9)
		assert.LessOrEqual(t, r.P50Ms, r.P99Ms)
	}
	// Every message is in its topic.
	id, err := core.GenerateIdentity()
	require.NoError(t, err)
	c, err := core.New(space.Open(), id)
	require.NoError(t, err)
	defer c.Close(ctx)
	for _, r := range res {
		in, err := c.Info(ctx, r.Topic)
		require.NoError(t, err)
		assert.Equal(t, uint64(r.Messages), in.Messages)
		assert.Len(t, in.Publishers, r.Publishers)
	}
	_, err = Run(ctx, Config{Open: cfg.Open, Publishers: []int{0}})
	assert.Error(t, err)
}
