package conformance

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/forge"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// testForged: records written straight into the store by someone with
// write access (bad signatures, impersonation, garbage segments under
// format-2 and format-1 head records, a garbage head record, and segments the real publisher signed whose message list
// was then altered, truncated, reordered or spliced from two segments, or
// whose signature covers a wrong root or comes from another key) are never
// delivered and are counted, and the real publisher's messages all arrive,
// without a gap.
//
// The tampered segments claim the publisher's seqs 11 on, and are
// announced before the publisher really publishes them, so a subscriber
// meets each of them before the real ones. (In unordered mode, on stores
// that are not linearizable, subscribers follow the publishers' signed
// head records and never read an announced segment, so only the first
// five forgeries are met there.) Forged head records of a real publisher
// are testForgedHeads'.
func (s *suite) testForged(t *testing.T) {
	f := s.setup(t, stressTimeout)
	f.writersDoNotRace()
	topic := testTopic(t)
	pub := f.client(f.store)
	for i := 1; i <= 10; i++ {
		_, err := pub.Publish(f.ctx, topic, []byte(payloadOf(0, uint64(i))))
		require.NoError(t, err)
	}
	forger := func() *forge.Forger {
		id, err := core.GenerateIdentity()
		require.NoError(t, err)
		fg, err := forge.New(f.store, id, f.order)
		require.NoError(t, err)
		t.Cleanup(func() { _ = fg.Close(f.ctx) })
		return fg
	}
	_, err := forger().BadSignature(f.ctx, topic, 1, []byte("forged"))
	require.NoError(t, err)
	require.NoError(t, forger().Impersonate(f.ctx, topic, pub.Identity().PublicKey(), 11, []byte("forged")))
	require.NoError(t, forger().Garbage(f.ctx, topic, 5, []byte("not a segment")))
	require.NoError(t, forger().GarbageV1(f.ctx, topic, 6, []byte("not a segment either")))
	require.NoError(t, forger().GarbageHead(f.ctx, topic, 9, []byte("not a head record")))
	tampered := []struct {
		how forge.Tampering
		n   int
	}{ // each claims more seqs than the one before, so each is announced
		{forge.TamperAltered, 2}, {forge.TamperTruncated, 4}, {forge.TamperReordered, 4},
		{forge.TamperSpliced, 6}, {forge.TamperWrongRoot, 7}, {forge.TamperOtherKey, 8},
	}
	lastForged := uint64(11)
	for _, tc := range tampered {
		payloads := make([][]byte, tc.n)
		for i := range payloads {
			payloads[i] = []byte(fmt.Sprintf("forged %s %d", tc.how, i))
		}
		fg := forger()
		var last uint64
		for attempt := 0; ; attempt++ { // a fault-injecting store fails some writes
			if last, err = fg.Tamper(f.ctx, topic, pub.Identity(), 11, payloads, tc.how); err == nil || attempt == 20 {
				break
			}
		}
		require.NoError(t, err, "tamper: %s", tc.how)
		require.Greater(t, last, lastForged, "tamper %s", tc.how)
		lastForged = last
	}
	for i := 11; i <= 20; i++ {
		_, err := pub.Publish(f.ctx, topic, []byte(payloadOf(0, uint64(i))))
		require.NoError(t, err)
	}
	sc := f.client(f.store)
	sub := f.subscribe(sc, topic, 20, core.FromStart())
	msgs := f.collect(sc, sub, 20)
	for _, m := range msgs {
		require.NotContains(t, string(m.Payload), "forged")
	}
	st := sc.Stats()
	require.GreaterOrEqual(t, st.Invalid, uint64(5), "forged records counted: %+v", st)
	if f.topicOrder() { // publisher order follows head records, not the tampered announcements
		require.GreaterOrEqual(t, st.Invalid, uint64(5+len(tampered)), "tampered segments counted: %+v", st)
	}
	for {
		select {
		case g := <-sub.Gaps():
			require.NotEqual(t, pub.Identity().ID(), g.Publisher, "real messages reported as a gap: %+v", g)
			continue
		default:
		}
		break
	}
	var seqs []uint64
	for _, m := range msgs {
		require.Equal(t, pub.Identity().ID(), m.PublisherID)
		seqs = append(seqs, m.Seq)
		// Every delivered message exports with a proof a third party
		// verifies alone.
		proof, err := m.Proof()
		require.NoError(t, err)
		b, err := proof.MarshalBinary()
		require.NoError(t, err)
		got, err := core.VerifyProof(b)
		require.NoError(t, err, "proof of seq %d", m.Seq)
		require.Equal(t, m.Payload, got.Payload)
	}
	for i, q := range seqs {
		require.EqualValues(t, i+1, q)
	}
}

