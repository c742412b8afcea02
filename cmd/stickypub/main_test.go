package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binPath is the stickypub binary built by TestMain.
var binPath string

// TestMain builds the command once; the CLI tests run it as a subprocess.
func TestMain(m *testing.M) {
	if os.Getenv(envKillChild) != "" {
		os.Exit(durableChild()) // a child of TestDurableSubscriberSIGKILL
	}
	dir, err := os.MkdirTemp("", "stickypub-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "stickypub")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	out, err := exec.CommandContext(ctx, "go", append(args, ".")...).CombinedOutput()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// cmdTimeout bounds every subprocess.
const cmdTimeout = 60 * time.Second

// env is an isolated environment for the CLI: its own HOME, configuration
// directory and working directory, so nothing touches the user's files.
type env struct {
	t      *testing.T
	dir    string // working directory
	config string // XDG_CONFIG_HOME
	env    []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{t: t, dir: filepath.Join(root, "work"), config: filepath.Join(root, "config")}
	for _, d := range []string{e.dir, filepath.Join(root, "home"), filepath.Join(root, "config")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "XDG_CONFIG_HOME", "GORACE", envStore, envIdentity, envOrdering:
			continue
		}
		e.env = append(e.env, kv)
	}
	// A binary built with -race sleeps 1s before exiting unless told not to.
	e.env = append(e.env, "GORACE=atexit_sleep_ms=0 halt_on_error=1")
	e.env = append(e.env, "HOME="+filepath.Join(root, "home"), "XDG_CONFIG_HOME="+filepath.Join(root, "config"))
	return e
}

// result is a finished run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

func (e *env) command(ctx context.Context, stdin io.Reader, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = e.dir
	cmd.Env = e.env
	cmd.Stdin = stdin
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs the CLI to completion.
func (e *env) run(stdin io.Reader, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), cmdTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := e.command(ctx, stdin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok || ctx.Err() != nil {
			e.t.Fatalf("stickypub %q: %v (ctx: %v)\nstderr: %s", args, err, ctx.Err(), r.stderr)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// ok runs the CLI and fails the test unless it exits 0.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	r := e.run(nil, args...)
	if r.code != 0 {
		e.t.Fatalf("stickypub %q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// line is one line of a background process's output and when it was read.
type line struct {
	text string
	at   time.Time
}

// bg is a CLI process running in the background.
type bg struct {
	t      *testing.T
	cmd    *exec.Cmd
	cancel context.CancelFunc
	lines  chan line
	stderr *syncBuffer
	stdin  io.WriteCloser
	done   chan struct{}
	err    error
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the CLI in the background; its stdout lines arrive on lines.
// withStdin gives it a pipe as standard input. The test's cleanup kills it
// if it still runs.
func (e *env) start(withStdin bool, args ...string) *bg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), cmdTimeout)
	b := &bg{t: e.t, cancel: cancel, lines: make(chan line, 1024), stderr: &syncBuffer{}, done: make(chan struct{})}
	b.cmd = e.command(ctx, nil, args...)
	b.cmd.Stderr = b.stderr
	if withStdin {
		w, err := b.cmd.StdinPipe()
		if err != nil {
			e.t.Fatal(err)
		}
		b.stdin = w
	}
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.lines <- line{text: sc.Text(), at: time.Now()}
		}
		b.err = b.cmd.Wait()
		close(b.lines)
		close(b.done)
	}()
	e.t.Cleanup(func() {
		cancel()
		<-b.done
	})
	return b
}

// next returns the next stdout line, failing the test after timeout.
func (b *bg) next(timeout time.Duration) line {
	b.t.Helper()
	select {
	case l, ok := <-b.lines:
		if !ok {
			b.t.Fatalf("background stickypub ended (%v) before printing a line\nstderr: %s", b.err, b.stderr)
		}
		return l
	case <-time.After(timeout):
		b.t.Fatalf("no line from background stickypub within %v\nstderr: %s", timeout, b.stderr)
	}
	panic("unreachable")
}

// stop sends SIGINT and waits for the process; it returns the exit code.
func (b *bg) stop() int {
	b.t.Helper()
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil {
		b.t.Fatalf("signal: %v", err)
	}
	return b.wait()
}

// wait waits for the process to end and returns its exit code.
func (b *bg) wait() int {
	b.t.Helper()
	select {
	case <-b.done:
	case <-time.After(cmdTimeout):
		b.t.Fatalf("background stickypub did not end\nstderr: %s", b.stderr)
	}
	for range b.lines {
	}
	if b.err == nil {
		return 0
	}
	if ee, ok := b.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	b.t.Fatalf("background stickypub: %v", b.err)
	return -1
}
