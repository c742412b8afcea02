package bench

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/redistest"
)

// catchUpN is how many messages a catch-up benchmark's late joiner
// receives; catchUpPublishers publish them (see fillTopic).
const (
	catchUpN          = 100000
	catchUpPublishers = 100
)

// verifySample is how many signatures a paired verify baseline checks
// (rates scale linearly; checking all catchUpN single-threaded would take
// longer than the catch-up itself).
const verifySample = 20000

// catchUpTopic is the topic catch-up benchmarks fill.
const catchUpTopic = "bench/catch-up"

// fillTopic publishes catchUpN messages of payloadSize bytes to
// catchUpTopic on store from catchUpPublishers clients sharing a Hub,
// concurrently, each with PublishBatch calls of batch messages, so the
// publishers' logs hold segments of batch messages. The clients are closed
// before it returns.
func fillTopic(b *testing.B, store backend.Store, batch int) {
	b.Helper()
	ctx := benchCtx(b)
	ps := newPublishers(b, store, modeHub, catchUpPublishers)
	var wg sync.WaitGroup
	errs := make(chan error, catchUpPublishers)
	for w := range catchUpPublishers {
		wg.Go(func() {
			c, n := ps.client(w), share(catchUpN, catchUpPublishers, w)
			for i := 0; i < n; i += batch {
				msgs := make([][]byte, 0, batch)
				for j := i; j < min(i+batch, n); j++ {
					msgs = append(msgs, payload(w, j))
				}
				if _, err := c.PublishBatch(ctx, catchUpTopic, msgs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if err := ps.close(ctx); err != nil {
		b.Fatal(err)
	}
}

// benchCatchUp times b.N late joiners on a topic filled by fillTopic: each
// is a fresh client (new identity, cold blob cache) that subscribes
// FromStart with WithBuffer(catchUpN) and without push, and polls until it
// has received all catchUpN messages, every one verified (one segment
// signature and one Merkle root per segment). Creating the client and
// subscribing are timed; closing it is not. It reports msgs/s (messages
// received per second of catch-up) and fails on any gap, duplicate or
// invalid message.
//
// After each catch-up, with the timer stopped, it verifies verifySample
// equivalent per-message signatures (see signedSet) with GOMAXPROCS
// goroutines and with one, and reports those rates ("verify-msgs/s",
// "verify1-msgs/s": what one signature per message would cost) and the
// ratios of the catch-up rate to them ("x-verify", "x-verify1"): measured
// seconds apart, the ratios hold up on a noisy machine better than two
// separate benchmarks do.
func benchCatchUp(b *testing.B, store backend.Store) {
	ctx := benchCtx(b)
	set := signedMessages()
	var total, verifyTotal, verify1Total time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		id, err := core.GenerateIdentity()
		if err != nil {
			b.Fatal(err)
		}
		c, err := core.New(store, id)
		if err != nil {
			b.Fatal(err)
		}
		sub, err := c.Subscribe(ctx, catchUpTopic, core.FromStart(), core.WithBuffer(catchUpN), core.WithoutPush())
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for polls := 0; got < catchUpN; polls++ {
			if polls > 100 {
				b.Fatalf("received %d of %d messages after %d polls", got, catchUpN, polls)
			}
			n, err := c.Poll(ctx, catchUpTopic)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		total += time.Since(start)
		b.StopTimer()
		if len(sub.Messages()) != catchUpN || got != catchUpN {
			b.Fatalf("delivered %d, channel holds %d, want %d", got, len(sub.Messages()), catchUpN)
		}
		if st := c.Stats(); st.Gaps != 0 || st.Duplicates != 0 || st.Invalid != 0 {
			b.Fatalf("catch-up not exact: %+v", st)
		}
		if err := c.Close(ctx); err != nil {
			b.Fatal(err)
		}
		d, err := set.verify(verifySample, runtime.GOMAXPROCS(0))
		if err != nil {
			b.Fatal(err)
		}
		verifyTotal += d
		if d, err = set.verify(verifySample, 1); err != nil {
			b.Fatal(err)
		}
		verify1Total += d
		b.StartTimer()
	}
	b.StopTimer()
	rate := float64(catchUpN) * float64(b.N) / total.Seconds()
	verifyRate := float64(verifySample) * float64(b.N) / verifyTotal.Seconds()
	verify1Rate := float64(verifySample) * float64(b.N) / verify1Total.Seconds()
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(verifyRate, "verify-msgs/s")
	b.ReportMetric(rate/verifyRate, "x-verify")
	b.ReportMetric(verify1Rate, "verify1-msgs/s")
	b.ReportMetric(rate/verify1Rate, "x-verify1")
}

// catchUpBatches are the segment sizes (messages per PublishBatch call)
// the catch-up benchmarks fill the topic with: large segments (one
// signature per 100 messages; the subscriber verifies segments in
// parallel), and single-message segments, as many small publishers write
// them (still one signature per message).
var catchUpBatches = []int{100, 1}

// BenchmarkCatchUpBolt times a late joiner receiving catchUpN messages on
// a durable bolt store (see benchCatchUp); b.N counts catch-ups of
// catchUpN messages. The topic is filled once per segment size, before
// the timed runs.
func BenchmarkCatchUpBolt(b *testing.B) {
	for _, batch := range catchUpBatches {
		s := openBolt(b)
		fillTopic(b, s, batch)
		b.Run(fmt.Sprintf("segment=%d", batch), func(b *testing.B) { benchCatchUp(b, s) })
	}
}

// BenchmarkCatchUpRedis is BenchmarkCatchUpBolt on Redis (found by
// redistest.Require; keys deleted afterwards).
func BenchmarkCatchUpRedis(b *testing.B) {
	srv := redistest.Require(b)
	b.Logf("redis: %s", srv)
	for _, batch := range catchUpBatches {
		s := openRedis(b, srv, 0)
		fillTopic(b, s, batch)
		b.Run(fmt.Sprintf("segment=%d", batch), func(b *testing.B) { benchCatchUp(b, s) })
	}
}

// signedSet is a set of messages equivalent to the protocol's (a
// 100-byte payload with the topic, sequence number, time and TTL in the
// signed bytes) with one signature each, as segment format 1 signed them:
// the Ed25519 baselines, what one signature per message costs.
type signedSet struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
	msgs [][]byte
	sigs [][]byte
}

// signedMessages returns the shared signedSet of 1024 messages.
var signedMessages = sync.OnceValue(func() *signedSet {
	const distinct = 1024
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	s := &signedSet{pub: pub, priv: priv, msgs: make([][]byte, distinct), sigs: make([][]byte, distinct)}
	for i := range s.msgs {
		m := []byte("stickypub/msg/v1\x00")
		m = binary.AppendUvarint(m, uint64(len(catchUpTopic)))
		m = append(m, catchUpTopic...)
		m = binary.AppendUvarint(m, uint64(i+1))
		m = binary.AppendVarint(m, time.Now().UnixNano())
		m = binary.AppendVarint(m, 0)
		m = binary.AppendUvarint(m, payloadSize)
		m = append(m, payload(0, i)...)
		s.msgs[i], s.sigs[i] = m, ed25519.Sign(priv, m)
	}
	return s
})

// verify checks n signatures of the set with g goroutines and returns
// the elapsed time.
func (s *signedSet) verify(n, g int) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make(chan error, g)
	start := time.Now()
	for w := range g {
		wg.Go(func() {
			for i := range share(n, g, w) {
				k := (w + i*g) % len(s.msgs)
				if !ed25519.Verify(s.pub, s.msgs[k], s.sigs[k]) {
					errs <- fmt.Errorf("signature %d does not verify", k)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	return elapsed, <-errs
}

// BenchmarkEd25519 holds the CPU baselines: raw ed25519.Verify (the
// catch-up baseline) and ed25519.Sign (the publisher's per-message cost) of
// the signedMessages set. b.N operations are split among 1 or GOMAXPROCS
// goroutines; verifies/s or signs/s.
func BenchmarkEd25519(b *testing.B) {
	set := signedMessages()
	for _, g := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("verify/goroutines=%d", g), func(b *testing.B) {
			runWorkers(b, g, "verifies/s", func(w, n int) error {
				for i := range n {
					k := (w*n + i) % len(set.msgs)
					if !ed25519.Verify(set.pub, set.msgs[k], set.sigs[k]) {
						return fmt.Errorf("signature %d does not verify", k)
					}
				}
				return nil
			})
		})
	}
	for _, g := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("sign/goroutines=%d", g), func(b *testing.B) {
			runWorkers(b, g, "signs/s", func(w, n int) error {
				for i := range n {
					if len(ed25519.Sign(set.priv, set.msgs[(w*n+i)%len(set.msgs)])) != ed25519.SignatureSize {
						return fmt.Errorf("bad signature size")
					}
				}
				return nil
			})
		})
	}
}
