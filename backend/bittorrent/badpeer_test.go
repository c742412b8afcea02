package bittorrent_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bittorrent"
)

// badAnswer builds the item a misbehaving node answers a get with.
type badAnswer func(t *testing.T, ns ed25519.PrivateKey, salt []byte) krpc.Bep44Return

// signed returns a Bep44Return holding v at seq, signed by key under salt.
func signed(key ed25519.PrivateKey, salt []byte, seq int64, value []byte) krpc.Bep44Return {
	ev := bittorrent.EncodeValue(value)
	r := krpc.Bep44Return{V: ev, Seq: &seq}
	copy(r.K[:], key.Public().(ed25519.PublicKey))
	copy(r.Sig[:], ed25519.Sign(key, bittorrent.SignedBuffer(salt, seq, ev)))
	return r
}

// The bad peers. Each offers a higher seq than the honest item, to be
// tempting; none may ever be delivered.
var badPeers = map[string]struct {
	answer badAnswer
	kind   bittorrent.BadItemKind
	counts bool // whether Get sees a bad item to count (a put refuser holds none)
}{
	"OtherKey": {func(t *testing.T, _ ed25519.PrivateKey, salt []byte) krpc.Bep44Return {
		_, other, err := ed25519.GenerateKey(nil)
		require.NoError(t, err)
		return signed(other, salt, 1000, []byte("forged by another key"))
	}, bittorrent.WrongKey, true},
	"BadSignature": {func(t *testing.T, ns ed25519.PrivateKey, salt []byte) krpc.Bep44Return {
		r := signed(ns, salt, 1000, []byte("tampered"))
		r.Sig[5] ^= 0x40
		return r
	}, bittorrent.BadSignature, true},
	"WrongTarget": {func(t *testing.T, ns ed25519.PrivateKey, _ []byte) krpc.Bep44Return {
		// Validly signed by the namespace key, but for another key's salt:
		// the signature covers the salt, so it fails for this target.
		return signed(ns, bittorrent.KeySalt(nil, "another key"), 1000, []byte("moved from another key"))
	}, bittorrent.BadSignature, true},
	"Oversize": {func(t *testing.T, ns ed25519.PrivateKey, salt []byte) krpc.Bep44Return {
		big := make([]byte, 1200)
		return signed(ns, salt, 1000, big)
	}, bittorrent.Oversize, true},
	"Malformed": {func(t *testing.T, ns ed25519.PrivateKey, salt []byte) krpc.Bep44Return {
		seq := int64(1000)
		ev := []byte("i42e") // signed, but not a byte string
		r := krpc.Bep44Return{V: ev, Seq: &seq}
		copy(r.K[:], ns.Public().(ed25519.PublicKey))
		copy(r.Sig[:], ed25519.Sign(ns, bittorrent.SignedBuffer(salt, seq, ev)))
		return r
	}, bittorrent.Malformed, true},
	"RefusesPuts": {nil, 0, false},
}

// startBadNode starts a node whose ID is the target itself (so it is the
// closest node and the first a writer asks), that answers gets of target
// with ans (or with no item) and refuses every put with a generic error.
func startBadNode(t *testing.T, sw *bittorrent.Swarm, g *guards, target bittorrent.Target, ret *krpc.Bep44Return) *bittorrent.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := krpc.ID(target)
	nd, err := bittorrent.NewNode(ctx, bittorrent.NodeOptions{
		Bootstrap: sw.Addrs(),
		NodeID:    &id,
		WrapConn:  g.wrap,
		OnQuery: func(conn net.PacketConn, m *krpc.Msg, source net.Addr) bool {
			switch {
			case m.Q == "put":
				sendMsg(conn, source, krpc.Msg{T: m.T, Y: "e", E: &krpc.Error{Code: krpc.ErrorCodeGenericError, Msg: "I refuse every put"}})
				return false
			case m.Q == "get" && m.A != nil && m.A.Target == id && ret != nil:
				tok := "bad-token"
				sendMsg(conn, source, krpc.Msg{T: m.T, Y: "r", R: &krpc.Return{ID: id, Token: &tok, Bep44Return: *ret}})
				return false
			}
			return true
		},
	})
	require.NoError(t, err)
	t.Cleanup(nd.Close)
	require.NoError(t, sw.Bootstrap(ctx))
	return nd
}

func sendMsg(conn net.PacketConn, to net.Addr, m krpc.Msg) {
	b, err := bencode.Marshal(m)
	if err == nil {
		_, _ = conn.WriteTo(b, to)
	}
}

