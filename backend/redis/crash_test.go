package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend/redis"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/redistest"
)

// Shape of TestCrashMidPublishAckedDeliveredOnce.
const (
	crashPublishers   = 10                     // publisher clients, one identity each
	crashGoroutines   = 3                      // concurrent Publish loops per client (group commit)
	crashPublishTO    = 500 * time.Millisecond // per-Publish context
	crashAcksBefore   = 400                    // acks before the kill
	crashAcksAfter    = 400                    // acks after the restart before stopping
	crashDowntime     = time.Second            // publishers keep trying this long
	crashTestDeadline = 55 * time.Second       // the whole test
)

// crashPub is what the test knows about one publisher client: the payload
// of every sequence number it was given (acknowledged or not) and when each
// acknowledged one returned.
type crashPub struct {
	idx    int
	client *core.Client
	id     core.PublisherID

	mu       sync.Mutex
	payload  map[uint64]string    // seq -> payload, every seq the client assigned
	ackedAt  map[uint64]time.Time // seq -> when Publish returned nil
	errs     map[string]int       // Publish error kinds
	hardErrs []string             // errors that were not "still queued"
}

func (p *crashPub) record(seq uint64, payload string, at time.Time, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq != 0 {
		if old, ok := p.payload[seq]; ok && old != payload {
			p.hardErrs = append(p.hardErrs, fmt.Sprintf("seq %d given to two payloads: %q and %q", seq, old, payload))
		}
		p.payload[seq] = payload
	}
	if err == nil {
		p.ackedAt[seq] = at
		return
	}
	var pe *core.PublishError
	switch {
	case errors.As(err, &pe) && pe.StillQueued:
		p.errs["still queued ("+errKind(pe.Err)+")"]++
	default:
		p.errs["hard: "+errKind(err)]++
		if len(p.hardErrs) < 5 {
			p.hardErrs = append(p.hardErrs, err.Error())
		}
	}
}

// errKind shortens an error to its class for the summary.
func errKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// crashSub collects what a subscription delivers.
type crashSub struct {
	name   string
	client *core.Client
	sub    *core.Subscription

	mu   sync.Mutex
	msgs []*core.Message
	gaps []core.Gap
	done chan struct{}
}

func (s *crashSub) drain() {
	defer close(s.done)
	msgs, gaps := s.sub.Messages(), s.sub.Gaps()
	for msgs != nil || gaps != nil {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
		case g, ok := <-gaps:
			if !ok {
				gaps = nil
				continue
			}
			s.mu.Lock()
			s.gaps = append(s.gaps, g)
			s.mu.Unlock()
		}
	}
}

func (s *crashSub) snapshot() ([]*core.Message, []core.Gap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs), slices.Clone(s.gaps)
}

