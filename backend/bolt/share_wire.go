package bolt

import (
	"context"
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
)

// The owner of a shared bolt file (see Shared) serves the other processes
// on a Unix socket. Both directions are streams of gob values: the client
// sends requests, the owner sends replies. Every request carries an ID
// chosen by the client; the reply to it carries the same ID. Requests are
// served concurrently, so replies may come out of order. A watch is a
// request whose ID then also tags every change notification (Event) for the
// watched key, until the client sends wireUnwatch or the connection ends.
// The client pings at a fixed interval; the owner answers every ping at
// once, so each side learns within a bound that the other stopped.
//
// Nothing the owner does for a client runs inside its write transaction:
// a client's update function runs in the client, which then writes with a
// compare-and-put (see Shared.Update).

// shareProto names the protocol; the hello exchange checks it.
const shareProto = "stickypub-bolt-share/4"

// wireOp is the operation of a request.
type wireOp uint8

const (
	wireHello   wireOp = iota + 1 // Key: the client's path of the file; Value: shareProto
	wireGet                       // Key
	wireCAS                       // Key, Expect, Value
	wireCancel                    // ID: the request to cancel (no reply)
	wireWatch                     // Key; the reply acknowledges, then Events follow
	wireUnwatch                   // ID: the watch to end (no reply)
	wireDelete                    // Key, Expect
	wirePing                      // answered with a Pong at once
	wireList                      // Key: prefix; Value: the last key of the previous page (none: from the start); reply: Keys
	wireBatch                     // Puts, then Key, Expect, Sum, Value or Skip (UpdateWith); reply: Version, Versions
)

// request is one client-to-owner frame.
type request struct {
	ID     uint64
	Op     wireOp
	Key    string
	Expect uint64
	Value  []byte
	// wireBatch: the compare-and-puts written with the update of Key, and
	// what the client's update function saw of Key: its version (Expect)
	// and the SHA-256 of its value (Sum), which the owner checks before
	// writing Value (or nothing, with Skip).
	Puts []wirePut
	Sum  []byte
	Skip bool
}

// wirePut is one compare-and-put of a wireBatch request.
type wirePut struct {
	Key    string
	Expect uint64
	Value  []byte
}

// reply is one owner-to-client frame.
type reply struct {
	ID      uint64
	Version uint64
	Value   []byte
	// Event marks a change notification of watch ID (Version: the new
	// version, 0 when unknown or deleted).
	Event bool
	// Pong answers a ping.
	Pong bool
	Err  *wireError
	// Caps answers wireHello.
	Caps *backend.Capabilities
	// Keys answers wireList: one page of keys.
	Keys []string
	// Versions answers wireBatch: the new version of each put, in order.
	Versions []uint64
}

// errCode classifies a wireError so that the client can rebuild an error
// that matches the same backend sentinel.
type errCode uint8

const (
	codeOther errCode = iota
	codeNotFound
	codeConflict
	codeOwnerClosing // the owner's store is closing: nothing was done, retry on the next owner
	codeInvalidKey
	codeTooLarge
	codeUnavailable
	codeCorrupt
	codeCanceled
	codeDeadline
	codeRefused     // the hello was refused (protocol, file or limits differ)
	codePeerRefused // the owner refused this process's credentials
)

// wireError is an error as it crosses the socket.
type wireError struct {
	Code errCode
	Msg  string
	// Conflict details (codeConflict).
	Key        string
	Expected   uint64
	CurVersion uint64
	CurValue   []byte
	Known      bool
}

// errOwnerGone means the operation did not reach a live owner, or the owner
// answered that it is closing: nothing changed, and the operation can be
// sent again once the store is attached anew.
var errOwnerGone = errors.New("bolt owner process went away")

// errOutcomeUnknown means the connection to the owner broke after a write
// was sent and before its answer arrived.
var errOutcomeUnknown = errors.New("connection to the bolt owner process lost during a write")

// errRefused means an owner answered but refused this process (another
// protocol version, another file, other limits). Retrying does not help.
var errRefused = errors.New("bolt owner process refused the connection")

// encodeError turns an error of the owner's store into its wire form.
func encodeError(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Msg: err.Error()}
	var ce *backend.ConflictError
	switch {
	case errors.As(err, &ce):
		w.Code, w.Key, w.Expected, w.Known = codeConflict, ce.Key, uint64(ce.Expected), ce.Known
		w.CurVersion, w.CurValue = uint64(ce.Current.Version), ce.Current.Value
	case errors.Is(err, backend.ErrConflict):
		w.Code = codeConflict
	case errors.Is(err, backend.ErrNotFound):
		w.Code = codeNotFound
	case errors.Is(err, backend.ErrClosed):
		w.Code = codeOwnerClosing
	case errors.Is(err, backend.ErrInvalidKey):
		w.Code = codeInvalidKey
	case errors.Is(err, backend.ErrTooLarge):
		w.Code = codeTooLarge
	case errors.Is(err, backend.ErrUnavailable):
		w.Code = codeUnavailable
	case errors.Is(err, backend.ErrCorrupt):
		w.Code = codeCorrupt
	case errors.Is(err, context.Canceled):
		w.Code = codeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		w.Code = codeDeadline
	}
	return w
}

// remoteError is an error received from the owner: its message, matching
// the sentinel of its code.
type remoteError struct {
	msg  string
	base error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.base }

// decodeError rebuilds an error received from the owner. ctx is the
// caller's context, whose error is returned for a cancelled operation.
func decodeError(ctx context.Context, w *wireError) error {
	if w == nil {
		return nil
	}
	var base error
	switch w.Code {
	case codeConflict:
		if w.Key == "" && !w.Known {
			base = backend.ErrConflict
			break
		}
		cur := backend.Entry{Value: w.CurValue, Version: backend.Version(w.CurVersion)}
		if cur.Version != 0 {
			cur.Value = orEmpty(cur.Value) // gob makes nil of an empty value
		}
		return &backend.ConflictError{Key: w.Key, Expected: backend.Version(w.Expected), Known: w.Known, Current: cur}
	case codeNotFound:
		base = backend.ErrNotFound
	case codeOwnerClosing:
		base = errOwnerGone
	case codeInvalidKey:
		base = backend.ErrInvalidKey
	case codeTooLarge:
		base = backend.ErrTooLarge
	case codeUnavailable:
		base = backend.ErrUnavailable
	case codeCorrupt:
		base = backend.ErrCorrupt
	case codeCanceled, codeDeadline:
		if err := ctx.Err(); err != nil {
			return err
		}
		if w.Code == codeCanceled {
			base = context.Canceled
		} else {
			base = context.DeadlineExceeded
		}
	case codeRefused:
		base = errRefused
	case codePeerRefused:
		base = ErrPeerRefused
	default:
		return errors.New(w.Msg)
	}
	return &remoteError{msg: w.Msg, base: base}
}

// refusal builds the reply that refuses a hello.
func refusal(format string, args ...any) *wireError {
	return &wireError{Code: codeRefused, Msg: fmt.Sprintf(format, args...)}
}