// testSubscriptionTTL: a subscription is listed while its record lives,
// disappears at expiry, comes back on Renew and goes on Unsubscribe. Time is
// a manual clock shared by both clients, so expiry is an event the test
// causes, not a wait.
func (s *suite) testSubscriptionTTL(t *testing.T) {
	f := s.setup(t, stressTimeout)
	f.writersDoNotRace()
	topic := testTopic(t)
	clock := newManualClock(time.Now())
	sc := f.client(f.store, core.WithClock(clock.Now))
	observer := f.client(f.store, core.WithClock(clock.Now))
	listed := func() (bool, time.Time) {
		info, err := observer.Info(f.ctx, topic)
		if err != nil {
			return false, time.Time{}
		}
		for _, sub := range info.Subscribers {
			if sub.ID == sc.Identity().ID() {
				return true, sub.Expires
			}
		}
		return false, time.Time{}
	}
	const ttl = time.Minute
	sub := f.subscribe(sc, topic, 1, core.WithSubscriptionTTL(ttl))
	f.eventually("subscriber listed", func() bool { ok, _ := listed(); return ok })
	require.Equal(t, 1, sc.Stats().ActiveSubscriptions)
	require.Equal(t, clock.Now().Add(ttl), sub.Expires(), "expiry is the subscribe time plus the TTL")
	_, exp := listed()
	require.Equal(t, sub.Expires().Unix(), exp.Unix(), "the listed expiry is the record's")
	clock.Advance(ttl - time.Second)
	// The clock stands still: a read that lists it (a stale or failed
	// read of a store that is not linearizable may not) proves it is
	// listed until its TTL passes.
	f.eventually("a subscription is listed until its TTL passes", func() bool { ok, _ := listed(); return ok })
	clock.Advance(2 * time.Second)
	f.eventually("subscription expired", func() bool { ok, _ := listed(); return !ok })
	require.NoError(t, sc.Renew(f.ctx, topic))
	f.eventually("subscriber listed again after renew", func() bool { ok, _ := listed(); return ok })
	require.NoError(t, sc.Unsubscribe(f.ctx, topic))
	f.eventually("subscriber gone after unsubscribe", func() bool { ok, _ := listed(); return !ok })
	require.Zero(t, sc.Stats().ActiveSubscriptions)
	_, open := <-sub.Messages()
	require.False(t, open, "Messages channel still open after Unsubscribe")
	require.ErrorIs(t, sc.Renew(f.ctx, topic), core.ErrNotSubscribed)
}

// testRetention: with a 1000-byte value limit (as BEP44) and a retention of
// 100 messages, the coordinator folds into snapshots, a late joiner gets the
// newest retained messages contiguously and without a reported gap, and an
// early subscriber still got everything.
func (s *suite) testRetention(t *testing.T) {
	f := s.setup(t, stressTimeout)
	f.writersDoNotRace()
	topic := testTopic(t)
	store := limited{Store: f.store, max: min(1000, f.caps.MaxValueSize)}
	const pubsN, per, keep = 2, 200, 100
	opts := []core.Option{core.WithRetention(core.Retention{MaxMessages: keep}), core.WithFoldWindow(8)}
	early := f.client(store, opts...)
	esub := f.subscribe(early, topic, pubsN*per, core.WithoutPush())
	pubs := f.clients(store, pubsN, opts...)
	f.publishAll(topic, pubs, per, payloadOf)
	f.checkRetainedOrGap(early, esub, pubs, per)

	info, err := early.Info(f.ctx, topic)
	require.NoError(t, err)
	if f.topicOrder() {
		require.Greater(t, info.RetainedFrom, uint64(0), "nothing was dropped by retention")
	}
	require.GreaterOrEqual(t, info.RetainedMessages, uint64(keep))
	require.Less(t, info.RetainedMessages, uint64(pubsN*per))

	late := f.client(store)
	lsub := f.subscribe(late, topic, int(info.RetainedMessages), core.FromStart())
	// On a backend that is not linearizable, the late joiner may have read
	// a head record from before the last retention step and so receive a
	// message or two more than Info counted: more history, never less.
	msgs := f.collectAtLeast(late, lsub, int(info.RetainedMessages))
	if f.linearizable() {
		require.Len(t, msgs, int(info.RetainedMessages))
	} else {
		// Those extra messages can make up the count while a stale head
		// read still holds a publisher's newest back: wait for it.
		msgs = f.collectUntil(late, lsub, msgs, "every publisher's newest retained message", func(msgs []*core.Message) bool {
			last := map[core.PublisherID]uint64{}
			for _, m := range msgs {
				last[m.PublisherID] = max(last[m.PublisherID], m.Seq)
			}
			for _, l := range last {
				if l < per {
					return false
				}
			}
			return true
		})
	}
	seen := map[msgID]bool{}
	last := map[core.PublisherID]uint64{}
	for _, m := range msgs {
		require.False(t, seen[msgID{m.PublisherID, m.Seq}], "duplicate")
		seen[msgID{m.PublisherID, m.Seq}] = true
		if prev, ok := last[m.PublisherID]; ok {
			require.Equal(t, prev+1, m.Seq, "retained history has a hole")
		}
		last[m.PublisherID] = m.Seq
	}
	// Retention keeps the newest messages of the topic, whoever published
	// them: a publisher may have none left, but whatever it has left ends
	// at its newest message.
	newest := 0
	for _, p := range pubs {
		if l, ok := last[p.Identity().ID()]; ok {
			require.EqualValues(t, per, l, "retained history of a publisher does not end at its newest message")
			newest++
		}
	}
	require.Positive(t, newest, "no publisher's newest message retained")
	require.Zero(t, late.Stats().Gaps, "retention reported as a gap")
	t.Logf("retained %d of %d messages (from announcement %d)", info.RetainedMessages, pubsN*per, info.RetainedFrom)
}

