package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPublishThenLiveSSE(t *testing.T) {
	e := newEnv(t, nil)
	topic := "demo/a topic" // a slash and a space, escaped in the path
	s := e.openSSE(t, topicPath(topic)+"/events")
	r := e.publish(t, topic, "hello")
	assert.Equal(t, uint64(1), r.Seq)
	assert.Equal(t, topic, r.Topic)
	code, body := e.do(t, http.MethodPost, topicPath(topic)+"/messages", "application/json",
		strings.NewReader(`["two", {"n": 3}]`))
	require.Equal(t, http.StatusOK, code, string(body))
	assert.JSONEq(t, fmt.Sprintf(`[{"topic":%q,"publisher":%q,"seq":2,"time":"x"},{"topic":%q,"publisher":%q,"seq":3,"time":"x"}]`,
		topic, r.Publisher, topic, r.Publisher), timesToX(t, body))
	want := []string{"hello", "two", `{"n": 3}`}
	for i, p := range want {
		m := s.next(t).message(t)
		assert.Equal(t, uint64(i+1), m.Seq)
		assert.Equal(t, p, m.Payload)
		assert.Equal(t, topic, m.Topic)
		assert.Equal(t, r.Publisher, m.Publisher)
	}
	// Binary payloads arrive base64-encoded.
	code, _ = e.do(t, http.MethodPost, topicPath(topic)+"/messages?ttl=1h", "application/octet-stream",
		strings.NewReader("\xff\x00"))
	require.Equal(t, http.StatusOK, code)
	m := s.next(t).message(t)
	assert.True(t, m.Base64)
	assert.Equal(t, "/wA=", m.Payload)
	assert.Equal(t, "1h0m0s", m.TTL)
}

func TestSSEFromStartThenLive(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 5 {
		e.publish(t, "hist", fmt.Sprint("m", i))
	}
	s := e.openSSE(t, topicPath("hist")+"/events?from=start")
	e.publish(t, "hist", "m5")
	for i := range 6 {
		m := s.next(t).message(t)
		require.Equal(t, uint64(i+1), m.Seq)
		require.Equal(t, fmt.Sprint("m", i), m.Payload)
	}
}

func TestTopicInfoAndHealth(t *testing.T) {
	e := newEnv(t, nil)
	e.publish(t, "info", "x")
	e.publish(t, "info", "y")
	s := e.openSSE(t, topicPath("info")+"/events")
	_ = s
	code, body := e.do(t, http.MethodGet, topicPath("info"), "", nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var in TopicInfo
	require.NoError(t, jsonUnmarshal(body, &in))
	assert.Equal(t, uint64(2), in.Messages)
	require.Len(t, in.Publishers, 1)
	assert.Equal(t, uint64(2), in.Publishers[0].LastSeq)
	assert.Len(t, in.Subscribers, 1, "the live stream's subscription")

	code, body = e.do(t, http.MethodGet, "/healthz", "", nil)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", string(body))
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 1024; c.Token = "s3cret" })
	auth := []string{"Authorization", "Bearer s3cret"}
	long := strings.Repeat("t", 1025)
	cases := []struct {
		name, method, path, ctype, body string
		hdr                             []string
		want                            int
		errHas                          string
	}{
		{"no token", "POST", "/topics/t/messages", "", "x", nil, 401, "bearer token"},
		{"wrong token", "POST", "/topics/t/messages", "", "x", []string{"Authorization", "Bearer nope"}, 401, "bearer token"},
		{"oversize body", "POST", "/topics/t/messages", "", strings.Repeat("x", 1025), auth, 413, "too large"},
		{"topic too long", "POST", "/topics/" + long + "/messages", "", "x", auth, 400, "invalid topic"},
		{"topic not UTF-8", "GET", "/topics/%ff", "", "", nil, 400, "invalid topic"},
		{"events topic not UTF-8", "GET", "/topics/%ff/events", "", "", nil, 400, "invalid topic"},
		{"bad ttl", "POST", "/topics/t/messages?ttl=soon", "", "x", auth, 400, "ttl"},
		{"negative ttl", "POST", "/topics/t/messages?ttl=-1s", "", "x", auth, 400, "ttl"},
		{"bad batch", "POST", "/topics/t/messages", "application/json", `["a",`, auth, 400, "JSON array"},
		{"empty batch", "POST", "/topics/t/messages", "application/json", `[]`, auth, 400, "empty batch"},
		{"unknown topic", "GET", "/topics/never-used", "", "", nil, 404, "unknown topic"},
		{"no route", "GET", "/nowhere", "", "", nil, 404, ""},
		{"method", "DELETE", "/topics/t/messages", "", "", nil, 405, ""},
		{"garbage cursor", "GET", "/topics/t/events", "", "", []string{"Last-Event-ID", "abc"}, 400, "cursor"},
		{"cursor not base64", "GET", "/topics/t/events?from=%21%21", "", "", nil, 400, "cursor"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body *strings.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			} else {
				body = strings.NewReader("")
			}
			code, b := e.do(t, c.method, c.path, c.ctype, body, c.hdr...)
			assert.Equal(t, c.want, code, string(b))
			if c.errHas != "" {
				var eb errorBody
				require.NoError(t, jsonUnmarshal(b, &eb), string(b))
				assert.Contains(t, eb.Error, c.errHas)
				assert.Equal(t, c.want, eb.Status)
			}
		})
	}
	// Nothing was published by the refused requests; the right token works.
	code, _ := e.do(t, http.MethodGet, "/topics/t", "", nil)
	assert.Equal(t, http.StatusNotFound, code)
	code, b := e.do(t, http.MethodPost, "/topics/t/messages", "", strings.NewReader("ok"), auth...)
	require.Equal(t, http.StatusOK, code, string(b))
	assert.Contains(t, string(b), `"seq":1`)
}
