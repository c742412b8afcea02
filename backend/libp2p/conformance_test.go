package libp2p

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/conformance"
)

// harness is one key namespace (a fresh prefix) on a shared swarm; every
// NewStore opens a real client node through backend.Open with the swarm's
// URI, as another process would.
type harness struct {
	t      *testing.T
	uri    string
	mu     sync.Mutex
	stores []*Store
}

func (h *harness) NewStore(ctx context.Context) (backend.Store, error) {
	st, err := backend.Open(ctx, h.uri)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.stores = append(h.stores, st.(*Store))
	h.mu.Unlock()
	return st, nil
}

// Close checks that no handle of the namespace tried to dial outside
// loopback, and logs the handles' counters.
func (h *harness) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, st := range h.stores {
		if n := st.Stats().RefusedDials; n > 0 {
			h.t.Errorf("a client refused %d dials outside loopback", n)
		}
	}
	h.t.Logf("%d handles: %+v", len(h.stores), sumStats(h.stores))
}

// swarmHarness returns a MakeHarness over one swarm of n nodes that lives
// as long as the calling test.
func swarmHarness(t *testing.T, n int, query url.Values) conformance.MakeHarness {
	ctx := testCtx(t, 4*time.Minute) // starting 20 nodes under -race on a busy machine
	sw := newTestSwarm(t, ctx, n, nil)
	base := sw.URI()
	return func(_ context.Context, t *testing.T) (conformance.Harness, error) {
		q := url.Values{"prefix": {randomPrefix()}}
		for k, v := range query {
			q[k] = v
		}
		return &harness{t: t, uri: base + "&" + q.Encode()}, nil
	}
}

// TestConformance runs the whole suite (contract at PerNodeCAS, protocol)
// on a 20-node loopback swarm, every handle a client node that joins
// through the swarm's URI.
//
// Under -race the protocol suite's fixed sizes (1,000 sequential
// publishes, 10x100 and 100x100 publishers with 90 s and 240 s bounds)
// do not fit: every DHT operation is a dozen libp2p requests, and the race
// detector slows them 5-10x. There the contract suite runs in full on an
// 8-node swarm and TestProtocolRace runs the protocol at a reduced size;
// the full protocol suite runs without -race.
func TestConformance(t *testing.T) {
	mk := swarmHarness(t, bySpeed(20, 8), nil)
	conformance.RunContract(t, mk)
	if raceEnabled {
		t.Log("protocol suite skipped under -race; it runs without -race (see TestProtocolRace)")
		return
	}
	// Every operation is a round of requests to a dozen in-process nodes:
	// deadlines four times the suite's (the 100x100 stress test got 8,900
	// of 10,000 through in its 240 s at load 10, every message intact).
	conformance.RunProtocolWith(t, mk, conformance.ProtocolOptions{TimeScale: 4})
}

// TestProtocolRace is the protocol check that runs under -race: 4
// publishers x 10 messages, each on its own handle, with an early and a
// late subscriber, on an 8-node swarm.
func TestProtocolRace(t *testing.T) {
	if !raceEnabled {
		t.Skip("without -race TestConformance runs the full protocol suite")
	}
	ctx := testCtx(t, 4*time.Minute)
	sw := newTestSwarm(t, ctx, 8, nil)
	runProtocol(t, ctx, sw, 4, 10)
}
