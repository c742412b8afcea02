package gateway

import "github.com/stickypub/stickypub/core"

// cursorOf is the resumable position after m, sent as the SSE id. Core
// has no durable cursor yet (branch lifecycle), so there is none: the
// stream sends no id lines and Last-Event-ID is refused rather than
// faked.
func cursorOf(*core.Message) string { return "" }

// resumeOptions turns a cursor from Last-Event-ID or ?from= into
// subscribe options.
func resumeOptions(cursor string) ([]core.SubscribeOption, error) {
	return nil, errNoCursors
}
