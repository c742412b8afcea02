package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/hints"
)

// Store is a backend.Store on Redis. It also implements backend.Watcher,
// backend.Deleter, backend.Lister and backend.Batcher (batch.go). It is
// safe for concurrent use.
type Store struct {
	client     goredis.UniversalClient
	ownsClient bool
	prefix     string
	caps       backend.Capabilities
	where      string // server addresses, for error messages

	tokenBase string        // random per Store
	tokenSeq  atomic.Uint64 // makes each write token unique

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	batch   *batcher // nil when Options.Pipelines is -1
	cluster bool     // a Redis Cluster client: a batch must stay in one hash slot
	hints   hints.Cache
	logs    *logSink // go-redis log lines about this store's servers
	watch   watchHub
}

var (
	_ backend.Store   = (*Store)(nil)
	_ backend.Watcher = (*Store)(nil)
	_ backend.Deleter = (*Store)(nil)
)

// New returns a Store using client, which stays the caller's: Close does
// not close it. Only the Prefix, MaxKeySize, MaxValueSize, Pipelines,
// Logger and LogInterval options are used. New does not contact the server.
func New(client goredis.UniversalClient, opts Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("redis: New with a nil client")
	}
	o, err := opts.storeDefaults()
	if err != nil {
		return nil, err
	}
	logs := newLogSink(o.Logger, o.LogInterval, clientAddrs(client))
	return newStore(client, false, o, describeClient(client), logs)
}

