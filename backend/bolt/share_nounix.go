//go:build !unix

package bolt

import (
	"errors"
	"io/fs"
)

// errNoCredentials: this platform cannot tell who owns a file or a socket's
// peer, so a file is never shared here.
var errNoCredentials = errors.New("file and socket owners cannot be checked on this platform")

func fileOwner(fs.FileInfo) (int, error) { return -1, errNoCredentials }

// withUmask runs f: there is no umask here.
func withUmask(_ int, f func() error) error { return f() }
