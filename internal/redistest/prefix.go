package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// PrefixRoot starts every prefix that Prefix returns.
const PrefixRoot = "stickypub-test:"

// Prefix returns a fresh key prefix "stickypub-test:<random>:" for one test.
func Prefix(tb testing.TB) string {
	tb.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("random prefix: %v", err)
	}
	return PrefixRoot + hex.EncodeToString(b[:]) + ":"
}

// CleanupPrefix deletes every key under prefix on srv when tb ends. It uses
// its own client, so it still works after the test closed its clients.
func CleanupPrefix(tb testing.TB, srv *Server, prefix string) {
	tb.Helper()
	if prefix == "" {
		tb.Fatal("redistest: refusing to clean up an empty prefix")
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := srv.NewClient()
		defer c.Close()
		if _, err := DeletePrefix(ctx, c, prefix); err != nil {
			tb.Errorf("redistest: deleting keys under %q on %s: %v", prefix, srv, err)
		}
	})
}

// DeletePrefix deletes every key whose name starts with prefix (SCAN MATCH,
// then UNLINK one key per command so that keys of different cluster slots
// never meet in one command). On a cluster it visits every master. It
// returns the number of keys deleted.
func DeletePrefix(ctx context.Context, c goredis.UniversalClient, prefix string) (int, error) {
	if prefix == "" {
		return 0, fmt.Errorf("redistest: empty prefix")
	}
	if cc, ok := c.(*goredis.ClusterClient); ok {
		var total countSum
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error {
			n, err := deleteOnNode(ctx, node, prefix)
			total.add(n)
			return err
		})
		return total.get(), err
	}
	return deleteOnNode(ctx, c, prefix)
}

// deleteOnNode scans one node and unlinks the matching keys.
func deleteOnNode(ctx context.Context, c goredis.Cmdable, prefix string) (int, error) {
	match := globEscape(prefix) + "*"
	var cursor uint64
	n := 0
	for {
		keys, next, err := c.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			p := c.Pipeline()
			for _, k := range keys {
				p.Unlink(ctx, k)
			}
			if _, err := p.Exec(ctx); err != nil {
				return n, err
			}
			n += len(keys)
		}
		if next == 0 {
			return n, nil
		}
		cursor = next
	}
}

// globEscape quotes the characters that SCAN MATCH treats as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// countSum adds counts from concurrent callbacks (ForEachMaster runs one
// goroutine per master).
type countSum struct {
	mu sync.Mutex
	n  int
}

func (c *countSum) add(n int) { c.mu.Lock(); c.n += n; c.mu.Unlock() }
func (c *countSum) get() int  { c.mu.Lock(); defer c.mu.Unlock(); return c.n }
