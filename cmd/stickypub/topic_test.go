package main

import (
	"encoding/binary"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stickypub/stickypub/core"
)

// TestTopicPolicyCLI: topic create/allow/deny/show, and a publisher the
// policy does not list refused with a clear error.
func TestTopicPolicyCLI(t *testing.T) {
	e := newEnv(t)
	owner := decode[jsonIdentity](t, e.ok("identity", "--json"))
	other := filepath.Join(e.dir, "other.pem")
	stranger := decode[jsonIdentity](t, e.ok("--identity", other, "identity", "--json"))

	out := e.ok("topic", "create", "--self", "locked")
	if !strings.Contains(out, "1 publishers allowed") {
		t.Fatalf("topic create printed %q", out)
	}
	e.ok("publish", "locked", "from the owner")
	r := e.run(nil, "--identity", other, "publish", "locked", "from a stranger")
	if r.code == 0 || !strings.Contains(r.stderr, "not allowed") {
		t.Fatalf("stranger's publish: exit %d, stderr %q", r.code, r.stderr)
	}
	r = e.run(nil, "--identity", other, "topic", "allow", "locked", stranger.Publisher)
	if r.code == 0 || !strings.Contains(r.stderr, "owner") {
		t.Fatalf("stranger's allow: exit %d, stderr %q", r.code, r.stderr)
	}
	e.ok("topic", "allow", "locked", stranger.Publisher)
	e.ok("--identity", other, "publish", "locked", "now allowed")
	p := decode[jsonPolicy](t, e.ok("topic", "show", "--json", "locked"))
	if p.Open || p.Version != 2 || p.Owner != owner.Publisher || len(p.Allowed) != 2 {
		t.Fatalf("topic show: %+v", p)
	}
	out = e.ok("subscribe", "--from-start", "--count", "2", "locked")
	if !strings.Contains(out, "from the owner") || !strings.Contains(out, "now allowed") {
		t.Fatalf("subscribe printed %q", out)
	}
	e.ok("topic", "deny", "locked", stranger.Publisher)
	if p := decode[jsonPolicy](t, e.ok("topic", "show", "--json", "locked")); len(p.Allowed) != 1 {
		t.Fatalf("after deny: %+v", p)
	}
	r = e.run(nil, "topic", "allow", "locked", "not-an-id")
	if r.code != 2 {
		t.Fatalf("bad ID: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestTopicAllowDashID: publisher IDs are base64url, and one in 64 starts
// with '-'; after TOPIC such an ID is an argument, not a flag (CI once
// failed on a random identity whose ID began with "-E").
func TestTopicAllowDashID(t *testing.T) {
	e := newEnv(t)
	var dash string
	for i := 0; !strings.HasPrefix(dash, "-"); i++ { // about 64 tries
		dash = core.PublisherIDOf(binary.BigEndian.AppendUint64(make([]byte, 24), uint64(i))).String()
	}
	e.ok("topic", "create", "--self", "locked")
	e.ok("topic", "allow", "locked", dash)
	p := decode[jsonPolicy](t, e.ok("topic", "show", "--json", "locked"))
	if !slices.Contains(p.Allowed, dash) {
		t.Fatalf("allowed %v, want %s among them", p.Allowed, dash)
	}
	e.ok("topic", "deny", "locked", dash)
}
