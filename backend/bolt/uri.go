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
	path, cfg, err := parseURI(u)
	if err != nil {
		return nil, err
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
	s, err := Open(path, func(c *config) { *c = cfg })
	if err != nil {
		return nil, err // not s: a nil *Store in a non-nil interface
	}
	return s, nil
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
		default:
			return bad("unknown parameter %q (known: timeout, maxvalue, nosync, readonly)", name)
		}
	}
	return path, cfg, nil
}
