package main

import (
	"strings"
	"testing"
)

// subscribe --durable resumes after the last message it printed; a JSON
// line's cursor resumes with --from-cursor.
func TestSubscribeDurableAndCursor(t *testing.T) {
	e := newEnv(t)
	e.ok("publish", "demo", "one", "two", "three")
	// A message the first run took from the store but did not print is
	// printed again flagged "redelivered"; seqs only checks the sequence.
	seqs := func(out string) (got []uint64, cursors []string) {
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			m := decode[jsonMessage](t, l)
			got, cursors = append(got, m.Seq), append(cursors, m.Cursor)
		}
		return got, cursors
	}
	got, cursors := seqs(e.ok("subscribe", "--durable", "d", "--from-start", "--count", "2", "--json", "demo"))
	if len(got) != 2 || got[0] != 1 || got[1] != 2 || cursors[0] == "" {
		t.Fatalf("first durable run: seqs %v cursors %q", got, cursors)
	}
	e.ok("publish", "demo", "four")
	if got, _ := seqs(e.ok("subscribe", "--durable", "d", "--count", "2", "--json", "demo")); len(got) != 2 || got[0] != 3 || got[1] != 4 {
		t.Fatalf("resumed durable run printed seqs %v, want [3 4]", got)
	}
	if got, _ := seqs(e.ok("subscribe", "--from-cursor", cursors[0], "--count", "3", "--json", "demo")); len(got) != 3 || got[0] != 2 || got[2] != 4 {
		t.Fatalf("--from-cursor printed seqs %v, want [2 3 4]", got)
	}
	r := e.run(nil, "subscribe", "--from-cursor", "garbage!", "demo")
	if r.code != 2 || !strings.Contains(r.stderr, "cursor") {
		t.Fatalf("a bad cursor: exit %d, stderr %q", r.code, r.stderr)
	}
	r = e.run(nil, "subscribe", "--from-cursor", cursors[0], "other")
	if r.code == 0 || !strings.Contains(r.stderr, "another topic") {
		t.Fatalf("a cursor of another topic: exit %d, stderr %q", r.code, r.stderr)
	}
}
