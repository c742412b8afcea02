package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/redistest"
)

// snapshot returns the batcher's counters and state.
func (b *batcher) snapshot() (st batchStats, busy, queued int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.queue {
		if c.state == callQueued {
			queued++
		}
	}
	return b.stats, b.busy, queued
}

// waitBatcher waits until cond holds for the batcher's state.
func waitBatcher(t *testing.T, b *batcher, what string, cond func(busy, queued int) bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, busy, queued := b.snapshot()
		return cond(busy, queued)
	}, 20*time.Second, time.Millisecond, what)
}

// TestPipelinedWritersLoseNothing runs 100 goroutines against one Store:
// each chains writes on its own key, reads them back, and increments one
// shared counter with compare-and-put. Every write must land exactly once
// and every reply must be the caller's own, while the calls really share
// pipelines.
func TestPipelinedWritersLoseNothing(t *testing.T) {
	for _, srvKind := range []string{"single", "cluster"} {
		t.Run(srvKind, func(t *testing.T) {
			var srv *redistest.Server
			if srvKind == "single" {
				srv = redistest.Require(t)
			} else {
				srv = redistest.StartCluster(t, redistest.LocalOptions{}).Server()
			}
			s := openStore(t, srv, func(o *Options) { o.Pipelines = 2 })
			require.NotNil(t, s.batch)
			ctx := testCtx(t)
			const writers, each = 100, 10
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- pipelinedWriter(ctx, s, w, each)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			e, err := s.Get(ctx, "counter")
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprint(writers*each), string(e.Value))
			assert.Equal(t, backend.Version(writers*each), e.Version, "one version per increment: no write applied twice")
			// The loop decrements busy just after handing out the last
			// replies.
			waitBatcher(t, s.batch, "idle", func(busy, queued int) bool { return busy == 0 && queued == 0 })
			st, _, _ := s.batch.snapshot()
			t.Logf("%+v", st)
			assert.Greater(t, st.largest, 1, "calls shared a pipeline")
			assert.Greater(t, st.piped, st.pipelines, "pipelines carried several calls on average")
		})
	}
}

