package gateway

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/stickypub/stickypub/core"
)

// Receipt is the JSON answer for one published message.
type Receipt struct {
	Topic     string    `json:"topic"`
	Publisher string    `json:"publisher"`
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
}

// authorized checks the bearer token of a publish request.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Token == "" {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1
}

// handlePublish publishes the body as one message, or a JSON array as a
// batch (Content-Type application/json): a string element is published as
// its UTF-8 text, any other element as its JSON text. ?ttl=DURATION limits
// retention.
func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		fail(w, ErrUnauthorized)
		return
	}
	topic := r.PathValue("topic")
	if err := checkTopic(topic); err != nil {
		fail(w, err)
		return
	}
	var opts []core.PublishOption
	if v := r.URL.Query().Get("ttl"); v != "" {
		ttl, err := time.ParseDuration(v)
		if err != nil || ttl <= 0 {
			fail(w, fmt.Errorf("%w: ttl %q is not a positive duration", ErrBadRequest, v))
			return
		}
		opts = append(opts, core.WithTTL(ttl))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		fail(w, fmt.Errorf("gateway: reading the body: %w", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	if batch, ok, err := batchOf(r, body); err != nil {
		fail(w, err)
		return
	} else if ok {
		rs, err := s.client.PublishBatch(ctx, topic, batch, opts...)
		if err != nil {
			fail(w, err)
			return
		}
		out := make([]Receipt, len(rs))
		for i, rc := range rs {
			out[i] = s.receipt(rc)
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	rc, err := s.client.Publish(ctx, topic, body, opts...)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.receipt(rc))
}

func (s *Server) receipt(rc core.Receipt) Receipt {
	return Receipt{Topic: rc.Topic, Publisher: s.cfg.Identity.ID().String(), Seq: rc.Seq, Time: rc.Time}
}

// batchOf returns the payloads of a batch body: a JSON array sent as
// application/json. Any other body is one payload (ok false).
func batchOf(r *http.Request, body []byte) (payloads [][]byte, ok bool, err error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" || !bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("[")) {
		return nil, false, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		return nil, false, fmt.Errorf("%w: batch body is not a JSON array: %v", ErrBadRequest, err)
	}
	if len(elems) == 0 {
		return nil, false, fmt.Errorf("%w: empty batch", ErrBadRequest)
	}
	payloads = make([][]byte, len(elems))
	for i, e := range elems {
		var str string
		if json.Unmarshal(e, &str) == nil {
			payloads[i] = []byte(str)
		} else {
			payloads[i] = bytes.Clone(e)
		}
	}
	return payloads, true, nil
}
