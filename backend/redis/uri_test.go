package redis

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/redistest"
)

func TestParseURI(t *testing.T) {
	good := map[string]Options{
		"redis://127.0.0.1:6379":     {Addrs: []string{"127.0.0.1:6379"}},
		"redis://localhost":          {Addrs: []string{"localhost:6379"}},
		"redis://u:p%40ss@h:1/3":     {Addrs: []string{"h:1"}, Username: "u", Password: "p@ss", DB: 3},
		"redis://:pw@h:1/":           {Addrs: []string{"h:1"}, Password: "pw"},
		"redis://[::1]:7000/0":       {Addrs: []string{"[::1]:7000"}},
		"redis://h:1?prefix=app%3A&": {Addrs: []string{"h:1"}, Prefix: "app:"},
		"redis://h:1?dial_timeout=250ms&read_timeout=1s&write_timeout=2s&pool_size=4&max_retries=-1&max_key_size=64&max_value_size=1000": {
			Addrs: []string{"h:1"}, DialTimeout: 250 * time.Millisecond, ReadTimeout: time.Second,
			WriteTimeout: 2 * time.Second, PoolSize: 4, MaxRetries: -1, MaxKeySize: 64, MaxValueSize: 1000},
		"redis://h:1?pipelines=-1":               {Addrs: []string{"h:1"}, Pipelines: -1},
		"redis://h:1?pipelines=8":                {Addrs: []string{"h:1"}, Pipelines: 8},
		"redis+cluster://a:1,b:2,c:3/?prefix=p:": {Addrs: []string{"a:1", "b:2", "c:3"}, Cluster: true, Prefix: "p:"},
		"redis+cluster://a:1?addr=b:2&addr=c:3":  {Addrs: []string{"a:1", "b:2", "c:3"}, Cluster: true},
		"redis+cluster://a:1":                    {Addrs: []string{"a:1"}, Cluster: true},
	}
	for raw, want := range good {
		u, err := url.Parse(raw)
		require.NoError(t, err, raw)
		got, err := ParseURI(u)
		require.NoError(t, err, raw)
		require.Equal(t, want, got, raw)
	}

	tlsOpts, err := ParseURI(mustURL(t, "rediss://h:1?server_name=redis.example&insecure_skip_verify=true"))
	require.NoError(t, err)
	require.NotNil(t, tlsOpts.TLS)
	require.Equal(t, "redis.example", tlsOpts.TLS.ServerName)
	require.True(t, tlsOpts.TLS.InsecureSkipVerify)
	clusterTLS, err := ParseURI(mustURL(t, "rediss+cluster://a:1,b:2"))
	require.NoError(t, err)
	require.True(t, clusterTLS.Cluster)
	require.NotNil(t, clusterTLS.TLS)

	bad := []string{
		"redis://",                              // no host
		"redis://a:1,b:2",                       // several hosts, not a cluster
		"redis://h:1/x",                         // database not a number
		"redis://h:1/-1",                        // negative database
		"redis+cluster://a:1,b:2/3",             // database on a cluster
		"redis://h:1?prefix=",                   // empty prefix
		"redis://h:1?prefx=a",                   // unknown parameter
		"redis://h:1?prefix=a&prefix=b",         // repeated parameter
		"redis://h:1?dial_timeout=soon",         // bad duration
		"redis://h:1?dial_timeout=-1s",          // negative duration
		"redis://h:1?pool_size=0",               // not positive
		"redis://h:1?pipelines=0",               // neither off nor a width
		"redis://h:1?pipelines=65",              // over MaxPipelines
		"redis://h:1?max_value_size=1000000000", // over Redis's limit
		"redis://h:1?addr=b:2",                  // addr= outside a cluster
		"redis://h:1?ca=/x.pem",                 // TLS parameter without TLS
		"rediss://h:1?ca=/does/not/exist.pem",   // unreadable CA file
		"redis://h:99999",                       // bad port
		"redis://h:1#frag",                      // fragment
		"redis:h:1",                             // opaque
	}
	for _, raw := range bad {
		u, err := url.Parse(raw)
		if err != nil {
			continue // rejected by url.Parse already (backend.Open maps that to ErrBadURI)
		}
		_, err = ParseURI(u)
		require.ErrorIs(t, err, backend.ErrBadURI, raw)
	}

	// The password never appears in errors.
	_, err = ParseURI(mustURL(t, "redis://u:hunter2@h:1?nope=1"))
	require.ErrorIs(t, err, backend.ErrBadURI)
	require.NotContains(t, err.Error(), "hunter2")
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u
}

func TestSchemesAreRegistered(t *testing.T) {
	schemes := backend.Schemes()
	for _, s := range []string{Scheme, SchemeTLS, SchemeCluster, SchemeClusterTLS} {
		require.Contains(t, schemes, s)
	}
	_, err := backend.Open(testCtx(t), "redis://h:1?bogus=1")
	require.ErrorIs(t, err, backend.ErrBadURI)
}

func TestOpenThroughRegistry(t *testing.T) {
	srv := redistest.Require(t)
	if srv.Username != "" || srv.Password != "" || srv.TLS != nil {
		t.Skip("URI form tested with a plain server only")
	}
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, srv, prefix)
	ctx := testCtx(t)
	st, err := backend.Open(ctx, "redis://"+srv.Addr()+"/"+strconv.Itoa(srv.DB)+"?prefix="+url.QueryEscape(prefix))
	require.NoError(t, err)
	defer st.Close()
	s, ok := st.(*Store)
	require.True(t, ok)
	require.Equal(t, prefix, s.Prefix())
	v, err := st.CompareAndPut(ctx, "k", 0, []byte("x"))
	require.NoError(t, err)
	require.Equal(t, backend.Version(1), v)
	n, err := srv.Client(t).Exists(ctx, prefix+"k").Result()
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "the key lives under the prefix")
}
