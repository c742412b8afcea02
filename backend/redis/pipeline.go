package redis

import (
	"context"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// Batch bounds of one pipeline. A batch always takes at least one call.
const (
	// maxBatchCalls is the most calls sent as one pipeline.
	maxBatchCalls = 512
	// maxBatchBytes is the most value bytes sent as one pipeline; it keeps
	// a few large values from being written ahead of many small ones.
	maxBatchBytes = 1 << 20
)

// call states, guarded by batcher.mu.
const (
	callQueued    = iota // in the queue, not sent
	callTaken            // in a pipeline being sent: its outcome will be known
	callAbandoned        // its caller left before it was sent: never sent
)

// call is one queued Get, CompareAndPut, Delete or UpdateWith.
type call struct {
	write  bool
	rkey   string
	script *goredis.Script // writes: nil for writeScript on rkey
	keys   []string        // script keys when script is set
	args   []any           // script arguments (writes)
	size   int             // value bytes, for the batch bound

	state int           // guarded by batcher.mu
	done  chan struct{} // closed once cmd (or err) is set
	cmd   goredis.Cmder // *goredis.Cmd for a write, *goredis.MapStringStringCmd for a read
	err   error         // set instead of cmd when the call was never sent
}

// batcher is the auto-pipeliner of a Store: concurrent calls are queued
// and up to max writer loops each send everything queued as one pipeline,
// handing every caller its own reply. A call made while the Store is idle
// (nothing queued, nothing in flight) runs directly on the caller's
// goroutine, so a lone caller pays no hand-off.
type batcher struct {
	client goredis.UniversalClient
	max    int // writer loops

	mu     sync.Mutex
	cond   sync.Cond // signalled when calls are queued or the batcher closes
	queue  []*call
	busy   int // pipelines and direct calls in flight
	loops  int // writer loops started
	idle   int // writer loops waiting for work
	closed bool
	wg     sync.WaitGroup

	stats batchStats // guarded by mu
}

// batchStats counts what a batcher did.
type batchStats struct {
	direct    int64 // calls run on the caller's goroutine
	pipelines int64 // pipelines sent
	piped     int64 // calls sent in pipelines
	largest   int   // calls in the largest pipeline
	noScript  int64 // scripts sent again as EVAL after NOSCRIPT
}

// newBatcher returns a batcher running at most loops pipelines at once.
func newBatcher(client goredis.UniversalClient, loops int) *batcher {
	b := &batcher{client: client, max: loops}
	b.cond.L = &b.mu
	return b
}

// errBatcherClosed is what a call that was queued but never sent gets when
// the Store closes.
var errBatcherClosed = goredis.ErrClosed

// do runs c and returns its command with the reply. direct reports that
// the caller's goroutine ran it with the caller's context (as an
// unpipelined call would). On a nil command, err says why: the batcher
// closed (never sent), or ctx ended — and sent reports whether c had been
// handed to a pipeline by then, so that the write may have landed.
func (b *batcher) do(ctx context.Context, c *call, direct func(context.Context) goredis.Cmder) (cmd goredis.Cmder, sent bool, err error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, false, errBatcherClosed
	}
	if b.busy == 0 && len(b.queue) == 0 {
		b.busy++
		b.stats.direct++
		b.mu.Unlock()
		cmd = direct(ctx)
		b.mu.Lock()
		b.busy--
		b.mu.Unlock()
		return cmd, true, nil
	}
	c.done = make(chan struct{})
	b.queue = append(b.queue, c)
	switch {
	case b.idle > 0:
		b.cond.Signal()
	case b.loops < b.max:
		b.loops++
		b.wg.Add(1)
		go b.loop()
	}
	b.mu.Unlock()

	select {
	case <-c.done:
		return c.cmd, c.err == nil, c.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if c.state == callQueued {
		c.state = callAbandoned
		b.mu.Unlock()
		return nil, false, ctx.Err()
	}
	b.mu.Unlock()
	select {
	case <-c.done: // the reply arrived meanwhile: report it
		return c.cmd, c.err == nil, c.err
	default:
		return nil, true, ctx.Err()
	}
}

// loop is a writer loop: it sends whatever is queued as one pipeline until
// the batcher closes.
func (b *batcher) loop() {
	defer b.wg.Done()
	b.mu.Lock()
	for {
		for len(b.queue) == 0 && !b.closed {
			b.idle++
			b.cond.Wait()
			b.idle--
		}
		if b.closed {
			b.mu.Unlock()
			return
		}
		batch := b.take()
		b.busy++
		b.mu.Unlock()
		if len(batch) > 0 {
			b.send(batch)
		}
		b.mu.Lock()
		b.busy--
	}
}

// take removes the next batch from the queue (skipping abandoned calls)
// and marks its calls taken. b.mu is held.
func (b *batcher) take() []*call {
	var batch []*call
	n, bytes := 0, 0
	for ; n < len(b.queue) && len(batch) < maxBatchCalls; n++ {
		c := b.queue[n]
		if c.state == callAbandoned {
			continue
		}
		if len(batch) > 0 && bytes+c.size > maxBatchBytes {
			break
		}
		c.state = callTaken
		bytes += c.size
		batch = append(batch, c)
	}
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	if len(batch) > 0 {
		b.stats.pipelines++
		b.stats.piped += int64(len(batch))
		b.stats.largest = max(b.stats.largest, len(batch))
	}
	return batch
}

// send runs batch as one pipeline (go-redis's ClusterClient splits it by
// node and follows MOVED/ASK), then sends the scripts a server did not know
// (NOSCRIPT, after a restart or SCRIPT FLUSH) again as EVAL, and hands
// every call its reply. The context is not any caller's: a caller that
// leaves does not cancel the others' commands; the client's read and write
// timeouts bound the round trip.
func (b *batcher) send(batch []*call) {
	ctx := context.Background()
	cmds := make([]goredis.Cmder, len(batch))
	_, _ = b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, c := range batch {
			if c.write {
				script, keys := c.scriptKeys()
				cmds[i] = script.EvalSha(ctx, p, keys, c.args...)
			} else {
				cmds[i] = p.HGetAll(ctx, c.rkey)
			}
		}
		return nil
	})
	var again []int
	for i, c := range batch {
		if c.write && goredis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		b.mu.Lock()
		b.stats.noScript += int64(len(again))
		b.mu.Unlock()
		_, _ = b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, i := range again {
				script, keys := batch[i].scriptKeys()
				cmds[i] = script.Eval(ctx, p, keys, batch[i].args...)
			}
			return nil
		})
	}
	for i, c := range batch {
		c.cmd = cmds[i]
		close(c.done)
	}
}

// scriptKeys returns the script a write call runs and its keys.
func (c *call) scriptKeys() (*goredis.Script, []string) {
	if c.script == nil {
		return writeScript, []string{c.rkey}
	}
	return c.script, c.keys
}

// close fails every queued call with goredis.ErrClosed (they were never
// sent), stops the writer loops and waits for the pipelines in flight.
func (b *batcher) close() {
	b.mu.Lock()
	b.closed = true
	for _, c := range b.queue {
		if c.state == callQueued {
			c.state = callAbandoned
			c.err = errBatcherClosed
			close(c.done)
		}
	}
	clear(b.queue)
	b.queue = nil
	b.cond.Broadcast()
	b.mu.Unlock()
	b.wg.Wait()
}
