package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/gateway"
	"github.com/stickypub/stickypub/metrics"
)

// envToken sets the default of serve --token.
const envToken = "STICKYPUB_TOKEN"

// serveFlags are the flags of the serve command.
type serveFlags struct {
	listen       string
	token        string
	maxBody      int64
	streamBuffer int
	writeTimeout time.Duration
	interval     time.Duration
}

func newServeCmd(a *app) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve topics over HTTP: publish, Server-Sent Events, info, metrics, a live page",
		Long: `Serve the store's topics over HTTP until interrupted.

  POST /topics/TOPIC/messages   publish the body as one message, or a JSON
                                array (Content-Type: application/json) as a
                                batch; ?ttl=1h limits retention; answers the
                                receipt(s) as JSON
  GET  /topics/TOPIC/events     Server-Sent Events: new messages (event
                                "message", JSON as "subscribe --json"),
                                gaps (event "gap"); ?from=start sends the
                                retained history first
  GET  /topics/TOPIC            topic info as JSON (404: never used)
  GET  /healthz                 "ok" while the store answers
  GET  /metrics                 Prometheus metrics
  GET  /                        a live page: follow a topic, publish

A topic containing "/" is written with %2F in the path. Messages published
through the gateway are signed with its identity (--identity). With --token
(or STICKYPUB_TOKEN) publishing needs "Authorization: Bearer TOKEN"; reading
stays open. Bind to a public address only behind a TLS proxy.`,
		Example: `  stickypub serve --listen 127.0.0.1:8080
  curl -d hello http://127.0.0.1:8080/topics/demo/messages
  curl -N 'http://127.0.0.1:8080/topics/demo/events?from=start'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case f.maxBody <= 0:
				return usagef("--max-body must be positive, got %d", f.maxBody)
			case f.streamBuffer <= 0:
				return usagef("--stream-buffer must be positive, got %d", f.streamBuffer)
			case f.writeTimeout <= 0 || f.interval <= 0:
				return usagef("--write-timeout and --interval must be positive")
			}
			return a.serve(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&f.token, "token", os.Getenv(envToken), "bearer token required to publish (env "+envToken+")")
	fl.Int64Var(&f.maxBody, "max-body", gateway.DefaultMaxBodyBytes, "largest publish request body in bytes")
	fl.IntVar(&f.streamBuffer, "stream-buffer", gateway.DefaultStreamBuffer,
		"events a live follower may lag behind before it is disconnected")
	fl.DurationVar(&f.writeTimeout, "write-timeout", gateway.DefaultWriteTimeout, "time limit of each write to a follower")
	fl.DurationVar(&f.interval, "interval", gateway.DefaultPollInterval, "background polling interval of subscriptions")
	return cmd
}

func (a *app) serve(cmd *cobra.Command, f serveFlags) (err error) {
	ctx := cmd.Context()
	setup, cancel := a.oneShot(cmd)
	defer cancel()
	id, _, err := a.loadIdentity()
	if err != nil {
		return err
	}
	order, err := a.orderingOption()
	if err != nil {
		return err
	}
	col := metrics.New()
	st, _, err := openStore(setup, a.store, a.logger, false)
	if err != nil {
		return a.explain(cmd, err)
	}
	defer func() { err = alsoErr(err, st.Close()) }()
	gw, err := gateway.New(gateway.Config{
		Store: col.InstrumentStore(st, storeScheme(a.store)), Identity: id, Token: f.token,
		MaxBodyBytes: f.maxBody, StreamBuffer: f.streamBuffer, WriteTimeout: f.writeTimeout,
		PollInterval: f.interval, Timeout: a.timeout, Metrics: col.Handler(), Logger: a.logger,
		ClientOptions: []core.Option{core.WithEventHandler(col.EventHandler(nil)), order},
	})
	if err != nil {
		return err
	}
	col.AddStats("gateway", gw.Stats)
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		_ = gw.Close(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	fmt.Fprintf(a.stdout, "serving http://%s/ (publisher %s)\n", ln.Addr(), id.ID())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	// Streams never go idle: end them first, then shut the server down.
	down, cancelDown := context.WithTimeout(context.Background(), closeTimeout)
	defer cancelDown()
	err = alsoErr(err, gw.Close(down))
	if serr := srv.Shutdown(down); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = alsoErr(err, serr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// storeScheme is the backend label of a store URI (its scheme).
func storeScheme(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" {
		return "unknown"
	}
	return u.Scheme
}
