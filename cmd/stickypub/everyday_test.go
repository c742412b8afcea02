package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stickypub/stickypub/core"
)

// Two terminals publishing with the default identity to one file: every
// publish succeeds, each message once, seqs without holes.
func TestSameIdentityTwoTerminals(t *testing.T) {
	e := newEnv(t)
	e.ok("identity") // create it first, as a user would have
	const terminals, each = 2, 25
	var wg sync.WaitGroup
	fails := make(chan string, terminals*each)
	for term := range terminals {
		wg.Go(func() {
			for i := range each {
				r := e.run(nil, "publish", "par", fmt.Sprintf("t%d-%d", term, i))
				if r.code != 0 {
					fails <- fmt.Sprintf("terminal %d publish %d: exit %d: %s", term, i, r.code, r.stderr)
				}
			}
		})
	}
	wg.Wait()
	close(fails)
	for f := range fails {
		t.Error(f)
	}
	out := e.ok("subscribe", "--from-start", "--until-end", "--json", "par")
	var seqs []uint64
	payloads := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		m := decode[jsonMessage](t, l)
		seqs = append(seqs, m.Seq)
		payloads[m.Payload] = true
	}
	if len(seqs) != terminals*each || len(payloads) != terminals*each || seqs[0] != 1 || seqs[len(seqs)-1] != uint64(len(seqs)) {
		t.Errorf("got %d messages (%d distinct), seqs %v", len(seqs), len(payloads), seqs)
	}
}

// A publisher that holds the identity (reading stdin) makes a second one
// wait, saying so, up to --timeout; once it is done, the second goes on.
func TestSameIdentityWaitIsExplained(t *testing.T) {
	e := newEnv(t)
	e.ok("identity")
	first := e.start(true, "publish", "par")
	if _, err := fmt.Fprintln(first.stdin, "from the first"); err != nil {
		t.Fatal(err)
	}
	first.next(cmdTimeout) // it holds the lock now
	r := e.run(nil, "--timeout", "1s", "publish", "par", "second")
	if r.code != exitError || !strings.Contains(r.stderr, fmt.Sprintf("waiting for stickypub process %d, which is publishing as this identity", first.cmd.Process.Pid)) ||
		!strings.Contains(r.stderr, "another process kept publishing as this identity") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	_ = first.stdin.Close()
	if code := first.wait(); code != 0 {
		t.Fatalf("first publisher: exit %d: %s", code, first.stderr)
	}
	if out := e.ok("publish", "par", "second"); out != "published par seq 2\n" {
		t.Errorf("second publish printed %q", out)
	}
}

// Errors quote and cut user input, name a path once and say one thing once.
func TestErrorsArePlain(t *testing.T) {
	e := newEnv(t)
	e.ok("identity")
	long := strings.Repeat("x", 10<<10)
	r := e.run(nil, "publish", long, "m")
	oneErrorLine(t, "10 KB topic", r, "(10240 bytes)")
	if len(r.stderr) > 300 {
		t.Errorf("10 KB topic: %d bytes of error", len(r.stderr))
	}
	if out := e.ok("publish", "a\nb", "m"); out != `published "a\nb" seq 1`+"\n" {
		t.Errorf("topic with a newline printed as %q", out)
	}
	r = e.run(nil, "--store", "bolt:///nonexistent/dir/x.db", "info", "t")
	oneErrorLine(t, "missing directory", r, "no such file or directory")
	if n := strings.Count(r.stderr, "/nonexistent/dir/x.db"); n != 1 {
		t.Errorf("the path is named %d times: %q", n, r.stderr)
	}
	if strings.Contains(r.stderr, "core: ") && strings.Count(r.stderr, "core: ") > 1 {
		t.Errorf("repeated layer: %q", r.stderr)
	}
	r = e.run(nil, "publish", long)
	if strings.Count(r.stderr, "x") > 200 {
		t.Errorf("long input echoed: %d bytes", len(r.stderr))
	}
}

