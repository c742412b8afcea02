package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// envChromium names the browser binary for the live page test (default:
// chromium or chromium-browser on PATH).
const envChromium = "STICKYPUB_CHROMIUM"

// chromiumPath finds the browser. The test fails (never skips) without
// one: CI installs Debian's chromium with .ci/install-chromium.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("the live page test needs Chromium: run .ci/install-chromium (Debian: apt-get install -y chromium) or set %s", envChromium)
	return ""
}

// browser starts a headless Chromium with a fresh profile that talks to
// nothing but the test server.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("metrics-recording-only", true),
		// Only loopback: any host name resolves to nothing.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { bcancel(); acancel(); cancel() })
	return bctx
}

// TestLivePageInBrowser: in a real headless Chromium the live page shows
// a topic's history, then a message published through the HTTP API
// appears, and a message published from the page's form is stored.
func TestLivePageInBrowser(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Token = "page-token" })
	auth := []string{"Authorization", "Bearer page-token"}
	topic := "live/page <test>" // a slash and HTML characters
	code, body := e.do(t, http.MethodPost, topicPath(topic)+"/messages", "text/plain",
		strings.NewReader("<b>history</b> one"), auth...)
	require.Equal(t, http.StatusOK, code, string(body))

	ctx := browser(t)
	text := func() string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("messages").innerText`))
		require.NoError(t, err)
		return s
	}
	waitFor := func(js, what string) {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(time.Minute)))
		require.NoError(t, err, "%s; page shows: %q", what, text())
	}
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(e.url("/")),
		chromedp.SetValue(chromedp.CSS("#topic"), topic),
		chromedp.Click(chromedp.CSS("#follow")),
	))
	waitFor(`document.getElementById("status").className === "live"`, "the page follows the topic")
	waitFor(`document.querySelectorAll("#messages li.msg").length === 1`, "the history arrives")
	assert.Contains(t, text(), "<b>history</b> one", "payloads are shown as text, not HTML")

	// Published through the API: it appears on the page.
	code, body = e.do(t, http.MethodPost, topicPath(topic)+"/messages", "text/plain",
		strings.NewReader("from the API"), auth...)
	require.Equal(t, http.StatusOK, code, string(body))
	waitFor(`document.getElementById("messages").innerText.includes("from the API")`, "the API's message appears")

	// Published from the page's form without the token: refused, shown.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#payload"), "from the page"),
		chromedp.Click(chromedp.CSS("#publish")),
	))
	waitFor(`document.getElementById("publish-status").className === "error"`, "a publish without the token is refused")
	// With the token: stored, and it appears on the page.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#token"), "page-token"),
		chromedp.Click(chromedp.CSS("#publish")),
	))
	waitFor(`document.getElementById("messages").innerText.includes("from the page")`, "the form's message appears")
	assert.Equal(t, 3, strings.Count(text(), "#"), "three messages, each once: %q", text())

	code, body = e.do(t, http.MethodGet, topicPath(topic), "", nil)
	require.Equal(t, http.StatusOK, code)
	var in TopicInfo
	require.NoError(t, json.Unmarshal(body, &in))
	assert.Equal(t, uint64(3), in.Messages)
}
