package conformance

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
)

// liveBound is how long a live subscriber may take, after the last publish
// was acknowledged, to deliver everything. It is far above the push safety
// poll (2 s) and the polling interval, so it fails only a subscriber that
// stalled, not a slow machine's.
const liveBound = 60 * time.Second

// livePollInterval is the background polling interval of a live subscriber
// on a store without Watch.
const livePollInterval = 20 * time.Millisecond

// liveSub is a subscriber that follows a topic while the publishers run, as
// a real one would: pushed where the store implements backend.Watcher (with
// only core's own safety poll besides), polled in the background otherwise.
// Its messages are read by a goroutine as they arrive.
type liveSub struct {
	c      *core.Client
	sub    *core.Subscription
	pushed bool

	mu   sync.Mutex
	got  []*core.Message
	more chan struct{} // signalled after each received message
	done chan struct{} // closed when the reader goroutine ends
}

// startLive subscribes a new client to topic from now, before anything is
// published, and starts reading.
func (f *fixture) startLive(topic string, want int) *liveSub {
	f.t.Helper()
	_, pushed := f.store.(backend.Watcher)
	l := &liveSub{c: f.client(f.store), pushed: pushed, more: make(chan struct{}, 1), done: make(chan struct{})}
	l.sub = f.subscribe(l.c, topic, want, core.FromNow())
	if !pushed {
		require.NoError(f.t, l.c.StartPolling(livePollInterval), "StartPolling")
	}
	go func() {
		defer close(l.done)
		for m := range l.sub.Messages() {
			l.mu.Lock()
			l.got = append(l.got, m)
			l.mu.Unlock()
			select {
			case l.more <- struct{}{}:
			default:
			}
		}
	}()
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l.c.StopPolling()
		_ = l.c.Unsubscribe(ctx, topic) // closes Messages, ending the reader
		<-l.done
	})
	return l
}

// received returns a copy of what arrived so far.
func (l *liveSub) received() []*core.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*core.Message(nil), l.got...)
}

// finish waits, after the last acknowledgement, until the live subscriber
// has every message of pubs (perPub each) and checks it got them exactly
// once and in order. A subscriber that stalls fails with the publishers
// whose messages are missing.
func (f *fixture) finish(l *liveSub, pubs []*core.Client, perPub int, payload func(i int, seq uint64) string) []*core.Message {
	f.t.Helper()
	want := len(pubs) * perPub
	deadline := time.NewTimer(liveBound)
	defer deadline.Stop()
	for len(l.received()) < want {
		select {
		case <-l.more:
		case <-deadline.C:
			f.failMissing(l, pubs, perPub)
		case <-f.ctx.Done():
			f.failMissing(l, pubs, perPub)
		}
	}
	// Anything beyond want is a duplicate or an extra: give it a moment to
	// show (one safety-poll period) before checking.
	sleepCtx(f.ctx, 50*time.Millisecond)
	got := l.received()
	f.checkExact(l.c, got, pubs, perPub, payload)
	return got
}

// failMissing fails the test naming, per publisher, what the live
// subscriber lacks and what it knows about that publisher.
func (f *fixture) failMissing(l *liveSub, pubs []*core.Client, perPub int) {
	f.t.Helper()
	got := l.received()
	mode := "polled every " + livePollInterval.String()
	if l.pushed {
		mode = "pushed (Watch) with core's safety poll"
	}
	require.FailNowf(f.t, "live subscriber stalled",
		"a subscriber following the topic since before the first publish (%s) received %d of %d messages within %v of the last acknowledgement:\n%s\nstats %+v",
		mode, len(got), len(pubs)*perPub, liveBound, describeMissing(got, pubs, perPub), l.c.Stats())
}

// describeMissing lists, for every publisher that is short, which seqs
// msgs lack, and how far its delivered prefix reaches.
func describeMissing(msgs []*core.Message, pubs []*core.Client, perPub int) string {
	have := map[core.PublisherID]map[uint64]bool{}
	for _, m := range msgs {
		if have[m.PublisherID] == nil {
			have[m.PublisherID] = map[uint64]bool{}
		}
		have[m.PublisherID][m.Seq] = true
	}
	var lines []string
	for i, p := range pubs {
		id := p.Identity().ID()
		var missing []uint64
		for seq := uint64(1); seq <= uint64(perPub); seq++ {
			if !have[id][seq] {
				missing = append(missing, seq)
			}
		}
		if len(missing) == 0 {
			continue
		}
		prefix := missing[0] - 1
		lines = append(lines, fmt.Sprintf("  publisher %d (%s): %d missing, seqs %s; delivered in order up to %d, publisher acknowledged %d",
			i, id, len(missing), ranges(missing), prefix, p.Stats().Published))
	}
	sort.Strings(lines)
	if len(lines) > 20 {
		lines = append(lines[:20], fmt.Sprintf("  … and %d more publishers", len(lines)-20))
	}
	return strings.Join(lines, "\n")
}

// ranges formats sorted seqs as "1-5,9,12-14".
func ranges(seqs []uint64) string {
	var b strings.Builder
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if i == j {
			fmt.Fprintf(&b, "%d", seqs[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", seqs[i], seqs[j])
		}
		i = j + 1
	}
	return b.String()
}
