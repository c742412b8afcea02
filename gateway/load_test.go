package gateway

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestThousandSSEClients: 1,000 live followers of one topic each receive
// every message exactly once and in order; after they leave, no stream,
// subscription or goroutine is left (TestMain checks goroutines).
func TestThousandSSEClients(t *testing.T) {
	const clients, msgs = 1000, 20
	e := newEnv(t, func(c *Config) { c.StreamBuffer = 2 * msgs })
	e.http.Transport.(*http.Transport).MaxIdleConnsPerHost = clients
	topic := "fanout"
	streams := make([]*sse, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			s, err := e.tryOpenSSE(topicPath(topic) + "/events")
			if err != nil {
				errs <- err
				return
			}
			streams[i] = s
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	defer func() {
		for _, s := range streams {
			s.close()
		}
	}()
	require.Equal(t, clients, e.gw.Streams())

	// Half the messages one by one, half as one batch.
	for i := range msgs / 2 {
		e.publish(t, topic, fmt.Sprint("m", i))
	}
	batch := make([]string, 0, msgs/2)
	for i := msgs / 2; i < msgs; i++ {
		batch = append(batch, fmt.Sprintf("%q", fmt.Sprint("m", i)))
	}
	code, body := e.do(t, http.MethodPost, topicPath(topic)+"/messages", "application/json",
		strings.NewReader("["+strings.Join(batch, ",")+"]"))
	require.Equal(t, http.StatusOK, code, string(body))

	bad := make(chan string, clients)
	for i, s := range streams {
		wg.Go(func() {
			for j := range msgs {
				select {
				case ev, ok := <-s.events:
					if !ok {
						bad <- fmt.Sprintf("client %d: stream ended after %d messages", i, j)
						return
					}
					if ev.Name != "message" || !strings.Contains(ev.Data, fmt.Sprintf(`"seq":%d,`, j+1)) ||
						!strings.Contains(ev.Data, fmt.Sprintf(`"payload":"m%d"`, j)) {
						bad <- fmt.Sprintf("client %d: event %d is %s %s", i, j, ev.Name, ev.Data)
						return
					}
				case <-time.After(testTimeout):
					bad <- fmt.Sprintf("client %d: only %d messages in time", i, j)
					return
				}
			}
		})
	}
	wg.Wait()
	close(bad)
	for b := range bad {
		t.Error(b)
	}
	assert.Equal(t, uint64(msgs), e.gw.Stats().Received, "one shared subscription received each message once")

	for _, s := range streams {
		s.close()
	}
	require.Eventually(t, func() bool { return e.gw.Streams() == 0 }, testTimeout, 10*time.Millisecond)
	e.gw.mu.Lock()
	feeds, readers := len(e.gw.feeds), len(e.gw.readers)
	e.gw.mu.Unlock()
	assert.Zero(t, feeds, "the topic's feed stopped with its last follower")
	assert.Zero(t, readers, "the feed's subscriber client was closed")
}

// TestSlowFollowerDoesNotBlock: a follower that never reads is
// disconnected once it falls StreamBuffer events behind; publishers and the
// other followers are not slowed down and lose nothing.
func TestSlowFollowerDoesNotBlock(t *testing.T) {
	// The slow follower's socket buffers hold a few MiB (about 16
	// messages), its channel StreamBuffer more; the fast follower keeps up
	// within StreamBuffer.
	const msgs, size = 80, 256 << 10
	e := newEnv(t, func(c *Config) { c.StreamBuffer = 20; c.WriteTimeout = 500 * time.Millisecond })
	topic := "slow"
	fast := e.openSSE(t, topicPath(topic)+"/events")

	// The slow follower: a raw connection with a small receive buffer
	// that reads the response headers and then nothing.
	conn, err := net.Dial("tcp", e.ts.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(4096))
	_, err = fmt.Fprintf(conn, "GET %s/events HTTP/1.1\r\nHost: x\r\n\r\n", topicPath(topic))
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		if strings.HasPrefix(line, ": subscribed") {
			break
		}
	}
	require.Equal(t, 2, e.gw.Streams())

	// Lockstep with the fast follower (so it never lags, however busy the
	// machine): publish one message, wait until the fast follower has it.
	payload := strings.Repeat("p", size)
	for i := range msgs {
		e.publish(t, topic, payload)
		ev := fast.next(t)
		require.Equal(t, "message", ev.Name)
		require.Contains(t, ev.Data, fmt.Sprintf(`"seq":%d,`, i+1), "the fast follower gets every message in order")
	}
	require.Eventually(t, func() bool { return e.gw.Streams() == 1 }, testTimeout, 10*time.Millisecond,
		"the slow follower was disconnected")
	// The fast follower is still connected and following.
	e.publish(t, topic, "after")
	m := fast.next(t).message(t)
	assert.Equal(t, uint64(msgs+1), m.Seq)
	assert.Equal(t, "after", m.Payload)
}
