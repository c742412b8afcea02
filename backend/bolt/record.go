package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/stickypub/stickypub/backend"
	bbolt "go.etcd.io/bbolt"
)

// On-disk layout.
const (
	// dataBucketName holds key -> record.
	dataBucketName = "data"
	// metaBucketName holds the format marker; its bucket sequence is the
	// version counter.
	metaBucketName = "meta"
	// formatKey and formatValue mark a file written by this package.
	formatKey   = "format"
	formatValue = "stickypub-bolt/1"
	// versionLen is the size of the version header of each record.
	versionLen = 8
)

// newRecord returns a record buffer holding value after a version header
// that setRecordVersion fills in later. bbolt requires a value passed to Put
// to stay valid for the whole transaction, so every write gets its own
// buffer.
func newRecord(value []byte) []byte {
	rec := make([]byte, versionLen+len(value))
	copy(rec[versionLen:], value)
	return rec
}

// setRecordVersion writes v into the header of rec.
func setRecordVersion(rec []byte, v backend.Version) {
	binary.BigEndian.PutUint64(rec[:versionLen], uint64(v))
}

// lookup reads key from the data bucket. It returns the zero Entry when the
// key is absent. The returned Value aliases bbolt memory and is valid only
// inside the transaction: clone it before it escapes.
func lookup(data *bbolt.Bucket, kb []byte) (backend.Entry, error) {
	k, v := data.Cursor().Seek(kb)
	if !bytes.Equal(k, kb) {
		return backend.Entry{}, nil
	}
	if v == nil {
		return backend.Entry{}, corruptf(kb, "key holds a nested bucket, not a record")
	}
	if len(v) < versionLen {
		return backend.Entry{}, corruptf(kb, "record of %d bytes is shorter than its %d-byte version header", len(v), versionLen)
	}
	ver := binary.BigEndian.Uint64(v[:versionLen])
	if ver == 0 || ver == math.MaxUint64 {
		return backend.Entry{}, corruptf(kb, "record carries impossible version %d", ver)
	}
	return backend.Entry{Value: v[versionLen:], Version: backend.Version(ver)}, nil
}

// cloneEntry copies e.Value out of bbolt memory.
func cloneEntry(e backend.Entry) backend.Entry {
	if e.Value != nil {
		e.Value = bytes.Clone(e.Value)
	}
	return e
}

// corruptf returns an error matching backend.ErrCorrupt about key kb.
func corruptf(kb []byte, format string, args ...any) error {
	return fmt.Errorf("bolt: key %s: %w: %s", quoteKey(string(kb)), backend.ErrCorrupt, fmt.Sprintf(format, args...))
}

// quoteKey quotes key for an error message, shortening very long keys.
func quoteKey(key string) string {
	const max = 64
	if len(key) <= max {
		return fmt.Sprintf("%q", key)
	}
	return fmt.Sprintf("%q...(%d bytes)", key[:max], len(key))
}
