package bolt

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseURI(t *testing.T) {
	def := defaultConfig()
	tests := []struct {
		uri  string
		path string
		cfg  config
	}{
		{"bolt:///abs/path.db", "/abs/path.db", def},
		{"bolt:/abs/path.db", "/abs/path.db", def},
		{"bolt:relative.db", "relative.db", def},
		{"bolt:dir/relative.db", "dir/relative.db", def},
		{"bolt://relative.db", "relative.db", def},
		{"bolt://dir/relative.db", "dir/relative.db", def},
		{"bolt:///with%20space.db", "/with space.db", def},
		{"bolt:with%20space.db", "with space.db", def},
		{"bolt:///a.db?timeout=2s", "/a.db", config{lockTimeout: 2 * time.Second, maxValueSize: DefaultMaxValueSize}},
		{"bolt:a.db?maxvalue=1000", "a.db", config{lockTimeout: DefaultLockTimeout, maxValueSize: 1000}},
		{"bolt://a.db?nosync=true&timeout=50ms&maxvalue=7", "a.db", config{lockTimeout: 50 * time.Millisecond, maxValueSize: 7, noSync: true}},
		{"bolt://a.db?nosync=false", "a.db", def},
	}
	for _, tc := range tests {
		t.Run(tc.uri, func(t *testing.T) {
			u, err := url.Parse(tc.uri)
			require.NoError(t, err)
			path, cfg, err := parseURI(u)
			require.NoError(t, err)
			assert.Equal(t, filepath.FromSlash(tc.path), path)
			assert.Equal(t, tc.cfg, cfg)
		})
	}
}

func TestBadURIs(t *testing.T) {
	ctx := testCtx(t)
	dir := filepath.ToSlash(t.TempDir())
	for _, uri := range []string{
		"bolt:",
		"bolt://",
		"bolt:///",
		"bolt://" + dir + "/",
		"bolt://user@x.db",
		"bolt://user:pw@x.db",
		"bolt://" + dir + "/x.db#frag",
		"bolt://" + dir + "/x.db?timeout=abc",
		"bolt://" + dir + "/x.db?timeout=0",
		"bolt://" + dir + "/x.db?timeout=-1s",
		"bolt://" + dir + "/x.db?maxvalue=-1",
		"bolt://" + dir + "/x.db?maxvalue=0",
		"bolt://" + dir + "/x.db?maxvalue=lots",
		"bolt://" + dir + "/x.db?maxvalue=99999999999",
		"bolt://" + dir + "/x.db?nosync=maybe",
		"bolt://" + dir + "/x.db?foo=1",
		"bolt://" + dir + "/x.db?timeout=1s&timeout=2s",
		"bolt://" + dir + "/x.db?a=%zz",
		"bolt:bad%zzpath.db",
	} {
		t.Run(uri, func(t *testing.T) {
			s, err := backend.Open(ctx, uri)
			require.ErrorIs(t, err, backend.ErrBadURI)
			require.Nil(t, s)
		})
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "a malformed URI must not create a file")
}

func TestOpenThroughRegistry(t *testing.T) {
	ctx := testCtx(t)
	assert.Contains(t, backend.Schemes(), Scheme)

	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, os.Mkdir("sub", 0o755))

	for _, tc := range []struct{ uri, file string }{
		{"bolt://" + filepath.ToSlash(filepath.Join(dir, "abs.db")), "abs.db"},
		{"bolt:opaque.db", "opaque.db"},
		{"bolt://hostpath.db", "hostpath.db"},
		{"bolt://sub/nested.db", filepath.Join("sub", "nested.db")},
		{"bolt:///" + filepath.ToSlash(filepath.Join(dir, "params.db")) + "?timeout=2s&maxvalue=64&nosync=true", "params.db"},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			s, err := backend.Open(ctx, tc.uri)
			require.NoError(t, err)
			_, err = s.CompareAndPut(ctx, "k", 0, []byte("v"))
			require.NoError(t, err)
			require.NoError(t, s.Close())
			_, err = os.Stat(filepath.Join(dir, tc.file))
			require.NoError(t, err)
		})
	}

	s, err := backend.Open(ctx, "bolt:params.db?maxvalue=64")
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, 64, s.Capabilities().MaxValueSize)
	_, err = s.CompareAndPut(ctx, "big", 0, make([]byte, 65))
	require.ErrorIs(t, err, backend.ErrTooLarge)
	e, err := s.Get(ctx, "k")
	require.NoError(t, err, "the same file under another URI form")
	assert.Equal(t, []byte("v"), e.Value)
}
