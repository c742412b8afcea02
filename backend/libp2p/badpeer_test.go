package libp2p

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
)

// refuseAll is the validator of a node that refuses every put.
type refuseAll struct{}

func (refuseAll) Validate(string, []byte) error        { return errors.New("refusing everything") }
func (refuseAll) Select(string, [][]byte) (int, error) { return 1, nil }

// keepFirst is the validator of a node that stores a key's first record
// and then refuses every update, so it answers stale records.
type keepFirst struct{ validator }

func (keepFirst) Select(_ string, vals [][]byte) (int, error) {
	if len(vals) == 2 {
		if r, err := decodeRecord(vals[1], 0); err == nil && r.absent() {
			return 0, nil
		}
	}
	return 1, nil
}

// lyingDatastore is the datastore of a node that answers garbage (mode
// "garbage": bytes that are no record) or forgeries (mode "forge": a
// well-formed record one version ahead of what it stores, with a value
// of its own) for every key of the namespace it holds.
type lyingDatastore struct {
	ds.Batching
	mode string
	tag  string
}

func (l *lyingDatastore) Get(ctx context.Context, key ds.Key) ([]byte, error) {
	b, err := l.Batching.Get(ctx, key)
	if err != nil || !strings.HasPrefix(key.String(), "/"+namespace+"/") {
		return b, err
	}
	var rec recpb.Record
	if proto.Unmarshal(b, &rec) != nil {
		return b, nil
	}
	switch l.mode {
	case "garbage":
		rec.Value = []byte("garbage from " + l.tag)
	case "forge":
		if r, err := decodeRecord(rec.Value, 0); err == nil && !r.absent() {
			rec.Value = record{version: r.version + 1, expect: r.version, value: []byte("forged by " + l.tag)}.encode()
		}
	}
	return proto.Marshal(&rec)
}

// badSwarm starts a swarm of honest nodes and one bad node per setup.
func badSwarm(t *testing.T, ctx context.Context, honest int, setups ...nodeSetup) *Swarm {
	t.Helper()
	sw := newTestSwarm(t, ctx, honest, nil)
	for _, setup := range setups {
		_, err := sw.add(ctx, setup)
		require.NoError(t, err)
	}
	return sw
}

// runProtocol publishes pubsN x per messages through their own handles
// and checks that an early and a late subscriber receive every
// acknowledged message exactly once, and nothing forged.
func runProtocol(t *testing.T, ctx context.Context, sw *Swarm, pubsN, per int) []*core.Client {
	t.Helper()
	uri := sw.URI()
	topic := "bad-peers"
	early := newClient(t, ctx, uri)
	esub, err := early.Subscribe(ctx, topic, core.FromNow(), core.WithBuffer(pubsN*per+1024))
	require.NoError(t, err)
	pubs := make([]*core.Client, pubsN)
	stores := make([]*Store, pubsN)
	for i := range pubs {
		pubs[i], stores[i] = newClientStore(t, ctx, uri)
	}
	var ack acked
	publishAll(t, ctx, topic, pubs, per, &ack)
	var retries uint64
	for _, p := range pubs {
		retries += p.Stats().Retries
	}
	t.Logf("publishers' handles: %+v; core retries %d", sumStats(stores), retries)
	require.Equal(t, pubsN*per, ack.count(), "acknowledged")
	late := newClient(t, ctx, uri)
	lsub, err := late.Subscribe(ctx, topic, core.FromStart(), core.WithBuffer(pubsN*per+1024))
	require.NoError(t, err)
	for _, c := range []struct {
		c   *core.Client
		sub *core.Subscription
	}{{early, esub}, {late, lsub}} {
		got := collectAcked(t, ctx, c.c, c.sub, pubs, &ack)
		for _, m := range got {
			require.NotContains(t, string(m.Payload), "forged")
			require.NotContains(t, string(m.Payload), "garbage")
		}
		require.Zero(t, c.c.Stats().Gaps, "gaps")
	}
	return pubs
}

// TestBadPeerRefuser: 4 of 20 nodes (2 of 10 under -race) refuse every
// put; writes still reach a quorum, and every acknowledged message is
// delivered exactly once.
func TestBadPeerRefuser(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	var setups []nodeSetup
	for range badNodes() {
		setups = append(setups, func(c *nodeConfig) { c.validator = refuseAll{} })
	}
	sw := badSwarm(t, ctx, honestNodes(), setups...)
	st := openStore(t, ctx, sw, nil)
	var v backend.Version
	for i := range 20 {
		nv, err := st.CompareAndPut(ctx, fmt.Sprintf("k%d", i%4), 0, fmt.Appendf(nil, "x%d", i))
		if i < 4 {
			require.NoError(t, err, "create %d", i)
			v = nv
		} else {
			require.ErrorIs(t, err, backend.ErrConflict, "second create %d", i)
		}
	}
	require.NotZero(t, v)
	runProtocol(t, ctx, sw, badPublishers(), badPeerMessages())
}

