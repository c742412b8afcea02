package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/redistest"
)

// Publishers as OS processes. The benchmark binary re-runs itself as a
// child publisher (TestMain sees childEnv): the child opens the store by
// URI, creates an identity and a client, publishes one message (its
// registration), prints "ready", waits for "go" on stdin, publishes its
// share one message at a time, prints "done <retries>" and exits. The
// parent times from the first "go" to the last "done" and to the live
// subscriber's last delivery, so process start-up is not timed.

// Environment of a child publisher.
const (
	childEnv      = "STICKYPUB_BENCH_CHILD" // set: run as a child publisher
	childURIEnv   = "STICKYPUB_BENCH_URI"
	childTopicEnv = "STICKYPUB_BENCH_TOPIC"
	childNEnv     = "STICKYPUB_BENCH_N"
	childWEnv     = "STICKYPUB_BENCH_W"
	childOrderEnv = "STICKYPUB_BENCH_ORDER"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := runChild(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stdout, "error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild is a child publisher (see above).
func runChild(in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	n, err := strconv.Atoi(os.Getenv(childNEnv))
	if err != nil {
		return fmt.Errorf("%s: %w", childNEnv, err)
	}
	w, err := strconv.Atoi(os.Getenv(childWEnv))
	if err != nil {
		return fmt.Errorf("%s: %w", childWEnv, err)
	}
	order, err := core.ParseOrdering(os.Getenv(childOrderEnv))
	if err != nil {
		return err
	}
	topic := os.Getenv(childTopicEnv)
	store, err := backend.Open(ctx, os.Getenv(childURIEnv))
	if err != nil {
		return err
	}
	defer store.Close()
	id, err := core.GenerateIdentity()
	if err != nil {
		return err
	}
	c, err := core.New(store, id, core.WithOrdering(order))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if _, err := c.Publish(ctx, topic, payload(w, 1<<30)); err != nil {
		return fmt.Errorf("warm-up publish: %w", err)
	}
	start := c.Stats().Retries
	fmt.Fprintf(out, "ready %d\n", start)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "go" {
		return fmt.Errorf("waiting for go: %q %v", line, err)
	}
	for i := range n {
		if _, err := c.Publish(ctx, topic, payload(w, i)); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "done %d\n", c.Stats().Retries-start)
	return nil
}

// child is a running child publisher.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

// expect reads the child's next line, which must start with word, and
// returns the number after it.
func (ch *child) expect(word string) (uint64, error) {
	if !ch.lines.Scan() {
		return 0, fmt.Errorf("child exited before %q: %v", word, ch.lines.Err())
	}
	f := strings.Fields(ch.lines.Text())
	if len(f) != 2 || f[0] != word {
		return 0, fmt.Errorf("child said %q, want %q", ch.lines.Text(), word)
	}
	return strconv.ParseUint(f[1], 10, 64)
}

// startChildren starts p child publishers of b.N messages in total on the
// store at uri, and waits until each is ready; it returns them and their
// start-up retries per publisher.
func startChildren(b *testing.B, ctx context.Context, uri, topic string, order core.Ordering, p int) ([]*child, float64) {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	kids := make([]*child, p)
	for w := range kids {
		cmd := exec.CommandContext(ctx, exe, "-test.run=^$", "-test.bench=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", childURIEnv+"="+uri, childTopicEnv+"="+topic,
			childNEnv+"="+strconv.Itoa(share(b.N, p, w)), childWEnv+"="+strconv.Itoa(w), childOrderEnv+"="+order.String())
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		kids[w] = &child{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	}
	b.Cleanup(func() {
		for _, k := range kids {
			_ = k.stdin.Close()
			_ = k.cmd.Process.Kill()
			_ = k.cmd.Wait()
		}
	})
	var retries uint64
	for w, k := range kids {
		r, err := k.expect("ready")
		if err != nil {
			b.Fatalf("child %d: %v", w, err)
		}
		retries += r
	}
	return kids, float64(retries) / float64(p)
}

// runChildren sends "go" to every child and waits for every "done";
// it returns the retries the children counted.
func runChildren(kids []*child) (uint64, error) {
	for _, k := range kids {
		if _, err := io.WriteString(k.stdin, "go\n"); err != nil {
			return 0, err
		}
	}
	var (
		mu      sync.Mutex
		retries uint64
		errs    []error
		wg      sync.WaitGroup
	)
	for w, k := range kids {
		wg.Go(func() {
			r, err := k.expect("done")
			mu.Lock()
			defer mu.Unlock()
			retries += r
			if err != nil {
				errs = append(errs, fmt.Errorf("child %d: %w", w, err))
			}
		})
	}
	wg.Wait()
	return retries, errors.Join(errs...)
}

// BenchmarkIndependentProcs: P publishers as P OS processes (each its own
// store handle, client and identity, opened by URI), one message at a time,
// with a live pushed subscriber in the parent verifying every message; then
// the same publishers in-process (as in BenchmarkIndependentRedis and
// BenchmarkIndependentBolt) on a fresh topic, in the same run.
//
//	redis/order=ORDER/P=n  Redis direct (each child its own connections)
//	bolt/order=ORDER/P=n   one bolt file (fsync on) shared: the parent owns
//	                       it (bolt://path?share=1), the children reach it
//	                       through its private socket
//
// Metrics: msgs/s (acknowledged and delivered), retries/msg,
// start-retries/pub, in-process-msgs/s, x-in-process.
func BenchmarkIndependentProcs(b *testing.B) {
	srv := redistest.Require(b)
	if srv.Cluster || srv.TLS != nil || srv.Username != "" || srv.Password != "" {
		b.Skipf("the process benchmark builds a plain redis:// URI; %s needs more", srv)
	}
	for _, order := range orderings {
		for _, p := range []int{10, 100} {
			b.Run(fmt.Sprintf("redis/order=%s/P=%d", order, p), func(b *testing.B) {
				prefix := redistest.Prefix(b)
				redistest.CleanupPrefix(b, srv, prefix)
				uri := fmt.Sprintf("redis://%s/%d?prefix=%s", srv.Addr(), srv.DB, prefix)
				benchProcs(b, uri, order, p, func() backend.Store { return openRedisPrefix(b, srv, prefix) })
			})
		}
	}
	for _, order := range orderings {
		for _, p := range []int{10, 100} {
			b.Run(fmt.Sprintf("bolt/order=%s/P=%d", order, p), func(b *testing.B) {
				uri := "bolt://" + filepath.Join(b.TempDir(), "procs.db") + "?share=1"
				owner, err := backend.Open(benchCtx(b), uri)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = owner.Close() })
				benchProcs(b, uri, order, p, func() backend.Store { return owner })
			})
		}
	}
}

// benchProcs is one run of BenchmarkIndependentProcs: children publish
// through uri; the live subscriber and the in-process publishers use the
// handles open returns.
func benchProcs(b *testing.B, uri string, order core.Ordering, p int, open func() backend.Store) {
	ctx := benchCtx(b)
	topic := benchTopic + "/procs"
	kids, startRetries := startChildren(b, ctx, uri, topic, order, p)
	ls := startLiveSub(b, ctx, open(), topic, order, b.N)
	b.ResetTimer()
	start := time.Now()
	retries, err := runChildren(kids)
	if err != nil {
		b.Fatal(err)
	}
	ls.wait(b, ctx)
	elapsed := time.Since(start)
	b.StopTimer()
	rate := reportIndependent(b, elapsed, retries)
	b.ReportMetric(startRetries, "start-retries/pub")

	clients := newClients(b, p, order, func(int) backend.Store { return open() })
	warmUp(b, ctx, benchTopic, clients)
	in, _ := independentRun(b, ctx, benchTopic, order, p, open(), clients,
		func(w int) *core.Client { return clients[w] }, "")
	inRate := float64(b.N) / in.Seconds()
	b.ReportMetric(inRate, "in-process-msgs/s")
	b.ReportMetric(rate/inRate, "x-in-process")
}
