package bolt

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrUnsafeSocketDir matches a *SocketDirError: the directory that holds a
// shared file's socket is not private to this user, or cannot be made so.
var ErrUnsafeSocketDir = errors.New("bolt: unsafe socket directory")

// ErrPeerRefused matches a *PeerError: the process at the other end of a
// shared file's socket runs as another user, or its credentials cannot be
// checked.
var ErrPeerRefused = errors.New("bolt: peer process refused")

// SocketDirError says why the directory of a shared file's socket was not
// used. Nothing was opened or sent.
type SocketDirError struct {
	// Dir is the directory.
	Dir string
	// Reason says what is wrong with it.
	Reason string
}

// Error implements error.
func (e *SocketDirError) Error() string {
	return fmt.Sprintf("bolt: socket directory %s is not safe to use: %s", e.Dir, e.Reason)
}

// Is makes errors.Is(err, ErrUnsafeSocketDir) true.
func (e *SocketDirError) Is(target error) bool { return target == ErrUnsafeSocketDir }

// PeerError says that the process at the other end of the socket was
// refused because it runs as another user (or its user could not be
// learned). The refused side sent nothing but the refusal.
type PeerError struct {
	// Socket is the socket's path.
	Socket string
	// PeerUID is the peer's user id, -1 when it could not be learned.
	PeerUID int
	// WantUID is this process's effective user id.
	WantUID int
	// PeerIsOwner is true when the refused peer is the owner (this process
	// is a client), false when it is a client (this process owns the file).
	PeerIsOwner bool
	// Err is why the credentials could not be learned, if they could not.
	Err error
}

// Error implements error.
func (e *PeerError) Error() string {
	role := "client"
	if e.PeerIsOwner {
		role = "owner"
	}
	if e.Err != nil {
		return fmt.Sprintf("bolt: %s process on %s refused: its credentials cannot be checked: %v", role, e.Socket, e.Err)
	}
	return fmt.Sprintf("bolt: %s process on %s refused: it runs as uid %d, this process as uid %d", role, e.Socket, e.PeerUID, e.WantUID)
}

// Is makes errors.Is(err, ErrPeerRefused) true.
func (e *PeerError) Is(target error) bool { return target == ErrPeerRefused }

// Unwrap returns the credential lookup error, if any.
func (e *PeerError) Unwrap() error { return e.Err }

// shareHooks are the parts of sharing that tests replace: who this process
// is, how file and peer owners are learned, and the liveness timings.
type shareHooks struct {
	uid      int                                 // this process's effective uid
	fileUID  func(fs.FileInfo) (int, error)      // the owner of a file
	peerUID  func(c *net.UnixConn) (int, error)  // the uid of the peer of a socket
	pingEach time.Duration                       // a client pings this often
	stall    time.Duration                       // silence after which the other side is stalled
	dial     func(sock string) (net.Conn, error) // nil: a plain dial
}

func defaultShareHooks() shareHooks {
	return shareHooks{uid: os.Geteuid(), fileUID: fileOwner, peerUID: peerUID,
		pingEach: time.Second, stall: 10 * time.Second}
}

// withShareHooks replaces the sharing hooks (tests only).
func withShareHooks(h shareHooks) Option {
	return func(c *config) { c.hooks = &h }
}

// maxSockPath is the longest socket path used as is; sun_path holds 108
// bytes on Linux and 104 on macOS.
const maxSockPath = 100

// shareDirSuffix names the private directory beside the file.
const shareDirSuffix = ".share"

// sockName is the socket's name inside its directory.
const sockName = "owner.sock"

