package core

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
)

// trackStore wraps a memory store, keeping the size of every live key and
// counting reads, so tests can measure what the protocol stores and how
// much a poll reads. It forwards Update and Delete (not Watch).
type trackStore struct {
	inner    *memory.Store
	level    backend.Consistency // declared consistency (0: the inner one)
	maxValue int                 // declared value limit (0: the inner one)
	gets     atomic.Int64

	mu    sync.Mutex
	sizes map[string]int
}

func newTrackStore() *trackStore {
	return &trackStore{inner: memory.New(), sizes: map[string]int{}}
}

func (s *trackStore) Capabilities() backend.Capabilities {
	c := s.inner.Capabilities()
	if s.level != 0 {
		c.Consistency = s.level
	}
	if s.maxValue != 0 {
		c.MaxValueSize = s.maxValue
	}
	return c
}

func (s *trackStore) Close() error { return s.inner.Close() }

func (s *trackStore) Get(ctx context.Context, key string) (backend.Entry, error) {
	s.gets.Add(1)
	return s.inner.Get(ctx, key)
}

func (s *trackStore) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := backend.CheckValue(value, s.Capabilities()); err != nil {
		return 0, err
	}
	v, err := s.inner.CompareAndPut(ctx, key, expect, value)
	if err == nil {
		s.mu.Lock()
		s.sizes[key] = len(key) + len(value)
		s.mu.Unlock()
	}
	return v, err
}

func (s *trackStore) Delete(ctx context.Context, key string, expect backend.Version) error {
	err := s.inner.Delete(ctx, key, expect)
	if err == nil {
		s.mu.Lock()
		delete(s.sizes, key)
		s.mu.Unlock()
	}
	return err
}

func (s *trackStore) Update(ctx context.Context, key string, fn backend.UpdateFunc) (backend.Version, error) {
	var size int
	v, err := s.inner.Update(ctx, key, func(cur backend.Entry) ([]byte, error) {
		b, err := fn(cur)
		if err == nil {
			err = backend.CheckValue(b, s.Capabilities())
		}
		size = len(key) + len(b)
		return b, err
	})
	if err == nil && size > len(key) {
		s.mu.Lock()
		s.sizes[key] = size
		s.mu.Unlock()
	}
	return v, err
}

// usage returns the number of live keys and their total size, and the
// size of the largest value under the given key prefix.
func (s *trackStore) usage(prefix string) (keys, bytes, largest int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, n := range s.sizes {
		keys++
		bytes += n
		if strings.HasPrefix(k, prefix) {
			largest = max(largest, n-len(k))
		}
	}
	return keys, bytes, largest
}

func (s *trackStore) size(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.sizes[key]-len(key), 0)
}

// TestCoordinatorBounded announces n publishers (one batch each, through
// one engine) on a topic with 1,000 live subscribers, and prints the size
// of the coordinator value and of the largest snapshot. Before this change
// (issue 7) the coordinator held every publisher's head (206 KB at 10,000
// publishers and 1,000 subscribers) and every snapshot two full copies of
// the heads (361 KB). Now the coordinator holds the window, the
// subscribers and a few references; snapshots hold only the announcements.
func TestCoordinatorBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	subs := map[PublisherID]int64{}
	exp := time.Now().Add(time.Hour).UnixNano()
	for i := range 1000 {
		subs[pidOf(uint64(1<<40+i))] = exp
	}
	var coord []int
	for _, n := range []int{100, 1000, 10000} {
		st := newTrackStore()
		e, err := newEngine(st, buildOptions(nil))
		require.NoError(t, err)
		tk := newTopicKeys("bounded")
		_, err = e.announce(ctx, tk, coordOp{subs: subs})
		require.NoError(t, err)
		largestCoord := 0
		// Announcements arrive in groups, as an engine's announcer merges
		// concurrent publishers' batches.
		const group = 10
		for i := 0; i < n; i += group {
			var op coordOp
			for j := i; j < min(i+group, n); j++ {
				op.anns = append(op.anns, announcement{Pub: pidOf(uint64(j)), Seg: Ref{byte(j), byte(j >> 8), 1}, To: 3, Time: int64(j)})
			}
			_, err := e.announce(ctx, tk, op)
			require.NoError(t, err)
			largestCoord = max(largestCoord, st.size(tk.coord))
		}
		cst, _, err := e.readCoord(ctx, tk)
		require.NoError(t, err)
		reg, err := e.registered(ctx, tk, cst)
		require.NoError(t, err)
		require.Len(t, reg, n, "every publisher keeps its place in the registry")
		snap, err := e.loadSnapshot(ctx, cst.Snap)
		require.NoError(t, err)
		snapSize := len(snap.encode())
		regRoot, err := e.blobs.get(ctx, cst.Registry)
		require.NoError(t, err)
		keys, bytes, _ := st.usage("x/")
		t.Logf("publishers %5d, subscribers 1000: coordinator value %6d B (largest while announcing %6d B), snapshot %5d B, registry root %5d B; store %d keys, %d B",
			n, st.size(tk.coord), largestCoord, snapSize, len(regRoot), keys, bytes)
		require.LessOrEqual(t, largestCoord, 64<<10, "coordinator value above 64 KB")
		require.LessOrEqual(t, snapSize, 8<<10, "snapshot holds more than the window and references")
		coord = append(coord, largestCoord)
		e.close()
		require.NoError(t, st.Close())
	}
	require.Less(t, coord[2], coord[0]+8<<10, "the coordinator grows with the number of publishers")
}

// pidOf makes a publisher ID from a number (spread over all first bytes).
func pidOf(i uint64) PublisherID {
	var p PublisherID
	d := digest(fmt.Appendf(nil, "publisher %d", i))
	copy(p[:], d[:16])
	return p
}

