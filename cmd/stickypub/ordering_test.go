package main

import (
	"strings"
	"testing"
)

// TestOrderingFlag: --ordering publisher creates a publisher-order topic
// that clients of that ordering publish to and read; a client of the
// default (topic) ordering is refused with an error naming the mismatch,
// and a bad value is a usage error.
func TestOrderingFlag(t *testing.T) {
	e := newEnv(t)
	e.ok("--ordering", "publisher", "publish", "po", "one", "two")
	out := e.ok("--ordering", "publisher", "subscribe", "--from-start", "--count", "2", "po")
	if !strings.Contains(out, "one") || !strings.Contains(out, "two") {
		t.Fatalf("subscribe --ordering publisher printed %q", out)
	}
	r := e.run(nil, "publish", "po", "three")
	if r.code == 0 || !strings.Contains(r.stderr, "ordering") {
		t.Fatalf("publish in topic order to a publisher-order topic: exit %d, stderr %q", r.code, r.stderr)
	}
	r = e.run(nil, "--ordering", "sideways", "publish", "po", "x")
	if r.code != 2 || !strings.Contains(r.stderr, "--ordering") {
		t.Fatalf("bad --ordering: exit %d, stderr %q", r.code, r.stderr)
	}
}
