// Package bolt is the embedded, single-host adapter of the backend contract:
// a compare-and-put key/value store kept in one bbolt file
// (go.etcd.io/bbolt).
//
// # Opening
//
// Open a store directly with Open, or through the backend registry, which
// this package joins under the scheme "bolt" when it is imported (even as _):
//
//	bolt:///var/lib/app/topics.db          absolute path
//	bolt:/var/lib/app/topics.db            absolute path (same as above)
//	bolt:topics.db                         relative path (opaque form)
//	bolt://topics.db                       relative path: host + path,
//	bolt://data/topics.db                  so this one is data/topics.db
//
// Relative paths are resolved against the process's working directory. Note
// that bolt://host/file is *not* read as a network location: the host part
// is the first path element of a relative path. Path elements may be
// percent-encoded. Query parameters:
//
//	timeout=2s      how long Open waits for the file lock (default 1s)
//	maxvalue=65536  largest value in bytes (default 16 MiB)
//	nosync=true     skip fsync on commit: UNSAFE, a crash may lose or
//	                corrupt recent commits; for tests and benchmarks only
//	readonly=true   open the file read-only (WithReadOnly): reads only,
//	                beside other read-only openers but not a writer
//	share=1         open a *Shared (see OpenShared): the first process
//	                owns the file, the others reach it through a private
//	                Unix socket; not with readonly
//
// Unknown or repeated parameters, user info, fragments and empty paths are
// rejected with an error matching backend.ErrBadURI. When the context given
// to backend.Open has a deadline sooner than the lock timeout, the deadline
// wins.
//
// # Layout and versions
//
// The file holds two buckets. "data" maps each key to a record: the 8-byte
// big-endian version followed by the value bytes. "meta" holds a format
// marker, and its bucket sequence is the version counter: every write takes
// the next value of that counter in the same transaction that stores the
// record, so versions are persisted with the data, strictly increase per key
// (in fact across the whole file), and are never handed out twice: not after
// a close and reopen, not after a delete. A record that does not decode
// yields an error matching backend.ErrCorrupt.
//
// bbolt holds an exclusive lock on the file, so only one Store (in any
// process) can have it open; a second Open waits for the lock timeout and
// then fails with an error matching backend.ErrUnavailable. Shared lifts
// that limit for processes of one user: see its documentation and
// docs/sharing.md for how it works and what it checks.
//
// # Group commit
//
// Get is a plain read transaction. CompareAndPut, Delete and Update are
// queued for a single committer goroutine. Whenever the previous commit has
// finished, the committer takes every queued operation and applies them, in
// queue order, inside one read-write transaction, which it commits (with
// fsync) once; then it answers every caller. Operations in a batch see the
// effects of the operations before them; an operation that fails (version
// conflict, update function error, oversize result) fails alone and writes
// nothing. If the commit itself fails, every operation of the batch gets
// that error and nothing changed. There is no timer: under load a batch is
// simply everything that arrived during the previous commit, so the
// throughput grows with the number of concurrent writers while a lone
// writer pays one commit per operation. (Before taking a batch the committer
// yields the processor a few times while the queue is still growing, so that
// the callers it has just answered can queue their next operation; it never
// sleeps.) Store.Stats reports commits and operations, whose ratio is the
// mean batch size.
//
// A context cancelled while its operation is still queued withdraws the
// operation and the call returns the context's error. Once the committer has
// taken the operation, the call waits for the real result, so an error
// return always means that nothing changed.
package bolt
