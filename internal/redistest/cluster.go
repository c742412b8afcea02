package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// clusterSlots is the number of Redis Cluster hash slots.
const clusterSlots = 16384

// Cluster is a private Redis Cluster of three masters and no replicas, made
// of local redis-server processes.
type Cluster struct {
	// Nodes are the three masters; node i serves slots [i*16384/3, (i+1)*16384/3).
	Nodes []*Local
	// Addrs are the nodes' addresses.
	Addrs []string
}

// StartCluster starts three cluster-enabled redis-servers on free ports,
// splits the 16384 slots between them (CLUSTER ADDSLOTSRANGE), introduces
// them (CLUSTER MEET), and waits until every node reports cluster_state:ok.
// The nodes are stopped when tb ends. opts apply to every node (TLS is
// not supported here). Without redis-server on PATH it skips tb (fails it
// when STICKYPUB_REQUIRE_REDIS=1).
func StartCluster(tb testing.TB, opts LocalOptions) *Cluster {
	tb.Helper()
	if opts.TLS {
		tb.Fatal("redistest: StartCluster does not support TLS")
	}
	opts.cluster = true
	c := &Cluster{}
	for range 3 {
		n := StartLocal(tb, opts)
		c.Nodes = append(c.Nodes, n)
		c.Addrs = append(c.Addrs, n.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.form(ctx); err != nil {
		for _, n := range c.Nodes {
			tb.Logf("node %s log:\n%s", n.Addr, n.LogTail())
		}
		tb.Fatalf("redistest: forming cluster %v: %v", c.Addrs, err)
	}
	return c
}

// Server describes the cluster as a Server (Cluster, Private, Source "cluster").
func (c *Cluster) Server() *Server {
	return &Server{Addrs: append([]string(nil), c.Addrs...), Cluster: true,
		Password: c.Nodes[0].Opts.Password, Source: "cluster", Private: true}
}

// form assigns the slots, joins the nodes and waits for cluster_state:ok.
func (c *Cluster) form(ctx context.Context) error {
	clients := make([]*goredis.Client, len(c.Nodes))
	for i, n := range c.Nodes {
		clients[i] = goredis.NewClient(&goredis.Options{Addr: n.Addr, Password: n.Opts.Password})
		defer clients[i].Close()
	}
	for i, cl := range clients {
		lo := int64(i * clusterSlots / len(clients))
		hi := int64((i+1)*clusterSlots/len(clients) - 1)
		if err := cl.ClusterAddSlotsRange(ctx, int(lo), int(hi)).Err(); err != nil {
			return fmt.Errorf("ADDSLOTSRANGE %d-%d on %s: %w", lo, hi, c.Nodes[i].Addr, err)
		}
	}
	for _, n := range c.Nodes[1:] {
		if err := clients[0].ClusterMeet(ctx, "127.0.0.1", fmt.Sprint(n.Port)).Err(); err != nil {
			return fmt.Errorf("MEET %s: %w", n.Addr, err)
		}
	}
	for {
		ok := true
		var last string
		for i, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return fmt.Errorf("CLUSTER INFO on %s: %w", c.Nodes[i].Addr, err)
			}
			if !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(clients))) ||
				!strings.Contains(info, fmt.Sprintf("cluster_slots_ok:%d", clusterSlots)) {
				ok, last = false, info
				break
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ok before deadline; last CLUSTER INFO:\n%s", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
