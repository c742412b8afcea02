// Package redistest finds or starts Redis servers for tests: the server named
// by REDIS_ADDR, a private redis-server started from PATH, a testcontainers
// container when a Docker engine answers, and a three-master Redis Cluster
// built from the local redis-server binary.
//
// Tests that cannot get a server are skipped, or fail when the environment
// variable STICKYPUB_REQUIRE_REDIS=1 is set (CI sets it, so a missing server
// cannot silently turn the suite green).
//
// Every test should work under its own key prefix (Prefix) and delete its
// keys afterwards (CleanupPrefix): REDIS_ADDR may name a shared server, which
// must never be flushed.
package redistest
