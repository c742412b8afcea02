package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
)

// subscribeFlags are the flags of the subscribe command.
type subscribeFlags struct {
	fromStart bool
	asJSON    bool
	interval  time.Duration
	count     int
	ttl       time.Duration
	untilEnd  bool
	durable   string
	cursor    string
	metrics   string
}

// warnEvery is the least time between two warnings about failing polls.
const warnEvery = 10 * time.Second

func newSubscribeCmd(a *app) *cobra.Command {
	var f subscribeFlags
	cmd := &cobra.Command{
		Use:   "subscribe TOPIC",
		Short: "Follow a topic and print its messages as they arrive",
		Long: `Follow TOPIC and print every message as it arrives, until interrupted
(Ctrl-C, SIGTERM) or, with --count, after that many messages.

Messages are pushed as soon as they are announced when the store can notify
(bolt, also across processes sharing the file; Redis), and polled every
--interval as a safety net (the only way on other stores). With --from-start
the topic's retained history is printed first. Every message's signature is
verified; messages of a publisher that are missing (a gap) are reported on
stderr as a warning line, never skipped silently.

Plain output is one line per message:

  [2025-01-02 15:04:05.000] AbCdEfGh #42: payload

with the publisher's time, the start of the publisher's ID and its sequence
number. --json prints one object per line instead: topic, publisher, seq,
time, payload (a string if it is UTF-8, else base64 with "base64": true) and
ttl (when set).

While subscribed, a subscription record (renewed automatically) makes this
subscriber visible in "stickypub info"; it is removed on exit.

With --durable NAME the position is stored in the store under this identity
and NAME: each message is acknowledged once printed, and a later
"subscribe --durable NAME" continues after the last acknowledged message
(messages printed but not yet acknowledged when the process died are
printed again, marked "(redelivered)" or "redelivered": true). --json
prints each message's "cursor"; --from-cursor CURSOR resumes right after
the message that carried it.`,
		Example: `  stickypub subscribe demo
  stickypub subscribe --from-start demo                  # history, then new messages
  stickypub subscribe --from-start --count 10 demo       # the first 10, then exit
  stickypub subscribe --from-start --until-end demo      # the history, then exit
  stickypub subscribe --json demo | jq -r .payload
  stickypub subscribe --durable billing --from-start demo  # resumes where it stopped`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case f.interval <= 0:
				return usagef("--interval must be positive, got %v", f.interval)
			case f.count < 0:
				return usagef("--count must not be negative, got %d", f.count)
			case f.ttl < time.Second:
				return usagef("--record-ttl must be at least 1s, got %v", f.ttl)
			case f.untilEnd && !f.fromStart:
				return usagef("--until-end reads the history, so it needs --from-start")
			case f.cursor != "" && f.fromStart:
				return usagef("--from-cursor and --from-start exclude each other")
			}
			return a.subscribe(cmd, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.fromStart, "from-start", false, "print the topic's retained history first")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON object per message")
	fl.DurationVar(&f.interval, "interval", 500*time.Millisecond, "background polling interval")
	fl.IntVarP(&f.count, "count", "n", 0, "exit after this many messages (0: follow until interrupted)")
	fl.BoolVar(&f.untilEnd, "until-end", false, "with --from-start: exit once the history present at start is printed")
	fl.DurationVar(&f.ttl, "record-ttl", core.DefaultSubscriptionTTL,
		"lifetime of the subscription record if this process dies without removing it (renewed while running)")
	fl.StringVar(&f.durable, "durable", "", "durable subscription `NAME`: resume after the last acknowledged message")
	fl.StringVar(&f.cursor, "from-cursor", "", "resume after the message that carried `CURSOR` (see --json)")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics on ADDR/metrics (e.g. 127.0.0.1:9100)")
	return cmd
}

