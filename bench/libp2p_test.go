package bench

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend/libp2p"
	"github.com/stickypub/stickypub/core"
)

// libp2pNodes is the size of the benchmark swarm.
const libp2pNodes = 20

// BenchmarkLibp2p measures the protocol on a 20-node loopback libp2p
// Kademlia swarm (one swarm for the whole benchmark, in this process)
// beside the library's own put rate, in the same run:
//
//	publish/P=n   b.N core.Client.Publish calls of 100 bytes to one topic
//	              by n publishers, each with its own identity, client and
//	              store handle (its own libp2p client node), after every
//	              publisher's first publish at once (its registration on
//	              the topic, untimed: start-retries/pub); msgs/s and
//	              retries/msg of the steady state; then b.N library
//	              PutValue calls (lookup + put to the k=20 closest, as
//	              IPFS does) of fresh 100-byte records from the same n
//	              handles: dhtput-ops/s and x-dhtput (publish rate /
//	              PutValue rate; x-dhtput-cold counts the registrations
//	              in: b.N+n publishes from a standing start); and b.N
//	              single PUT_VALUE requests to one peer each (the raw
//	              per-peer rate): peerput-ops/s
//	get           b.N Store.Get of existing keys from one handle, one at
//	              a time: p50-ms, p99-ms
func BenchmarkLibp2p(b *testing.B) {
	ctx := benchCtx(b)
	sw, err := libp2p.NewSwarm(ctx, libp2p.SwarmOptions{Network: fmt.Sprintf("bench-%d", time.Now().UnixNano()), Nodes: libp2pNodes})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sw.Close() })
	opts := sw.Options()
	for _, p := range publisherCounts {
		b.Run(fmt.Sprintf("publish/P=%d", p), func(b *testing.B) {
			benchLibp2pPublish(b, opts, p)
		})
	}
	b.Run("get", func(b *testing.B) { benchLibp2pGet(b, opts) })
}

// openLibp2p opens n handles (in parallel) under one fresh key prefix.
func openLibp2p(b *testing.B, opts libp2p.Options, n int) []*libp2p.Store {
	b.Helper()
	ctx := benchCtx(b)
	opts.Prefix = fmt.Sprintf("b%d", time.Now().UnixNano())
	stores := make([]*libp2p.Store, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			stores[i], errs[i] = libp2p.Open(ctx, opts)
		})
	}
	wg.Wait()
	b.Cleanup(func() {
		for _, s := range stores {
			if s != nil {
				_ = s.Close()
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return stores
}

func benchLibp2pPublish(b *testing.B, opts libp2p.Options, p int) {
	ctx := benchCtx(b)
	stores := openLibp2p(b, opts, p)
	clients := make([]*core.Client, p)
	for i, s := range stores {
		id, err := core.GenerateIdentity()
		if err != nil {
			b.Fatal(err)
		}
		if clients[i], err = core.New(s, id); err != nil {
			b.Fatal(err)
		}
	}
	elapsed, warm := steadyPublish(b, ctx, clients)

	// The library's PutValue from the same handles, fresh keys.
	value := libp2p.CreateRecord(payload(0, 0))
	d, err := timeWorkers(b.N, p, func(w, n int) error {
		s := stores[w]
		for i := range n {
			if err := s.DHT().PutValue(ctx, s.RecordKey(fmt.Sprintf("raw/%d/%d", w, i)), value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/d.Seconds(), "dhtput-ops/s")
	b.ReportMetric(d.Seconds()/elapsed.Seconds(), "x-dhtput")
	// Cold: the registrations (every publisher's first publish, at once)
	// counted in, as a run of b.N+p publishes from a standing start.
	b.ReportMetric(float64(b.N+p)/(warm+elapsed).Seconds()/(float64(b.N)/d.Seconds()), "x-dhtput-cold")

	// One PUT_VALUE request to one peer per operation.
	d, err = timeWorkers(b.N, p, func(w, n int) error {
		s := stores[w]
		for i := range n {
			if err := s.PutToOnePeer(ctx, fmt.Sprintf("peer/%d/%d", w, i), value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/d.Seconds(), "peerput-ops/s")

	// Every publish must be readable: a late subscriber gets all of them.
	sub, err := clients[0].Subscribe(ctx, benchTopic, core.FromStart(), core.WithBuffer(b.N+1024), core.WithoutPush())
	if err != nil {
		b.Fatal(err)
	}
	got := 0
	for got < b.N+p { // the warm-up's p messages too
		if _, err := clients[0].Poll(ctx, benchTopic); err != nil && ctx.Err() != nil {
			b.Fatalf("late subscriber got %d of %d messages: %v", got, b.N+p, err)
		}
	drain:
		for {
			select {
			case <-sub.Messages():
				got++
			default:
				break drain
			}
		}
	}
	for _, c := range clients {
		_ = c.Close(ctx)
	}
}

func benchLibp2pGet(b *testing.B, opts libp2p.Options) {
	ctx := benchCtx(b)
	s := openLibp2p(b, opts, 1)[0]
	const keys = 100
	for i := range keys {
		if _, err := s.CompareAndPut(ctx, fmt.Sprintf("get/%d", i), 0, payload(0, i)); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := s.Get(ctx, fmt.Sprintf("get/%d", i%keys)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
