package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	"github.com/stickypub/stickypub/backend"
)

// bbolt's on-disk meta page, as go.etcd.io/bbolt/internal/common lays it
// out (v1.5.0): a 16-byte page header, then magic, version, page size,
// flags (4 bytes each), the root bucket (16), the freelist page id, the
// high-water mark (pgid: pages in use), the transaction id and an FNV-64a
// checksum of everything before it (8 bytes each). Multi-byte fields are
// in the machine's byte order (little-endian on every platform Go's bbolt
// supports in practice).
const (
	metaOffset   = 16
	metaMagic    = 0xED0CDAED
	metaVersion  = 2
	metaSumStart = 0
	metaSumEnd   = 56 // the checksum covers the meta up to itself
	metaLen      = 64
	minPageSize  = 512
	maxPageSize  = 1 << 16
)

// fileMeta is what preflight learned from one valid meta page.
type fileMeta struct {
	pageSize uint32
	pgid     uint64 // pages in use: the file must hold at least this many
	txid     uint64
}

// readMeta decodes and validates the meta page at offset off of f.
func readMeta(f io.ReaderAt, off int64) (fileMeta, bool) {
	buf := make([]byte, metaOffset+metaLen)
	if _, err := f.ReadAt(buf, off); err != nil {
		return fileMeta{}, false
	}
	m := buf[metaOffset:]
	le := binary.LittleEndian
	h := fnv.New64a()
	_, _ = h.Write(m[metaSumStart:metaSumEnd])
	if le.Uint32(m[0:]) != metaMagic || le.Uint32(m[4:]) != metaVersion || le.Uint64(m[56:]) != h.Sum64() {
		return fileMeta{}, false
	}
	return fileMeta{pageSize: le.Uint32(m[8:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
}

// preflight checks an existing bbolt file before bbolt maps it: bbolt
// trusts the meta page's high-water mark, and touching a mapped page past
// the end of a truncated file kills the process with SIGBUS instead of
// returning an error. A file that is missing or empty passes (bbolt
// creates or initialises it); a file whose meta pages are both invalid is
// left to bbolt, which reports that itself. Errors match backend.ErrCorrupt
// and say what to do.
func preflight(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return nil // bbolt reports the real reason (permission...) itself
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil
	}
	m0, ok0 := readMeta(f, 0)
	var m1 fileMeta
	ok1 := false
	if ok0 {
		m1, ok1 = readMeta(f, int64(m0.pageSize))
	} else {
		for ps := int64(minPageSize); ps <= maxPageSize && !ok1; ps *= 2 {
			m1, ok1 = readMeta(f, ps)
			ok1 = ok1 && int64(m1.pageSize) == ps
		}
	}
	// The size is read after the meta pages: bbolt grows the file before it
	// writes a meta page that needs the room, so an owner committing
	// meanwhile cannot make a healthy file look truncated.
	if fi, err = f.Stat(); err != nil {
		return nil
	}
	size := fi.Size()
	var m fileMeta
	switch {
	case ok0 && ok1:
		m = m0
		if m1.txid > m0.txid {
			m = m1
		}
	case ok0:
		m = m0
	case ok1:
		m = m1
	default:
		if size < 2*minPageSize {
			return corruptFile("it is %d bytes, too short to hold bbolt's meta pages (truncated)", size)
		}
		return nil // no valid meta page: bbolt says "invalid database"
	}
	if m.pageSize < minPageSize || m.pageSize > maxPageSize || m.pageSize&(m.pageSize-1) != 0 {
		return corruptFile("its meta page gives a page size of %d bytes", m.pageSize)
	}
	if need := int64(m.pgid) * int64(m.pageSize); size < need {
		return corruptFile("it is %d bytes but its meta page says it holds %d pages of %d bytes (%d bytes): the file was truncated",
			size, m.pgid, m.pageSize, need)
	}
	return nil
}

// DamageError is a bolt file that cannot be used as it is: truncated, or
// with damaged meta pages. It matches backend.ErrCorrupt.
type DamageError struct {
	// Problem says what is wrong, without the advice.
	Problem string
}

// Error implements error: the problem and what to do.
func (e *DamageError) Error() string {
	return fmt.Sprintf("%v: %s; restore the file from a backup, or move it aside to start an empty store (Check, or \"stickypub doctor\", reports what is still readable)",
		backend.ErrCorrupt, e.Problem)
}

// Is makes errors.Is(err, backend.ErrCorrupt) true.
func (e *DamageError) Is(target error) bool { return target == backend.ErrCorrupt }

// corruptFile is the error of a damaged file.
func corruptFile(format string, args ...any) error {
	return &DamageError{Problem: fmt.Sprintf(format, args...)}
}
