package bolt

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// Scheme is the URI scheme this package registers with backend.Register.
const Scheme = "bolt"

func init() {
	backend.Register(Scheme, openURI)
}

// openURI is the backend.OpenFunc for the "bolt" scheme.
func openURI(ctx context.Context, u *url.URL) (backend.Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return openURIWith(ctx, u, nil)
}

// openURIWith opens the store u names with opts applied after its
// parameters.
func openURIWith(ctx context.Context, u *url.URL, opts []Option) (backend.Store, error) {
	path, cfg, err := parseURI(u)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(&cfg)
	}
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, context.DeadlineExceeded
		}
		if left < cfg.lockTimeout {
			cfg.lockTimeout = left
		}
	}
	if cfg.share {
		s, err := openShared(ctx, path, cfg)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	s, err := Open(path, func(c *config) { *c = cfg })
	if err != nil {
		return nil, err // not s: a nil *Store in a non-nil interface
	}
	return s, nil
}

// OpenURI opens the store a bolt URI names, as backend.Open does, with
// opts applied after the URI's parameters (WithLogger, say). With share=1
// the store is a *Shared, otherwise a *Store.
func OpenURI(ctx context.Context, u *url.URL, opts ...Option) (backend.Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return openURIWith(ctx, u, opts)
}

// URIFile is the file a bolt URI names, and how long to wait for its lock.
type URIFile struct {
	// Path is the file as every process names it when sharing it:
	// absolute, with symbolic links resolved (those of the directory when
	// the file does not exist yet).
	Path string
	// LockTimeout is the URI's timeout parameter, or DefaultLockTimeout.
	LockTimeout time.Duration
}

// ResolveURI returns the file a bolt URI names and its lock timeout,
// without opening anything. Errors match backend.ErrBadURI.
func ResolveURI(u *url.URL) (URIFile, error) {
	path, cfg, err := parseURI(u)
	if err != nil {
		return URIFile{}, err
	}
	abs, err := canonicalPath(path)
	if err != nil {
		return URIFile{}, fmt.Errorf("%w: %s: %v", backend.ErrBadURI, u.Redacted(), err)
	}
	return URIFile{Path: abs, LockTimeout: cfg.lockTimeout}, nil
}

// canonicalPath names the file at path the same way in every process,
// whatever symbolic links lead to it.
func canonicalPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs)), nil // the file does not exist yet
	}
	return abs, nil
}

// parseURI turns a bolt URI (see the package documentation) into a file path
// and a configuration. Errors match backend.ErrBadURI.
func parseURI(u *url.URL) (string, config, error) {
	cfg := defaultConfig()
	bad := func(format string, args ...any) (string, config, error) {
		return "", config{}, fmt.Errorf("%w: %s: %s", backend.ErrBadURI, u.Redacted(), fmt.Sprintf(format, args...))
	}
	if u.Scheme != Scheme {
		return bad("scheme is %q, want %q", u.Scheme, Scheme)
	}
	if u.User != nil {
		return bad("user information is not allowed")
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return bad("a fragment is not allowed")
	}

	var path string
	switch {
	case u.Opaque != "": // bolt:relative.db
		p, err := url.PathUnescape(u.Opaque)
		if err != nil {
			return bad("path: %v", err)
		}
		path = p
	case u.Host != "": // bolt://relative.db, bolt://dir/file.db
		path = u.Host + u.Path
	default: // bolt:///abs/path.db, bolt:/abs/path.db
		path = u.Path
		if runtime.GOOS == "windows" && len(path) >= 3 && path[0] == '/' && path[2] == ':' {
			path = path[1:] // bolt:///C:/dir/file.db
		}
	}
	if path == "" || path == "/" {
		return bad("no file path")
	}
	if strings.HasSuffix(path, "/") {
		return bad("path %q names a directory, not a file", path)
	}
	if strings.ContainsRune(path, 0) {
		return bad("path contains a NUL byte")
	}
	path = filepath.FromSlash(path)

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	for name, vals := range q {
		if len(vals) != 1 {
			return bad("parameter %q given %d times", name, len(vals))
		}
		v := vals[0]
		switch name {
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return bad("timeout=%q: want a positive duration such as 2s", v)
			}
			cfg.lockTimeout = d
		case "maxvalue":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > MaxValueSizeLimit {
				return bad("maxvalue=%q: want a byte count in [1, %d]", v, MaxValueSizeLimit)
			}
			cfg.maxValueSize = n
		case "nosync":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("nosync=%q: want true or false", v)
			}
			cfg.noSync = b
		case "readonly":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("readonly=%q: want true or false", v)
			}
			cfg.readOnly = b
		case "share":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("share=%q: want 1, true, 0 or false", v)
			}
			cfg.share = b
		default:
			return bad("unknown parameter %q (known: timeout, maxvalue, nosync, readonly, share)", name)
		}
	}
	if cfg.share && cfg.readOnly {
		return bad("share and readonly cannot be combined")
	}
	return path, cfg, nil
}
