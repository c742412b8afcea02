package gateway

import (
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/stickypub/stickypub/core"
)

// event is one Server-Sent Event.
type event struct {
	id   string // resumable cursor ("": none)
	name string // "message" or "gap"
	data []byte // one line of JSON
}

// Message is a delivered message as the gateway sends it (the data of an
// SSE "message" event), in the shape of "stickypub subscribe --json".
type Message struct {
	Topic     string    `json:"topic"`
	Publisher string    `json:"publisher"`
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	// Payload is the payload as a string when it is valid UTF-8, else its
	// standard base64 encoding, and then Base64 is true.
	Payload string `json:"payload"`
	Base64  bool   `json:"base64,omitempty"`
	// TTL is the message's retention limit ("1h0m0s"), absent when none.
	TTL string `json:"ttl,omitempty"`
	// Cursor is the position after this message (the SSE id), when the
	// store's subscriptions have cursors.
	Cursor string `json:"cursor,omitempty"`
}

// Gap is the data of an SSE "gap" event: messages From..To of a publisher
// are missing and were skipped.
type Gap struct {
	Topic     string `json:"topic"`
	Publisher string `json:"publisher"`
	From      uint64 `json:"from"`
	To        uint64 `json:"to"`
	Reason    string `json:"reason"`
}

func newMessage(m *core.Message) Message {
	j := Message{Topic: m.Topic, Publisher: m.PublisherID.String(), Seq: m.Seq, Time: m.Time, Cursor: cursorOf(m)}
	if utf8.Valid(m.Payload) {
		j.Payload = string(m.Payload)
	} else {
		j.Payload, j.Base64 = base64.StdEncoding.EncodeToString(m.Payload), true
	}
	if m.TTL > 0 {
		j.TTL = m.TTL.String()
	}
	return j
}

func messageEvent(m *core.Message) event {
	j := newMessage(m)
	b, _ := json.Marshal(j) // cannot fail: strings, numbers and a time
	return event{id: j.Cursor, name: "message", data: b}
}

func gapEvent(g core.Gap) event {
	b, _ := json.Marshal(Gap{Topic: g.Topic, Publisher: g.Publisher.String(), From: g.From, To: g.To, Reason: g.Reason})
	return event{name: "gap", data: b}
}
