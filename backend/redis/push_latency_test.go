package redis_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/redis"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/redistest"
)

// TestPushLatency measures, on the machine's Redis (REDIS_ADDR or
// 127.0.0.1:6379, shared: own prefix, keys deleted afterwards), how long a
// message takes from the return of Publish to its arrival on a push-driven
// subscription of another client in the same process. Messages are sent one
// at a time. Nothing is asserted about the numbers, except that no message
// may take more than 5 s: push and the 2 s safety poll must both have failed
// for that.
func TestPushLatency(t *testing.T) {
	const (
		warmup   = 5
		messages = 200
		limit    = 5 * time.Second
	)
	srv := redistest.External(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, srv, prefix)

	open := func() backend.Store {
		var (
			s   backend.Store
			err error
		)
		if srv.TLS != nil { // a rediss:// URI cannot carry an in-memory TLS config
			s, err = redis.Open(ctx, redis.Options{Addrs: srv.Addrs, Username: srv.Username,
				Password: srv.Password, DB: srv.DB, TLS: srv.TLS, Prefix: prefix})
		} else {
			u := url.URL{Scheme: redis.Scheme, Host: srv.Addr(), Path: "/" + strconv.Itoa(srv.DB),
				RawQuery: url.Values{"prefix": {prefix}}.Encode()}
			if srv.Username != "" || srv.Password != "" {
				u.User = url.UserPassword(srv.Username, srv.Password)
			}
			s, err = backend.Open(ctx, u.String())
		}
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	newClient := func(store backend.Store) *core.Client {
		id, err := core.GenerateIdentity()
		require.NoError(t, err)
		c, err := core.New(store, id)
		require.NoError(t, err)
		t.Cleanup(func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			_ = c.Close(cctx) // idempotent: the test closes it first
		})
		return c
	}
	topic := "push-latency-" + prefix[len(redistest.PrefixRoot):len(prefix)-1]
	pub, sub := newClient(open()), newClient(open())

	s, err := sub.Subscribe(ctx, topic) // FromNow, push (the defaults)
	require.NoError(t, err)
	type arrival struct {
		seq uint64
		at  time.Time
	}
	arrivals := make(chan arrival, messages+warmup)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for m := range s.Messages() {
			arrivals <- arrival{m.Seq, time.Now()}
		}
	}()

	var fromReturn, fromCall []time.Duration
	early := 0 // arrived before Publish returned
	for i := range warmup + messages {
		called := time.Now()
		r, err := pub.Publish(ctx, topic, fmt.Appendf(nil, "latency %d", i))
		require.NoError(t, err)
		returned := time.Now()
		var a arrival
		select {
		case a = <-arrivals:
		case <-time.After(limit):
			t.Fatalf("message %d (seq %d) not received %s after Publish returned", i, r.Seq, limit)
		}
		require.Equal(t, r.Seq, a.seq, "message %d arrived out of order", i)
		if i < warmup {
			continue
		}
		d := a.at.Sub(returned)
		if d < 0 {
			early++
			d = 0
		}
		fromReturn = append(fromReturn, d)
		fromCall = append(fromCall, a.at.Sub(called))
	}
	require.NoError(t, pub.Close(ctx))
	require.NoError(t, sub.Close(ctx))
	<-drained

	pct := func(ds []time.Duration, p float64) time.Duration {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		i := int(float64(len(ds))*p+0.999999) - 1
		return ds[max(0, min(i, len(ds)-1))].Round(time.Microsecond)
	}
	t.Logf("push latency on %s over %d sequential messages: publish-return -> received p50 %s p99 %s max %s "+
		"(%d arrived before Publish returned, counted as 0); publish-call -> received p50 %s p99 %s max %s",
		srv, len(fromReturn), pct(fromReturn, 0.50), pct(fromReturn, 0.99), pct(fromReturn, 1),
		early, pct(fromCall, 0.50), pct(fromCall, 0.99), pct(fromCall, 1))
}
