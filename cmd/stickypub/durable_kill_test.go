package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/conformance"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/redistest"
)

// The durable subscriber SIGKILL test (issue 7). The parent process runs
// killPublishers publishers (each its own identity, client and store
// handle) publishing killMessages messages each, while a durable subscriber
// runs in a child process (this test binary re-executed) that the parent
// SIGKILLs at random points and restarts. The child logs, unbuffered, one
// line per delivered message ("D pub seq redelivered") and, after each
// AckSync that returned, the message it acknowledged ("A pub seq"). At the
// end every message a publisher was told was published must have been
// delivered, no message acknowledged by an earlier run may come again, a
// message delivered twice must be flagged Redelivered the second time, and
// no run delivers a message twice.
//
// Bolt: the parent opens the file first and so owns it (see bolt.Shared);
// the publishers' handles and the child reach it through the owner's
// socket, as separate stickypub processes do. Redis: every handle is its
// own connection. Faulty: conformance.Faulty (DHT faults) over Redis, in
// the parent's handles and the child's (unordered mode).
//
// Size: 10 publishers × 1,000 messages, as issue 7 asks; about 20-40 s per
// backend on a quiet machine. Under -race (5-10× slower, 11 processes) it
// is 10 × 200, so that the package stays within a few minutes in CI.
const (
	killPublishers = 10
	envKillChild   = "STICKYPUB_TEST_DURABLE_CHILD"
)

// killMessages is how many messages each publisher publishes.
func killMessages() int {
	if raceEnabled {
		return 200
	}
	return 1000
}

func TestDurableSubscriberSIGKILL(t *testing.T) {
	for _, kind := range []string{"bolt", "redis", "faulty"} {
		t.Run(kind, func(t *testing.T) { runKillTest(t, kind) })
	}
}

// killFaults is the fault profile of the faulty variant.
func killFaults(seed uint64) conformance.FaultConfig {
	cfg := conformance.DHTFaults
	cfg.Seed = seed
	return cfg
}

