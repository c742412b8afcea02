package bolt

import (
	"fmt"
	"log/slog"
	"time"

	bbolt "go.etcd.io/bbolt"
)

const (
	// DefaultLockTimeout is how long Open waits for the file lock unless
	// WithLockTimeout says otherwise.
	DefaultLockTimeout = time.Second

	// DefaultMaxValueSize is the largest value accepted unless
	// WithMaxValueSize says otherwise: 16 MiB.
	DefaultMaxValueSize = 16 << 20

	// MaxKeySize is the longest key in bytes: bbolt's own key limit.
	MaxKeySize = bbolt.MaxKeySize

	// MaxValueSizeLimit is the largest value WithMaxValueSize accepts:
	// bbolt's value limit minus the 8-byte version header of each record.
	MaxValueSizeLimit = bbolt.MaxValueSize - versionLen
)

// config is the result of applying Options.
type config struct {
	lockTimeout  time.Duration
	maxValueSize int
	noSync       bool
	maxFileSize  int
	readOnly     bool
	share        bool         // the URI asked for a Shared store
	logger       *slog.Logger // nil: discard (Shared only)
	hooks        *shareHooks  // nil: the real ones (Shared only; tests replace them)
}

func defaultConfig() config {
	return config{lockTimeout: DefaultLockTimeout, maxValueSize: DefaultMaxValueSize}
}

func (c config) validate() error {
	if c.lockTimeout <= 0 {
		return fmt.Errorf("bolt: lock timeout must be positive, got %v", c.lockTimeout)
	}
	if c.maxValueSize <= 0 || c.maxValueSize > MaxValueSizeLimit {
		return fmt.Errorf("bolt: max value size must be in [1, %d], got %d", MaxValueSizeLimit, c.maxValueSize)
	}
	if c.maxFileSize < 0 {
		return fmt.Errorf("bolt: max file size must not be negative, got %d", c.maxFileSize)
	}
	return nil
}

// Option configures Open.
type Option func(*config)

// WithLockTimeout sets how long Open waits for the exclusive file lock held
// by another Store or process before failing with an error matching
// backend.ErrUnavailable. It must be positive (Open never waits forever).
func WithLockTimeout(d time.Duration) Option {
	return func(c *config) { c.lockTimeout = d }
}

// WithMaxValueSize sets the largest value, in bytes, that the store accepts
// and declares in its Capabilities. It must be in [1, MaxValueSizeLimit].
func WithMaxValueSize(n int) Option {
	return func(c *config) { c.maxValueSize = n }
}

// WithNoSync turns off fsync on commit when unsafe is true. This is UNSAFE:
// a crash or power loss may lose acknowledged writes or corrupt the file. It
// exists for tests and benchmarks; the default keeps full durability.
func WithNoSync(unsafe bool) Option {
	return func(c *config) { c.noSync = unsafe }
}

// WithMaxFileSize caps the size of the data file in bytes (0, the default,
// means no cap). A commit that would grow the file beyond the cap fails:
// every operation of that batch gets the error and nothing changes.
func WithMaxFileSize(n int) Option {
	return func(c *config) { c.maxFileSize = n }
}

// WithReadOnly opens the file read-only (bbolt's shared lock, so several
// read-only stores may share a file, but not with a writer). Get and Watch
// work; CompareAndPut, Delete and Update fail with an error matching
// ErrReadOnly. The file must exist and hold a stickypub store.
func WithReadOnly() Option {
	return func(c *config) { c.readOnly = true }
}

// WithLogger sets where a Shared store logs how it reaches the file (which
// process owns it, handovers, a socket that cannot be created). Open
// ignores it. The default discards the records.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}
