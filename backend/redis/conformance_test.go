package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/redis"
	"github.com/stickypub/stickypub/conformance"
	"github.com/stickypub/stickypub/internal/redistest"
)

// harness gives the conformance suite handles onto one key prefix of one
// Redis deployment. Every NewStore is a new Store with its own client, so
// "two handles" and "reopen" really are separate connections.
type harness struct {
	srv    *redistest.Server
	prefix string
	limits func(*redis.Options)
}

// NewStore implements conformance.Harness.
func (h *harness) NewStore(ctx context.Context) (backend.Store, error) {
	o := redis.Options{
		Addrs:       h.srv.Addrs,
		Cluster:     h.srv.Cluster,
		Username:    h.srv.Username,
		Password:    h.srv.Password,
		DB:          h.srv.DB,
		TLS:         h.srv.TLS,
		Prefix:      h.prefix,
		DialTimeout: 2 * time.Second,
	}
	if h.limits != nil {
		h.limits(&o)
	}
	s, err := redis.Open(ctx, o)
	if err != nil {
		return nil, err // keep the interface nil
	}
	return s, nil
}

// Close implements conformance.Harness; the keys are deleted by the
// t.Cleanup that makeHarness registered.
func (h *harness) Close() {}

// makeHarness returns a MakeHarness giving each subtest a fresh prefix on
// srv, deleted when the subtest ends.
func makeHarness(srv *redistest.Server, limits func(*redis.Options)) conformance.MakeHarness {
	return func(_ context.Context, t *testing.T) (conformance.Harness, error) {
		prefix := redistest.Prefix(t)
		if srv.Cluster && strings.Contains(t.Name(), "/Batch/") {
			// A batch must stay in one hash slot (else ErrNoBatch): a
			// hash tag puts all the subtest's keys in one.
			prefix += "{batch}:"
		}
		redistest.CleanupPrefix(t, srv, prefix)
		return &harness{srv: srv, prefix: prefix, limits: limits}, nil
	}
}

// smallLimits keeps the size subtests cheap.
func smallLimits(o *redis.Options) { o.MaxKeySize = 256; o.MaxValueSize = 64 << 10 }

// runReduced runs the contract and protocol suites as a second variant of
// the Redis engine: under -race at the reduced sizes (every subtest, in
// both orderings, with fewer messages and keys; see
// conformance.ProtocolOptions.Reduced), since TestConformanceLocal runs
// both at full size. Without -race, or with STICKYPUB_FULL=1, at full size.
func runReduced(t *testing.T, mk conformance.MakeHarness) {
	t.Helper()
	conformance.RunContractWith(t, mk, conformance.ContractOptions{Reduced: true})
	conformance.RunProtocolWith(t, mk, conformance.ProtocolOptions{Reduced: true})
}

// TestConformanceLocal runs the suite at full size on a private
// redis-server: the one Redis deployment that no other test run shares.
func TestConformanceLocal(t *testing.T) {
	srv := redistest.StartLocal(t, redistest.LocalOptions{}).Server()
	conformance.Run(t, makeHarness(srv, smallLimits))
}

// TestConformanceExternal runs the suite on the machine's Redis (REDIS_ADDR,
// or 127.0.0.1:6379 when it answers), with the default limits; reduced
// under -race (see runReduced).
func TestConformanceExternal(t *testing.T) {
	runReduced(t, makeHarness(redistest.External(t), nil))
}

// TestConformanceCluster runs the suite on a private three-master Redis
// Cluster, every key routed to a master by its slot. Reduced under -race
// (see runReduced); TestCluster and the cluster cases of the pipeline tests
// check the routing itself.
func TestConformanceCluster(t *testing.T) {
	srv := redistest.StartCluster(t, redistest.LocalOptions{}).Server()
	runReduced(t, makeHarness(srv, smallLimits))
}
