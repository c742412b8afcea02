package redis

// UpdateWith beyond the conformance suite: lost replies, stale hints,
// cluster hash slots.

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/redistest"
)

// TestUpdateWithLostReply drops the reply of a batch script that the
// server ran. With go-redis's retries the replayed script recognises its
// own batch (every key carries its token) and reports it done, written
// once; without retries the error says the batch may have landed, and it
// did.
func TestUpdateWithLostReply(t *testing.T) {
	srv := redistest.StartLocal(t, redistest.LocalOptions{}).Server()
	proxy := newReplyDropper(t, srv.Addr())
	via := &redistest.Server{Addrs: []string{proxy.addr()}, Source: "proxy"}
	ctx := testCtx(t)

	s := openStore(t, via)
	calls := 0
	set := func(v string) backend.UpdateFunc {
		return func(backend.Entry) ([]byte, error) { calls++; return []byte(v), nil }
	}
	_, _, err := s.UpdateWith(ctx, nil, "warm", set("w")) // the script is loaded: no NOSCRIPT reply to drop
	require.NoError(t, err)
	calls = 0
	proxy.armed.Store(true)
	v, vers, err := s.UpdateWith(ctx, []backend.Put{{Key: "a", Value: []byte("a1")}}, "u", set("u1"))
	require.NoError(t, err)
	require.Equal(t, int32(1), proxy.drops.Load(), "the reply was dropped")
	require.Equal(t, 1, calls, "fn ran once: the replay was recognised")
	require.Equal(t, backend.Version(1), v, "the key written exactly once")
	require.Equal(t, []backend.Version{1}, vers, "the put written exactly once")
	for k, want := range map[string]string{"a": "a1", "u": "u1"} {
		e, err := s.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, backend.Entry{Value: []byte(want), Version: 1}, e, k)
	}

	s2 := openStore(t, via, func(o *Options) { o.MaxRetries = -1; o.Prefix = s.Prefix() })
	proxy.armed.Store(true)
	_, _, err = s2.UpdateWith(ctx, []backend.Put{{Key: "a", Expect: 1, Value: []byte("a2")}}, "u", set("u2"))
	require.ErrorIs(t, err, backend.ErrUnavailable)
	require.ErrorIs(t, err, ErrOutcomeUnknown, "the error says the batch may have landed")
	for k, want := range map[string]string{"a": "a2", "u": "u2"} {
		e, err := s2.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, backend.Entry{Value: []byte(want), Version: 2}, e, k)
	}
}

// TestUpdateWithStaleHint: a handle's hint for the updated key goes stale
// when another handle writes it. An fn that accepts the stale entry costs
// one more script run and writes on the current one; an fn that refuses it
// (its error would be about an entry that is no longer there) is asked
// again about the current entry instead of its error being returned.
func TestUpdateWithStaleHint(t *testing.T) {
	a, srv := anyStore(t)
	b := openStore(t, srv, func(o *Options) { o.Prefix = a.Prefix() })
	ctx := testCtx(t)
	incr := func(cur backend.Entry) ([]byte, error) {
		return fmt.Appendf(nil, "%d", len(cur.Value)+1), nil
	}
	v1, _, err := a.UpdateWith(ctx, nil, "k", incr) // a's hint: "1" at v1
	require.NoError(t, err)
	v2 := mustPut(t, b, "k", v1, "22")

	v3, _, err := a.UpdateWith(ctx, nil, "k", incr)
	require.NoError(t, err)
	require.Greater(t, v3, v2)
	e, err := b.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "3", string(e.Value), "fn ran again on the entry b wrote")

	v4 := mustPut(t, b, "k", v3, "4444")
	errStale := errors.New("not the version b wrote")
	v5, _, err := a.UpdateWith(ctx, nil, "k", func(cur backend.Entry) ([]byte, error) {
		if cur.Version != v4 {
			return nil, errStale
		}
		return []byte("5"), nil
	})
	require.NoError(t, err, "fn's refusal of the stale hint is not the answer")
	require.Greater(t, v5, v4)

	_, _, err = a.UpdateWith(ctx, nil, "k", func(backend.Entry) ([]byte, error) { return nil, errStale })
	require.ErrorIs(t, err, errStale, "fn's refusal of a read entry is returned")
}

// TestUpdateWithClusterSlots: on a cluster a batch whose keys span hash
// slots fails with ErrNoBatch and writes nothing; with a hash tag keeping
// them in one slot it lands.
func TestUpdateWithClusterSlots(t *testing.T) {
	srv := redistest.StartCluster(t, redistest.LocalOptions{}).Server()
	s := openStore(t, srv)
	ctx := testCtx(t)
	set := func(cur backend.Entry) ([]byte, error) { return []byte("u"), nil }
	puts := []backend.Put{{Key: "a", Value: []byte("a")}, {Key: "b", Value: []byte("b")}, {Key: "c", Value: []byte("c")}}
	require.False(t, sameSlot([]string{s.RedisKey("a"), s.RedisKey("b"), s.RedisKey("c"), s.RedisKey("u")}),
		"the test needs keys in several slots")
	_, _, err := s.UpdateWith(ctx, puts, "u", set)
	require.ErrorIs(t, err, backend.ErrNoBatch)
	for _, k := range []string{"a", "b", "c", "u"} {
		_, err := s.Get(ctx, k)
		require.ErrorIs(t, err, backend.ErrNotFound, "%s written by a refused batch", k)
	}

	tagged := []backend.Put{{Key: "{t}a", Value: []byte("a")}, {Key: "{t}b", Value: []byte("b")}}
	_, vers, err := s.UpdateWith(ctx, tagged, "{t}u", set)
	require.NoError(t, err)
	require.Len(t, vers, 2)
}

// TestHashSlot checks the slot function against values Redis documents
// (CLUSTER KEYSLOT) and its hash tag rules.
func TestHashSlot(t *testing.T) {
	require.Equal(t, uint16(0x31C3), crc16("123456789"), "CRC-16/XMODEM check value")
	require.Equal(t, 12182, hashSlot("foo"))
	require.Equal(t, 5061, hashSlot("bar"))
	require.Equal(t, hashSlot("user1000"), hashSlot("{user1000}.following"))
	require.Equal(t, hashSlot("{user1000}.following"), hashSlot("{user1000}.followers"))
	require.Equal(t, hashSlot("bar"), hashSlot("foo{bar}{zap}"), "the first tag counts")
	require.Equal(t, crc16("foo{}{bar}")%clusterSlots, uint16(hashSlot("foo{}{bar}")), "an empty tag hashes the whole key")
	require.Equal(t, hashSlot("{bar"), hashSlot("foo{{bar}}zap"), "the tag is between the first { and the next }")
}
