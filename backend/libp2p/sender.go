package libp2p

import (
	"context"
	"fmt"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio/pbio"
)

// streamSender sends each DHT request on a stream of its own. The
// library's sender keeps one stream per peer and holds a lock for each
// request's round trip, so one handle's concurrent operations queue behind
// each other on every peer; streams are cheap on an open (yamux)
// connection, and the serving side handles each in its own goroutine.
type streamSender struct {
	h      host.Host
	protos []protocol.ID
}

func newStreamSender(h host.Host, protos []protocol.ID) pb.MessageSenderWithDisconnect {
	return &streamSender{h: h, protos: protos}
}

// open opens a stream to p that is reset when ctx ends.
func (s *streamSender) open(ctx context.Context, p peer.ID) (network.Stream, func() bool, error) {
	st, err := s.h.NewStream(ctx, p, s.protos...)
	if err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	return st, stop, nil
}

// SendRequest implements pb.MessageSender.
func (s *streamSender) SendRequest(ctx context.Context, p peer.ID, pmes *pb.Message) (*pb.Message, error) {
	st, stop, err := s.open(ctx, p)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := pbio.NewDelimitedWriter(st).WriteMsg(pmes); err != nil {
		_ = st.Reset()
		return nil, ctxErr(ctx, err)
	}
	resp := new(pb.Message)
	if err := pbio.NewDelimitedReader(st, network.MessageSizeMax).ReadMsg(resp); err != nil {
		_ = st.Reset()
		return nil, ctxErr(ctx, err)
	}
	_ = st.Close()
	return resp, nil
}

// SendMessage implements pb.MessageSender.
func (s *streamSender) SendMessage(ctx context.Context, p peer.ID, pmes *pb.Message) error {
	st, stop, err := s.open(ctx, p)
	if err != nil {
		return err
	}
	defer stop()
	if err := pbio.NewDelimitedWriter(st).WriteMsg(pmes); err != nil {
		_ = st.Reset()
		return ctxErr(ctx, err)
	}
	return st.Close()
}

// OnDisconnect implements pb.MessageSenderWithDisconnect: no state per peer.
func (s *streamSender) OnDisconnect(context.Context, peer.ID) {}

// ctxErr prefers the context's error (a reset by the AfterFunc above).
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
