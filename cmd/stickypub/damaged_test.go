package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// publish21 publishes m1..m21 to topic in three batches of seven (three
// segments), as the scenario does.
func (e *env) publish21(topic string) {
	e.t.Helper()
	for b := range 3 {
		args := []string{"publish", topic}
		for i := 1; i <= 7; i++ {
			args = append(args, fmt.Sprintf("m%d", b*7+i))
		}
		e.ok(args...)
	}
}

// damagedCopy copies the working directory's stickypub.db to name, lets
// damage change its bytes, and returns its path.
func (e *env) damagedCopy(name string, damage func([]byte) []byte) string {
	e.t.Helper()
	data, err := os.ReadFile(filepath.Join(e.dir, "stickypub.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, damage(data), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// flipInMessage flips one bit inside payload m10 wherever bbolt keeps a
// copy of it (the live page, and any freed page still holding an older
// copy): one flipped byte in one message.
func flipInMessage(data []byte) []byte {
	out := bytes.Clone(data)
	for i := 0; ; {
		j := bytes.Index(out[i:], []byte("m10"))
		if j < 0 {
			return out
		}
		out[i+j+1] ^= 0x02
		i += j + 3
	}
}

// oneErrorLine checks a failed command: exit status 1 and exactly one
// "stickypub: " line on stderr, containing every want.
func oneErrorLine(t *testing.T, what string, r result, want ...string) {
	t.Helper()
	if r.code != exitError || !strings.HasPrefix(r.stderr, "stickypub: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("%s: exit %d, stderr %q; want exit 1 and one stickypub: line", what, r.code, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("%s: stderr lacks %q: %q", what, w, r.stderr)
		}
	}
}

// A truncated bolt file makes every command fail with a plain error naming
// the file and what to do, exit status 1: no SIGBUS, no usage error.
func TestTruncatedStore(t *testing.T) {
	e := newEnv(t)
	e.publish21("t")
	for _, size := range []int{20000, 16384, 8192} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			name := fmt.Sprintf("t%d.db", size)
			path := e.damagedCopy(name, func(b []byte) []byte { return b[:size] })
			store := "--store=bolt:" + name
			for _, args := range [][]string{
				{store, "info", "t"},
				{store, "subscribe", "--from-start", "--until-end", "t"},
				{store, "publish", "t", "x"},
			} {
				r := e.run(nil, args...)
				oneErrorLine(t, strings.Join(args[1:], " "), r, name, "truncated", "restore the file from a backup", "stickypub doctor")
				if strings.Contains(r.stderr, "SIGBUS") || strings.Contains(r.stderr, "fatal error") {
					t.Errorf("%q crashed: %s", args, r.stderr)
				}
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() != int64(size) {
				t.Errorf("the damaged file changed: %v %v", fi, err)
			}
		})
	}
}

// doctor on a healthy, a truncated and a bit-flipped file: three clear
// reports.
func TestDoctor(t *testing.T) {
	e := newEnv(t)
	e.publish21("t")
	check := func(what string, r result, code int, want ...string) {
		t.Helper()
		t.Logf("doctor, %s: exit %d\n%s%s", what, r.code, r.stdout, r.stderr)
		if r.code != code {
			t.Errorf("%s: exit %d, want %d", what, r.code, code)
		}
		for _, w := range want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s: report lacks %q", what, w)
			}
		}
	}
	check("healthy", e.run(nil, "doctor"), exitOK,
		"verdict:    healthy", "open:       ok", "structure:  ok", "records:    5 read, none damaged", "every record was reached")

	e.damagedCopy("cut.db", func(b []byte) []byte { return b[:16384] })
	r := e.run(nil, "--store", "bolt:cut.db", "doctor")
	check("truncated", r, exitError, "verdict:    DAMAGED", "the file was truncated", "structure:  not checked", "the scan stopped", "restore it from a backup")
	if r.stderr != "stickypub: the store is damaged (see the report above)\n" {
		t.Errorf("truncated: stderr %q", r.stderr)
	}

	e.damagedCopy("flip.db", flipInMessage)
	check("bit flipped", e.run(nil, "--store", "bolt:flip.db", "doctor"), exitError,
		"verdict:    DAMAGED", "open:       ok", "structure:  ok", "records:    5 read, 1 damaged:", `"x/`, "does not match its digest", "report the messages of a damaged segment as a gap")

	oneErrorLine(t, "not a bolt store", e.run(nil, "--store", "mem:", "doctor"), "bolt files only")
}

// One flipped byte in one message costs exactly that segment's messages:
// a gap with their range and one dropped record; the later segment still
// arrives, and info does not count the lost messages as retained.
func TestDamagedMessage(t *testing.T) {
	e := newEnv(t)
	e.publish21("t")
	e.damagedCopy("flip.db", flipInMessage)
	r := e.run(nil, "--store", "bolt:flip.db", "subscribe", "--from-start", "--until-end", "--json", "t")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var seqs []uint64
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		seqs = append(seqs, decode[jsonMessage](t, l).Seq)
	}
	want := []uint64{1, 2, 3, 4, 5, 6, 7, 15, 16, 17, 18, 19, 20, 21}
	if fmt.Sprint(seqs) != fmt.Sprint(want) {
		t.Errorf("delivered seqs %v, want %v", seqs, want)
	}
	if !strings.Contains(r.stderr, "messages 8..14 of publisher") || !strings.Contains(r.stderr, "segment damaged in the store") ||
		strings.Count(r.stderr, "dropped an invalid record") != 1 {
		t.Errorf("stderr: %s", r.stderr)
	}
	info := decode[jsonInfo](t, e.ok("--store", "bolt:flip.db", "info", "--json", "t"))
	if info.Messages != 21 || info.RetainedMessages != 14 || info.Unreadable != 7 {
		t.Errorf("info: %+v", info)
	}
}
