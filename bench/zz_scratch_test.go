package bench

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/redis"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/redistest"
)

func TestScratchLatency(t *testing.T) {
	b := &testing.B{}
	_ = b
	srv := redistest.Require(t)
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, srv, prefix)
	for _, order := range orderings {
		st := openRedisPrefixT(t, srv, prefix+order.String())
		id, _ := core.GenerateIdentity()
		c, err := core.New(st, id, core.WithOrdering(order))
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		for i := 0; i < 5; i++ {
			s := time.Now()
			c.Publish(ctx, "x", []byte("hello"))
			t.Logf("%s publish %d: %v", order, i, time.Since(s))
		}
		s := time.Now()
		for i := 0; i < 200; i++ {
			c.Publish(ctx, "x", []byte("hello"))
		}
		t.Logf("%s avg: %v", order, time.Since(s)/200)
		s = time.Now()
		for i := 0; i < 200; i++ {
			st.Get(ctx, "zzz")
		}
		t.Logf("get avg: %v", time.Since(s)/200)
		_ = backend.ErrNotFound
	}
}

func openRedisPrefixT(t *testing.T, srv *redistest.Server, prefix string) backend.Store {
	s, err := redisOpenT(t, srv, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func redisOpenT(t *testing.T, srv *redistest.Server, prefix string) (backend.Store, error) {
	return redis.Open(t.Context(), redis.Options{Addrs: srv.Addrs, Prefix: prefix})
}

func TestScratchOps(t *testing.T) {
	srv := redistest.Require(t)
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, srv, prefix)
	st := openRedisPrefixT(t, srv, prefix)
	ctx := t.Context()
	val := make([]byte, 300)
	s := time.Now()
	for i := 0; i < 500; i++ {
		st.CompareAndPut(ctx, "blob"+string(rune(i)), 0, val)
	}
	t.Logf("create avg %v", time.Since(s)/500)
	var v backend.Version
	s = time.Now()
	for i := 0; i < 500; i++ {
		v, _ = st.CompareAndPut(ctx, "head", v, val)
	}
	t.Logf("cas avg %v", time.Since(s)/500)
	_, priv, _ := ed25519.GenerateKey(nil)
	s = time.Now()
	for i := 0; i < 500; i++ {
		ed25519.Sign(priv, val)
	}
	t.Logf("sign avg %v", time.Since(s)/500)
}

func TestScratchTen(t *testing.T) {
	srv := redistest.Require(t)
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, srv, prefix)
	ctx := t.Context()
	for _, p := range []int{1, 10, 100} {
		cs := make([]*core.Client, p)
		for i := range cs {
			id, _ := core.GenerateIdentity()
			cs[i], _ = core.New(openRedisPrefixT(t, srv, prefix), id, core.WithOrdering(core.PublisherOrder))
			cs[i].Publish(ctx, "ten", []byte("warm"))
		}
		d, _ := timeWorkers(3000, p, func(w, n int) error {
			for i := 0; i < n; i++ {
				if _, err := cs[w].Publish(ctx, "ten", payload(w, i)); err != nil {
					return err
				}
			}
			return nil
		})
		t.Logf("P=%d: %.0f msgs/s", p, 3000/d.Seconds())
	}
}
