package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stickypub/stickypub/core"
)

// Namespace prefixes every metric name.
const Namespace = "stickypub"

// Collector is a prometheus.Collector of sticky pub/sub metrics. It is
// safe for concurrent use.
type Collector struct {
	mu      sync.Mutex
	sources []statsSource

	counters  []statCounter
	active    *prometheus.Desc
	polling   *prometheus.Desc
	batches   prometheus.Counter
	batchSize prometheus.Histogram
	lag       prometheus.Histogram
	storeOps  *prometheus.HistogramVec
	conflicts *prometheus.CounterVec
	now       func() time.Time
}

type statsSource struct {
	name string
	fn   func() core.Stats
}

// statCounter is one counter read from core.Stats.
type statCounter struct {
	desc *prometheus.Desc
	get  func(core.Stats) uint64
}

// New returns a collector with no stats sources.
func New() *Collector {
	label := []string{"client"}
	counter := func(name, help string, get func(core.Stats) uint64) statCounter {
		return statCounter{prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, label, nil), get}
	}
	c := &Collector{
		counters: []statCounter{
			counter("published_messages_total", "Messages acknowledged to publishers.", func(s core.Stats) uint64 { return s.Published }),
			counter("delivered_messages_total", "Messages delivered to subscriptions.", func(s core.Stats) uint64 { return s.Received }),
			counter("failures_total", "Failed publish, subscribe and poll attempts.", func(s core.Stats) uint64 { return s.Failures }),
			counter("retries_total", "Retried store writes (coordinator races, transient errors).", func(s core.Stats) uint64 { return s.Retries }),
			counter("invalid_records_total", "Messages or records dropped by verification.", func(s core.Stats) uint64 { return s.Invalid }),
			counter("duplicates_total", "Messages suppressed as already delivered.", func(s core.Stats) uint64 { return s.Duplicates }),
			counter("expired_messages_total", "Messages skipped because their TTL passed.", func(s core.Stats) uint64 { return s.Expired }),
			counter("gaps_total", "Gaps (missing ranges of a publisher's messages) reported.", func(s core.Stats) uint64 { return s.Gaps }),
			counter("redelivered_messages_total", "Messages delivered again to a durable subscription after a restart.", func(s core.Stats) uint64 { return s.Redelivered }),
			counter("ack_writes_total", "Durable subscription positions stored by Ack.", func(s core.Stats) uint64 { return s.AckWrites }),
		},
		active:  prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "active_subscriptions"), "Subscriptions open.", label, nil),
		polling: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "polling"), "1 while background polling runs.", label, nil),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "publish_batches_total",
			Help: "Completed publish calls (Publish: 1 message, PublishBatch: several)."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "publish_batch_messages",
			Help: "Messages per completed publish call.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "subscription_lag_seconds",
			Help:    "Time from a message's publishing to its delivery to a subscription (history included).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12)}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "store_operation_duration_seconds",
			Help:    "Latency of store operations by backend, operation and result (ok, conflict, not_found, error).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 11)}, []string{"backend", "op", "result"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "store_conflicts_total",
			Help: "Compare-and-put attempts that lost to another write."}, []string{"backend"}),
		now: time.Now,
	}
	return c
}

// AddStats adds a source of client counters, exported with the label
// client=name. Use a client's Stats method, or a function summing several.
func (c *Collector) AddStats(name string, fn func() core.Stats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources = append(c.sources, statsSource{name, fn})
}

// EventHandler returns a core event handler that counts publish batches
// and observes subscription lag, then calls next (if not nil). Pass it
// with core.WithEventHandler.
func (c *Collector) EventHandler(next func(core.Event)) func(core.Event) {
	return func(ev core.Event) {
		switch ev.Kind {
		case core.EventPublished, core.EventBatchPublished:
			c.batches.Inc()
			c.batchSize.Observe(float64(max(ev.Count, 1)))
		case core.EventMessage:
			if ev.Message != nil {
				c.lag.Observe(max(c.now().Sub(ev.Message.Time).Seconds(), 0))
			}
		}
		if next != nil {
			next(ev)
		}
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range c.counters {
		ch <- s.desc
	}
	ch <- c.active
	ch <- c.polling
	c.batches.Describe(ch)
	c.batchSize.Describe(ch)
	c.lag.Describe(ch)
	c.storeOps.Describe(ch)
	c.conflicts.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sources := append([]statsSource(nil), c.sources...)
	c.mu.Unlock()
	for _, src := range sources {
		st := src.fn()
		for _, s := range c.counters {
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.CounterValue, float64(s.get(st)), src.name)
		}
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(st.ActiveSubscriptions), src.name)
		polling := 0.0
		if st.Polling {
			polling = 1
		}
		ch <- prometheus.MustNewConstMetric(c.polling, prometheus.GaugeValue, polling, src.name)
	}
	c.batches.Collect(ch)
	c.batchSize.Collect(ch)
	c.lag.Collect(ch)
	c.storeOps.Collect(ch)
	c.conflicts.Collect(ch)
}

// Handler serves the collector's metrics, with the Go runtime's and the
// process's, in the Prometheus exposition format, from a registry of its
// own.
func (c *Collector) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
