package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickypub/stickypub/backend"
)

// ErrAuth reports that the server refused the credentials (WRONGPASS,
// NOAUTH, NOPERM). Errors that match it also match backend.ErrUnavailable:
// the store cannot be used until the credentials or the server's ACL change.
var ErrAuth = errors.New("redis: authentication refused")

// ErrOutcomeUnknown marks a failed CompareAndPut or Delete that was sent
// to the server and may have been applied: its reply was lost because the
// caller's context ended first or the connection failed. Such an error also
// matches its cause (context.Canceled, context.DeadlineExceeded, or
// backend.ErrUnavailable). A write error that does not match it was not
// applied: the call was refused before it was sent (a cancelled context
// while it waited in the pipeline queue, a closed store, a failed dial), or
// the server answered. Retrying a write whose outcome is unknown with the
// same expected version is safe only through the caller's own idempotence
// (the Store's internal retries are idempotent; a new call is a new write).
var ErrOutcomeUnknown = errors.New("redis: write sent, outcome unknown: it may have been applied")

// unavailablePrefixes are server replies that mean "cannot serve now".
var unavailablePrefixes = []string{
	"LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY",
	"NOREPLICAS", "OOM", "MISCONF", "ERR max number of clients",
}

// authPrefixes are server replies that mean the credentials were refused.
var authPrefixes = []string{"WRONGPASS", "NOAUTH", "NOPERM", "ERR invalid password", "ERR AUTH"}

// wrap turns a go-redis error from operation op on key into the contract's
// errors. ctx is the caller's context; s.where names the servers.
func (s *Store) wrap(ctx context.Context, op, key string, err error) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf("redis %s %q on %s", op, key, s.where)
	if key == "" {
		what = fmt.Sprintf("redis %s %s", op, s.where)
	}
	ctxErr := ctx.Err()
	if dl, ok := ctx.Deadline(); ok && ctxErr == nil && !time.Now().Before(dl) {
		// The socket deadline (set from ctx's) fired a moment before
		// ctx's own timer.
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil && !isRedisError(err) {
		// go-redis gave up because the caller's context ended (it may
		// report that as a network error): report the context's error.
		return fmt.Errorf("%s: %w", what, ctxErr)
	}
	return classify(what, err, s.closed.Load())
}

// wrapWrite is wrap for CompareAndPut and Delete: it adds
// ErrOutcomeUnknown when the write may have been applied.
func (s *Store) wrapWrite(ctx context.Context, op, key string, err error) error {
	if err == nil {
		return nil
	}
	werr := s.wrap(ctx, op, key, err)
	if maybeSent(err) && !errors.Is(werr, backend.ErrClosed) {
		return fmt.Errorf("%w: %w", werr, ErrOutcomeUnknown)
	}
	return werr
}

// maybeSent reports whether a go-redis error leaves open that the command
// reached the server: anything but a server reply, a refused dial, a pool
// timeout or a closed client.
func maybeSent(err error) bool {
	var oe *net.OpError
	switch {
	case isRedisError(err),
		errors.Is(err, goredis.ErrClosed),
		errors.Is(err, goredis.ErrPoolTimeout),
		errors.Is(err, goredis.ErrPoolExhausted),
		errors.As(err, &oe) && oe.Op == "dial":
		return false
	}
	return true
}

// unsent reports a pipelined call that got no reply: the store closed
// while it was queued, or the caller's context ended. sent tells whether
// the call had been handed to a pipeline by then (so that a write may have
// been applied).
func (s *Store) unsent(ctx context.Context, op, key string, err error, sent bool) error {
	what := fmt.Sprintf("redis %s %q on %s", op, key, s.where)
	switch {
	case errors.Is(err, goredis.ErrClosed):
		return fmt.Errorf("%s: not sent: %w", what, backend.ErrClosed)
	case !sent:
		return fmt.Errorf("%s: not sent, nothing changed: %w", what, err)
	case op == "get":
		return fmt.Errorf("%s: %w", what, err)
	default:
		return fmt.Errorf("%s: %w: %w", what, err, ErrOutcomeUnknown)
	}
}

// classify maps err to the contract's sentinels, prefixing the message
// with what.
func classify(what string, err error, closed bool) error {
	switch {
	case closed || errors.Is(err, goredis.ErrClosed):
		return fmt.Errorf("%s: %w", what, backend.ErrClosed)
	case errors.Is(err, backend.ErrCorrupt):
		return fmt.Errorf("%s: %w", what, err)
	case goredis.HasErrorPrefix(err, "WRONGTYPE"):
		return fmt.Errorf("%s: %w: a foreign non-hash key is in the store's namespace: %v", what, backend.ErrCorrupt, err)
	case hasAnyPrefix(err, corruptPrefix):
		return fmt.Errorf("%s: %w: %v", what, backend.ErrCorrupt, trimScriptNoise(err))
	case hasAnyPrefix(err, authPrefixes...):
		return fmt.Errorf("%s: %w: %w: %v", what, backend.ErrUnavailable, ErrAuth, err)
	case hasAnyPrefix(err, "MOVED", "ASK"):
		return fmt.Errorf("%s: the server is a Redis Cluster node; open it in cluster mode (%s:// URI or Options.Cluster): %v",
			what, SchemeCluster, err)
	case hasAnyPrefix(err, unavailablePrefixes...):
		return fmt.Errorf("%s: %w: %v", what, backend.ErrUnavailable, err)
	case isRedisError(err):
		// Any other reply from the server: a refused command, a script
		// error. Not retryable, not a sentinel.
		return fmt.Errorf("%s: %v", what, err)
	default:
		// Dial errors, resets, timeouts, pool exhaustion: the network.
		return fmt.Errorf("%s: %w: %v", what, backend.ErrUnavailable, err)
	}
}

// hasAnyPrefix reports whether err is a server reply starting with one of
// prefixes. Errors raised inside scripts keep the original reply's prefix.
func hasAnyPrefix(err error, prefixes ...string) bool {
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	for _, p := range prefixes {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// isRedisError reports whether err is a reply from the server.
func isRedisError(err error) bool {
	var rerr goredis.Error
	return errors.As(err, &rerr)
}

// trimScriptNoise drops the "script: ..., on @user_script:..." suffix that
// Redis appends to errors raised in scripts.
func trimScriptNoise(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, " script: "); i > 0 {
		return msg[:i]
	}
	return msg
}
