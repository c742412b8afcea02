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

// TestConformanceExternal runs the suite on the machine's Redis (REDIS_ADDR,
// or 127.0.0.1:6379 when it answers), with the default limits.
func TestConformanceExternal(t *testing.T) {
	conformance.Run(t, makeHarness(redistest.External(t), nil))
}

// TestConformanceLocal runs the suite on a private redis-server.
func TestConformanceLocal(t *testing.T) {
	srv := redistest.StartLocal(t, redistest.LocalOptions{}).Server()
	conformance.Run(t, makeHarness(srv, smallLimits))
}

// TestConformanceCluster runs the suite on a private three-master Redis
// Cluster.
func TestConformanceCluster(t *testing.T) {
	srv := redistest.StartCluster(t, redistest.LocalOptions{}).Server()
	conformance.Run(t, makeHarness(srv, smallLimits))
}
