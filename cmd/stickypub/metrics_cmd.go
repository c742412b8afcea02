package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/metrics"
)

// metricsServer serves a command's Prometheus metrics (subscribe
// --metrics ADDR) on /metrics.
type metricsServer struct {
	col *metrics.Collector
	srv *http.Server
}

// startMetrics listens on addr and makes the app instrument the store it
// opens; wire the client with options() and watch(). An empty addr
// returns nil (every method of a nil *metricsServer is a no-op).
func (a *app) startMetrics(addr string) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	m := &metricsServer{col: metrics.New()}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.col.Handler())
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = m.srv.Serve(ln) }()
	scheme := storeScheme(a.store)
	a.wrapStore = func(s backend.Store) backend.Store { return m.col.InstrumentStore(s, scheme) }
	a.logger.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return m, nil
}

// eventHandler wraps next with the collector's event handler.
func (m *metricsServer) eventHandler(next func(core.Event)) func(core.Event) {
	if m == nil {
		return next
	}
	return m.col.EventHandler(next)
}

// watch exports the client's counters.
func (m *metricsServer) watch(c *core.Client) {
	if m != nil {
		m.col.AddStats("subscribe", c.Stats)
	}
}

// close stops serving metrics.
func (m *metricsServer) close() {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = m.srv.Close()
	}
}
