// Package metrics exports sticky pub/sub clients' statistics and store
// operation latencies as Prometheus metrics, so that package core keeps no
// dependency on Prometheus.
//
// A Collector reads the counters of one or more clients (core.Stats) when
// scraped, observes events (publish batches, subscription lag) through
// EventHandler, and times store operations through InstrumentStore:
//
//	col := metrics.New()
//	store = col.InstrumentStore(store, "redis")
//	client, _ := core.New(store, id, core.WithEventHandler(col.EventHandler(nil)))
//	col.AddStats("main", client.Stats)
//	http.Handle("/metrics", col.Handler())
package metrics
