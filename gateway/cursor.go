package gateway

import (
	"fmt"

	"github.com/stickypub/stickypub/core"
)

// cursorOf is the resumable position after m (core.Message.Cursor in its
// text form), sent as the SSE id: a browser's EventSource sends it back as
// Last-Event-ID when it reconnects.
func cursorOf(m *core.Message) string {
	if m.Cursor.IsZero() {
		return ""
	}
	return m.Cursor.String()
}

// resumeOptions turns a cursor from Last-Event-ID or ?from= into
// subscribe options.
func resumeOptions(cursor string) ([]core.SubscribeOption, error) {
	c, err := core.ParseCursor(cursor)
	if err != nil {
		return nil, fmt.Errorf("%w: cursor: %w", ErrBadRequest, err)
	}
	return []core.SubscribeOption{core.FromCursor(c)}, nil
}
