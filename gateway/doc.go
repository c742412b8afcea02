// Package gateway serves sticky pub/sub topics over HTTP: publishing with
// POST, following with Server-Sent Events, topic info as JSON, a health
// check, an optional metrics handler and a small live page.
//
// Routes (topic names are one path segment: escape a "/" in a topic as %2F):
//
//	POST /topics/{topic}/messages   publish the body (or a JSON array of strings: a batch)
//	GET  /topics/{topic}/events     Server-Sent Events: history and new messages
//	GET  /topics/{topic}            topic info as JSON (404 for a topic never used)
//	GET  /healthz                   200 "ok" while the store answers
//	GET  /metrics                   the Config.Metrics handler (Prometheus)
//	GET  /                          the live page
//
// Live SSE followers of a topic share one subscription (a fan-out with a
// bounded buffer per follower: a follower that falls behind is
// disconnected, never the publishers slowed down); a follower that asks for
// history (?from=start) or resumes (Last-Event-ID: the id of the last event
// it received, a core.Cursor) gets a subscription of its own. See
// docs/gateway.md.
package gateway
