package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stickypub/stickypub/backend/bolt"
)

// Two processes publishing with one identity to one store would race for
// the identity's head records, and core refuses the loser's batch
// (core.ErrConcurrentPublisher) rather than fork the log. So the CLI takes
// a per-identity, per-store lock file (next to the identity file) for the
// whole of a publish command: a second terminal publishing as the same
// identity waits for the first, and says so on stderr.

// lockPoll is how often a waiting publisher tries the lock again;
// lockNotice how long it waits before saying so (a turn is usually
// shorter: one publish).
const (
	lockPoll   = 20 * time.Millisecond
	lockNotice = 250 * time.Millisecond
)

// identityLockPath is the lock file of identity path idPath on the store
// named by storeURI: idPath.<digest of the store>.lock.
func identityLockPath(idPath, storeURI string) string {
	sum := sha256.Sum256([]byte(storeKey(storeURI)))
	return idPath + "." + hex.EncodeToString(sum[:6]) + ".lock"
}

// storeKey names a store the same way in every process: a bolt file by
// its absolute path, anything else by its URI.
func storeKey(uri string) string {
	u, err := url.Parse(uri)
	if err == nil && u.Scheme == bolt.Scheme {
		if f, err := bolt.ResolveURI(u); err == nil {
			return "bolt:" + f.Path
		}
	}
	return uri
}

// lockIdentity takes the publishing lock of the identity at idPath on the
// store, waiting (with one line on stderr) while another process holds it,
// until ctx ends. unlock releases it. Where file locks are not available
// it does nothing.
func (a *app) lockIdentity(ctx context.Context, idPath, storeURI string) (unlock func(), err error) {
	if real, err := filepath.EvalSymlinks(idPath); err == nil {
		idPath = real // one lock however the identity file is reached
	}
	path := identityLockPath(idPath, storeURI)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		// A read-only identity directory, say: publish unserialized (a
		// collision is still refused by core, with a plain error).
		a.logger.Debug("no identity lock", "path", path, "err", pathErr(err))
		return func() {}, nil
	}
	told, began := false, time.Now()
	for {
		ok, err := tryLock(f)
		if err != nil {
			_ = f.Close()
			if errors.Is(err, errLocksUnsupported) {
				return func() {}, nil
			}
			return nil, fmt.Errorf("identity lock %s: %w", path, err)
		}
		if ok {
			break
		}
		if !told && time.Since(began) >= lockNotice {
			told = true
			holder := "another stickypub process"
			if b, err := os.ReadFile(path); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					holder = fmt.Sprintf("stickypub process %d", pid)
				}
			}
			fmt.Fprintf(a.stderr, "stickypub: waiting for %s, which is publishing as this identity to this store...\n", holder)
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			_ = f.Close()
			return nil, fmt.Errorf("another process kept publishing as this identity to this store (lock %s): %w", path, ctx.Err())
		}
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { _ = f.Close() }, nil // closing releases the lock
}

// pathErr drops the path an *os.PathError repeats.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// errLocksUnsupported: this platform has no advisory file locks.
var errLocksUnsupported = errors.New("file locks not supported")