// Open connects to Redis as opts say, checks that the server answers
// (PING, bounded by ctx), and returns a Store that owns its client. An
// unreachable server gives an error matching backend.ErrUnavailable; refused
// credentials one matching ErrAuth too.
func Open(ctx context.Context, opts Options) (*Store, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	logs := newLogSink(o.Logger, o.LogInterval, o.Addrs)
	client := o.newClient(logs.dialFailed)
	s, err := newStore(client, true, o, strings.Join(o.Addrs, ","), logs)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	if err := client.Ping(ctx).Err(); err != nil {
		err = s.wrap(ctx, "open", "", err)
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// newStore builds a Store around client.
func newStore(client goredis.UniversalClient, owns bool, o Options, where string, logs *logSink) (*Store, error) {
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("redis: random write token: %w", err)
	}
	s := &Store{
		client:     client,
		ownsClient: owns,
		prefix:     o.Prefix,
		caps:       o.capabilities(),
		where:      where,
		tokenBase:  hex.EncodeToString(b[:]) + ":",
		logs:       logs,
	}
	if o.Pipelines > 0 {
		s.batch = newBatcher(client, o.Pipelines)
	}
	_, s.cluster = client.(*goredis.ClusterClient)
	goRedisLogs.register(logs)
	s.watch.init(s)
	return s, nil
}

// clientAddrs lists the configured servers of a caller's client.
func clientAddrs(c goredis.UniversalClient) []string {
	switch c := c.(type) {
	case *goredis.Client:
		return []string{c.Options().Addr}
	case *goredis.ClusterClient:
		return c.Options().Addrs
	default:
		return nil
	}
}

// describeClient names the servers of a caller's client for messages.
func describeClient(c goredis.UniversalClient) string {
	switch c := c.(type) {
	case *goredis.Client:
		return c.Options().Addr
	case *goredis.ClusterClient:
		return strings.Join(c.Options().Addrs, ",")
	default:
		return fmt.Sprintf("%T", c)
	}
}

// Prefix returns the key prefix.
func (s *Store) Prefix() string { return s.prefix }

// Client returns the underlying go-redis client.
func (s *Store) Client() goredis.UniversalClient { return s.client }

// RedisKey returns the Redis key (and Watch channel) that holds key.
func (s *Store) RedisKey(key string) string { return s.prefix + key }

// Capabilities implements backend.Store.
func (s *Store) Capabilities() backend.Capabilities { return s.caps }

// check validates the common inputs of every operation.
func (s *Store) check(ctx context.Context, op, key string) error {
	if s.closed.Load() {
		return fmt.Errorf("redis %s %q: %w", op, key, backend.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redis %s %q: %w", op, key, ctx.Err())
	}
	return backend.CheckKey(key, s.caps)
}

// Get implements backend.Store with one HGETALL.
func (s *Store) Get(ctx context.Context, key string) (backend.Entry, error) {
	if err := s.check(ctx, "get", key); err != nil {
		return backend.Entry{}, err
	}
	rkey := s.prefix + key
	var m map[string]string
	var err error
	if s.batch == nil {
		m, err = s.client.HGetAll(ctx, rkey).Result()
	} else {
		cmd, _, berr := s.batch.do(ctx, &call{rkey: rkey}, func(ctx context.Context) goredis.Cmder {
			return s.client.HGetAll(ctx, rkey)
		})
		if berr != nil {
			return backend.Entry{}, s.unsent(ctx, "get", key, berr, false)
		}
		m, err = cmd.(*goredis.MapStringStringCmd).Result()
	}
	if err != nil {
		return backend.Entry{}, s.wrap(ctx, "get", key, err)
	}
	e, live, err := decodeEntry(m)
	if err != nil {
		return backend.Entry{}, fmt.Errorf("redis get %q on %s: %w", key, s.where, err)
	}
	if !live {
		return backend.Entry{}, fmt.Errorf("redis get %q: %w", key, backend.ErrNotFound)
	}
	return e, nil
}

// decodeEntry decodes an entry hash. live is false for a missing key and
// for a tombstone.
func decodeEntry(m map[string]string) (e backend.Entry, live bool, err error) {
	if len(m) == 0 {
		return e, false, nil
	}
	for f := range m {
		if f != "v" && f != "d" && f != "w" {
			return e, false, fmt.Errorf("%w: unexpected field %q in entry hash", backend.ErrCorrupt, f)
		}
	}
	vs, ok := m["v"]
	if !ok {
		return e, false, fmt.Errorf("%w: entry hash has no version", backend.ErrCorrupt)
	}
	v, err := parseVersionString(vs)
	if err != nil || v == 0 {
		return e, false, fmt.Errorf("%w: malformed version %q in entry hash", backend.ErrCorrupt, vs)
	}
	d, ok := m["d"]
	if !ok {
		return e, false, nil // tombstone
	}
	return backend.Entry{Value: []byte(d), Version: v}, true, nil
}

// CompareAndPut implements backend.Store with one Lua script run.
func (s *Store) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := s.check(ctx, "compare-and-put", key); err != nil {
		return 0, err
	}
	if err := backend.CheckValue(value, s.caps); err != nil {
		return 0, fmt.Errorf("redis compare-and-put %q: %w", key, err)
	}
	if value == nil {
		value = []byte{}
	}
	r, err := s.runWrite(ctx, "compare-and-put", key, "put", expect, value)
	if err != nil {
		return 0, err
	}
	switch r.outcome {
	case outcomeDone:
		if r.version <= expect {
			return 0, fmt.Errorf("redis compare-and-put %q on %s: %w: version went from %d to %d",
				key, s.where, backend.ErrCorrupt, expect, r.version)
		}
		return r.version, nil
	case outcomeConflict:
		return 0, conflict(key, expect, r)
	default:
		return 0, fmt.Errorf("redis compare-and-put %q on %s: %w: unexpected script outcome %d",
			key, s.where, backend.ErrCorrupt, r.outcome)
	}
}

// Delete implements backend.Deleter. The key's hash stays behind as a
// tombstone that keeps its version, so a later create continues from it.
func (s *Store) Delete(ctx context.Context, key string, expect backend.Version) error {
	if err := s.check(ctx, "delete", key); err != nil {
		return err
	}
	r, err := s.runWrite(ctx, "delete", key, "del", expect, nil)
	if err != nil {
		return err
	}
	switch r.outcome {
	case outcomeDone:
		return nil
	case outcomeNotFound:
		return fmt.Errorf("redis delete %q: %w", key, backend.ErrNotFound)
	case outcomeConflict:
		return conflict(key, expect, r)
	default:
		return fmt.Errorf("redis delete %q on %s: %w: unexpected script outcome %d",
			key, s.where, backend.ErrCorrupt, r.outcome)
	}
}

// runWrite runs writeScript for op ("put" or "del") on key.
func (s *Store) runWrite(ctx context.Context, name, key, op string, expect backend.Version, value []byte) (writeReply, error) {
	rkey := s.prefix + key
	token := s.tokenBase + strconv.FormatUint(s.tokenSeq.Add(1), 36)
	args := []any{op, strconv.FormatUint(uint64(expect), 10), token, rkey}
	if op == "put" {
		args = append(args, value)
	}
	var res any
	var err error
	if s.batch == nil {
		res, err = writeScript.Run(ctx, s.client, []string{rkey}, args...).Result()
	} else {
		c := &call{write: true, rkey: rkey, args: args, size: len(value)}
		cmd, sent, berr := s.batch.do(ctx, c, func(ctx context.Context) goredis.Cmder {
			return writeScript.Run(ctx, s.client, []string{rkey}, args...)
		})
		if berr != nil {
			return writeReply{}, s.unsent(ctx, name, key, berr, sent)
		}
		res, err = cmd.(*goredis.Cmd).Result()
	}
	if err != nil {
		return writeReply{}, s.wrapWrite(ctx, name, key, err)
	}
	r, err := parseWriteReply(res)
	if err != nil {
		return writeReply{}, fmt.Errorf("redis %s %q on %s: %w", name, key, s.where, err)
	}
	return r, nil
}

// conflict builds the *backend.ConflictError for a script's conflict reply.
func conflict(key string, expect backend.Version, r writeReply) error {
	ce := &backend.ConflictError{Key: key, Expected: expect, Known: true}
	if r.version != 0 {
		ce.Current = backend.Entry{Value: r.value, Version: r.version}
		if ce.Current.Value == nil {
			ce.Current.Value = []byte{}
		}
	}
	return ce
}

// Close implements backend.Store. It ends every Watch, and closes the client
// when Open created it. It is idempotent; later calls fail with
// backend.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.watch.close()
		if s.batch != nil {
			s.batch.close()
		}
		goRedisLogs.unregister(s.logs)
		if s.ownsClient {
			s.closeErr = s.client.Close()
		}
	})
	return s.closeErr
}
