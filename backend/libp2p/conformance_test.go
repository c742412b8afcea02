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
// loopback.
func (h *harness) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, st := range h.stores {
		if n := st.Stats().RefusedDials; n > 0 {
			h.t.Errorf("a client refused %d dials outside loopback", n)
		}
	}
}

// swarmHarness returns a MakeHarness over one swarm of n nodes that lives
// as long as the calling test.
func swarmHarness(t *testing.T, n int, query url.Values) conformance.MakeHarness {
	ctx := testCtx(t, 2*time.Minute)
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
// on a 20-node loopback swarm.
func TestConformance(t *testing.T) {
	conformance.Run(t, swarmHarness(t, 20, nil))
}