func TestBadPeers(t *testing.T) {
	g := &guards{}
	sw := newSwarm(t, 12, g)
	for name, bp := range badPeers {
		t.Run(name, func(t *testing.T) {
			// A UDP answer can be lost or late under load; the handle then
			// rightly leaves the bad node out, and nothing is learned about
			// it. So a round that never met the bad node is run again with a
			// new namespace (a new target, a new bad node); one must meet it.
			const rounds = 3
			for i := 1; ; i++ {
				met := meetBadPeer(t, sw, g, bp.answer, bp.counts, bp.kind)
				if met || t.Failed() {
					return
				}
				require.Less(t, i, rounds, "in %d rounds the handles never met the bad node", rounds)
				t.Logf("round %d: the handles did not meet the bad node; again", i)
			}
		})
	}
	require.Empty(t, g.refused())
}

// meetBadPeer runs one round against a new bad node that answers with
// answer: an honest writer and reader go through it, the bad item is never
// delivered, and what the handles counted names nothing but kind (counts:
// whether a get sees a bad item at all). It reports whether the handles met
// the bad node (the writer's put was refused by it); the counting checks
// run only then.
func meetBadPeer(t *testing.T, sw *bittorrent.Swarm, g *guards, answer badAnswer, counts bool, kind bittorrent.BadItemKind) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, ns, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	const key = "topic/head"
	salt := bittorrent.KeySalt(nil, key)
	target := bittorrent.MutableTarget(ns.Public().(ed25519.PublicKey), salt)
	var ret *krpc.Bep44Return
	if answer != nil {
		r := answer(t, ns, salt)
		ret = &r
	}
	bad := startBadNode(t, sw, g, target, ret)

	// The handles know the bad node from the start (a full bucket of an
	// honest node may not list it), so it is the closest node they ask.
	boot := append(sw.Addrs(), bad.Addr().String())
	open := func() *bittorrent.Store {
		// A generous query timeout: under -race the bad node's first
		// answer must not be mistaken for silence.
		st, err := bittorrent.Open(ctx, bittorrent.Options{Bootstrap: boot, PrivateKey: ns, WrapConn: g.wrap, Logger: quietLogger(),
			QueryTimeout: 5 * time.Second})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	w, r := open(), open()
	v1, err := w.CompareAndPut(ctx, key, 0, []byte("honest 1"))
	require.NoError(t, err, "honest nodes make a write quorum")
	v2, err := w.CompareAndPut(ctx, key, v1, []byte("honest 2"))
	require.NoError(t, err)
	e, err := r.Get(ctx, key)
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("honest 2"), Version: v2}, e, "the bad item is never delivered")

	ws, rs := w.Stats(), r.Stats()
	t.Logf("writer %+v; reader %+v", ws, rs)
	if ws.PutRefusals == 0 {
		return false // the writer's puts never reached the bad node
	}
	// Both handles met the bad node (the writer's put loop asked it; the
	// reader only if its read quorum reached it), so what they counted
	// together must name the bad item's kind, and nothing else.
	seen := map[string]int64{}
	for _, st := range []bittorrent.Stats{ws, rs} {
		for k, n := range st.BadItems {
			seen[fmt.Sprint(k)] += n
		}
	}
	if counts {
		assert.Positive(t, seen[fmt.Sprint(kind)], "no handle counted a %v item", kind)
		for k, n := range seen {
			if k != fmt.Sprint(kind) {
				assert.Zero(t, n, "counted as %v", k)
			}
		}
	} else {
		assert.Empty(t, seen)
	}
	return true
}

func TestReadOnly(t *testing.T) {
	g := &guards{}
	sw := newSwarm(t, 8, g)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, ns, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	w, err := bittorrent.Open(ctx, bittorrent.Options{Bootstrap: sw.Addrs(), PrivateKey: ns, Logger: quietLogger()})
	require.NoError(t, err)
	defer w.Close()
	ro, err := bittorrent.Open(ctx, bittorrent.Options{Bootstrap: sw.Addrs(), PublicKey: ns.Public().(ed25519.PublicKey), Logger: quietLogger()})
	require.NoError(t, err)
	defer ro.Close()
	assert.True(t, ro.ReadOnly())
	v, err := w.CompareAndPut(ctx, "k", 0, []byte("x"))
	require.NoError(t, err)
	e, err := ro.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, v, e.Version)
	_, err = ro.CompareAndPut(ctx, "k", v, []byte("y"))
	require.ErrorIs(t, err, bittorrent.ErrReadOnly)
	e, err = ro.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "x", string(e.Value))
}