func (a *app) subscribe(cmd *cobra.Command, topic string, f subscribeFlags) (err error) {
	ctx := cmd.Context() // ends on SIGINT or SIGTERM: a normal way to stop
	warn := a.pollWarner(topic)
	a.readOnlyOK = true // a file this user may not write is read without a subscription record
	setup, cancel := a.oneShot(cmd)
	defer cancel()
	ms, err := a.startMetrics(f.metrics)
	if err != nil {
		return err
	}
	defer ms.close()
	s, err := a.openSession(setup, core.WithEventHandler(ms.eventHandler(warn)))
	if err != nil {
		return a.explain(cmd, err)
	}
	ms.watch(s.client)
	defer func() { err = alsoErr(err, s.close()) }()
	opts := []core.SubscribeOption{core.WithSubscriptionTTL(f.ttl)}
	if f.fromStart {
		opts = append(opts, core.FromStart())
	}
	if f.untilEnd {
		opts = append(opts, core.WithoutPush()) // this command polls once itself
	}
	if s.readOnly {
		opts = append(opts, core.WithoutRecord())
	}
	if f.cursor != "" {
		cur, err := core.ParseCursor(f.cursor)
		if err != nil {
			return usagef("--from-cursor: %v", err)
		}
		opts = append(opts, core.FromCursor(cur))
	}
	if f.durable != "" {
		opts = append(opts, core.Durable(f.durable))
	}
	sub, err := s.client.Subscribe(setup, topic, opts...)
	if err != nil {
		return a.explain(cmd, err)
	}
	cancel()
	var caughtUp <-chan error // with --until-end: the history is delivered
	if f.untilEnd {
		ch := make(chan error, 1)
		go func() { ch <- a.pollHistory(ctx, s.client, topic) }()
		caughtUp = ch
	} else if err := s.client.StartPolling(f.interval); err != nil {
		return err
	}
	a.logger.Debug("subscribed", "topic", topic, "from_start", f.fromStart, "expires", sub.Expires())
	n := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-sub.Messages():
			if !ok {
				return fmt.Errorf("subscription to %s ended", displayTopic(topic))
			}
			if err := writeMessage(a.stdout, m, f.asJSON); err != nil {
				return err
			}
			if f.durable != "" {
				if err := sub.Ack(m); err != nil {
					return err
				}
			}
			if n++; f.count > 0 && n >= f.count {
				return nil
			}
		case g, ok := <-sub.Gaps():
			if ok {
				a.printGap(g)
			}
		case err := <-caughtUp:
			if err != nil {
				return a.explain(cmd, err)
			}
			// The history is in the channels now: print what is left.
			return a.drain(sub, n, f)
		}
	}
}

// printGap reports a gap on stderr.
func (a *app) printGap(g core.Gap) {
	fmt.Fprintf(a.stderr, "stickypub: warning: gap on %s: messages %d..%d of publisher %s are missing (%s)\n",
		displayTopic(g.Topic), g.From, g.To, g.Publisher, g.Reason)
}

// drain prints the messages and gaps already delivered to sub, having
// printed n messages so far.
func (a *app) drain(sub *core.Subscription, n int, f subscribeFlags) error {
	for {
		select {
		case g := <-sub.Gaps():
			a.printGap(g)
		case m := <-sub.Messages():
			if err := writeMessage(a.stdout, m, f.asJSON); err != nil {
				return err
			}
			if n++; f.count > 0 && n >= f.count {
				return nil
			}
		default:
			return nil
		}
	}
}

// pollHistory polls topic once to the end of what the store holds,
// retrying while the store is unreachable for at most --timeout.
func (a *app) pollHistory(ctx context.Context, c *core.Client, topic string) error {
	var failing time.Time
	for {
		_, err := c.Poll(ctx, topic)
		if err == nil || ctx.Err() != nil || !errors.Is(err, backend.ErrUnavailable) {
			return err
		}
		if failing.IsZero() {
			failing = time.Now()
		} else if time.Since(failing) > a.timeout {
			return fmt.Errorf("reading the history of %s: %w", displayTopic(topic), err)
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// pollWarner returns an event handler that reports dropped invalid records
// and, at most every warnEvery, failing polls on stderr.
func (a *app) pollWarner(topic string) func(core.Event) {
	var (
		mu   sync.Mutex
		last time.Time
	)
	return func(e core.Event) {
		switch e.Kind {
		case core.EventInvalid:
			fmt.Fprintf(a.stderr, "stickypub: warning: dropped an invalid record on %s: %v\n", displayTopic(e.Topic), e.Err)
		case core.EventPollError:
			mu.Lock()
			now := time.Now()
			show := now.Sub(last) >= warnEvery
			if show {
				last = now
			}
			mu.Unlock()
			if show {
				fmt.Fprintf(a.stderr, "stickypub: warning: polling %s failed (retrying): %v\n", displayTopic(topic), e.Err)
			}
		}
	}
}