// TestIdlePublisherKeepsPlace: a publisher that stops announcing leaves
// the hot record (the coordinator window) at the next fold, and when it
// publishes again its messages continue its log: a FromNow subscriber
// gets only the new ones, a FromStart subscriber all of them in order, and
// Info still lists it with its head.
func TestIdlePublisherKeepsPlace(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	opts := []Option{WithFoldWindow(4)}
	idle := newClient(t, store, opts...)
	busy := newClient(t, store, opts...)
	const topic = "idle"
	for i := 1; i <= 3; i++ {
		_, err := idle.Publish(ctx, topic, fmt.Appendf(nil, "idle %d", i))
		require.NoError(t, err)
	}
	for i := 1; i <= 20; i++ {
		_, err := busy.Publish(ctx, topic, fmt.Appendf(nil, "busy %d", i))
		require.NoError(t, err)
	}
	st, _, err := idle.eng.readCoord(ctx, newTopicKeys(topic))
	require.NoError(t, err)
	_, hot := st.hot[idle.pid]
	require.False(t, hot, "the idle publisher is still in the hot record")
	require.Less(t, len(st.encode()), 1024)

	sc := newClient(t, store)
	now, err := sc.Subscribe(ctx, topic, WithoutPush())
	require.NoError(t, err)
	for i := 4; i <= 5; i++ {
		_, err := idle.Publish(ctx, topic, fmt.Appendf(nil, "idle %d", i))
		require.NoError(t, err)
	}
	_, err = sc.Poll(ctx, topic)
	require.NoError(t, err)
	for i := 4; i <= 5; i++ {
		m := <-now.Messages()
		require.Equal(t, idle.pid, m.PublisherID)
		require.EqualValues(t, i, m.Seq, "FromNow after an idle period")
	}
	require.Empty(t, now.Messages())

	late := newClient(t, store)
	all, err := late.Subscribe(ctx, topic, FromStart(), WithoutPush(), WithBuffer(100))
	require.NoError(t, err)
	_, err = late.Poll(ctx, topic)
	require.NoError(t, err)
	next := map[PublisherID]uint64{}
	for range 25 {
		m := <-all.Messages()
		require.Equal(t, next[m.PublisherID]+1, m.Seq)
		next[m.PublisherID] = m.Seq
	}
	require.EqualValues(t, 5, next[idle.pid])
	require.EqualValues(t, 20, next[busy.pid])
	require.Zero(t, late.Stats().Gaps)
	info, err := late.Info(ctx, topic)
	require.NoError(t, err)
	require.Len(t, info.Publishers, 2)
	require.EqualValues(t, 25, info.Messages)
}

// drainCovered reads everything queued on sub: messages and gaps, counting
// how often each (publisher, seq) was delivered or reported.
func drainCovered(sub *Subscription, covered map[string]int) {
	for {
		select {
		case m := <-sub.Messages():
			covered[fmt.Sprintf("%s/%d", m.PublisherID, m.Seq)]++
		case g := <-sub.Gaps():
			for q := g.From; q <= g.To; q++ {
				covered[fmt.Sprintf("%s/%d", g.Publisher, q)]++
			}
		default:
			return
		}
	}
}

// fakeClock is a settable clock for WithClock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestUnorderedPollCostFollowsChange: on a store that is not linearizable,
// a poll of a topic with 1,000 idle publishers and one active one reads a
// constant number of records (the coordinator, the active publisher's
// head, a few round-robin re-reads and the new segments), not 1,000 heads
// as before issue 7.
func TestUnorderedPollCostFollowsChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st := newTrackStore()
	st.level = backend.Eventual
	defer st.Close()
	clk := &fakeClock{t: time.Now()}
	hub, err := NewHub(st, WithClock(clk.now))
	require.NoError(t, err)
	defer hub.Close()
	const idle = 1000
	opts := []Option{WithHub(hub), WithClock(clk.now), WithVerifyInterval(time.Hour)}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range idle {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			id, err := GenerateIdentity()
			if !assertNoErr(t, err) {
				return
			}
			c, err := New(st, id, opts...)
			if !assertNoErr(t, err) {
				return
			}
			_, err = c.Publish(ctx, "cost", fmt.Appendf(nil, "idle %d", i))
			assertNoErr(t, err)
			assertNoErr(t, c.Close(ctx))
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
	clk.advance(activeGrace + time.Minute) // every idle lease expires and is dropped

	active := newClient(t, st, opts...)
	_, err = active.Publish(ctx, "cost", []byte("active 1"))
	require.NoError(t, err)
	sc := newClient(t, st, WithClock(clk.now), WithVerifyInterval(time.Hour))
	sub, err := sc.Subscribe(ctx, "cost", WithoutPush())
	require.NoError(t, err)
	for round := 2; round <= 4; round++ {
		_, err = active.Publish(ctx, "cost", fmt.Appendf(nil, "active %d", round))
		require.NoError(t, err)
		before := st.gets.Load()
		n, err := sc.Poll(ctx, "cost")
		require.NoError(t, err)
		reads := st.gets.Load() - before
		require.Equal(t, 1, n)
		m := <-sub.Messages()
		require.Equal(t, fmt.Sprintf("active %d", round), string(m.Payload))
		t.Logf("poll with %d idle publishers and 1 active: %d reads", idle, reads)
		require.LessOrEqual(t, reads, int64(12), "a poll reads more than what changed")
	}
	info, err := sc.Info(ctx, "cost")
	require.NoError(t, err)
	require.Len(t, info.Publishers, idle+1, "idle publishers lost their registration")
}

// assertNoErr reports err without stopping the goroutine's caller.
func assertNoErr(t *testing.T, err error) bool {
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}
