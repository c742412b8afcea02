package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stickypub/stickypub/core"
)

// jsonMessage is a received message as subscribe --json prints it.
type jsonMessage struct {
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
	// Cursor resumes right after this message (subscribe --from-cursor).
	Cursor string `json:"cursor,omitempty"`
	// Redelivered: a durable subscription may have printed it before.
	Redelivered bool `json:"redelivered,omitempty"`
}

func newJSONMessage(m *core.Message) jsonMessage {
	j := jsonMessage{Topic: m.Topic, Publisher: m.PublisherID.String(), Seq: m.Seq, Time: m.Time,
		Cursor: m.Cursor.String(), Redelivered: m.Redelivered}
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

// shortLen is how many characters of a publisher ID plain output shows.
const shortLen = 8

// shortID is the beginning of a publisher ID, enough to tell publishers
// apart on a terminal.
func shortID(id core.PublisherID) string {
	s := id.String()
	return s[:min(shortLen, len(s))]
}

// plainTime is the time format of plain output (local time).
const plainTime = "2006-01-02 15:04:05.000"

// writeMessage prints m as one line: plain "[time] publisher #seq: payload"
// or a JSON object.
func writeMessage(w io.Writer, m *core.Message, asJSON bool) error {
	if asJSON {
		return writeJSON(w, newJSONMessage(m))
	}
	re := ""
	if m.Redelivered {
		re = " (redelivered)"
	}
	_, err := fmt.Fprintf(w, "[%s] %s #%d%s: %s\n", m.Time.Local().Format(plainTime), shortID(m.PublisherID), m.Seq, re, printable(m.Payload))
	return err
}

// printable shows a payload on one terminal line: as it is when it is
// UTF-8 text without control characters, quoted when it has some, and as
// "base64:..." when it is not UTF-8.
func printable(p []byte) string {
	if !utf8.Valid(p) {
		return "base64:" + base64.StdEncoding.EncodeToString(p)
	}
	for _, r := range string(p) {
		if r != '\t' && (unicode.IsControl(r) || r == utf8.RuneError) {
			return strconv.Quote(string(p))
		}
	}
	return string(p)
}

// writeJSON prints v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
