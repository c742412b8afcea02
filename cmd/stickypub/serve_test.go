package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// httpGet fetches url within the command timeout.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cmdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

var servingRE = regexp.MustCompile(`^serving (http://\S+)/ \(publisher \S+\)$`)

func TestServePublishEventsMetrics(t *testing.T) {
	e := newEnv(t)
	srv := e.start(false, "serve", "--listen", "127.0.0.1:0")
	m := servingRE.FindStringSubmatch(srv.next(cmdTimeout).text)
	if m == nil {
		t.Fatalf("serve did not print its address; stderr: %s", srv.stderr)
	}
	base := m[1]
	if code, body := httpGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}

	ctx, cancel := context.WithTimeout(t.Context(), cmdTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/topics/demo/events?from=start", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, ct)
	}
	preq, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/topics/demo/messages", strings.NewReader("hello"))
	presp, err := http.DefaultClient.Do(preq)
	if err != nil {
		t.Fatal(err)
	}
	pbody, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if presp.StatusCode != 200 || !strings.Contains(string(pbody), `"seq":1`) {
		t.Fatalf("publish: %d %s", presp.StatusCode, pbody)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			if !strings.Contains(sc.Text(), `"payload":"hello"`) {
				t.Fatalf("event data %s", sc.Text())
			}
			break
		}
	}
	if sc.Err() != nil {
		t.Fatal(sc.Err())
	}
	// The delivered counter moves when the subscription hands the message
	// on, which may be just after the event reached this reader: scrape
	// until every line is there (or the test's context ends).
	wants := []string{
		`stickypub_published_messages_total{client="gateway"} 1`,
		`stickypub_delivered_messages_total{client="gateway"} 1`,
		`stickypub_publish_batches_total 1`,
		`stickypub_store_operation_duration_seconds_count{backend="bolt",op="compare_and_put",result="ok"}`,
	}
	var metrics string
	for {
		_, metrics = httpGet(t, base+"/metrics")
		missing := ""
		for _, want := range wants {
			if !strings.Contains(metrics, want) {
				missing = want
			}
		}
		if missing == "" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("metrics lack %q:\n%s", missing, metrics)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if code := srv.stop(); code != 0 {
		t.Fatalf("serve exit %d; stderr: %s", code, srv.stderr)
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestSubscribeMetrics(t *testing.T) {
	e := newEnv(t)
	e.ok("publish", "demo", "one", "two")
	addr := freeAddr(t)
	sub := e.start(false, "subscribe", "--from-start", "--metrics", addr, "demo")
	sub.next(cmdTimeout)
	sub.next(cmdTimeout)
	var metrics string
	for deadline := time.Now().Add(cmdTimeout); ; time.Sleep(20 * time.Millisecond) {
		_, metrics = httpGet(t, "http://"+addr+"/metrics")
		if strings.Contains(metrics, `stickypub_delivered_messages_total{client="subscribe"} 2`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered counter never reached 2:\n%s", metrics)
		}
	}
	for _, want := range []string{
		`stickypub_subscription_lag_seconds_count 2`,
		`stickypub_active_subscriptions{client="subscribe"} 1`,
		`stickypub_store_operation_duration_seconds_count{backend="bolt",op="get",result="ok"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
	if code := sub.stop(); code != 0 {
		t.Fatalf("subscribe exit %d; stderr: %s", code, sub.stderr)
	}
}
