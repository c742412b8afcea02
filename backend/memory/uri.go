package memory

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/stickypub/stickypub/backend"
)

// Scheme is the URI scheme this package registers with the backend registry.
const Scheme = "mem"

func init() { backend.Register(Scheme, OpenURI) }

// OpenURI opens a handle on a fresh private Space from a URI of the form
// mem:// or mem:, with optional query parameters max_key_size and
// max_value_size (positive integers, in bytes). A host, path or opaque part
// (a "name") is rejected with backend.ErrBadURI: the package keeps no global
// map of named spaces. It is the backend.OpenFunc registered for "mem".
func OpenURI(ctx context.Context, u *url.URL) (backend.Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if u.Scheme != Scheme {
		return nil, fmt.Errorf("%w: scheme %q is not %q", backend.ErrBadURI, u.Scheme, Scheme)
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" || u.User != nil {
		return nil, fmt.Errorf("%w: %q: mem:// takes no name; every Open creates a fresh private space (share one with memory.NewSpace and Space.Open)",
			backend.ErrBadURI, u.Redacted())
	}
	var opts Options
	for name, vals := range u.Query() {
		if len(vals) != 1 {
			return nil, fmt.Errorf("%w: parameter %q given %d times", backend.ErrBadURI, name, len(vals))
		}
		n, err := strconv.Atoi(vals[0])
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%w: parameter %q=%q is not a positive integer", backend.ErrBadURI, name, vals[0])
		}
		switch name {
		case "max_key_size":
			opts.MaxKeySize = n
		case "max_value_size":
			opts.MaxValueSize = n
		default:
			return nil, fmt.Errorf("%w: unknown parameter %q (want max_key_size, max_value_size)", backend.ErrBadURI, name)
		}
	}
	return NewSpace(opts).Open(), nil
}
