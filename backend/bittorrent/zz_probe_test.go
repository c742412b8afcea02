package bittorrent_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bittorrent"
)

func TestProbeLatency(t *testing.T) {
	g := &guards{}
	sw := newSwarm(t, 20, g)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, key, _ := ed25519.GenerateKey(nil)
	st, err := bittorrent.Open(ctx, bittorrent.Options{Bootstrap: sw.Addrs(), PrivateKey: key, Logger: quietLogger()})
	require.NoError(t, err)
	defer st.Close()
	var v uint64
	start := time.Now()
	for i := range 50 {
		nv, err := st.CompareAndPut(ctx, "k", backendV(v), []byte{byte(i)})
		require.NoError(t, err)
		v = uint64(nv)
	}
	t.Logf("50 CAS: %v each", time.Since(start)/50)
	start = time.Now()
	for range 50 {
		_, err := st.Get(ctx, "k")
		require.NoError(t, err)
	}
	t.Logf("50 Get: %v each", time.Since(start)/50)
}

func backendV(v uint64) backend.Version { return backend.Version(v) }
