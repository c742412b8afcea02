package gateway

import (
	"encoding/json"
	"regexp"
	"testing"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

var timeRE = regexp.MustCompile(`"time":"[^"]*"`)

// timesToX replaces every "time" value so JSON can be compared exactly.
func timesToX(t *testing.T, b []byte) string {
	t.Helper()
	return timeRE.ReplaceAllString(string(b), `"time":"x"`)
}
