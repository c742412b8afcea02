package metrics

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/core"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scrape reads the handler's metrics as a real scraper does.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// value returns the counter, gauge or histogram count of the metric with
// the given labels (name=value pairs), or -1 when it is absent.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	sum, found := 0.0, false
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			ok := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					ok = true
				}
			}
			if !ok {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	if !found {
		return -1
	}
	return sum
}

func TestScrapeCountersMoveWithTraffic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	col := New()
	mem := memory.New()
	defer mem.Close()
	store := col.InstrumentStore(mem, "mem")
	newClient := func(name string) *core.Client {
		id, err := core.GenerateIdentity()
		require.NoError(t, err)
		c, err := core.New(store, id, core.WithEventHandler(col.EventHandler(nil)))
		require.NoError(t, err)
		col.AddStats(name, c.Stats)
		return c
	}
	pub, sub := newClient("pub"), newClient("sub")
	defer func() { require.NoError(t, pub.Close(ctx)); require.NoError(t, sub.Close(ctx)) }()
	srv := httptest.NewServer(col.Handler())
	defer srv.Close()

	before := scrape(t, srv.URL)
	assert.Equal(t, 0.0, value(before, "stickypub_published_messages_total", "client", "pub"))
	assert.Equal(t, 0.0, value(before, "stickypub_delivered_messages_total", "client", "sub"))
	assert.Equal(t, 0.0, value(before, "stickypub_publish_batches_total"))

	// Real traffic: 5 single publishes, one batch of 5, a subscriber
	// reading the history, and one lost compare-and-put.
	for i := range 5 {
		_, err := pub.Publish(ctx, "m", fmt.Appendf(nil, "single %d", i))
		require.NoError(t, err)
	}
	_, err := pub.PublishBatch(ctx, "m", [][]byte{[]byte("b0"), []byte("b1"), []byte("b2"), []byte("b3"), []byte("b4")})
	require.NoError(t, err)
	s, err := sub.Subscribe(ctx, "m", core.FromStart())
	require.NoError(t, err)
	for range 10 {
		select {
		case <-s.Messages():
		case <-ctx.Done():
			t.Fatal("history not delivered")
		}
	}
	_, err = store.CompareAndPut(ctx, "metrics-test/conflict", 0, []byte("a"))
	require.NoError(t, err)
	_, err = store.CompareAndPut(ctx, "metrics-test/conflict", 0, []byte("b"))
	require.ErrorIs(t, err, backend.ErrConflict)

	// The lag is observed from the delivery event, which the delivering
	// goroutine emits just after handing the message over: wait for it.
	var after map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		after = scrape(t, srv.URL)
		return value(after, "stickypub_subscription_lag_seconds") >= 10
	}, 10*time.Second, 5*time.Millisecond, "one lag sample per delivery")
	assert.Equal(t, 10.0, value(after, "stickypub_published_messages_total", "client", "pub"))
	assert.Equal(t, 10.0, value(after, "stickypub_delivered_messages_total", "client", "sub"))
	assert.Equal(t, 0.0, value(after, "stickypub_delivered_messages_total", "client", "pub"))
	assert.Equal(t, 6.0, value(after, "stickypub_publish_batches_total"))
	assert.Equal(t, 6.0, value(after, "stickypub_publish_batch_messages"), "histogram count")
	assert.Equal(t, 10.0, value(after, "stickypub_subscription_lag_seconds"), "one lag sample per delivery")
	assert.Equal(t, 1.0, value(after, "stickypub_active_subscriptions", "client", "sub"))
	assert.Equal(t, 1.0, value(after, "stickypub_store_conflicts_total", "backend", "mem"))
	assert.Equal(t, 1.0, value(after, "stickypub_store_operation_duration_seconds", "op", "compare_and_put", "result", "conflict"))
	assert.Equal(t, 6.0, value(after, "stickypub_store_operation_duration_seconds", "op", "update_with", "result", "ok"),
		"each publish batch is one atomic step: segment, head and announcement (memory is a Batcher)")
	assert.Greater(t, value(after, "stickypub_store_operation_duration_seconds", "op", "compare_and_put", "result", "ok"), 0.0,
		"the test key")
	assert.Greater(t, value(after, "stickypub_store_operation_duration_seconds", "op", "get"), 0.0)
	assert.Greater(t, value(after, "stickypub_store_operation_duration_seconds", "op", "update"), 0.0,
		"memory's engine-side updates (the subscription's registration)")
	assert.Equal(t, 0.0, value(after, "stickypub_gaps_total", "client", "sub"))
	assert.Greater(t, value(after, "go_goroutines"), 0.0, "runtime metrics are served too")
}

// TestInstrumentStoreKeepsInterfaces: the wrapper has exactly the optional
// interfaces of the store it wraps (push delivery and engine-side updates
// depend on them).
func TestInstrumentStoreKeepsInterfaces(t *testing.T) {
	col := New()
	mem := memory.New()
	defer mem.Close()
	type onlyStore struct{ backend.Store }
	type redisLike struct { // the optional interfaces of the Redis adapter
		backend.Store
		backend.Watcher
		backend.Deleter
		backend.Batcher
		backend.Lister
	}
	type noBatchLike struct { // Redis's set without Batcher
		backend.Store
		backend.Watcher
		backend.Deleter
		backend.Lister
	}
	for _, s := range []backend.Store{mem, onlyStore{mem}, redisLike{mem, mem, mem, mem, mem}, noBatchLike{mem, mem, mem, mem}} {
		w := col.InstrumentStore(s, "x")
		_, w1 := s.(backend.Watcher)
		_, w2 := w.(backend.Watcher)
		_, u1 := s.(backend.Updater)
		_, u2 := w.(backend.Updater)
		_, d1 := s.(backend.Deleter)
		_, d2 := w.(backend.Deleter)
		_, b1 := s.(backend.Batcher)
		_, b2 := w.(backend.Batcher)
		_, l1 := s.(backend.Lister)
		_, l2 := w.(backend.Lister)
		assert.Equal(t, [5]bool{w1, u1, d1, b1, l1}, [5]bool{w2, u2, d2, b2, l2})
	}
	_, isW := col.InstrumentStore(mem, "x").(backend.Watcher)
	assert.True(t, isW)
}
