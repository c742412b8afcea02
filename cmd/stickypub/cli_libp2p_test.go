package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSwarmLibp2p: "stickypub swarm --backend libp2p" in one process, a
// subscriber and two publish commands in others, all through the URI the
// swarm prints; then info and a late subscriber from the start.
func TestSwarmLibp2p(t *testing.T) {
	e := newEnv(t)
	sw := e.start(false, "swarm", "--backend", "libp2p", "--nodes", "8", "--network", "cli-test", "--data", t.TempDir())
	uri := sw.next(30 * time.Second).text
	if !strings.HasPrefix(uri, "libp2p://?") || !strings.Contains(uri, "allow_dial=127.0.0.0") {
		t.Fatalf("swarm printed %q, want a loopback-only libp2p URI", uri)
	}
	e.env = append(e.env, envStore+"="+uri)

	sub := e.start(false, "subscribe", "--json", "demo")
	e.waitSubscribers("demo", 1, sub)
	e.ok("publish", "demo", "one", "two")
	e.ok("publish", "demo", "three")
	var got []string
	for range 3 {
		m := decode[jsonMessage](t, sub.next(30*time.Second).text)
		got = append(got, fmt.Sprintf("%s/%d", m.Payload, m.Seq))
	}
	// Two publish commands share one identity (the env's), so the seqs
	// continue from one to the next.
	if want := []string{"one/1", "two/2", "three/3"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("subscriber printed %v, want %v", got, want)
	}
	info := decode[jsonInfo](t, e.ok("info", "--json", "demo"))
	t.Logf("info: %+v", info)
	if len(info.Subscribers) != 1 {
		t.Errorf("info lists %d subscribers, want 1", len(info.Subscribers))
	}
	late := e.start(false, "subscribe", "--json", "--from-start", "demo")
	for i, want := range []string{"one", "two", "three"} {
		if m := decode[jsonMessage](t, late.next(30*time.Second).text); m.Payload != want || m.Seq != uint64(i+1) {
			t.Fatalf("late subscriber printed %+v, want %q seq %d", m, want, i+1)
		}
	}
	for _, p := range []*bg{late, sub, sw} {
		if code := p.stop(); code != 0 {
			t.Errorf("exit %d after SIGINT; stderr: %s", code, p.stderr)
		}
	}
}