// pipelinedWriter is one writer of TestPipelinedWritersLoseNothing.
func pipelinedWriter(ctx context.Context, s *Store, w, each int) error {
	key := fmt.Sprintf("own/%d", w)
	var v backend.Version
	for i := range each {
		val := fmt.Sprintf("w%d-%d", w, i)
		nv, err := s.CompareAndPut(ctx, key, v, []byte(val))
		if err != nil {
			return fmt.Errorf("writer %d put %d: %w", w, i, err)
		}
		if nv != v+1 {
			return fmt.Errorf("writer %d: version %d after %d", w, nv, v)
		}
		v = nv
		e, err := s.Get(ctx, key)
		if err != nil {
			return err
		}
		if e.Version != v || string(e.Value) != val {
			return fmt.Errorf("writer %d read %d %q, wrote %d %q", w, e.Version, e.Value, v, val)
		}
		// One increment of the shared counter.
		var expect backend.Version
		n := 0
		for {
			_, err := s.CompareAndPut(ctx, "counter", expect, []byte(fmt.Sprint(n+1)))
			if err == nil {
				break
			}
			cur, ok := backend.CurrentEntry(err)
			if !errors.Is(err, backend.ErrConflict) || !ok {
				return err
			}
			expect = cur.Version
			if cur.Version != 0 {
				if _, err := fmt.Sscan(string(cur.Value), &n); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// TestPipelineResendsLostScripts sends pipelines of writes after SCRIPT
// FLUSH (what a restart does to the script cache): every EVALSHA gets
// NOSCRIPT and is sent again as EVAL, with each call's own result; on a
// cluster, on every master.
func TestPipelineResendsLostScripts(t *testing.T) {
	for _, srvKind := range []string{"single", "cluster"} {
		t.Run(srvKind, func(t *testing.T) {
			var srv *redistest.Server
			var nodes []string
			if srvKind == "single" {
				srv = redistest.StartLocal(t, redistest.LocalOptions{}).Server()
				nodes = srv.Addrs
			} else {
				c := redistest.StartCluster(t, redistest.LocalOptions{})
				srv, nodes = c.Server(), c.Addrs
			}
			s := openStore(t, srv)
			ctx := testCtx(t)
			flush := func() {
				for _, addr := range nodes {
					node := (&redistest.Server{Addrs: []string{addr}}).Client(t)
					require.NoError(t, node.ScriptFlush(ctx).Err())
				}
			}
			mustPut(t, s, "other", 0, "o")
			const n = 30
			calls := func(round int) []*call {
				cs := make([]*call, n)
				for i := range cs {
					key := fmt.Sprintf("k%d", i)
					expect := "0"
					if round > 0 {
						expect = fmt.Sprint(round)
					}
					tok := fmt.Sprintf("tok-%d-%d", round, i)
					cs[i] = &call{write: true, rkey: s.RedisKey(key), done: make(chan struct{}),
						args: []any{"put", expect, tok, "", fmt.Sprintf("v%d", round)}}
				}
				// A read: reads ride the same pipelines.
				cs = append(cs, &call{rkey: s.RedisKey("other"), done: make(chan struct{})})
				return cs
			}
			for round := range 2 {
				flush()
				batch := calls(round)
				s.batch.send(batch)
				for i, c := range batch[:n] {
					<-c.done
					res, err := c.cmd.(*goredis.Cmd).Result()
					require.NoError(t, err, "call %d", i)
					r, err := parseWriteReply(res)
					require.NoError(t, err)
					require.Equal(t, writeReply{outcome: outcomeDone, version: backend.Version(round + 1)}, r, "call %d", i)
				}
				m, err := batch[n].cmd.(*goredis.MapStringStringCmd).Result()
				require.NoError(t, err)
				require.Equal(t, "o", m["d"])
			}
			st, _, _ := s.batch.snapshot()
			require.Equal(t, int64(2*n), st.noScript, "every script of both rounds was resent as EVAL")
			for i := range n {
				e, err := s.Get(ctx, fmt.Sprintf("k%d", i))
				require.NoError(t, err)
				require.Equal(t, backend.Entry{Value: []byte("v1"), Version: 2}, e)
			}
		})
	}
}

// gateProxy is a TCP proxy to a Redis server that, while closed, holds
// what clients send (the bytes have left the client, the server has not
// seen them) and forwards it when opened.
type gateProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cond  sync.Cond
	open  bool
	conns []net.Conn
	wg    sync.WaitGroup
}

func newGateProxy(t *testing.T, target string) *gateProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &gateProxy{ln: ln, target: target, open: true}
	p.cond.L = &p.mu
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		p.set(true)
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *gateProxy) addr() string { return p.ln.Addr().String() }

// set opens or closes the gate.
func (p *gateProxy) set(open bool) {
	p.mu.Lock()
	p.open = open
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *gateProxy) waitOpen() {
	p.mu.Lock()
	for !p.open {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

func (p *gateProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { // client -> server, through the gate
			defer p.wg.Done()
			defer s.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					p.waitOpen()
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // server -> client
			defer p.wg.Done()
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// result is what a background call returned.
type result struct {
	v   backend.Version
	err error
}

// putAsync runs CompareAndPut(key, 0, key) in the background.
func putAsync(ctx context.Context, s *Store, key string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		v, err := s.CompareAndPut(ctx, key, 0, []byte(key))
		ch <- result{v, err}
	}()
	return ch
}

// TestCancelledCallsSayWhetherTheyWereSent holds every command in a proxy
// (sent by the client, not yet seen by the server) to pin calls in each
// state: the direct call of an idle store and a call inside a pipeline are
// sent, so when their contexts end their errors match ErrOutcomeUnknown,
// and both writes do land once the proxy lets them through; a call still in
// the queue when its context ends, or when the store closes, is never sent
// and its error says so.
func TestCancelledCallsSayWhetherTheyWereSent(t *testing.T) {
	srv := redistest.StartLocal(t, redistest.LocalOptions{}).Server()
	proxy := newGateProxy(t, srv.Addr())
	via := &redistest.Server{Addrs: []string{proxy.addr()}, Source: "gate proxy"}
	slow := func(o *Options) {
		o.Pipelines = 1
		o.MaxRetries = -1 // one attempt: the test counts what was sent
		o.ReadTimeout = testTimeout
	}
	s := openStore(t, via, slow)
	ctx := testCtx(t)
	mustPut(t, s, "warm", 0, "x") // the script is loaded

	proxy.set(false)
	ctxA, cancelA := context.WithTimeout(ctx, 5*time.Second)
	defer cancelA()
	a := putAsync(ctxA, s, "a") // the store is idle: sent directly
	waitBatcher(t, s.batch, "a in flight", func(busy, queued int) bool { return busy == 1 })

	ctxB, cancelB := context.WithCancel(ctx)
	b := putAsync(ctxB, s, "b") // queued, taken by the one writer loop
	waitBatcher(t, s.batch, "b in a pipeline", func(busy, queued int) bool { return busy == 2 && queued == 0 })

	ctxC, cancelC := context.WithCancel(ctx)
	c := putAsync(ctxC, s, "c") // queued behind the busy loop
	waitBatcher(t, s.batch, "c queued", func(busy, queued int) bool { return queued == 1 })

	cancelC()
	rc := <-c
	require.ErrorIs(t, rc.err, context.Canceled)
	require.NotErrorIs(t, rc.err, ErrOutcomeUnknown, "c never left the queue")
	require.Contains(t, rc.err.Error(), "not sent")
	t.Logf("queued, cancelled: %v", rc.err)

	cancelB()
	rb := <-b
	require.ErrorIs(t, rb.err, context.Canceled)
	require.ErrorIs(t, rb.err, ErrOutcomeUnknown, "b was in a pipeline")
	t.Logf("pipelined, cancelled: %v", rb.err)

	ra := <-a // its deadline passes while the proxy holds it
	require.ErrorIs(t, ra.err, context.DeadlineExceeded)
	require.ErrorIs(t, ra.err, ErrOutcomeUnknown, "a was sent")
	t.Logf("direct, deadline: %v", ra.err)

	d := putAsync(ctx, s, "d") // queued behind b's pipeline, then the store closes
	waitBatcher(t, s.batch, "d queued", func(busy, queued int) bool { return queued == 1 })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	rd := <-d
	require.ErrorIs(t, rd.err, backend.ErrClosed)
	require.NotErrorIs(t, rd.err, ErrOutcomeUnknown)
	require.Contains(t, rd.err.Error(), "not sent")

	proxy.set(true)
	require.NoError(t, <-closed)

	// What was sent landed; what was not, did not.
	check, err := Open(ctx, optionsFor(srv, s.Prefix()))
	require.NoError(t, err)
	defer check.Close()
	for key, landed := range map[string]bool{"a": true, "b": true, "c": false, "d": false} {
		require.Eventually(t, func() bool {
			_, err := check.Get(ctx, key)
			return landed == (err == nil)
		}, 10*time.Second, 10*time.Millisecond, "%s landed: want %v", key, landed)
	}
	for _, key := range []string{"c", "d"} {
		_, err := check.Get(ctx, key)
		require.ErrorIs(t, err, backend.ErrNotFound, key)
	}
}

// TestUnpipelinedCancelledWriteMayHaveLanded is the same check on the path
// without pipelining (Options.Pipelines -1).
func TestUnpipelinedCancelledWriteMayHaveLanded(t *testing.T) {
	srv := redistest.StartLocal(t, redistest.LocalOptions{}).Server()
	proxy := newGateProxy(t, srv.Addr())
	via := &redistest.Server{Addrs: []string{proxy.addr()}, Source: "gate proxy"}
	s := openStore(t, via, func(o *Options) { o.Pipelines = -1; o.MaxRetries = -1; o.ReadTimeout = testTimeout })
	require.Nil(t, s.batch)
	ctx := testCtx(t)
	mustPut(t, s, "warm", 0, "x")

	proxy.set(false)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err := s.CompareAndPut(short, "a", 0, []byte("a"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, ErrOutcomeUnknown)
	proxy.set(true)
	require.Eventually(t, func() bool {
		_, err := s.Get(ctx, "a")
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "the write was sent and lands")
}
