package redistest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Environment variables read by this package.
const (
	// EnvAddr names an existing Redis server, as host:port or as a
	// redis:// URL (user, password and database are taken from it).
	EnvAddr = "REDIS_ADDR"
	// EnvRequire, when set to 1 (or true), turns "no Redis found" from a
	// skip into a test failure.
	EnvRequire = "STICKYPUB_REQUIRE_REDIS"
)

// DefaultAddr is where External looks when REDIS_ADDR is not set.
const DefaultAddr = "127.0.0.1:6379"

// Server describes a Redis deployment a test may use: one node, or the seed
// nodes of a Redis Cluster.
type Server struct {
	// Addrs holds host:port addresses: one for a single node, the masters'
	// addresses for a cluster.
	Addrs []string
	// Cluster reports whether Addrs are Redis Cluster nodes.
	Cluster bool
	// Username, Password and DB are the credentials and database to use.
	Username, Password string
	DB                 int
	// TLS is the client TLS configuration, nil for plain TCP.
	TLS *tls.Config
	// Source says where the server came from: "env", "default", "local",
	// "container" or "cluster".
	Source string
	// Private reports whether the server was started for this test alone and
	// may be restarted, killed or flushed. A shared server (REDIS_ADDR) must
	// never be flushed.
	Private bool
	// Local is the private redis-server process when Source is "local".
	Local *Local
}

// Addr returns the first address.
func (s *Server) Addr() string { return s.Addrs[0] }

// String describes the server for log messages.
func (s *Server) String() string {
	return fmt.Sprintf("%s redis at %s", s.Source, strings.Join(s.Addrs, ","))
}

// NewClient returns a go-redis client for the server: a *goredis.ClusterClient
// for a cluster, a *goredis.Client otherwise. The caller closes it.
func (s *Server) NewClient() goredis.UniversalClient {
	if s.Cluster {
		return goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs: s.Addrs, Username: s.Username, Password: s.Password, TLSConfig: s.TLS,
			DialTimeout: 2 * time.Second,
		})
	}
	return goredis.NewClient(&goredis.Options{
		Addr: s.Addrs[0], Username: s.Username, Password: s.Password, DB: s.DB, TLSConfig: s.TLS,
		DialTimeout: 2 * time.Second,
	})
}

// Client returns a client closed when the test ends.
func (s *Server) Client(tb testing.TB) goredis.UniversalClient {
	tb.Helper()
	c := s.NewClient()
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Require returns a Redis server for tb, trying in order: the server named
// by REDIS_ADDR; a private redis-server started from PATH (stopped when the
// test ends); a testcontainers-go container when a Docker engine answers. When
// none is available it skips the test, or fails it if STICKYPUB_REQUIRE_REDIS=1.
func Require(tb testing.TB) *Server {
	tb.Helper()
	if s := fromEnv(tb); s != nil {
		return s
	}
	if _, err := exec.LookPath(ServerBinary); err == nil {
		return StartLocal(tb, LocalOptions{}).Server()
	}
	s, why := startContainer(tb)
	if s == nil {
		unavailable(tb, "no Redis for this test: %s is not set, %s is not on PATH, and no testcontainers Docker engine (%s)",
			EnvAddr, ServerBinary, why)
	}
	return s
}

// External returns the machine's existing Redis server: the one named by
// REDIS_ADDR, or else DefaultAddr when something answers PING there. When
// neither is reachable it skips the test, or fails it when
// STICKYPUB_REQUIRE_REDIS=1 (and always when REDIS_ADDR is set but does not
// answer). The server is shared: use a key prefix and never
// flush it.
func External(tb testing.TB) *Server {
	tb.Helper()
	return externalAt(tb, DefaultAddr)
}

// externalAt is External with the default address as a parameter.
func externalAt(tb testing.TB, defaultAddr string) *Server {
	tb.Helper()
	if s := fromEnv(tb); s != nil {
		return s
	}
	s := &Server{Addrs: []string{defaultAddr}, Source: "default"}
	if err := ping(s, time.Second); err != nil {
		unavailable(tb, "no Redis at %s (%v) and %s is not set", defaultAddr, err, EnvAddr)
	}
	return s
}

// fromEnv parses REDIS_ADDR, or returns nil when it is unset. A set but
// unreachable REDIS_ADDR fails the test: it is a misconfiguration.
func fromEnv(tb testing.TB) *Server {
	tb.Helper()
	v := strings.TrimSpace(os.Getenv(EnvAddr))
	if v == "" {
		return nil
	}
	s := &Server{Addrs: []string{v}, Source: "env"}
	if strings.Contains(v, "://") {
		o, err := goredis.ParseURL(v)
		if err != nil {
			tb.Fatalf("%s=%q: %v", EnvAddr, v, err)
		}
		s.Addrs = []string{o.Addr}
		s.Username, s.Password, s.DB, s.TLS = o.Username, o.Password, o.DB, o.TLSConfig
	}
	if err := ping(s, 3*time.Second); err != nil {
		tb.Fatalf("%s=%q does not answer: %v", EnvAddr, v, err)
	}
	return s
}

// ping checks that the server answers within timeout.
func ping(s *Server, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := s.NewClient()
	defer c.Close()
	return c.Ping(ctx).Err()
}

// RequireEnabled reports whether STICKYPUB_REQUIRE_REDIS asks for failures
// instead of skips.
func RequireEnabled() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(EnvRequire))) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// unavailable skips tb, or fails it when RequireEnabled.
func unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if RequireEnabled() {
		tb.Fatalf("%s (%s is set)", msg, EnvRequire)
	}
	tb.Skip(msg)
}

// dockerReachable reports quickly whether a Docker engine socket accepts
// connections, so that testcontainers is only tried when it can work (it
// otherwise spends a long time retrying).
func dockerReachable(timeout time.Duration) (bool, string) {
	network, addr := "unix", "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		switch {
		case strings.HasPrefix(h, "unix://"):
			addr = strings.TrimPrefix(h, "unix://")
		case strings.HasPrefix(h, "tcp://"):
			network, addr = "tcp", strings.TrimPrefix(h, "tcp://")
		default:
			return false, "unsupported DOCKER_HOST " + h
		}
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return false, err.Error()
	}
	_ = c.Close()
	return true, ""
}
