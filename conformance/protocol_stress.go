package conformance

import (
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/core"
)

// testSequential: one publisher, 1000 messages (250 in a reduced suite),
// every integer present once and in order.
func (s *suite) testSequential(t *testing.T) {
	f := s.setup(t, stressTimeout)
	f.writersDoNotRace()
	topic := testTopic(t)
	n := s.sized(250, 1000)
	live := f.startLive(topic, n)
	pub := f.client(f.store)
	for i := 1; i <= n; i++ {
		r, err := pub.Publish(f.ctx, topic, []byte(strconv.Itoa(i)))
		require.NoError(t, err, "publish %d", i)
		require.EqualValues(t, i, r.Seq)
	}
	sc := f.client(f.store)
	sub := f.subscribe(sc, topic, n, core.FromStart())
	msgs := f.collect(sc, sub, n)
	for i, m := range msgs {
		require.Equal(t, strconv.Itoa(i+1), string(m.Payload), "message %d", i)
		require.EqualValues(t, i+1, m.Seq)
	}
	f.checkExact(sc, msgs, []*core.Client{pub}, n, nil)
	require.Equal(t, order(msgs), order(f.finish(live, []*core.Client{pub}, n, nil)), "live and late subscribers saw different orders")
}

// testConcurrent: n publishers × m messages at once on one topic; an early
// subscriber (from now, before the first publish, polled only after the
// publishers finish), a live one (following the topic while they run) and a
// late one (from the start, afterwards) all get every message exactly once,
// and on a linearizable store in the same order.
func (s *suite) testConcurrent(t *testing.T, n, m int) {
	timeout := stressTimeout
	if n >= 100 || n*m > 5000 {
		// 100 publishers contend however few messages each sends.
		timeout = heavyTimeout
	}
	f := s.setup(t, timeout)
	topic := testTopic(t)
	early := f.client(f.store)
	esub := f.subscribe(early, topic, n*m, core.FromNow(), core.WithoutPush())
	live := f.startLive(topic, n*m)
	pubs := f.clients(f.store, n)
	f.publishAll(topic, pubs, m, payloadOf)
	lvmsgs := f.finish(live, pubs, m, payloadOf)

	late := f.client(f.store)
	lsub := f.subscribe(late, topic, n*m, core.FromStart(), core.WithoutPush())
	lmsgs := f.collect(late, lsub, n*m)
	f.checkExact(late, lmsgs, pubs, m, payloadOf)
	emsgs := f.collect(early, esub, n*m)
	f.checkExact(early, emsgs, pubs, m, payloadOf)
	if f.topicOrder() {
		require.Equal(t, order(emsgs), order(lmsgs), "early and late subscribers saw different topic orders")
		require.Equal(t, order(emsgs), order(lvmsgs), "early and live subscribers saw different topic orders")
	}
	var retries uint64
	for _, p := range pubs {
		retries += p.Stats().Retries
	}
	t.Logf("%d publishers x %d messages: all %d delivered to the early, live and late subscribers; %d coordinator retries", n, m, n*m, retries)
}

// testLateJoiner: 500 messages published (5 publishers x 100; x 25 in a
// reduced suite), then a subscriber from the start receives
// them all without a gap, in the same order as an early subscriber.
func (s *suite) testLateJoiner(t *testing.T) {
	f := s.setup(t, stressTimeout)
	f.writersDoNotRace()
	topic := testTopic(t)
	const pubsN = 5
	per := s.sized(25, 100)
	early := f.client(f.store)
	esub := f.subscribe(early, topic, pubsN*per, core.WithoutPush())
	pubs := f.clients(f.store, pubsN)
	f.publishAll(topic, pubs, per, payloadOf)
	emsgs := f.collect(early, esub, pubsN*per)

	late := f.client(f.store)
	lsub := f.subscribe(late, topic, pubsN*per, core.FromStart())
	lmsgs := f.collect(late, lsub, pubsN*per)
	f.checkExact(late, lmsgs, pubs, per, payloadOf)
	f.checkExact(early, emsgs, pubs, per, payloadOf)
	if f.topicOrder() {
		require.Equal(t, order(emsgs), order(lmsgs), "late joiner saw a different order")
	}
}

// testGroupCommit: many goroutines publishing through one client, plus a
// batch, get consecutive sequence numbers with nothing lost.
func (s *suite) testGroupCommit(t *testing.T) {
	f := s.setup(t, stressTimeout)
	f.writersDoNotRace()
	topic := testTopic(t)
	const workers, each, batch = 50, 20, 100
	pub := f.client(f.store)
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := pub.Publish(f.ctx, topic, []byte("single")); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		payloads := make([][]byte, batch)
		for i := range payloads {
			payloads[i] = []byte("batch")
		}
		rs, err := pub.PublishBatch(f.ctx, topic, payloads)
		if err == nil {
			for i := 1; i < len(rs); i++ {
				if rs[i].Seq != rs[i-1].Seq+1 {
					err = errorf("batch seqs not consecutive: %d then %d", rs[i-1].Seq, rs[i].Seq)
				}
			}
		}
		if err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	total := workers*each + batch
	require.EqualValues(t, total, pub.Stats().Published)
	sc := f.client(f.store)
	sub := f.subscribe(sc, topic, total, core.FromStart())
	msgs := f.collect(sc, sub, total)
	f.checkExact(sc, msgs, []*core.Client{pub}, total, nil)
}