// socketPlace is where the owner of the file at path listens: a socket in a
// directory beside the file (path + ".share"), or, when that path is too
// long for a socket, in a "stickypub-share" directory under
// $XDG_RUNTIME_DIR, else under the user's cache directory (os.UserCacheDir),
// named by a digest of the file's path. There is no fallback to a shared
// temporary directory such as /tmp: a name there could be taken first by
// anybody.
func socketPlace(path string) (dir, sock string, err error) {
	dir = path + shareDirSuffix
	if s := filepath.Join(dir, sockName); len(s) <= maxSockPath {
		return dir, s, nil
	}
	sum := sha256.Sum256([]byte(path))
	name := hex.EncodeToString(sum[:10]) + ".sock"
	var roots []string
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" && filepath.IsAbs(rt) {
		roots = append(roots, rt)
	}
	if cache, err := os.UserCacheDir(); err == nil && filepath.IsAbs(cache) {
		roots = append(roots, cache)
	}
	for _, root := range roots {
		d := filepath.Join(root, "stickypub-share")
		if s := filepath.Join(d, name); len(s) <= maxSockPath {
			return d, s, nil
		}
	}
	return "", "", &SocketDirError{Dir: dir, Reason: fmt.Sprintf(
		"a socket in it would be longer than %d bytes, and neither XDG_RUNTIME_DIR nor the user's cache directory can hold it instead (use a shorter file path)", maxSockPath)}
}

// ensurePrivateDir creates dir (mode 0700) if it is missing and checks that
// it is a real directory (not a symbolic link), owned by this user, that
// no other user may enter or change. A directory that fails a check is
// left alone and reported as a *SocketDirError; one that cannot be created
// gives the error of os.Mkdir (os.ErrPermission, say).
func ensurePrivateDir(dir string, h *shareHooks) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("cannot create its socket directory %s: %w", filepath.Base(dir), pathErrOnly(err))
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return &SocketDirError{Dir: dir, Reason: pathErrOnly(err).Error()}
	}
	return checkPrivate(dir, fi, h)
}

// checkPrivate checks what Lstat said of dir.
func checkPrivate(dir string, fi fs.FileInfo, h *shareHooks) error {
	bad := func(format string, args ...any) error {
		return &SocketDirError{Dir: dir, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return bad("it is a symbolic link")
	case !fi.IsDir():
		return bad("it is not a directory (%v)", fi.Mode().Type())
	}
	uid, err := h.fileUID(fi)
	if err != nil {
		return bad("its owner cannot be learned: %v", err)
	}
	if uid != h.uid {
		return bad("it belongs to uid %d, not to this process's uid %d", uid, h.uid)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return bad("its mode is %#o: other users may enter it (want 0700)", perm)
	}
	return nil
}

// umaskMu serializes the brief umask changes of listenPrivate: the umask
// belongs to the whole process.
var umaskMu sync.Mutex

// listenPrivate creates the owner's socket at sock, in a directory that
// ensurePrivateDir has just checked. The caller holds the bolt file's lock,
// so a socket found at sock belongs to an owner that is gone (killed before
// it could remove it) and is replaced. Anything else at that path is left
// alone. The socket is created under umask 0177 and then set to 0600.
func listenPrivate(sock string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(sock); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, errors.New("a file that is not a socket is in the way")
		}
		if err := os.Remove(sock); err != nil {
			return nil, err
		}
	}
	var ln net.Listener
	err := withUmask(0o177, func() error {
		var err error
		ln, err = net.Listen("unix", sock)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return ln.(*net.UnixListener), nil
}

// checkPeer refuses a peer that does not run as this process's user.
func checkPeer(c net.Conn, sock string, peerIsOwner bool, h *shareHooks) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return &PeerError{Socket: sock, PeerUID: -1, WantUID: h.uid, PeerIsOwner: peerIsOwner,
			Err: fmt.Errorf("not a Unix socket connection (%T)", c)}
	}
	uid, err := h.peerUID(uc)
	if err != nil {
		return &PeerError{Socket: sock, PeerUID: -1, WantUID: h.uid, PeerIsOwner: peerIsOwner, Err: err}
	}
	if uid != h.uid {
		return &PeerError{Socket: sock, PeerUID: uid, WantUID: h.uid, PeerIsOwner: peerIsOwner}
	}
	return nil
}

// pathErrOnly drops the path an *os.PathError repeats.
func pathErrOnly(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
