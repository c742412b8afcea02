package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickypub/stickypub/backend/redis"
	"github.com/stickypub/stickypub/internal/redistest"
)

// openRedis opens a Store on srv under a fresh key prefix; the store is
// closed and every key under the prefix deleted when the run ends.
// pipelines is redis.Options.Pipelines (0: the default, -1: off).
func openRedis(b *testing.B, srv *redistest.Server, pipelines int) *redis.Store {
	b.Helper()
	prefix := redistest.Prefix(b)
	redistest.CleanupPrefix(b, srv, prefix) // runs after the Close below
	s, err := redis.Open(benchCtx(b), redis.Options{
		Addrs: srv.Addrs, Cluster: srv.Cluster, Username: srv.Username, Password: srv.Password,
		DB: srv.DB, TLS: srv.TLS, Prefix: prefix, DialTimeout: 2 * time.Second,
		Pipelines: pipelines,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// pipelinesOff names a Redis store without auto-pipelining.
var pipelinesOff = struct {
	suffix    string
	pipelines int
}{",pipelines=off", -1}

// redisPipelines are the store settings the publish benchmarks run with:
// the default, then without pipelining.
var redisPipelines = []struct {
	suffix    string
	pipelines int
}{{"", 0}, pipelinesOff}

// BenchmarkRedis measures protocol publishes on Redis beside Redis Streams
// XADD and raw compare-and-put, in the same run on the same server (the one
// redistest.Require finds: REDIS_ADDR, else a private redis-server started
// for the run). Every run works under its own key prefix and deletes its
// keys afterwards.
//
//	publish=MODE/P=n  b.N core.Client.Publish calls of 100 bytes to one
//	                  topic by n goroutines (see publishModes); msgs/s,
//	                  retries/msg; then b.N XADDs by n goroutines as in
//	                  XADD/P=n: xadd-ops/s and x-xadd (publish rate / XADD
//	                  rate)
//	XADD/P=n          b.N XADDs of a 100-byte field to one stream by n
//	                  goroutines sharing the store's go-redis client; msgs/s
//	CAS=distinct/P=n  b.N raw CompareAndPut of 100 bytes by n goroutines,
//	                  each chaining writes on its own key; writes/s
//	...,pipelines=off the same through a store without auto-pipelining
//	                  (redis.Options.Pipelines -1: one round trip per call,
//	                  the adapter before issue 11)
func BenchmarkRedis(b *testing.B) {
	srv := redistest.Require(b)
	b.Logf("redis: %s", srv)
	for _, mode := range publishModes {
		for _, pl := range redisPipelines {
			for _, p := range publisherCounts {
				b.Run(fmt.Sprintf("publish=%s%s/P=%d", mode, pl.suffix, p), func(b *testing.B) {
					s := openRedis(b, srv, pl.pipelines)
					benchPublish(b, s, mode, p, publishExtras{
						baseline:     xaddOp(b, s.Client(), s.RedisKey("paired-stream")),
						baselineName: "xadd",
					})
				})
			}
		}
	}
	for _, p := range publisherCounts {
		b.Run(fmt.Sprintf("XADD/P=%d", p), func(b *testing.B) {
			s := openRedis(b, srv, 0)
			benchXAdd(b, s.Client(), s.RedisKey("xadd-stream"), p)
		})
	}
	for _, p := range publisherCounts {
		b.Run(fmt.Sprintf("CAS=distinct/P=%d", p), func(b *testing.B) {
			benchCAS(b, openRedis(b, srv, 0), p, false)
		})
		b.Run(fmt.Sprintf("CAS=distinct%s/P=%d", pipelinesOff.suffix, p), func(b *testing.B) {
			benchCAS(b, openRedis(b, srv, pipelinesOff.pipelines), p, false)
		})
	}
}

// benchXAdd runs b.N XADDs of one payloadSize-byte field to stream from p
// goroutines on client, and deletes the stream afterwards.
func benchXAdd(b *testing.B, client goredis.UniversalClient, stream string, p int) {
	ctx := benchCtx(b)
	add := xaddOp(b, client, stream)
	runWorkers(b, p, "msgs/s", func(w, n int) error {
		for i := range n {
			if err := add(ctx, w, i); err != nil {
				return err
			}
		}
		return nil
	})
}

// xaddOp returns a baseline operation: XADD of payload(w, i) as one field
// to stream (no MAXLEN) on client. The stream is deleted when the run ends.
func xaddOp(b *testing.B, client goredis.UniversalClient, stream string) func(ctx context.Context, w, i int) error {
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = client.Del(ctx, stream).Err()
	})
	return func(ctx context.Context, w, i int) error {
		return client.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"v", payload(w, i)}}).Err()
	}
}
