package core

// Background polling (StartPolling); push is in pushtopic.go.

import (
	"context"
	"fmt"
	"time"
)

// poller is the background polling loop started by StartPolling.
type poller struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// StartPolling polls every subscription every interval in the background
// and renews subscription records that are within a third of their TTL of
// expiring.
func (c *Client) StartPolling(interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("core: polling interval must be positive, got %v", interval)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClientClosed
	}
	if c.poller != nil {
		return ErrPollingActive
	}
	ctx, cancel := context.WithCancel(c.ctx)
	p := &poller{cancel: cancel, done: make(chan struct{})}
	c.poller = p
	c.wg.Go(func() {
		defer close(p.done)
		c.emit(Event{Kind: EventPollingStarted})
		defer c.emit(Event{Kind: EventPollingStopped})
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			_, _ = c.PollAll(ctx)
			c.renewDue(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return nil
}

// StopPolling stops background polling and waits for it to end. It is a
// no-op when polling is not running.
func (c *Client) StopPolling() {
	c.mu.Lock()
	p := c.poller
	c.poller = nil
	c.mu.Unlock()
	if p != nil {
		p.cancel()
		<-p.done
	}
}

// Polling reports whether background polling runs.
func (c *Client) Polling() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.poller != nil
}

func (c *Client) renewDue(ctx context.Context) {
	c.mu.Lock()
	var due []string
	for _, s := range c.subs.list() {
		if !s.opts.noRecord && time.Until(s.Expires()) < s.ttl/3 {
			due = append(due, s.tk.name)
		}
	}
	c.mu.Unlock()
	for _, topic := range due {
		_ = c.Renew(ctx, topic)
	}
}
