package backend

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"sync"
)

// OpenFunc opens a store from a parsed URI. Adapters register one per
// scheme.
type OpenFunc func(ctx context.Context, u *url.URL) (Store, error)

// Registry maps URI schemes to adapters, in the manner of database/sql
// drivers. The zero value is not usable; use NewRegistry.
type Registry struct {
	mu    sync.RWMutex
	funcs map[string]OpenFunc
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{funcs: make(map[string]OpenFunc)} }

// Register makes an adapter available under scheme. It panics when scheme
// is empty, fn is nil, or the scheme is already taken, as database/sql does:
// these are programming errors found at init time.
func (r *Registry) Register(scheme string, fn OpenFunc) {
	if scheme == "" || fn == nil {
		panic("backend: Register with empty scheme or nil OpenFunc")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.funcs[scheme]; dup {
		panic("backend: Register called twice for scheme " + scheme)
	}
	r.funcs[scheme] = fn
}

// Schemes lists the registered schemes, sorted.
func (r *Registry) Schemes() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.funcs))
	for s := range r.funcs {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open parses uri and opens the store registered for its scheme.
func (r *Registry) Open(ctx context.Context, uri string) (Store, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadURI, uri, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: %q has no scheme (want e.g. bolt:///path/file.db)", ErrBadURI, uri)
	}
	r.mu.RLock()
	fn, ok := r.funcs[u.Scheme]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q (registered: %v)", ErrUnknownScheme, u.Scheme, r.Schemes())
	}
	return fn(ctx, u)
}

// defaultRegistry is the process-wide registry that adapters join from
// their init functions, exactly as database/sql drivers do. It is the only
// package-level state in this module.
var defaultRegistry = NewRegistry()

// Register adds an adapter to the default registry. Adapters call it from
// init; importing an adapter package (even as _) makes its scheme available
// to Open.
func Register(scheme string, fn OpenFunc) { defaultRegistry.Register(scheme, fn) }

// Schemes lists the schemes of the default registry.
func Schemes() []string { return defaultRegistry.Schemes() }

// Open opens a store from a URI such as bolt:///var/lib/app/topics.db or
// redis://127.0.0.1:6379/0?prefix=app, using the default registry.
func Open(ctx context.Context, uri string) (Store, error) { return defaultRegistry.Open(ctx, uri) }
