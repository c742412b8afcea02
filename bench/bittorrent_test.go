package bench

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bittorrent"
	"github.com/stickypub/stickypub/core"
)

// bittorrentNodes is the size of the loopback swarm of BenchmarkBittorrent.
const bittorrentNodes = 20

// BenchmarkBittorrent measures the protocol on a 20-node loopback BEP44
// swarm beside the raw put rate of the same swarm, in the same run:
//
//	publish/P=n  b.N core.Client.Publish calls of 100 bytes to one topic by
//	             n publishers, each with its own identity, client and
//	             store handle (its own DHT server), after every
//	             publisher's first publish at once (its registration on
//	             the topic, untimed: start-retries/pub); msgs/s and
//	             retries/msg of the steady state; then b.N raw
//	             CompareAndPuts of 100 bytes by the same n handles, each
//	             chaining writes on its own key: put-ops/s and x-put
//	             (publish rate / raw put rate; x-put-cold counts the
//	             registrations in: b.N+n publishes from a standing start)
//	publish-random/P=100  the same with incompressible payloads (the
//	             raw puts too)
//	get          b.N Gets of one 100-byte item from another handle than
//	             the writer's: p50-ms, p99-ms
//
// Publish at n publishers is bounded by the raw put rate: a message costs a
// head record (compare-and-put) and reading the head back, and a segment
// blob (create, a DHT walk and a round of puts) every few messages, when
// the segment the head carries is full (docs/protocol.md, "Open
// segments").
func BenchmarkBittorrent(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	sw, err := bittorrent.NewSwarm(ctx, bittorrentNodes, bittorrent.NodeOptions{WrapConn: guard})
	if err != nil {
		b.Fatal(err)
	}
	defer sw.Close()
	for _, p := range publisherCounts {
		b.Run(fmt.Sprintf("publish/P=%d", p), func(b *testing.B) {
			benchBittorrentPublish(b, sw, p, payload)
		})
	}
	// The same at 100 publishers with incompressible payloads: fewer
	// messages fit the segment a head carries (about seven), so segment
	// blobs are written more often than with the text-like payloads above.
	b.Run("publish-random/P=100", func(b *testing.B) {
		benchBittorrentPublish(b, sw, 100, randomPayload)
	})
	b.Run("get", func(b *testing.B) { benchBittorrentGet(b, sw) })
}

// guard wraps every socket of the benchmark so nothing leaves loopback.
func guard(pc net.PacketConn) net.PacketConn { return bittorrent.LoopbackOnly(pc) }

// quietLogger drops the adapter's warnings.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openBittorrent opens n handles on a fresh namespace of sw.
func openBittorrent(b *testing.B, sw *bittorrent.Swarm, n int) []*bittorrent.Store {
	b.Helper()
	_, ns, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]*bittorrent.Store, n)
	for i := range out {
		st, err := bittorrent.Open(benchCtx(b), bittorrent.Options{
			Bootstrap: sw.Addrs(), PrivateKey: ns, WrapConn: guard, Logger: quietLogger(),
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		out[i] = st
	}
	return out
}

func benchBittorrentPublish(b *testing.B, sw *bittorrent.Swarm, p int, payload func(w, i int) []byte) {
	ctx := benchCtx(b)
	stores := openBittorrent(b, sw, p)
	clients := make([]*core.Client, p)
	for i, st := range stores {
		id, err := core.GenerateIdentity()
		if err != nil {
			b.Fatal(err)
		}
		c, err := core.New(st, id)
		if err != nil {
			b.Fatal(err)
		}
		clients[i] = c
	}
	elapsed, warm := steadyPublish(b, ctx, clients)
	// The paired baseline: raw compare-and-puts through the same handles.
	d, err := timeWorkers(b.N, p, func(w, n int) error {
		key := fmt.Sprintf("raw/%d", w)
		var v backend.Version
		for i := range n {
			nv, err := stores[w].CompareAndPut(ctx, key, v, payload(w, i))
			if err != nil {
				return err
			}
			v = nv
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/d.Seconds(), "put-ops/s")
	b.ReportMetric(d.Seconds()/elapsed.Seconds(), "x-put")
	// Cold: the registrations counted in (b.N+p publishes from a standing start).
	b.ReportMetric(float64(b.N+p)/(warm+elapsed).Seconds()/(float64(b.N)/d.Seconds()), "x-put-cold")
	for _, c := range clients {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := c.Close(cctx); err != nil {
			b.Error(err)
		}
		cancel()
	}
}

func benchBittorrentGet(b *testing.B, sw *bittorrent.Swarm) {
	ctx := benchCtx(b)
	st := openBittorrent(b, sw, 2)
	if _, err := st[0].CompareAndPut(ctx, "get-bench", 0, payload(0, 0)); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := st[1].Get(ctx, "get-bench"); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
