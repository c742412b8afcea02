package libp2p

import (
	"context"
	"fmt"
	"sync"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio/pbio"
)

// Stream reuse. The serving side reads request after request on one
// stream (and resets it after a minute idle, or when a request fails, e.g.
// a refused put), so a stream that answered can carry the next request:
// that saves opening a stream and negotiating the protocol on it, most of
// the cost of a small request.
const (
	// maxIdleStreams bounds the idle streams kept per peer.
	maxIdleStreams = 16
	// streamIdleFor is how long an idle stream is kept; well under the
	// serving side's idle timeout (one minute).
	streamIdleFor = 20 * time.Second
)

// streamSender sends each DHT request on a stream of its own at a time:
// an idle one to the peer, or a new one. The library's sender keeps one
// stream per peer and holds a lock for each request's round trip, so one
// handle's concurrent operations queue behind each other on every peer;
// streams are cheap on an open (yamux) connection, and the serving side
// handles each in its own goroutine.
type streamSender struct {
	h      host.Host
	protos []protocol.ID

	mu   sync.Mutex
	idle map[peer.ID][]idleStream
}

type idleStream struct {
	s     network.Stream
	since time.Time
}

func newStreamSender(h host.Host, protos []protocol.ID) *streamSender {
	return &streamSender{h: h, protos: protos, idle: make(map[peer.ID][]idleStream)}
}

// take returns an idle stream to p, or nil.
func (s *streamSender) take(p peer.ID) network.Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.idle[p]
	for len(list) > 0 {
		e := list[len(list)-1]
		list = list[:len(list)-1]
		if time.Since(e.since) < streamIdleFor && !e.s.Conn().IsClosed() {
			s.setIdle(p, list)
			return e.s
		}
		// Too old (the other side may drop it any time), or its
		// connection closed (another one to p remains).
		_ = e.s.Reset()
	}
	s.setIdle(p, list)
	return nil
}

// setIdle stores p's idle list (caller holds mu).
func (s *streamSender) setIdle(p peer.ID, list []idleStream) {
	if len(list) == 0 {
		delete(s.idle, p)
		return
	}
	s.idle[p] = list
}

// release keeps st, which just completed a request, for the next one.
func (s *streamSender) release(p peer.ID, st network.Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.idle[p]) >= maxIdleStreams || s.h.Network().Connectedness(p) != network.Connected {
		_ = st.Close()
		return
	}
	_ = st.SetDeadline(time.Time{})
	s.idle[p] = append(s.idle[p], idleStream{s: st, since: time.Now()})
}

// open returns a stream to p (an idle one, else a new one), with ctx's
// deadline, and reports whether it was idle.
func (s *streamSender) open(ctx context.Context, p peer.ID) (st network.Stream, reused bool, err error) {
	if st = s.take(p); st != nil {
		reused = true
	} else if st, err = s.h.NewStream(ctx, p, s.protos...); err != nil {
		return nil, false, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	return st, reused, nil
}

// SendRequest implements pb.MessageSender. A stream whose request failed
// (the serving side resets it when it refuses a request) is reset, never
// reused. Idle streams are not dropped by the serving side before
// streamIdleFor, and streams of a closed connection are not taken, so a
// request on a reused stream fails as it would on a new one; one that
// could not even be written is sent again on a new stream.
func (s *streamSender) SendRequest(ctx context.Context, p peer.ID, pmes *pb.Message) (*pb.Message, error) {
	st, reused, err := s.open(ctx, p)
	if err != nil {
		return nil, err
	}
	resp, sent, reusable, err := exchange(ctx, st, pmes)
	if err != nil && !sent && reused && ctx.Err() == nil {
		// The idle stream was dead before the request left: the other
		// side never saw it. Once more on a new stream.
		if st, err = s.h.NewStream(ctx, p, s.protos...); err != nil {
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = st.SetDeadline(dl)
		}
		resp, _, reusable, err = exchange(ctx, st, pmes)
	}
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	if reusable {
		s.release(p, st)
	}
	return resp, nil
}

// exchange is one request on st. st is reset when ctx ends first or the
// request fails; reusable reports that it was not (it may carry the next
// request); sent that the request was written.
func exchange(ctx context.Context, st network.Stream, pmes *pb.Message) (resp *pb.Message, sent, reusable bool, err error) {
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	resp, sent, err = roundTrip(st, pmes)
	stopped := stop() // false: the reset ran or is running
	if err != nil {
		_ = st.Reset()
		return nil, sent, false, err
	}
	return resp, sent, stopped, nil
}

// roundTrip writes pmes on st and reads the answer; sent reports whether
// the request was written.
func roundTrip(st network.Stream, pmes *pb.Message) (resp *pb.Message, sent bool, err error) {
	if err := pbio.NewDelimitedWriter(st).WriteMsg(pmes); err != nil {
		return nil, false, err
	}
	resp = new(pb.Message)
	if err := pbio.NewDelimitedReader(st, network.MessageSizeMax).ReadMsg(resp); err != nil {
		return nil, true, err
	}
	return resp, true, nil
}

// SendMessage implements pb.MessageSender: a one-way message, on a new
// stream that is closed after it.
func (s *streamSender) SendMessage(ctx context.Context, p peer.ID, pmes *pb.Message) error {
	st, err := s.h.NewStream(ctx, p, s.protos...)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	if err := pbio.NewDelimitedWriter(st).WriteMsg(pmes); err != nil {
		_ = st.Reset()
		return ctxErr(ctx, err)
	}
	return st.Close()
}

// close resets every idle stream.
func (s *streamSender) close() {
	s.mu.Lock()
	idle := s.idle
	s.idle = make(map[peer.ID][]idleStream)
	s.mu.Unlock()
	for _, list := range idle {
		for _, e := range list {
			_ = e.s.Reset()
		}
	}
}

// OnDisconnect implements pb.MessageSenderWithDisconnect: p's idle
// streams went with the connection.
func (s *streamSender) OnDisconnect(_ context.Context, p peer.ID) {
	s.mu.Lock()
	list := s.idle[p]
	delete(s.idle, p)
	s.mu.Unlock()
	for _, e := range list {
		_ = e.s.Reset()
	}
}

// ctxErr prefers the context's error (a reset by the AfterFunc above).
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
