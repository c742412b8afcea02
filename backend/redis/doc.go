// Package redis is the Redis adapter of the backend contract: a
// compare-and-put key/value store on a single Redis server or a Redis
// Cluster, through go-redis v9.
//
// # Opening
//
// Open connects from Options; New wraps a go-redis client the caller already
// has. Importing the package registers these URI schemes with backend.Open:
//
//	redis://[user:pass@]host:port[/db][?param=value...]
//	rediss://[user:pass@]host:port[/db][?...]            TLS
//	redis+cluster://[user:pass@]host1:port,host2:port[/][?...]   Redis Cluster
//	rediss+cluster://[user:pass@]host1:port,host2:port[/][?...]  Redis Cluster over TLS
//
// The cluster forms take one or more comma-separated seed nodes (more may be
// added with addr=host:port parameters); they use go-redis's ClusterClient.
// Query parameters: prefix (default "stickypub:"), dial_timeout,
// read_timeout, write_timeout (Go durations), pool_size, max_retries,
// pipelines (-1 for off), max_key_size, max_value_size (bytes), and for TLS ca (a PEM file),
// server_name and insecure_skip_verify. Unknown parameters are rejected with
// backend.ErrBadURI, so a typo cannot pass silently.
//
// # Storage
//
// Every key lives under the prefix: key k is the Redis hash prefix+k with
// fields v (the version, a decimal counter), d (the value) and w (the token
// of the write that produced the state). CompareAndPut and Delete are one
// single-key Lua script each run (EVALSHA, reloaded on NOSCRIPT), so they
// work on any cluster slot. The version is bumped inside the script; it is
// never taken from a clock. Delete keeps a tombstone (v and w, no d), so a
// key created again after a delete continues from the old version: versions
// are never reused as long as the hash itself is not removed from Redis (by
// hand, FLUSHDB, eviction under an allkeys-* maxmemory-policy, or loss of
// unpersisted data in a server restart or failover). Tombstones are never
// collected.
//
// The write token makes a retried write idempotent: when go-redis resends a
// script whose reply was lost, the script recognises its own write and
// reports the same success instead of a conflict.
//
// # Pipelining
//
// Concurrent calls share few connections (Options.Pipelines): a call made
// while the Store is idle is sent at once from the caller's goroutine; calls
// made while others are in flight are queued, and up to Pipelines writer
// loops each send everything queued as one pipeline (at most 512 calls or
// 1 MiB of values), then hand each caller its own reply. Each write is still
// its own atomic script run with its own result; a script the server lost
// (NOSCRIPT after a restart or SCRIPT FLUSH) is sent again as EVAL. On a
// cluster, go-redis's ClusterClient splits each pipeline by node and follows
// MOVED and ASK. A caller whose context ends while its call is still queued
// gets the context's error and the call is never sent; once the call is in a
// pipeline, a write's error also matches ErrOutcomeUnknown (it may have been
// applied).
//
// # Batches
//
// Store implements backend.Batcher: UpdateWith reads the updated key (or
// takes the entry this handle last wrote or was told about there, a hint
// the script checks), runs the caller's function locally, then sends one
// script run that checks every put's expected version and the key's
// version and writes all of them or none, each with the write token and a
// PUBLISH. A moved key (another writer, a stale hint) returns its current
// entry in the same reply and the function runs again. On a Redis Cluster
// one script can only touch one hash slot: a batch whose keys span slots
// fails with backend.ErrNoBatch before anything is sent, and core then
// writes the records one by one. A prefix with a hash tag ("{app}:") keeps
// every key in one slot, and so batches, at the price of putting the whole
// store on one node.
//
// # Logging
//
// go-redis logs failed dials and pool notices through one process-wide
// logger. Opening a Store routes those lines to the Store's Options.Logger
// (slog), rate-limited per kind of line (Options.LogInterval).
//
// # Watch
//
// The write scripts PUBLISH the new version (0 after a delete) on a channel
// named like the key's Redis key. Watch subscribes through one PubSub
// connection per Store, shared by all watchers; go-redis reconnects and
// resubscribes it after a connection loss, and each watcher then receives
// a 0 ("re-read") because messages published meanwhile are lost. On a
// Redis Cluster, PUBLISH is broadcast to every node.
//
// # Guarantees
//
// Capabilities declare Linearizable (every operation is one script or
// command on one master: a single key, or a batch within one hash slot)
// and Persistent, meaning data outlives the Store handle; whether it
// survives a Redis restart depends on the server's RDB/AOF configuration.
// Redis replication is asynchronous: a failover can lose acknowledged writes
// and with them the version history of a key.
package redis
