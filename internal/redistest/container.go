package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
)

// ContainerImage is the image startContainer runs.
const ContainerImage = "redis:7.0"

// startContainer runs Redis in a container through testcontainers-go. It
// returns nil and the reason when no Docker engine is reachable or the
// container does not start; the engine check takes at most half a second.
func startContainer(tb testing.TB) (*Server, string) {
	tb.Helper()
	if ok, why := dockerReachable(500 * time.Millisecond); !ok {
		return nil, "docker: " + why
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := tcredis.Run(ctx, ContainerImage)
	if c != nil {
		testcontainers.CleanupContainer(tb, c)
	}
	if err != nil {
		return nil, fmt.Sprintf("testcontainers: %v", err)
	}
	uri, err := c.ConnectionString(ctx)
	if err != nil {
		return nil, fmt.Sprintf("testcontainers: %v", err)
	}
	o, err := goredis.ParseURL(uri)
	if err != nil {
		return nil, fmt.Sprintf("testcontainers: %q: %v", uri, err)
	}
	return &Server{Addrs: []string{o.Addr}, Source: "container", Private: true}, ""
}
