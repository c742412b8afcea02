package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
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
	file   string
}

// jsonReceipt is a publish acknowledgement as publish --json prints it.
type jsonReceipt struct {
	Topic string    `json:"topic"`
	Seq   uint64    `json:"seq"`
	Time  time.Time `json:"time"`
}

// publishInput is where the messages of a publish command come from.
type publishInput int

const (
	inputArgs  publishInput = iota // each MESSAGE argument is a message
	inputLines                     // each line of stdin is a message
	inputWhole                     // all of stdin, or --file, is one message
)

func newPublishCmd(a *app) *cobra.Command {
	var f publishFlags
	cmd := &cobra.Command{
		Use:   "publish TOPIC [MESSAGE... | - | --file PATH]",
		Short: "Publish messages to a topic",
		Long: fmt.Sprintf(`Publish messages to TOPIC, signed with this user's identity.

Each MESSAGE argument is one message; they are published together, with
consecutive sequence numbers.

"-" publishes all of standard input as one message, byte for byte (binary
data too), and --file PATH the whole content of a file. A message holds at
most %d bytes (1 MiB); larger input is refused, nothing is published.

With no MESSAGE, every line of standard input is one message (without its
line ending; an empty line is an empty message); lines that arrive together
are published as one batch, so a pipe is published efficiently and an
interactive line at once.

A message is acknowledged ("published TOPIC seq N") once it is durable and
announced, so a subscriber will receive it. --timeout bounds the whole command,
or, when reading lines of standard input, each batch. Several processes may
publish as the same identity to the same store: they take turns (a waiting
one says so on stderr).`, core.MaxPayload),
		Example: `  stickypub publish demo hello
  stickypub publish demo "first message" "second message"
  stickypub publish --ttl 1h demo "gone in an hour"
  stickypub publish demo --file report.pdf       # one message: the whole file
  tar cz docs | stickypub publish backups -      # one message: all of stdin
  tail -f app.log | stickypub publish logs       # one message per line
  stickypub publish --json demo hello     # {"topic":"demo","seq":1,"time":"..."}`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.ttl < 0 {
				return usagef("--ttl must not be negative, got %v", f.ttl)
			}
			topic, msgs := args[0], args[1:]
			in := inputArgs
			switch {
			case f.file != "" && len(msgs) > 0:
				return usagef("--file cannot be combined with MESSAGE arguments or \"-\"")
			case f.file != "" || (len(msgs) == 1 && msgs[0] == "-"):
				in = inputWhole
			case len(msgs) == 0:
				in = inputLines
			case slices.Contains(msgs, "-"):
				return usagef(`"-" (all of standard input as one message) cannot be mixed with MESSAGE arguments`)
			}
			err := a.publish(cmd, topic, msgs, in, f)
			var pe *core.PublishError
			switch {
			case errors.Is(err, core.ErrConcurrentPublisher):
				return fmt.Errorf("another process published to %s as this identity at the same moment, so these messages were not published; publish them again, or give each publishing process its own --identity",
					displayTopic(topic))
			case errors.As(err, &pe) && pe.StillQueued && cmd.Context().Err() == nil:
				// The client kept trying while it closed, but this process
				// is gone now: say so rather than "will be published".
				return fmt.Errorf("%s seq %d-%d not acknowledged within %v (--timeout); they may or may not have been published: %w",
					displayTopic(pe.Topic), pe.FirstSeq, pe.LastSeq, a.timeout, pe.Err)
			case errors.As(err, &pe) && cmd.Context().Err() == nil:
				return a.explain(cmd, fmt.Errorf("%s seq %d-%d not published: %w", displayTopic(pe.Topic), pe.FirstSeq, pe.LastSeq, pe.Err))
			}
			return a.explain(cmd, err)
		},
	}
	cmd.Flags().DurationVar(&f.ttl, "ttl", 0, "retain the messages only this long (e.g. 30m, 24h; 0: no limit)")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print one JSON object per acknowledged message")
	cmd.Flags().StringVar(&f.file, "file", "", fmt.Sprintf("publish the whole file as one message (at most %d bytes; - for standard input)", core.MaxPayload))
	return cmd
}

func (a *app) publish(cmd *cobra.Command, topic string, msgs []string, in publishInput, f publishFlags) (err error) {
	setup, cancel := a.oneShot(cmd)
	defer cancel()
	var whole []byte
	if in == inputWhole { // read it all first: bad input publishes nothing
		if whole, err = a.readWhole(f.file); err != nil {
			return err
		}
	}
	_, idPath, err := a.loadIdentity()
	if err != nil {
		return err
	}
	unlock, err := a.lockIdentity(setup, idPath, a.store)
	if err != nil {
		return err
	}
	defer unlock()
	// Core's warnings about failed batches repeat the error this command
	// prints: show them with --verbose only.
	s, err := a.openSession(setup, core.WithLogger(a.newLogger(slog.LevelError)))
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
	switch in {
	case inputWhole:
		return send(setup, [][]byte{whole})
	case inputArgs:
		payloads := make([][]byte, len(msgs))
		for i, m := range msgs {
			payloads[i] = []byte(m)
		}
		return send(setup, payloads)
	}
	cancel() // each batch gets its own --timeout
	return a.publishLines(cmd.Context(), send)
}

// readWhole reads one whole message from file ("" or "-": standard input),
// refusing more than core.MaxPayload bytes.
func (a *app) readWhole(file string) ([]byte, error) {
	r, name := a.stdin, "standard input"
	if file != "" && file != "-" {
		fh, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--file %s: %w", core.QuoteInput(file), pathErr(err))
		}
		defer fh.Close()
		r, name = fh, core.QuoteInput(file)
	}
	b, err := io.ReadAll(io.LimitReader(r, core.MaxPayload+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, pathErr(err))
	}
	if len(b) > core.MaxPayload {
		return nil, fmt.Errorf("%s holds more than the message limit of %d bytes (1 MiB); nothing was published", name, core.MaxPayload)
	}
	return b, nil
}

func (a *app) printReceipt(r core.Receipt, asJSON bool) error {
	if asJSON {
		return writeJSON(a.stdout, jsonReceipt{Topic: r.Topic, Seq: r.Seq, Time: r.Time})
	}
	_, err := fmt.Fprintf(a.stdout, "published %s seq %d\n", displayTopic(r.Topic), r.Seq)
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
