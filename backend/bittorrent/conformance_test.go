package bittorrent_test

import (
	"context"
	"crypto/ed25519"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bittorrent"
	"github.com/stickypub/stickypub/conformance"
)

// swarmSize is the size of the loopback network the suite runs on.
const swarmSize = 20

// guards collects the loopback guards of every socket a test opens, so a
// test can check that nothing was ever sent to a non-loopback address.
type guards struct {
	mu    sync.Mutex
	conns []*bittorrent.GuardedConn
}

// wrap is an Options.WrapConn that guards the socket.
func (g *guards) wrap(pc net.PacketConn) net.PacketConn {
	gc := bittorrent.LoopbackOnly(pc)
	g.mu.Lock()
	g.conns = append(g.conns, gc)
	g.mu.Unlock()
	return gc
}

// refused returns every refused destination.
func (g *guards) refused() []net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []net.Addr
	for _, c := range g.conns {
		out = append(out, c.Refused()...)
	}
	return out
}

// count is the number of guarded sockets.
func (g *guards) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// newSwarm starts an n-node loopback swarm closed at the end of the test.
func newSwarm(t *testing.T, n int, g *guards) *bittorrent.Swarm {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sw, err := bittorrent.NewSwarm(ctx, n, bittorrent.NodeOptions{WrapConn: g.wrap})
	require.NoError(t, err)
	t.Cleanup(sw.Close)
	return sw
}

// harness is one namespace (a fresh key) on a shared swarm; every NewStore
// is a new handle with its own server.
type harness struct {
	t   *testing.T
	sw  *bittorrent.Swarm
	key ed25519.PrivateKey
	g   *guards

	mu     sync.Mutex
	stores []*bittorrent.Store
}

func (h *harness) NewStore(ctx context.Context) (backend.Store, error) {
	st, err := bittorrent.Open(ctx, bittorrent.Options{
		Bootstrap:  h.sw.Addrs(),
		PrivateKey: h.key,
		WrapConn:   h.g.wrap,
		Logger:     quietLogger(),
	})
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.stores = append(h.stores, st)
	h.mu.Unlock()
	return st, nil
}

// Close logs what the handles did.
func (h *harness) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, st := range h.stores {
		h.t.Logf("handle %d: %+v", i, st.Stats())
	}
}

// makeHarness returns a MakeHarness giving each subtest a fresh namespace
// key on sw.
func makeHarness(sw *bittorrent.Swarm, g *guards) conformance.MakeHarness {
	return func(_ context.Context, t *testing.T) (conformance.Harness, error) {
		_, key, err := ed25519.GenerateKey(nil)
		if err != nil {
			return nil, err
		}
		return &harness{t: t, sw: sw, key: key, g: g}, nil
	}
}

func TestConformanceContract(t *testing.T) {
	g := &guards{}
	sw := newSwarm(t, swarmSize, g)
	conformance.RunContract(t, makeHarness(sw, g))
	require.Empty(t, g.refused(), "a server tried to send to a non-loopback address")
}

func TestConformanceProtocol(t *testing.T) {
	g := &guards{}
	sw := newSwarm(t, swarmSize, g)
	// Deadlines four times the suite's: every operation is a round of
	// UDP requests to the closest of 20 in-process nodes. Under -race
	// (unless BEP44_FULL is set) every subtest runs with the suite's
	// reduced workloads (100 publishers still contend): the full sizes
	// take over 6 minutes there on two cores; `go test ./backend/bittorrent/`
	// (no -race) runs them, in under 2 minutes.
	conformance.RunProtocolWith(t, makeHarness(sw, g), conformance.ProtocolOptions{TimeScale: 4, Reduced: !fullScale()})
	require.Empty(t, g.refused(), "a server tried to send to a non-loopback address")
	t.Logf("%d sockets guarded, none sent to a non-loopback address", g.count())
}
