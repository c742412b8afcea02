package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/stickypub/stickypub/core"
)

// Limits of one batch published from stdin.
const (
	maxBatchLines = 1000
	maxBatchBytes = 4 << 20
)

// publishFlags are the flags of the publish command.
type publishFlags struct {
	ttl    time.Duration
	asJSON bool
}

// jsonReceipt is a publish acknowledgement as publish --json prints it.
type jsonReceipt struct {
	Topic string    `json:"topic"`
	Seq   uint64    `json:"seq"`
	Time  time.Time `json:"time"`
}

func newPublishCmd(a *app) *cobra.Command {
	var f publishFlags
	cmd := &cobra.Command{
		Use:   "publish TOPIC [MESSAGE... | -]",
		Short: "Publish messages to a topic",
		Long: `Publish messages to TOPIC, signed with this user's identity.

Each MESSAGE argument is one message; they are published together, with
consecutive sequence numbers. With no MESSAGE, or "-", every line of standard
input is one message (without its line ending; an empty line is an empty
message); lines that arrive together are published as one batch, so a pipe is
published efficiently and an interactive line at once.

A message is acknowledged ("published TOPIC seq N") once it is durable and
announced, so a subscriber will receive it. --timeout bounds the whole command,
or, when reading standard input, each batch.`,
		Example: `  stickypub publish demo hello
  stickypub publish demo "first message" "second message"
  stickypub publish --ttl 1h demo "gone in an hour"
  tail -f app.log | stickypub publish logs -
  stickypub publish --json demo hello     # {"topic":"demo","seq":1,"time":"..."}`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.ttl < 0 {
				return usagef("--ttl must not be negative, got %v", f.ttl)
			}
			topic, msgs := args[0], args[1:]
			fromStdin := len(msgs) == 0 || (len(msgs) == 1 && msgs[0] == "-")
			if !fromStdin {
				for _, m := range msgs {
					if m == "-" {
						return usagef(`"-" (read standard input) cannot be mixed with MESSAGE arguments`)
					}
				}
			}
			err := a.publish(cmd, topic, msgs, fromStdin, f)
			var pe *core.PublishError
			if errors.As(err, &pe) && pe.StillQueued && cmd.Context().Err() == nil {
				// The client kept trying while it closed, but this process
				// is gone now: say so rather than "will be published".
				return fmt.Errorf("%q seq %d-%d not acknowledged within %v (--timeout); they may or may not have been published: %w",
					pe.Topic, pe.FirstSeq, pe.LastSeq, a.timeout, pe.Err)
			}
			return a.explain(cmd, err)
		},
	}
	cmd.Flags().DurationVar(&f.ttl, "ttl", 0, "retain the messages only this long (e.g. 30m, 24h; 0: no limit)")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print one JSON object per acknowledged message")
	return cmd
}

func (a *app) publish(cmd *cobra.Command, topic string, msgs []string, fromStdin bool, f publishFlags) (err error) {
	setup, cancel := a.oneShot(cmd)
	defer cancel()
	s, err := a.openSession(setup)
	if err != nil {
		return err
	}
	defer func() { err = alsoErr(err, s.close()) }()
	var opts []core.PublishOption
	if f.ttl > 0 {
		opts = append(opts, core.WithTTL(f.ttl))
	}
	send := func(ctx context.Context, payloads [][]byte) error {
		rs, err := s.client.PublishBatch(ctx, topic, payloads, opts...)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := a.printReceipt(r, f.asJSON); err != nil {
				return err
			}
		}
		return nil
	}
	if !fromStdin {
		payloads := make([][]byte, len(msgs))
		for i, m := range msgs {
			payloads[i] = []byte(m)
		}
		return send(setup, payloads)
	}
	cancel() // each batch gets its own --timeout
	return a.publishLines(cmd.Context(), send)
}

func (a *app) printReceipt(r core.Receipt, asJSON bool) error {
	if asJSON {
		return writeJSON(a.stdout, jsonReceipt{Topic: r.Topic, Seq: r.Seq, Time: r.Time})
	}
	_, err := fmt.Fprintf(a.stdout, "published %s seq %d\n", r.Topic, r.Seq)
	return err
}

// publishLines publishes the lines of stdin, each batch of lines that are
// available together in one call of send.
func (a *app) publishLines(ctx context.Context, send func(context.Context, [][]byte) error) error {
	lines := make(chan []byte, maxBatchLines)
	readErr := make(chan error, 1)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go func() {
		readErr <- scanLines(readCtx, a.stdin, lines)
		close(lines)
	}()
	for {
		var batch [][]byte
		select {
		case l, ok := <-lines:
			if !ok {
				return <-readErr
			}
			batch = append(batch, l)
		case <-ctx.Done():
			return ctx.Err()
		}
		size := len(batch[0])
	fill:
		for len(batch) < maxBatchLines && size < maxBatchBytes {
			select {
			case l, ok := <-lines:
				if !ok {
					break fill
				}
				batch = append(batch, l)
				size += len(l)
			default:
				break fill
			}
		}
		bctx, cancel := context.WithTimeout(ctx, a.timeout)
		err := send(bctx, batch)
		cancel()
		if err != nil {
			return err
		}
	}
}

// scanLines sends every line of r to lines until r ends or ctx does.
// (A goroutine blocked reading a terminal ends with the process.)
func scanLines(ctx context.Context, r io.Reader, lines chan<- []byte) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), core.MaxPayload+2)
	n := 0
	for sc.Scan() {
		n++
		select {
		case lines <- append([]byte(nil), sc.Bytes()...):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("standard input line %d is longer than the %d-byte message limit", n+1, core.MaxPayload)
		}
		return fmt.Errorf("read standard input: %w", err)
	}
	return nil
}
