package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// TopicInfo is the JSON answer of GET /topics/{topic}.
type TopicInfo struct {
	Topic            string          `json:"topic"`
	Version          uint64          `json:"version"`
	Announcements    uint64          `json:"announcements"`
	RetainedFrom     uint64          `json:"retained_from"`
	Messages         uint64          `json:"messages"`
	RetainedMessages uint64          `json:"retained_messages"`
	Publishers       []PublisherInfo `json:"publishers"`
	Subscribers      []Subscriber    `json:"subscribers"`
}

// PublisherInfo is one publisher of a topic.
type PublisherInfo struct {
	ID      string `json:"id"`
	LastSeq uint64 `json:"last_seq"`
}

// Subscriber is one live subscription record of a topic.
type Subscriber struct {
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	if err := checkTopic(topic); err != nil {
		fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	in, err := s.client.Info(ctx, topic)
	if err != nil {
		fail(w, err)
		return
	}
	if in.Version == 0 {
		fail(w, fmt.Errorf("%w: %q (nothing was ever published or subscribed to it)", ErrUnknownTopic, topic))
		return
	}
	out := TopicInfo{Topic: in.Topic, Version: uint64(in.Version), Announcements: in.Announcements,
		RetainedFrom: in.RetainedFrom, Messages: in.Messages, RetainedMessages: in.RetainedMessages,
		Publishers: []PublisherInfo{}, Subscribers: []Subscriber{}}
	for _, p := range in.Publishers {
		out.Publishers = append(out.Publishers, PublisherInfo{ID: p.ID.String(), LastSeq: p.LastSeq})
	}
	for _, sub := range in.Subscribers {
		out.Subscribers = append(out.Subscribers, Subscriber{ID: sub.ID.String(), Expires: sub.Expires})
	}
	writeJSON(w, http.StatusOK, out)
}

// healthKey is read by /healthz: absent, so a healthy store answers
// ErrNotFound.
const healthKey = "gateway/healthz"

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		fail(w, ErrClosed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), min(s.cfg.Timeout, 5*time.Second))
	defer cancel()
	if _, err := s.cfg.Store.Get(ctx, healthKey); err != nil && !errors.Is(err, backend.ErrNotFound) {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}
