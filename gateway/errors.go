package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
)

// Request errors.
var (
	// ErrUnknownTopic: the topic has never been used (GET /topics/{topic}).
	ErrUnknownTopic = errors.New("gateway: unknown topic")
	// ErrUnauthorized: a publish request lacks the bearer token.
	ErrUnauthorized = errors.New("gateway: missing or wrong bearer token")
	// ErrBadRequest: a malformed request (query parameter, batch body).
	ErrBadRequest = errors.New("gateway: bad request")
)

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
	// StillQueued: a publish timed out but its messages keep their
	// sequence numbers and will still be published (do not retry).
	StillQueued bool `json:"still_queued,omitempty"`
}

// statusOf maps an error to its HTTP status.
func statusOf(err error) int {
	var maxBytes *http.MaxBytesError
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, core.ErrInvalidTopic), errors.Is(err, core.ErrCursorMismatch):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrUnknownTopic):
		return http.StatusNotFound
	case errors.As(err, &maxBytes), errors.Is(err, core.ErrPayloadTooLarge), errors.Is(err, backend.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrClosed), errors.Is(err, core.ErrClientClosed), errors.Is(err, backend.ErrUnavailable),
		errors.Is(err, backend.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// fail answers with err's status and a JSON body.
func fail(w http.ResponseWriter, err error) { writeError(w, statusOf(err), err) }

func writeError(w http.ResponseWriter, status int, err error) {
	body := errorBody{Error: err.Error(), Status: status}
	var pe *core.PublishError
	if errors.As(err, &pe) {
		body.StillQueued = pe.StillQueued
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="stickypub"`)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// checkTopic validates a topic name from a path, as core does.
func checkTopic(topic string) error {
	if topic == "" || len(topic) > core.MaxTopicLen || !utf8.ValidString(topic) {
		return fmt.Errorf("%w: %q (want 1-%d bytes of UTF-8)", core.ErrInvalidTopic, topic, core.MaxTopicLen)
	}
	return nil
}
