package main

import (
	"strings"
	"testing"
	"time"
)

// TestSwarmBittorrent runs a BEP44 swarm, a live subscriber, a publisher
// and a late subscriber as four separate processes.
func TestSwarmBittorrent(t *testing.T) {
	e := newEnv(t)
	sw := e.start(false, "swarm", "--backend", "bittorrent", "--nodes", "12")
	uri := sw.next(30 * time.Second).text
	if !strings.HasPrefix(uri, "bep44://?bootstrap=127.0.0.1:") || !strings.Contains(uri, "&key=/") || !strings.HasSuffix(uri, "/bep44-namespace.pem") {
		t.Fatalf("swarm printed %q, want a bep44 URI", uri)
	}
	// Subscribe from now, then publish, in other processes.
	live := e.start(false, "--store", uri, "subscribe", "--count", "3", "demo")
	e.waitSubscribersURI(uri, "demo", 1, live)
	out := e.ok("--store", uri, "publish", "demo", "one", "two", "three")
	if want := "published demo seq 1\npublished demo seq 2\npublished demo seq 3\n"; out != want {
		t.Fatalf("publish printed %q, want %q", out, want)
	}
	var got []string
	for range 3 {
		got = append(got, live.next(60*time.Second).text)
	}
	if code := live.wait(); code != 0 {
		t.Fatalf("live subscriber exited %d: %s", code, live.stderr)
	}
	// A late subscriber gets the history.
	late := e.ok("--store", uri, "subscribe", "--from-start", "--count", "3", "demo")
	for i, want := range []string{"one", "two", "three"} {
		if !strings.Contains(got[i], want) {
			t.Errorf("live subscriber line %d = %q, want %q", i, got[i], want)
		}
	}
	if lines := strings.Split(strings.TrimSpace(late), "\n"); len(lines) != 3 || !strings.Contains(lines[0], "one") || !strings.Contains(lines[2], "three") {
		t.Errorf("late subscriber printed %q", late)
	}
	if code := sw.stop(); code != 0 {
		t.Fatalf("swarm exited %d: %s", code, sw.stderr)
	}
}

// waitSubscribersURI polls info on the store uri until topic has n live
// subscribers.
func (e *env) waitSubscribersURI(uri, topic string, n int, subs ...*bg) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		info := decode[jsonInfo](e.t, e.ok("--store", uri, "info", "--json", topic))
		if len(info.Subscribers) >= n {
			return
		}
		if time.Now().After(deadline) {
			for i, s := range subs {
				e.t.Logf("subscriber %d stderr: %s", i, s.stderr)
			}
			e.t.Fatalf("topic %q has %d subscribers, want %d", topic, len(info.Subscribers), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
