package gateway

import (
	_ "embed"
	"net/http"
)

//go:embed web/index.html
var indexHTML []byte

// handlePage serves the live page.
func (s *Server) handlePage(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(indexHTML)
}