// TestCrashMidPublishAckedDeliveredOnce kills a private redis-server
// (AOF, appendfsync always) with SIGKILL while ten publisher clients
// publish concurrently, keeps them publishing against the dead server for a
// second, restarts the server on the same port and directory, publishes
// some more, and then checks with a subscriber that lived through the crash
// and with a fresh FromStart subscriber that every acknowledged publish is
// delivered exactly once, with its payload, in per-publisher order, and that
// no reported gap covers an acknowledged message.
func TestCrashMidPublishAckedDeliveredOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: starts, kills and restarts a redis-server")
	}
	local := redistest.StartLocal(t, redistest.LocalOptions{AOF: true, Fsync: "always"})
	ctx, cancel := context.WithTimeout(context.Background(), crashTestDeadline)
	t.Cleanup(cancel)

	prefix := redistest.Prefix(t)
	topic := "crash-" + strings.TrimSuffix(strings.TrimPrefix(prefix, redistest.PrefixRoot), ":")
	openStore := func() *redis.Store {
		s, err := redis.Open(ctx, redis.Options{
			Addrs:        []string{local.Addr},
			Prefix:       prefix,
			DialTimeout:  200 * time.Millisecond,
			ReadTimeout:  500 * time.Millisecond,
			WriteTimeout: 500 * time.Millisecond,
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() }) // after the clients' cleanup below
		return s
	}
	pubStore, liveStore := openStore(), openStore()

	var evMu sync.Mutex
	events := map[string]int{}
	onEvent := func(who string) func(core.Event) {
		return func(e core.Event) {
			switch e.Kind {
			case core.EventPublishError, core.EventPollError, core.EventSubscribeError, core.EventInvalid, core.EventGap:
				evMu.Lock()
				events[who+" "+e.Kind.String()]++
				evMu.Unlock()
			}
		}
	}

	// Every client is closed by the test; this cleanup only matters when
	// the test stops early (so that no goroutine outlives it).
	var (
		closeMu sync.Mutex
		toClose []*core.Client
	)
	closeClients := func() {
		closeMu.Lock()
		cs := toClose
		toClose = nil
		closeMu.Unlock()
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		for _, c := range cs {
			_ = c.Close(cctx)
		}
	}
	newClient := func(store *redis.Store, who string) *core.Client {
		id, err := core.GenerateIdentity()
		require.NoError(t, err)
		c, err := core.New(store, id, core.WithEventHandler(onEvent(who)))
		require.NoError(t, err)
		closeMu.Lock()
		toClose = append(toClose, c)
		closeMu.Unlock()
		return c
	}

	// A subscriber that lives through the crash, with push.
	live := &crashSub{name: "live", client: newClient(liveStore, "live"), done: make(chan struct{})}
	var err error
	live.sub, err = live.client.Subscribe(ctx, topic, core.FromStart(), core.WithBuffer(1<<16))
	require.NoError(t, err)
	go live.drain()

	pubs := make([]*crashPub, crashPublishers)
	byID := map[core.PublisherID]*crashPub{}
	for i := range pubs {
		c := newClient(pubStore, fmt.Sprintf("pub%d", i))
		pubs[i] = &crashPub{idx: i, client: c, id: c.Identity().ID(),
			payload: map[uint64]string{}, ackedAt: map[uint64]time.Time{}, errs: map[string]int{}}
		byID[pubs[i].id] = pubs[i]
	}

	var (
		stop  atomic.Bool
		acks  atomic.Int64
		pubWG sync.WaitGroup
	)
	stopPublishers := func() { stop.Store(true); pubWG.Wait() }
	t.Cleanup(closeClients)
	t.Cleanup(stopPublishers) // runs first
	for _, p := range pubs {
		for g := range crashGoroutines {
			pubWG.Go(func() {
				for k := 0; !stop.Load() && ctx.Err() == nil; k++ {
					payload := fmt.Sprintf("p%02d/g%d/k%06d", p.idx, g, k)
					pctx, pcancel := context.WithTimeout(ctx, crashPublishTO)
					r, err := p.client.Publish(pctx, topic, []byte(payload))
					pcancel()
					at := time.Now()
					seq := r.Seq
					var pe *core.PublishError
					if errors.As(err, &pe) {
						seq = pe.FirstSeq
					}
					p.record(seq, payload, at, err)
					if err == nil {
						acks.Add(1)
					} else if !errors.As(err, &pe) || !pe.StillQueued {
						time.Sleep(20 * time.Millisecond) // hard error: do not spin
					}
				}
			})
		}
	}

	waitFor := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) || ctx.Err() != nil {
				t.Fatalf("timed out after %s waiting for %s (acks %d)\nserver log:\n%s", within, what, acks.Load(), local.LogTail())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	start := time.Now()
	waitFor("acks before the kill", 15*time.Second, func() bool { return acks.Load() >= crashAcksBefore })
	acksAtKill := acks.Load()
	local.Kill()
	killedAt := time.Now()
	time.Sleep(crashDowntime)
	acksWhileDown := acks.Load() - acksAtKill
	restartBegin := time.Now()
	local.Start()
	restartedAt := time.Now()
	t.Logf("killed after %s at %d acks; %d acks returned while down; restart took %s",
		killedAt.Sub(start).Round(time.Millisecond), acksAtKill, acksWhileDown, restartedAt.Sub(restartBegin).Round(time.Millisecond))

	// The opposite direction: every publisher recovers and is acknowledged
	// again after the restart.
	ackedSince := func(p *crashPub, since time.Time) int {
		p.mu.Lock()
		defer p.mu.Unlock()
		n := 0
		for _, at := range p.ackedAt {
			if at.After(since) {
				n++
			}
		}
		return n
	}
	waitFor("every publisher acked again after the restart", 20*time.Second, func() bool {
		for _, p := range pubs {
			if ackedSince(p, restartedAt) == 0 {
				return false
			}
		}
		return true
	})
	allRecovered := time.Since(restartedAt)
	waitFor("acks after the restart", 20*time.Second, func() bool { return acks.Load() >= acksAtKill+acksWhileDown+crashAcksAfter })
	stopPublishers()
	t.Logf("every publisher acknowledged again %s after the restart; publishing stopped %s after it",
		allRecovered.Round(time.Millisecond), time.Since(restartedAt).Round(time.Millisecond))

	// Close the publishers: they flush whatever is still queued.
	for _, p := range pubs {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		err := p.client.Close(cctx)
		ccancel()
		require.NoError(t, err, "closing publisher %d (flush of queued messages)", p.idx)
	}

	// Sanity: no Publish may succeed while the server is down (margin for
	// replies already read when the process died).
	const margin = 300 * time.Millisecond
	totalAcked, assigned := 0, 0
	for _, p := range pubs {
		after := ackedSince(p, restartedAt)
		p.mu.Lock()
		var times []time.Time
		for _, at := range p.ackedAt {
			times = append(times, at)
		}
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		firstAfter, longest := time.Duration(-1), time.Duration(0)
		for i, at := range times {
			if firstAfter < 0 && at.After(restartedAt) {
				firstAfter = at.Sub(restartedAt)
			}
			if i > 0 && !(times[i-1].Before(killedAt) && at.After(killedAt)) {
				longest = max(longest, at.Sub(times[i-1])) // pauses not spanning the outage
			}
		}
		totalAcked += len(p.ackedAt)
		assigned += len(p.payload)
		for seq, at := range p.ackedAt {
			if at.After(killedAt.Add(margin)) && at.Before(restartBegin) {
				t.Errorf("publisher %d seq %d acknowledged at +%s while the server was down (killed at +%s, restarted at +%s)",
					p.idx, seq, at.Sub(start), killedAt.Sub(start), restartBegin.Sub(start))
			}
		}
		// Sequence numbers are assigned without holes.
		for seq := uint64(1); seq <= uint64(len(p.payload)); seq++ {
			if _, ok := p.payload[seq]; !ok {
				t.Errorf("publisher %d: seq %d never assigned but %d seqs were", p.idx, seq, len(p.payload))
			}
		}
		if len(p.hardErrs) > 0 {
			t.Errorf("publisher %d had errors other than \"still queued\": %q", p.idx, p.hardErrs)
		}
		t.Logf("publisher %d: %d assigned, %d acked (%d after restart, first %s after it; longest pause between acks apart from the outage %s), errors %v",
			p.idx, len(p.payload), len(p.ackedAt), after, firstAfter.Round(time.Millisecond), longest.Round(time.Millisecond), p.errs)
		p.mu.Unlock()
	}
	t.Logf("total: %d acked of %d assigned in %s", totalAcked, assigned, time.Since(start).Round(time.Millisecond))

	// check verifies one subscriber's deliveries; complete reports whether
	// every acknowledged message is there.
	check := func(name string, msgs []*core.Message, gaps []core.Gap, final bool) (complete bool) {
		errorf, logf := t.Errorf, t.Logf
		if !final { // only completeness matters while waiting
			errorf, logf = func(string, ...any) {}, func(string, ...any) {}
		}
		seen := map[core.PublisherID]map[uint64]int{}
		last := map[core.PublisherID]uint64{}
		for i, m := range msgs {
			p, ok := byID[m.PublisherID]
			if !ok {
				errorf("%s: message %d from unknown publisher %s", name, i, m.PublisherID)
				continue
			}
			if m.Topic != topic {
				errorf("%s: message %d on topic %q", name, i, m.Topic)
			}
			if seen[m.PublisherID] == nil {
				seen[m.PublisherID] = map[uint64]int{}
			}
			if j, dup := seen[m.PublisherID][m.Seq]; dup {
				errorf("%s: duplicate: publisher %d seq %d delivered at positions %d and %d", name, p.idx, m.Seq, j, i)
			}
			seen[m.PublisherID][m.Seq] = i
			if m.Seq <= last[m.PublisherID] {
				errorf("%s: publisher %d seq %d delivered after seq %d", name, p.idx, m.Seq, last[m.PublisherID])
			}
			last[m.PublisherID] = m.Seq
			p.mu.Lock()
			want, known := p.payload[m.Seq]
			p.mu.Unlock()
			if !known {
				errorf("%s: publisher %d seq %d was never assigned (payload %q)", name, p.idx, m.Seq, m.Payload)
			} else if string(m.Payload) != want {
				errorf("%s: publisher %d seq %d payload %q, want %q", name, p.idx, m.Seq, m.Payload, want)
			}
		}
		for _, g := range gaps {
			p := byID[g.Publisher]
			if p == nil {
				errorf("%s: gap of unknown publisher: %+v", name, g)
				continue
			}
			logf("%s: gap: publisher %d seqs %d..%d: %s", name, p.idx, g.From, g.To, g.Reason)
			p.mu.Lock()
			for seq := g.From; seq <= g.To && seq <= g.From+1<<20; seq++ {
				if _, acked := p.ackedAt[seq]; acked {
					errorf("%s: gap %d..%d (%s) covers acknowledged publisher %d seq %d", name, g.From, g.To, g.Reason, p.idx, seq)
					break
				}
			}
			p.mu.Unlock()
		}
		complete = true
		var missing []string
		for _, p := range pubs {
			p.mu.Lock()
			for seq := range p.ackedAt {
				if _, ok := seen[p.id][seq]; !ok {
					complete = false
					if final && len(missing) < 20 {
						missing = append(missing, fmt.Sprintf("p%d/seq%d", p.idx, seq))
					}
				}
			}
			p.mu.Unlock()
		}
		if final && !complete {
			sort.Strings(missing)
			errorf("%s: acknowledged messages never delivered (first %d): %v", name, len(missing), missing)
		}
		return complete
	}
	// waitComplete waits until sub holds every acknowledged message (poll
	// is called between looks when not nil), then checks it.
	waitComplete := func(s *crashSub, poll func() error) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		var pollErr error
		for {
			if poll != nil {
				pollErr = poll()
			}
			msgs, gaps := s.snapshot()
			if check(s.name, msgs, gaps, false) {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				t.Logf("%s: gave up waiting (last poll error: %v)", s.name, pollErr)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The subscriber that lived through the crash.
	waitComplete(live, nil)
	{
		msgs, _ := live.snapshot()
		after := 0
		for _, m := range msgs {
			p := byID[m.PublisherID]
			p.mu.Lock()
			if at, ok := p.ackedAt[m.Seq]; ok && at.After(restartedAt) {
				after++
			}
			p.mu.Unlock()
		}
		require.Positive(t, after, "live subscriber received nothing published after the restart")
	}
	{
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		require.NoError(t, live.client.Close(cctx))
		ccancel()
		<-live.done
		msgs, gaps := live.snapshot()
		check("live", msgs, gaps, true)
		st := live.client.Stats()
		t.Logf("live subscriber: %d delivered, %d gaps, stats %+v", len(msgs), len(gaps), st)
		require.Zero(t, st.Invalid, "live subscriber dropped invalid records")
	}

	// A fresh subscriber reads the whole history from the restarted server.
	freshStore := openStore()
	fresh := &crashSub{name: "fresh", client: newClient(freshStore, "fresh"), done: make(chan struct{})}
	fresh.sub, err = fresh.client.Subscribe(ctx, topic, core.FromStart(), core.WithoutPush(), core.WithBuffer(1024))
	require.NoError(t, err)
	go fresh.drain()
	waitComplete(fresh, func() error {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		_, err := fresh.client.Poll(pctx, topic)
		return err
	})
	// Once more: nothing must come twice.
	n, err := fresh.client.Poll(ctx, topic)
	require.NoError(t, err)
	info, err := fresh.client.Info(ctx, topic)
	require.NoError(t, err)
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	require.NoError(t, fresh.client.Close(cctx))
	ccancel()
	<-fresh.done
	msgs, gaps := fresh.snapshot()
	check("fresh", msgs, gaps, true)
	st := fresh.client.Stats()
	t.Logf("fresh subscriber: %d delivered (%d unacknowledged but flushed), %d gaps, last poll %d; stats %+v",
		len(msgs), len(msgs)-totalAcked, len(gaps), n, st)
	t.Logf("topic info: %d announcements, %d messages, %d publishers", info.Announcements, info.Messages, len(info.Publishers))
	require.Zero(t, st.Invalid, "fresh subscriber dropped invalid records")
	// Every publisher was closed after flushing its queue, so the fresh
	// subscriber sees each publisher's whole log: every assigned seq.
	require.Len(t, msgs, assigned, "fresh subscriber: delivered %d of %d assigned messages", len(msgs), assigned)

	evMu.Lock()
	t.Logf("events: %v", events)
	evMu.Unlock()
}
