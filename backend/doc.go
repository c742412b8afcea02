// Package backend defines the compare-and-put key/value contract that the
// sticky pub/sub protocol (package core) is written against, the errors and
// capabilities every adapter shares, and a URI registry that picks an adapter
// at construction time.
//
// The required interface, Store, is deliberately small: Get, CompareAndPut,
// Capabilities and Close. Extra engine features are optional interfaces that
// callers discover by type assertion: Watcher (change hints for push
// delivery), Deleter, Updater (an engine-side atomic read-modify-write
// that can coalesce concurrent updates), and Lister (keys by prefix, which
// lets core find segments that crashed publishers left behind).
//
// Versions are per key, strictly increasing, and never reused: not after a
// restart, not through a second handle, not after a delete. Version 0 means
// "absent" and is never assigned to a stored entry.
package backend
