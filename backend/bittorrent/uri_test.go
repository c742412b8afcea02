package bittorrent_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bittorrent"
)

func TestURI(t *testing.T) {
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	pub := priv.Public().(ed25519.PublicKey)
	keyPath := filepath.Join(dir, "ns.pem")
	pubPath := filepath.Join(dir, "ns.pub.pem")
	require.NoError(t, bittorrent.WriteKeyFile(keyPath, priv))
	require.NoError(t, bittorrent.WritePublicKeyFile(pubPath, pub))
	require.Error(t, bittorrent.WriteKeyFile(keyPath, priv), "never overwrites a key")

	uri := bittorrent.URI([]string{"127.0.0.1:6881", "127.0.0.1:6882"}, keyPath)
	u, err := url.Parse(uri + "&listen=127.0.0.1:0&prefix=ns1&replicas=6&write_quorum=4&read_quorum=3&query_timeout=2s&lifetime=1h&republish=10m&view_ttl=5s")
	require.NoError(t, err)
	o, err := bittorrent.ParseURI(u)
	require.NoError(t, err)
	assert.Equal(t, []string{"127.0.0.1:6881", "127.0.0.1:6882"}, o.Bootstrap)
	assert.True(t, priv.Equal(o.PrivateKey))
	assert.Equal(t, "127.0.0.1:0", o.Listen)
	assert.Equal(t, []byte("ns1"), o.SaltPrefix)
	assert.Equal(t, 6, o.Replicas)
	assert.Equal(t, 4, o.WriteQuorum)
	assert.Equal(t, 3, o.ReadQuorum)
	assert.Equal(t, 2*time.Second, o.QueryTimeout)
	assert.Equal(t, time.Hour, o.RecordLifetime)
	assert.Equal(t, 10*time.Minute, o.RepublishInterval)
	assert.Equal(t, 5*time.Second, o.ViewTTL)

	for _, ro := range []string{
		"bep44://?bootstrap=127.0.0.1:1&key=" + pubPath,
		"bep44://?bootstrap=127.0.0.1:1&pubkey=" + hex.EncodeToString(pub),
	} {
		u, err := url.Parse(ro)
		require.NoError(t, err)
		o, err := bittorrent.ParseURI(u)
		require.NoError(t, err, ro)
		assert.Nil(t, o.PrivateKey, ro)
		assert.True(t, pub.Equal(o.PublicKey), ro)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, bad := range []string{
		"bep44://",
		"bep44://?key=" + keyPath,        // no bootstrap
		"bep44://?bootstrap=127.0.0.1:1", // no key
		"bep44://host:1?bootstrap=127.0.0.1:1&key=" + keyPath,    // host
		"bep44://?bootstrap=127.0.0.1:1&key=" + dir + "/missing", // missing file
		"bep44://?bootstrap=127.0.0.1:1&pubkey=abcd",
		"bep44://?bootstrap=127.0.0.1:1&key=" + keyPath + "&pubkey=" + hex.EncodeToString(pub),
		"bep44://?bootstrap=127.0.0.1:1&key=" + keyPath + "&replicas=0",
		"bep44://?bootstrap=127.0.0.1:1&key=" + keyPath + "&replicas=4&write_quorum=5",
		"bep44://?bootstrap=127.0.0.1:1&key=" + keyPath + "&query_timeout=soon",
		"bep44://?bootstrap=127.0.0.1:1&key=" + keyPath + "&prefix=01234567890123456789",
		"bep44://?bootstrap=127.0.0.1:1&key=" + keyPath + "&colour=red",
		"bep44://?bootstrap=127.0.0.1:1&bootstrap=127.0.0.1:2&key=" + keyPath,
	} {
		_, err := backend.Open(ctx, bad)
		assert.ErrorIs(t, err, backend.ErrBadURI, bad)
	}
}

func TestOpenURIRoundTrip(t *testing.T) {
	g := &guards{}
	sw := newSwarm(t, 8, g)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	keyPath := filepath.Join(t.TempDir(), "ns.pem")
	require.NoError(t, bittorrent.WriteKeyFile(keyPath, priv))
	st, err := backend.Open(ctx, bittorrent.URI(sw.Addrs(), keyPath))
	require.NoError(t, err)
	defer st.Close()
	v, err := st.CompareAndPut(ctx, "k", 0, []byte("via URI"))
	require.NoError(t, err)
	ro, err := backend.Open(ctx, "bep44://?bootstrap="+sw.Addrs()[0]+"&pubkey="+hex.EncodeToString(priv.Public().(ed25519.PublicKey)))
	require.NoError(t, err)
	defer ro.Close()
	e, err := ro.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("via URI"), Version: v}, e)
	_, err = ro.CompareAndPut(ctx, "k", v, nil)
	assert.ErrorIs(t, err, bittorrent.ErrReadOnly)
}
