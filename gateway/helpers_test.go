package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/core"
)

// testTimeout bounds every test's context (generous: -race on busy cores).
const testTimeout = 2 * time.Minute

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// env is a gateway on a memory store behind a loopback test server.
type env struct {
	gw   *Server
	ts   *httptest.Server
	http *http.Client
}

func newEnv(t *testing.T, mut func(*Config)) *env {
	t.Helper()
	store := memory.New()
	id, err := core.GenerateIdentity()
	require.NoError(t, err)
	cfg := Config{Store: store, Identity: id, Heartbeat: time.Second}
	if mut != nil {
		mut(&cfg)
	}
	gw, err := New(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(gw)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	e := &env{gw: gw, ts: ts, http: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, gw.Close(ctx))
		ts.Close()
		tr.CloseIdleConnections()
		require.NoError(t, store.Close())
	})
	return e
}

func (e *env) url(path string) string { return e.ts.URL + path }

func topicPath(topic string) string { return "/topics/" + url.PathEscape(topic) }

// do sends a request and returns the status and body.
func (e *env) do(t *testing.T, method, path, contentType string, body io.Reader, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, e.url(path), body)
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// publish publishes one text payload and returns its receipt.
func (e *env) publish(t *testing.T, topic, payload string) Receipt {
	t.Helper()
	code, body := e.do(t, http.MethodPost, topicPath(topic)+"/messages", "text/plain", strings.NewReader(payload))
	require.Equal(t, http.StatusOK, code, string(body))
	var r Receipt
	require.NoError(t, json.Unmarshal(body, &r))
	return r
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	ID, Name string
	Data     string
}

func (ev sseEvent) message(t *testing.T) Message {
	t.Helper()
	require.Equal(t, "message", ev.Name, ev.Data)
	var m Message
	require.NoError(t, json.Unmarshal([]byte(ev.Data), &m))
	return m
}

// sse is an open event stream.
type sse struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// openSSE opens an event stream and returns once the gateway has
// subscribed (the ": subscribed" comment arrived).
func (e *env) openSSE(t *testing.T, path string, hdr ...string) *sse {
	t.Helper()
	s, err := e.tryOpenSSE(path, hdr...)
	require.NoError(t, err)
	t.Cleanup(s.close)
	return s
}

func (e *env) tryOpenSSE(path string, hdr ...string) (*sse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url(path), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.http.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, &statusError{resp.StatusCode, string(b)}
	}
	s := &sse{resp: resp, events: make(chan sseEvent, 4096), cancel: cancel}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.close()
			return nil, err
		}
		if strings.HasPrefix(line, ": subscribed") {
			break
		}
	}
	go s.read(br)
	return s, nil
}

type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return http.StatusText(e.code) + ": " + e.body }

func (s *sse) read(br *bufio.Reader) {
	defer close(s.events)
	var ev sseEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.Name != "" || ev.Data != "" {
				s.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Name = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.Data += line[6:]
		}
	}
}

func (s *sse) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event, failing the test after the deadline.
func (s *sse) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		require.True(t, ok, "stream ended")
		return ev
	case <-time.After(testTimeout):
		t.Fatal("no event in time")
	}
	return sseEvent{}
}