// TestBadPeerStale: 4 of 20 nodes (2 of 10 under -race) keep the first
// record of every key and answer it forever; reads return the latest
// version anyway.
func TestBadPeerStale(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	var setups []nodeSetup
	for range badNodes() {
		setups = append(setups, func(c *nodeConfig) { c.validator = keepFirst{validator{maxValue: DefaultMaxValueSize}} })
	}
	sw := badSwarm(t, ctx, honestNodes(), setups...)
	a := openStore(t, ctx, sw, nil)
	b := openStore(t, ctx, sw, nil)
	var v backend.Version
	for i := range 30 {
		nv, err := a.CompareAndPut(ctx, "k", v, fmt.Appendf(nil, "%d", i))
		require.NoError(t, err, "write %d", i)
		v = nv
		e, err := b.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, backend.Entry{Value: fmt.Appendf(nil, "%d", i), Version: v}, e, "read after write %d", i)
	}
	runProtocol(t, ctx, sw, badPublishers(), badPeerMessages())
}

// TestBadPeerLiars: 2 nodes answer garbage and 2 answer forged records
// (each its own) under our keys (1 and 1 among 10 under -race). Garbage is counted (Stats.Corrupt),
// forgeries are not believed (Stats.Unconfirmed), nothing forged is
// delivered and every acknowledged message arrives exactly once. A key
// whose every replica answers garbage reads as backend.ErrCorrupt.
func TestBadPeerLiars(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	var setups []nodeSetup
	for i, mode := range []string{"garbage", "forge", "garbage", "forge"}[:badNodes()] {
		setups = append(setups, func(c *nodeConfig) {
			c.store = &lyingDatastore{Batching: memDatastore(), mode: mode, tag: fmt.Sprint(i)}
		})
	}
	sw := badSwarm(t, ctx, honestNodes(), setups...)
	st := openStore(t, ctx, sw, nil)
	// Ten keys, two writes and reads each: a read asks a quorum of the
	// closest replicas first, so one key's quorum may hold no liar; over
	// ten keys' replica sets the liars are asked (a key misses all four
	// of 20 with probability about 0.2, both of 10 about 0.13; ten keys
	// 1e-7 and 1e-9). A forger that leads a key refuses its second write
	// (it compares with its forgery): the write goes on without it.
	for k := range 10 {
		key := fmt.Sprintf("k%d", k)
		var v backend.Version
		for i := range 2 {
			nv, err := st.CompareAndPut(ctx, key, v, fmt.Appendf(nil, "%d", i))
			require.NoError(t, err, "write %d of %s", i, key)
			v = nv
			e, err := st.Get(ctx, key)
			require.NoError(t, err)
			require.Equal(t, backend.Entry{Value: fmt.Appendf(nil, "%d", i), Version: v}, e)
		}
	}
	stats := st.Stats()
	t.Logf("handle stats after 20 writes and reads on 10 keys: %+v", stats)
	require.NotZero(t, stats.Corrupt, "garbage answers counted")
	require.NotZero(t, stats.Unconfirmed, "forged answers not believed")
	runProtocol(t, ctx, sw, badPublishers(), badPeerMessages())

	// A network of nothing but garbage: the read is typed.
	gctx := testCtx(t, time.Minute)
	garbage := newTestSwarm(t, gctx, 1, func(o *SwarmOptions) {})
	for i := range 2 {
		_, err := garbage.add(gctx, func(c *nodeConfig) {
			c.store = &lyingDatastore{Batching: memDatastore(), mode: "garbage", tag: fmt.Sprint(i)}
		})
		require.NoError(t, err)
	}
	require.NoError(t, garbage.Kill(0))
	gs := openStore(t, gctx, garbage, func(o *Options) { o.Bootstrap = garbage.Bootstrap(0) })
	_, err := gs.CompareAndPut(gctx, "g", 0, []byte("x"))
	require.NoError(t, err)
	_, err = gs.Get(gctx, "g")
	require.ErrorIs(t, err, backend.ErrCorrupt)
}

// badPeerMessages is how many messages each publisher of a bad-peer test
// sends: 40, or 10 under the race detector.
func badPeerMessages() int { return bySpeed(40, 10) }

// badPublishers is how many publishers a bad-peer test runs.
func badPublishers() int { return bySpeed(5, 3) }

// honestNodes is how many honest nodes a bad-peer test's swarm has: 16,
// or 8 under the race detector.
func honestNodes() int { return bySpeed(16, 8) }

// badNodes is how many bad nodes join them: 4, or 2 (a fifth either way).
func badNodes() int { return bySpeed(4, 2) }
