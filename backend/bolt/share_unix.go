//go:build unix

package bolt

import (
	"fmt"
	"io/fs"
	"syscall"
)

// fileOwner returns the uid that owns the file fi describes.
func fileOwner(fi fs.FileInfo) (int, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, fmt.Errorf("no owner in %T", fi.Sys())
	}
	return int(st.Uid), nil
}

// withUmask runs f with the process's umask set to mask, then restores it.
// The umask is process-wide: files other goroutines create meanwhile get
// at most the permissions mask allows, never more than they asked for.
func withUmask(mask int, f func() error) error {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	return f()
}