func runKillTest(t *testing.T, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var uri string
	switch kind {
	case "bolt":
		uri = "bolt:" + filepath.Join(t.TempDir(), "kill.db")
	default:
		srv := redistest.Require(t)
		prefix := redistest.Prefix(t)
		redistest.CleanupPrefix(t, srv, prefix)
		uri = "redis://" + srv.Addrs[0] + "/0?prefix=" + url.QueryEscape(prefix)
	}
	open := func(i int) backend.Store {
		s, _, err := openStore(ctx, uri, slog.New(slog.DiscardHandler), false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if kind == "faulty" {
			return conformance.Faulty(s, killFaults(uint64(i+1)))
		}
		return s
	}
	open(-1) // the bolt file's owner: opened first, closed last
	topic := "kill-" + kind
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(rand.IntN(256))
	}
	logPath := filepath.Join(t.TempDir(), "child.log")
	if d := os.Getenv("SP_DK_KEEP"); d != "" { // keep the child log (<kind>.log) for a post-mortem
		logPath = filepath.Join(d, kind+".log")
	}

	// Publishers.
	type key struct {
		pub string
		seq uint64
	}
	var (
		mu     sync.Mutex
		acked  = map[key]bool{}
		pubIDs = map[string]bool{}
		wg     sync.WaitGroup
	)
	done := make(chan struct{})
	for i := range killPublishers {
		id, err := core.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		pubIDs[id.ID().String()] = true
		c, err := core.New(open(i), id)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer func() { _ = c.Close(ctx) }()
			for j := 1; j <= killMessages(); j++ {
				r, err := c.Publish(ctx, topic, fmt.Appendf(nil, "p%d-%d", i, j))
				if err != nil {
					t.Errorf("publisher %d message %d: %v", i, j, err)
					return
				}
				mu.Lock()
				acked[key{id.ID().String(), r.Seq}] = true
				mu.Unlock()
				time.Sleep(3 * time.Millisecond) // spread the run over several kills
			}
		})
	}
	go func() { wg.Wait(); close(done) }()

	// child starts a subscriber process; its channel says when it ended.
	child := func() (*exec.Cmd, <-chan error) {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envKillChild+"=1", "SP_DK_STORE="+uri, "SP_DK_KIND="+kind,
			"SP_DK_SEED="+hex.EncodeToString(seed), "SP_DK_LOG="+logPath, "SP_DK_TOPIC="+topic,
			"GORACE=atexit_sleep_ms=0 halt_on_error=1")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ended := make(chan error, 1)
		go func() { ended <- cmd.Wait() }()
		return cmd, ended
	}
	kills := 0
	for publishing := true; publishing || kills < 10; {
		select {
		case <-done:
			publishing = false
		default:
		}
		runs := parseKillLog(t, logPath).runs
		cmd, ended := child()
		// Kill it at a random point after it subscribed (so every kill
		// interrupts a delivering subscriber, however slow the start).
		for subscribed := false; !subscribed; {
			select {
			case err := <-ended:
				t.Fatalf("the child exited by itself (%v); log errors: %v", err, parseKillLog(t, logPath).errs)
			case <-ctx.Done():
				t.Fatal("timed out waiting for a child to subscribe")
			case <-time.After(20 * time.Millisecond):
				subscribed = parseKillLog(t, logPath).runs > runs
			}
		}
		select {
		case err := <-ended:
			t.Fatalf("the child exited by itself (%v); log errors: %v", err, parseKillLog(t, logPath).errs)
		case <-time.After(killAfter()):
		}
		_ = cmd.Process.Kill()
		<-ended
		kills++
		if ctx.Err() != nil {
			t.Fatal("timed out while killing children")
		}
	}
	<-done
	if t.Failed() {
		return
	}

	// The last run goes on until everything acknowledged was delivered.
	cmd, ended := child()
	var rep killReport
	for {
		rep = parseKillLog(t, logPath)
		missing := 0
		for k := range acked {
			if rep.deliveries[k.pub+" "+strconv.FormatUint(k.seq, 10)] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		select {
		case err := <-ended:
			t.Fatalf("the last child exited by itself (%v); log errors: %v", err, rep.errs)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			t.Fatalf("%d of %d acknowledged messages never delivered", missing, len(acked))
		case <-time.After(100 * time.Millisecond):
		}
	}
	_ = cmd.Process.Kill()
	<-ended
	rep = parseKillLog(t, logPath)
	for _, e := range rep.errs {
		t.Error(e)
	}
	for k := range rep.deliveries {
		pub, seq, _ := strings.Cut(k, " ")
		if n, _ := strconv.Atoi(seq); !pubIDs[pub] || n < 1 || n > killMessages() {
			t.Errorf("delivered a message nobody published: %s", k)
		}
	}
	t.Logf("%s: %d publishers × %d messages acknowledged; %d subscriber runs, %d of them SIGKILLed while delivering; %d deliveries, "+
		"%d redelivered (all flagged), %d flagged in all, %d durable acks",
		kind, killPublishers, len(acked)/killPublishers, rep.runs, kills, rep.total, rep.dups, rep.flagged, rep.acks)
}

// killAfter is how long a child delivers before it is killed: random.
func killAfter() time.Duration {
	if raceEnabled {
		return time.Duration(rand.IntN(1500)) * time.Millisecond
	}
	return time.Duration(rand.IntN(800)) * time.Millisecond
}

// killReport is what parseKillLog found.
type killReport struct {
	runs, total, dups, flagged, acks int
	deliveries                       map[string]int // "pub seq" → times delivered
	errs                             []string       // violations
}

