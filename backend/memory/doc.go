// Package memory is the in-memory reference adapter of the backend contract.
//
// It is small on purpose: it is the adapter to read (and copy) when writing a
// new one. Every rule of the contract shows up here in its simplest form:
//
//   - one mutex makes every operation atomic, so the store is Linearizable;
//   - versions come from one counter per Space that only ever grows, so a
//     version is never handed out twice, not after a delete and not through
//     another handle;
//   - values are copied on the way in and on the way out, so a caller can
//     never change stored bytes through a slice it holds;
//   - input is validated before anything changes: a closed handle gives
//     backend.ErrClosed, a done context gives ctx.Err(), a bad key
//     backend.ErrInvalidKey, an oversized value backend.ErrTooLarge;
//   - change notification (backend.Watcher) never blocks a writer: each watch
//     has a one-slot channel that always holds the newest version.
//
// # Spaces and handles
//
// A Space is the shared namespace (the "database"); a Store is one handle
// opened on it with Space.Open. Handles on the same Space see the same data
// and share the version counter. Closing a handle closes only that handle and
// its watches; the Space and its data stay, so closing a handle and opening
// another one is this adapter's "reopen". New is shorthand for
// NewSpace(Options{}).Open().
//
// # Persistence
//
// Data lives in process memory for as long as the Space is referenced. It
// survives closing and reopening handles on the Space, but not the process,
// so Capabilities reports Persistent: false. A new Space is a new, empty
// namespace with its own counter; versions are only comparable within one
// Space.
//
// # URIs
//
// Importing the package registers the scheme "mem" with the backend
// registry. Because the package keeps no global state, "mem://" (or "mem:")
// opens a fresh private Space on every call; there are no named spaces. To
// share a Space between handles, call NewSpace and Space.Open. Two optional
// query parameters set the limits: mem://?max_key_size=256&max_value_size=4096.
package memory
