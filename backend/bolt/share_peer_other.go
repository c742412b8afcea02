//go:build !linux && !darwin

package bolt

import (
	"errors"
	"net"
)

// peerUID cannot learn a socket peer's user on this platform, so every
// peer is refused and a file is never shared here.
func peerUID(*net.UnixConn) (int, error) {
	return -1, errors.New("socket peer credentials are not available on this platform")
}
