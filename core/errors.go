package core

// Errors of the client API, and PublishError.

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Errors returned by the client. Storage errors from the backend are wrapped
// and still match the backend's sentinels (backend.ErrUnavailable, ...).
var (
	// ErrClientClosed: the client was closed.
	ErrClientClosed = errors.New("core: client closed")
	// ErrBadIdentity: an identity file or seed is malformed.
	ErrBadIdentity = errors.New("core: bad identity")
	// ErrInvalidTopic: the topic name is empty or too long.
	ErrInvalidTopic = errors.New("core: invalid topic")
	// ErrNotSubscribed: the topic has no active subscription on this client.
	ErrNotSubscribed = errors.New("core: not subscribed")
	// ErrAlreadySubscribed: the topic already has a subscription on this client.
	ErrAlreadySubscribed = errors.New("core: already subscribed")
	// ErrConcurrentPublisher: another process publishes to the topic with
	// the same identity, so sequence numbers would collide.
	ErrConcurrentPublisher = errors.New("core: identity is publishing to this topic from another client")
	// ErrMalformed: a record read from the store does not decode or fails
	// its integrity check (forged, truncated, foreign data).
	ErrMalformed = errors.New("core: malformed record")
	// ErrBadSignature: a message or record signature does not verify.
	ErrBadSignature = errors.New("core: bad signature")
	// ErrPollingActive: StartPolling was called while polling runs.
	ErrPollingActive = errors.New("core: background polling already running")
	// ErrOutcomeUnknown: a publish failed after its messages may have
	// reached the publisher's log, so they may still be delivered. Retry
	// the *PublishError with Client.Retry (never by publishing the payloads
	// again): it finds out and does not duplicate.
	ErrOutcomeUnknown = errors.New("core: publish outcome unknown")
	// ErrLogRegressed: the store went back in time (a Redis restarted
	// without persistence, a failover that lost writes, a restored backup):
	// a head record or coordinator is older than one this client wrote or
	// read. It is reported (events and errors) and the client carries on
	// from what the store holds, never reusing a seq it acknowledged.
	ErrLogRegressed = errors.New("core: the store lost data (its history went backwards)")
)

// PublishError reports a publish that did not complete. Exactly one of
// three outcomes holds:
//
//   - StillQueued: the caller's context ended first. The messages keep
//     their sequence numbers and stay queued: the client keeps trying to
//     publish them until it is closed, so a retry is not needed.
//   - OutcomeUnknown (errors.Is(err, ErrOutcomeUnknown)): the publish
//     failed after the messages may have reached the publisher's log, so
//     they may still be delivered. Client.Retry settles it without
//     duplicating.
//   - neither: the messages were not published (nothing of them was
//     written); Client.Retry or a new Publish publishes them.
//
// After a permanent error the topic publisher reloads its head record at the
// next publish, so one failure never wedges later publishes.
type PublishError struct {
	// Topic is the topic published to.
	Topic string
	// FirstSeq and LastSeq are the sequence numbers the messages got.
	FirstSeq, LastSeq uint64
	// StillQueued: the caller's context ended first; the messages keep
	// their seqs and are still published while the client is open.
	StillQueued bool
	// OutcomeUnknown: the messages may be in the log (see
	// ErrOutcomeUnknown); settle with Client.Retry.
	OutcomeUnknown bool
	// Err is the cause.
	Err error

	msgs []*pendingMsg // for Client.Retry
	req  *pubRequest   // StillQueued: the request still in the queue
	c    *Client       // the client that published them
}

// Error implements error.
func (e *PublishError) Error() string {
	state := "not published"
	switch {
	case e.StillQueued:
		state = "still queued and will be published"
	case e.OutcomeUnknown:
		state = "outcome unknown: they may have been published; use Client.Retry, not a new Publish"
	}
	return fmt.Sprintf("core: publish %s seq %d-%d: %v (messages %s)", QuoteInput(e.Topic), e.FirstSeq, e.LastSeq, e.Err, state)
}

// Unwrap returns the cause.
func (e *PublishError) Unwrap() error { return e.Err }

// Is reports ErrOutcomeUnknown for an error whose outcome is unknown.
func (e *PublishError) Is(target error) bool { return target == ErrOutcomeUnknown && e.OutcomeUnknown }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// maxQuoted is how many bytes of user input QuoteInput shows.
const maxQuoted = 64

// QuoteInput quotes user input (a topic name, say) for an error message:
// Go-quoted, so that control characters cannot break the line, and cut to
// its first 64 bytes with the full length noted.
func QuoteInput(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", strconv.Quote(s[:cut]), len(s))
}
