package memory

import (
	"sync"

	"github.com/stickypub/stickypub/backend"
)

// Default limits, used when Options leaves a limit at zero.
const (
	// DefaultMaxKeySize is the default longest key, in bytes.
	DefaultMaxKeySize = 1024
	// DefaultMaxValueSize is the default largest value, in bytes (1 MiB).
	DefaultMaxValueSize = 1 << 20
)

// Options configures a Space. The zero value gives the defaults.
type Options struct {
	// MaxKeySize is the longest accepted key in bytes. Zero or less means
	// DefaultMaxKeySize.
	MaxKeySize int
	// MaxValueSize is the largest accepted value in bytes. Zero or less
	// means DefaultMaxValueSize.
	MaxValueSize int
}

// Space is a shared in-memory namespace. Handles opened on it with Open see
// the same keys and draw versions from the same counter. A Space is safe for
// concurrent use and needs no cleanup: it is freed with its last reference.
type Space struct {
	caps backend.Capabilities

	// mu guards everything below, and the closed flag and watch set of
	// every handle opened on this Space. One lock for all of it is what
	// makes each operation atomic (and the adapter linearizable); an engine
	// that has its own transactions or scripts uses those instead.
	mu sync.Mutex
	// last is the last version handed out by this Space, for any key. It
	// only grows, so versions are never reused, even after a delete.
	last backend.Version
	// entries holds the stored entries. Their Value slices are private
	// copies that no caller can reach.
	entries map[string]backend.Entry
	// watches lists the open watches per key.
	watches map[string]map[*watch]struct{}
}

// NewSpace creates an empty Space with the given limits.
func NewSpace(opts Options) *Space {
	if opts.MaxKeySize <= 0 {
		opts.MaxKeySize = DefaultMaxKeySize
	}
	if opts.MaxValueSize <= 0 {
		opts.MaxValueSize = DefaultMaxValueSize
	}
	return &Space{
		caps: backend.Capabilities{
			Consistency:  backend.Linearizable,
			MaxKeySize:   opts.MaxKeySize,
			MaxValueSize: opts.MaxValueSize,
			// Data outlives handles but not the process; see the package
			// documentation.
			Persistent: false,
		},
		entries: make(map[string]backend.Entry),
		watches: make(map[string]map[*watch]struct{}),
	}
}

// Open returns a new handle on the Space. Closing it does not affect the
// Space or other handles.
func (sp *Space) Open() *Store {
	return &Store{space: sp, watches: make(map[*watch]struct{})}
}

// New returns a handle on a fresh private Space with default limits.
func New() *Store { return NewSpace(Options{}).Open() }

// nextVersion hands out a new version. The caller holds sp.mu.
func (sp *Space) nextVersion() backend.Version {
	sp.last++
	return sp.last
}

// clone returns a private copy of b that is never nil, so an empty value
// reads back as an empty, non-nil slice.
func clone(b []byte) []byte { return append(make([]byte, 0, len(b)), b...) }