// publish TOPIC - and --file PATH publish one whole, binary-safe message;
// larger than the limit is refused with nothing published.
func TestPublishWholeMessage(t *testing.T) {
	e := newEnv(t)
	bin := []byte("line one\nline two\r\n\x00\xff\xfe binary\n\n")
	r := e.run(bytes.NewReader(bin), "publish", "w", "-")
	if r.code != 0 || r.stdout != "published w seq 1\n" {
		t.Fatalf("publish -: exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	file := filepath.Join(e.dir, "msg.bin")
	if err := os.WriteFile(file, bin[:20], 0o600); err != nil {
		t.Fatal(err)
	}
	if out := e.ok("publish", "w", "--file", file); out != "published w seq 2\n" {
		t.Fatalf("publish --file printed %q", out)
	}
	out := e.ok("subscribe", "--from-start", "--until-end", "--json", "w")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d messages, want 2:\n%s", len(lines), out)
	}
	for i, want := range [][]byte{bin, bin[:20]} {
		m := decode[jsonMessage](t, lines[i])
		got := []byte(m.Payload)
		if m.Base64 {
			got, _ = base64.StdEncoding.DecodeString(m.Payload)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("message %d: %q, want %q", i, got, want)
		}
	}
	big := bytes.Repeat([]byte("z"), core.MaxPayload+1)
	r = e.run(bytes.NewReader(big), "publish", "w", "-")
	oneErrorLine(t, "oversize stdin", r, "standard input holds more than the message limit of 1048576 bytes", "nothing was published")
	if err := os.WriteFile(file, big, 0o600); err != nil {
		t.Fatal(err)
	}
	oneErrorLine(t, "oversize file", e.run(nil, "publish", "w", "--file", file), "msg.bin", "1048576")
	oneErrorLine(t, "missing file", e.run(nil, "publish", "w", "--file", "nope.bin"), `--file "nope.bin": no such file or directory`)
	if info := decode[jsonInfo](t, e.ok("info", "--json", "w")); info.Messages != 2 {
		t.Errorf("refused input was published: %+v", info)
	}
	exact := bytes.Repeat([]byte("z"), core.MaxPayload)
	if r := e.run(bytes.NewReader(exact), "publish", "w", "-"); r.code != 0 {
		t.Errorf("a message of exactly the limit: exit %d: %s", r.code, r.stderr)
	}
	help := e.ok("publish", "--help")
	if !strings.Contains(help, "1048576 bytes") || !strings.Contains(help, "--file") {
		t.Errorf("publish --help does not state the size limit:\n%s", help)
	}
	r = e.run(nil, "publish", "w", "--file", file, "extra")
	if r.code != exitUsage {
		t.Errorf("--file with MESSAGE: exit %d", r.code)
	}
}

// subscribe --from-start --until-end prints the history and exits; info
// does not count expired messages as retained.
func TestUntilEndAndExpired(t *testing.T) {
	e := newEnv(t)
	if r := e.run(nil, "subscribe", "--from-start", "--until-end", "empty"); r.code != 0 || r.stdout != "" {
		t.Errorf("empty topic: exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	e.ok("publish", "--ttl", "1s", "h", "short-lived")
	e.ok("publish", "h", "a", "b", "c")
	time.Sleep(1500 * time.Millisecond)
	out := e.ok("subscribe", "--from-start", "--until-end", "h")
	if n := strings.Count(out, "\n"); n != 3 || strings.Contains(out, "short-lived") {
		t.Errorf("until-end printed %d lines:\n%s", n, out)
	}
	info := decode[jsonInfo](t, e.ok("info", "--json", "h"))
	if info.Messages != 4 || info.RetainedMessages != 3 || info.Expired != 1 {
		t.Errorf("info: %+v", info)
	}
	if plain := e.ok("info", "h"); !strings.Contains(plain, "4 (3 retained, 1 expired)") {
		t.Errorf("info:\n%s", plain)
	}
	if r := e.run(nil, "subscribe", "--until-end", "h"); r.code != exitUsage {
		t.Errorf("--until-end without --from-start: exit %d", r.code)
	}
}

// A mistyped --identity does not create anything; identity new does; an
// identity file others can read draws a warning.
func TestIdentityCreation(t *testing.T) {
	e := newEnv(t)
	typo := filepath.Join(e.dir, "kyes", "bot.pem")
	r := e.run(nil, "--identity", typo, "publish", "t", "m")
	oneErrorLine(t, "mistyped --identity", r, "does not exist", "identity new")
	if _, err := os.Stat(filepath.Dir(typo)); !os.IsNotExist(err) {
		t.Errorf("a mistyped --identity created %s: %v", filepath.Dir(typo), err)
	}
	r = e.run(nil, "--identity", typo, "identity", "new")
	if r.code != 0 || !strings.Contains(r.stderr, "created a new identity in "+typo) {
		t.Fatalf("identity new: exit %d, %s", r.code, r.stderr)
	}
	oneErrorLine(t, "identity new again", e.run(nil, "--identity", typo, "identity", "new"), "already exists")
	here := filepath.Join(e.dir, "here.pem") // its directory exists
	r = e.run(nil, "--identity", here, "publish", "t", "m")
	if r.code != 0 || !strings.Contains(r.stderr, "created a new identity in "+here) {
		t.Errorf("--identity in an existing directory: exit %d, %s", r.code, r.stderr)
	}
	r = e.run(nil, "identity")
	if r.code != 0 || !strings.Contains(r.stderr, "created a new identity") {
		t.Errorf("default identity on first use: exit %d, %s", r.code, r.stderr)
	}
	if err := os.Chmod(here, 0o644); err != nil {
		t.Fatal(err)
	}
	r = e.run(nil, "--identity", here, "identity")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: identity file "+here+" is accessible by others (mode 0644)") {
		t.Errorf("readable identity: exit %d, %q", r.code, r.stderr)
	}
}

// A bolt file this user may not write is still readable by subscribe and
// info; publish fails plainly.
func TestReadOnlyStore(t *testing.T) {
	e := newEnv(t)
	e.publish21("t")
	path := filepath.Join(e.dir, "stickypub.db")
	if os.Geteuid() == 0 {
		// root writes anything mode 0444; an immutable file refuses it too.
		if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
			t.Skipf("running as root and chattr +i is unavailable: %v %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("chattr", "-i", path).Run() })
	} else if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	out := e.ok("subscribe", "--from-start", "--until-end", "t")
	if n := strings.Count(out, "\n"); n != 21 {
		t.Errorf("subscribe printed %d messages, want 21", n)
	}
	info := decode[jsonInfo](t, e.ok("info", "--json", "t"))
	if info.Messages != 21 || info.RetainedMessages != 21 {
		t.Errorf("info: %+v", info)
	}
	oneErrorLine(t, "publish to a read-only file", e.run(nil, "publish", "t", "x"), "stickypub.db", "not permitted")
}

// An unreachable Redis is one plain error line: go-redis's own log lines
// ("redis: … pool.go:… failed to dial", three of them before the real
// error) go through the command's logger, rate-limited to at most one
// warning, never raw to stderr.
func TestUnreachableRedisOneLine(t *testing.T) {
	e := newEnv(t)
	e.ok("identity")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close() // nothing answers there now
	r := e.run(nil, "--store", "redis://"+dead+"/0", "--timeout", "2s", "info", "t")
	if r.code == 0 {
		t.Fatalf("info on an unreachable Redis succeeded: %q", r.stdout)
	}
	if strings.Contains(r.stderr, "pool.go") || strings.Contains(r.stderr, "redis: 20") {
		t.Errorf("go-redis wrote its own lines to stderr:\n%s", r.stderr)
	}
	var errs, warns int
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		switch {
		case strings.HasPrefix(l, "stickypub: "):
			errs++
		case strings.Contains(l, "source=go-redis"):
			warns++
		default:
			t.Errorf("unexpected stderr line %q", l)
		}
	}
	if errs != 1 || warns > 1 {
		t.Errorf("%d error lines (want 1) and %d go-redis warnings (want at most 1):\n%s", errs, warns, r.stderr)
	}
	if !strings.Contains(r.stderr, dead) {
		t.Errorf("the error does not name the server %s:\n%s", dead, r.stderr)
	}
}
