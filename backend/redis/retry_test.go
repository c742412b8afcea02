package redis

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/redistest"
)

// replyDropper is a TCP proxy to a Redis server that, while armed, lets
// the next script call (EVALSHA/EVAL) through to the server but drops its
// reply and the client's connection: the write happens and the client
// cannot know.
type replyDropper struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	drops  atomic.Int32
	wg     sync.WaitGroup
}

func newReplyDropper(t *testing.T, target string) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &replyDropper{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *replyDropper) addr() string { return p.ln.Addr().String() }

func (p *replyDropper) serve() {
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
		var drop atomic.Bool
		p.wg.Add(2)
		go func() { // client -> server
			defer p.wg.Done()
			defer s.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					low := bytes.ToLower(buf[:n])
					if bytes.Contains(low, []byte("eval")) && p.armed.CompareAndSwap(true, false) {
						drop.Store(true)
					}
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
				if n > 0 && drop.Load() {
					p.drops.Add(1)
					return // the reply is lost with the connection
				}
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

func TestLostReplyIsRetriedIdempotently(t *testing.T) {
	srv := redistest.StartLocal(t, redistest.LocalOptions{}).Server()
	proxy := newReplyDropper(t, srv.Addr())
	via := &redistest.Server{Addrs: []string{proxy.addr()}, Source: "proxy"}
	ctx := testCtx(t)

	// go-redis retries the script after the lost reply; the script
	// recognises its own write and reports it as done, not as a conflict.
	s := openStore(t, via)
	proxy.armed.Store(true)
	v, err := s.CompareAndPut(ctx, "k", 0, []byte("once"))
	require.NoError(t, err)
	require.Equal(t, int32(1), proxy.drops.Load(), "the reply was dropped")
	require.Equal(t, backend.Version(1), v, "written exactly once")
	e, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, backend.Entry{Value: []byte("once"), Version: 1}, e)

	proxy.armed.Store(true)
	require.NoError(t, s.Delete(ctx, "k", 1), "a retried delete is not NotFound")
	require.Equal(t, int32(2), proxy.drops.Load())

	// Without retries the outcome is unknown to the caller: the error says
	// unavailable although the write happened. This is the documented
	// ambiguity of any network store.
	s2 := openStore(t, via, func(o *Options) { o.MaxRetries = -1; o.Prefix = s.Prefix() })
	proxy.armed.Store(true)
	_, err = s2.CompareAndPut(ctx, "k", 0, []byte("maybe"))
	require.ErrorIs(t, err, backend.ErrUnavailable)
	require.ErrorIs(t, err, ErrOutcomeUnknown, "the error says the write may have landed")
	e, err = s2.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "maybe", string(e.Value))
}
