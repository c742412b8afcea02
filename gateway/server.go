package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/stickypub/stickypub/core"
)

// ErrClosed: the gateway was closed.
var ErrClosed = errors.New("gateway: closed")

// Server is the HTTP gateway. It implements http.Handler. Close it to end
// every SSE stream and subscription before shutting the http.Server down.
type Server struct {
	cfg    Config
	hub    *core.Hub
	client *core.Client // publishes and reads topic info
	mux    *http.ServeMux

	ctx    context.Context // cancelled by Close: ends every stream
	cancel context.CancelFunc
	wg     sync.WaitGroup // pumps and subscriber clients

	mu      sync.Mutex
	closed  bool
	feeds   map[string]*feed
	readers map[*core.Client]struct{} // subscriber clients alive
	// readersWG counts subscriber clients not yet closed.
	readersWG sync.WaitGroup
	gone      core.Stats // counters of subscriber clients closed
	streams   int        // SSE responses in progress
}

// New returns a gateway on cfg.Store that publishes as cfg.Identity.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Identity == nil {
		return nil, errors.New("gateway: Config needs a Store and an Identity")
	}
	cfg.setDefaults()
	hub, err := core.NewHub(cfg.Store, cfg.ClientOptions...)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	client, err := core.New(cfg.Store, cfg.Identity, append(cfg.clientOptions(), core.WithHub(hub))...)
	if err != nil {
		hub.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, hub: hub, client: client, ctx: ctx, cancel: cancel,
		feeds: map[string]*feed{}, readers: map[*core.Client]struct{}{}}
	s.routes()
	return s, nil
}

func (c *Config) clientOptions() []core.Option {
	return append([]core.Option{core.WithLogger(c.Logger)}, c.ClientOptions...)
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /topics/{topic}/messages", s.handlePublish)
	m.HandleFunc("GET /topics/{topic}/events", s.handleEvents)
	m.HandleFunc("GET /topics/{topic}", s.handleInfo)
	m.HandleFunc("GET /healthz", s.handleHealth)
	if s.cfg.Metrics != nil {
		m.Handle("GET /metrics", s.cfg.Metrics)
	}
	m.HandleFunc("GET /{$}", s.handlePage)
	s.mux = m
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Client returns the client that publishes and reads topic info.
func (s *Server) Client() *core.Client { return s.client }

// Streams returns how many SSE responses are in progress.
func (s *Server) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams
}

// Stats sums the counters of every client of the gateway: the publishing
// client and the subscriber clients, alive or closed. Retries are the
// publishing client's, which include the shared engine's.
func (s *Server) Stats() core.Stats {
	st := s.client.Stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	add := func(o core.Stats) {
		st.Received += o.Received
		st.Failures += o.Failures
		st.Invalid += o.Invalid
		st.Duplicates += o.Duplicates
		st.Expired += o.Expired
		st.Gaps += o.Gaps
		st.Redelivered += o.Redelivered
		st.AckWrites += o.AckWrites
		st.ActiveSubscriptions += o.ActiveSubscriptions
	}
	add(s.gone)
	for c := range s.readers {
		add(c.Stats())
	}
	return st
}

// newReader returns a client for one subscription, with an identity of its
// own (so its subscription record is its own), on the gateway's hub.
func (s *Server) newReader() (*core.Client, error) {
	id, err := core.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	c, err := core.New(s.cfg.Store, id, append(s.cfg.clientOptions(), core.WithHub(s.hub))...)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close(context.Background())
		return nil, ErrClosed
	}
	s.readers[c] = struct{}{}
	s.readersWG.Add(1)
	return c, nil
}

// closeReader closes a subscriber client (removing its subscription
// record within ctx) and keeps its counters. Only the first call for a
// client closes it.
func (s *Server) closeReader(ctx context.Context, c *core.Client) error {
	s.mu.Lock()
	_, mine := s.readers[c]
	delete(s.readers, c)
	s.mu.Unlock()
	if !mine {
		return nil
	}
	defer s.readersWG.Done()
	err := c.Close(ctx)
	st := c.Stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone.Received += st.Received
	s.gone.Failures += st.Failures
	s.gone.Invalid += st.Invalid
	s.gone.Duplicates += st.Duplicates
	s.gone.Expired += st.Expired
	s.gone.Gaps += st.Gaps
	return err
}

// Close ends every SSE stream, removes the gateway's subscriptions,
// flushes queued publishes within ctx and waits for the gateway's
// goroutines. The store stays open.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	feeds := make([]*feed, 0, len(s.feeds))
	for _, f := range s.feeds {
		feeds = append(feeds, f)
	}
	s.mu.Unlock()
	s.cancel()
	for _, f := range feeds {
		f.stop()
	}
	s.wg.Wait()
	s.mu.Lock()
	readers := make([]*core.Client, 0, len(s.readers))
	for c := range s.readers {
		readers = append(readers, c)
	}
	s.mu.Unlock()
	var errs []error
	for _, c := range readers {
		errs = append(errs, s.closeReader(ctx, c))
	}
	s.readersWG.Wait() // closed by streams that ended concurrently
	errs = append(errs, s.client.Close(ctx))
	s.hub.Close()
	return errors.Join(errs...)
}