// testLargeValues: payloads several times the backend's value limit are
// chunked and arrive intact.
func (s *suite) testLargeValues(t *testing.T) {
	f := s.setup(t, stressTimeout)
	f.writersDoNotRace()
	topic := testTopic(t)
	store := limited{Store: f.store, max: min(1000, f.caps.MaxValueSize)}
	pub := f.client(store)
	var want [][]byte
	for i := range 5 {
		p := bytes.Repeat([]byte{byte('a' + i)}, 3000+i*1111)
		want = append(want, p)
		_, err := pub.Publish(f.ctx, topic, p)
		require.NoError(t, err)
	}
	sc := f.client(store)
	sub := f.subscribe(sc, topic, len(want), core.FromStart())
	msgs := f.collect(sc, sub, len(want))
	for i, m := range msgs {
		require.True(t, bytes.Equal(want[i], m.Payload), "payload %d differs", i)
	}
}

// testPush: when the store offers Watch, a subscriber receives a new message
// without ever calling Poll.
func (s *suite) testPush(t *testing.T) {
	f := s.setup(t, basicTimeout)
	if _, ok := f.store.(backend.Watcher); !ok {
		t.Skip("store does not implement backend.Watcher: delivery is by polling")
	}
	topic := testTopic(t)
	sc := f.client(f.store)
	sub := f.subscribe(sc, topic, 10)
	pub := f.client(f.store)
	for i := range 3 {
		want := fmt.Sprintf("push %d", i)
		_, err := pub.Publish(f.ctx, topic, []byte(want))
		require.NoError(t, err)
		select {
		case m := <-sub.Messages():
			require.Equal(t, want, string(m.Payload))
		case <-f.ctx.Done():
			require.FailNow(t, "pushed message never arrived")
		}
	}
}

// checkRetainedOrGap polls an early subscriber that fell behind retention:
// every message of every publisher must be either delivered exactly once or
// inside a reported gap, never silently skipped.
func (f *fixture) checkRetainedOrGap(c *core.Client, sub *core.Subscription, pubs []*core.Client, per int) {
	f.t.Helper()
	covered := map[msgID]int{}
	complete := func() bool {
		for _, p := range pubs {
			for q := 1; q <= per; q++ {
				if covered[msgID{p.Identity().ID(), uint64(q)}] == 0 {
					return false
				}
			}
		}
		return true
	}
	var pollErr error
	missing := func() string {
		var out []string
		for i, p := range pubs {
			var seqs []uint64
			for q := 1; q <= per; q++ {
				if covered[msgID{p.Identity().ID(), uint64(q)}] == 0 {
					seqs = append(seqs, uint64(q))
				}
			}
			if len(seqs) > 0 {
				out = append(out, fmt.Sprintf("publisher %d: %d missing from seq %d to %d", i, len(seqs), seqs[0], seqs[len(seqs)-1]))
			}
		}
		return strings.Join(out, "; ")
	}
	for !complete() {
		if _, err := c.Poll(f.ctx, sub.Topic()); err != nil && f.ctx.Err() == nil {
			pollErr = err
		}
	drain:
		for {
			select {
			case m := <-sub.Messages():
				covered[msgID{m.PublisherID, m.Seq}]++
			case g := <-sub.Gaps():
				require.Equal(f.t, "dropped by retention before delivery", g.Reason)
				for q := g.From; q <= g.To; q++ {
					covered[msgID{g.Publisher, q}]++
				}
			default:
				break drain
			}
		}
		if !complete() && !sleepCtx(f.ctx, 5*time.Millisecond) {
			require.FailNowf(f.t, "early subscriber: messages neither delivered nor reported as a gap",
				"%s; last poll error: %v; stats %+v", missing(), pollErr, c.Stats())
		}
	}
	for id, n := range covered {
		require.Equal(f.t, 1, n, "message %s/%d delivered or reported %d times", id.pub, id.seq, n)
	}
}

// manualClock is a clock that moves only when told to, for core.WithClock.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func newManualClock(start time.Time) *manualClock { return &manualClock{now: start} }

// Now returns the clock's current time.
func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
