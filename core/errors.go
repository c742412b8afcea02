package core

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
)

// PublishError reports a publish that did not complete before its context
// ended. The messages keep their sequence numbers and stay queued: the client
// keeps trying to publish them until it is closed, so nothing is lost and a
// retry is not needed (and would publish a second copy).
type PublishError struct {
	Topic       string
	FirstSeq    uint64
	LastSeq     uint64
	StillQueued bool
	Err         error
}

// Error implements error.
func (e *PublishError) Error() string {
	state := "abandoned"
	if e.StillQueued {
		state = "still queued and will be published"
	}
	return fmt.Sprintf("core: publish %s seq %d-%d: %v (messages %s)", QuoteInput(e.Topic), e.FirstSeq, e.LastSeq, e.Err, state)
}

// Unwrap returns the cause.
func (e *PublishError) Unwrap() error { return e.Err }

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