// parseKillLog reads the child's log and checks the durable subscription's
// promises (see TestDurableSubscriberSIGKILL).
func parseKillLog(t *testing.T, path string) killReport {
	t.Helper()
	rep := killReport{deliveries: map[string]int{}}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return rep // no child has started yet
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	ackedBefore := map[string]bool{} // durably acked by an earlier run
	var run []string                 // this run's deliveries, in order
	ackedIdx := -1                   // index in run of the newest AckSync
	seenRun := map[string]bool{}
	endRun := func() {
		for _, k := range run[:ackedIdx+1] {
			ackedBefore[k] = true
		}
		run, ackedIdx, seenRun = nil, -1, map[string]bool{}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "S":
			endRun()
			rep.runs++
		case "D":
			if len(fields) != 4 {
				continue // cut short by the kill
			}
			k := fields[1] + " " + fields[2]
			re := fields[3] == "1"
			rep.total++
			if re {
				rep.flagged++
			}
			switch {
			case seenRun[k]:
				rep.errs = append(rep.errs, fmt.Sprintf("run %d delivered %s twice", rep.runs, k))
			case ackedBefore[k]:
				rep.errs = append(rep.errs, fmt.Sprintf("run %d delivered %s, acknowledged by an earlier run", rep.runs, k))
			case rep.deliveries[k] > 0 && !re:
				rep.errs = append(rep.errs, fmt.Sprintf("run %d delivered %s again without the Redelivered flag", rep.runs, k))
			}
			if rep.deliveries[k] > 0 {
				rep.dups++
			}
			seenRun[k] = true
			rep.deliveries[k]++
			run = append(run, k)
		case "A":
			if len(fields) != 3 {
				continue
			}
			k := fields[1] + " " + fields[2]
			if len(run) == 0 || run[len(run)-1] != k {
				rep.errs = append(rep.errs, fmt.Sprintf("ack line %s not after its delivery", k))
				continue
			}
			ackedIdx = len(run) - 1
			rep.acks++
		case "E":
			rep.errs = append(rep.errs, "child: "+sc.Text())
		}
	}
	return rep
}

// durableChild is the child process of TestDurableSubscriberSIGKILL.
func durableChild() int {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	logf, err := os.OpenFile(os.Getenv("SP_DK_LOG"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fail := func(err error) int {
		_, _ = fmt.Fprintf(logf, "E %v\n", err)
		return 1
	}
	store, _, err := openStore(ctx, os.Getenv("SP_DK_STORE"), slog.New(slog.DiscardHandler), false)
	if err != nil {
		return fail(err)
	}
	if os.Getenv("SP_DK_KIND") == "faulty" {
		store = conformance.Faulty(store, killFaults(uint64(os.Getpid())))
	}
	seed, err := hex.DecodeString(os.Getenv("SP_DK_SEED"))
	if err != nil {
		return fail(err)
	}
	id, err := core.IdentityFromSeed(seed)
	if err != nil {
		return fail(err)
	}
	c, err := core.New(store, id)
	if err != nil {
		return fail(err)
	}
	sub, err := c.Subscribe(ctx, os.Getenv("SP_DK_TOPIC"), core.FromStart(), core.Durable("kill"))
	if err != nil {
		return fail(err)
	}
	if err := c.StartPolling(20 * time.Millisecond); err != nil {
		return fail(err)
	}
	if _, err := fmt.Fprintf(logf, "S %d\n", os.Getpid()); err != nil {
		return 1
	}
	for m := range sub.Messages() {
		re := 0
		if m.Redelivered {
			re = 1
		}
		if _, err := fmt.Fprintf(logf, "D %s %d %d\n", m.PublisherID, m.Seq, re); err != nil {
			return 1
		}
		switch rand.IntN(25) {
		case 0:
			if err := sub.AckSync(ctx, m); err != nil {
				return fail(err)
			}
			if _, err := fmt.Fprintf(logf, "A %s %d\n", m.PublisherID, m.Seq); err != nil {
				return 1
			}
		case 1, 2, 3:
			if err := sub.Ack(m); err != nil {
				return fail(err)
			}
		}
	}
	return fail(fmt.Errorf("subscription ended"))
}
