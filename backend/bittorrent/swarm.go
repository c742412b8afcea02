package bittorrent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Swarm is a local network of storing nodes on loopback, for tests,
// benchmarks and `stickypub swarm`.
type Swarm struct {
	opts func(i int) NodeOptions
	next int

	mu    sync.Mutex
	nodes []*Node
}

// NewSwarm starts n storing nodes with opts (Listen and Bootstrap are set
// per node: each binds 127.0.0.1:0 unless opts.Listen says otherwise and
// joins through the nodes started before it), then bootstraps every node
// again so that the routing tables fill in both directions.
func NewSwarm(ctx context.Context, n int, opts NodeOptions) (*Swarm, error) {
	return NewSwarmFunc(ctx, n, func(int) NodeOptions { return opts })
}

// NewSwarmFunc is NewSwarm with the options of the i-th node started
// (counting replacements) given by opts; Bootstrap is set by the swarm.
func NewSwarmFunc(ctx context.Context, n int, opts func(i int) NodeOptions) (*Swarm, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: a swarm needs at least one node", errOptions)
	}
	sw := &Swarm{opts: opts}
	for range n {
		if _, err := sw.add(ctx); err != nil {
			sw.Close()
			return nil, err
		}
	}
	if err := sw.Bootstrap(ctx); err != nil {
		sw.Close()
		return nil, err
	}
	return sw, nil
}

// add starts one more node that joins through the current ones.
func (sw *Swarm) add(ctx context.Context) (*Node, error) {
	sw.mu.Lock()
	i := sw.next
	sw.next++
	sw.mu.Unlock()
	o := sw.opts(i)
	o.Bootstrap = sw.Addrs()
	if len(o.Bootstrap) > 8 {
		o.Bootstrap = o.Bootstrap[len(o.Bootstrap)-8:]
	}
	nd, err := NewNode(ctx, o)
	if err != nil {
		return nil, err
	}
	sw.mu.Lock()
	sw.nodes = append(sw.nodes, nd)
	sw.mu.Unlock()
	return nd, nil
}

// Bootstrap re-runs every node's bootstrap in parallel.
func (sw *Swarm) Bootstrap(ctx context.Context) error {
	nodes := sw.Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = nd.Bootstrap(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Replace stops node i and starts a fresh, empty node (new address, new
// ID) in its place that joins through the others. It returns the new node.
func (sw *Swarm) Replace(ctx context.Context, i int) (*Node, error) {
	sw.mu.Lock()
	old := sw.nodes[i]
	sw.nodes = append(sw.nodes[:i:i], sw.nodes[i+1:]...)
	sw.mu.Unlock()
	old.Close()
	nd, err := sw.add(ctx)
	if err != nil {
		return nil, err
	}
	// Move the new node to index i so callers can keep indexing.
	sw.mu.Lock()
	last := len(sw.nodes) - 1
	copy(sw.nodes[i+1:], sw.nodes[i:last])
	sw.nodes[i] = nd
	sw.mu.Unlock()
	return nd, nil
}

// Nodes returns the running nodes.
func (sw *Swarm) Nodes() []*Node {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return append([]*Node(nil), sw.nodes...)
}

// Addrs returns the nodes' addresses as host:port strings.
func (sw *Swarm) Addrs() []string {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	out := make([]string, len(sw.nodes))
	for i, nd := range sw.nodes {
		out[i] = nd.Addr().String()
	}
	return out
}

// UDPAddrs returns the nodes' addresses.
func (sw *Swarm) UDPAddrs() []*net.UDPAddr {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	out := make([]*net.UDPAddr, len(sw.nodes))
	for i, nd := range sw.nodes {
		out[i] = nd.Addr()
	}
	return out
}

// Close stops every node.
func (sw *Swarm) Close() {
	sw.mu.Lock()
	nodes := sw.nodes
	sw.nodes = nil
	sw.mu.Unlock()
	for _, nd := range nodes {
		nd.Close()
	}
}
