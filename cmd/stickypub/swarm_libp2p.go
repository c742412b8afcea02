package main

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/stickypub/stickypub/backend/libp2p"
)

func init() { swarmBackends["libp2p"] = runLibp2pSwarm }

// runLibp2pSwarm runs a private libp2p Kademlia network of server nodes.
// On a loopback host the nodes and the printed URI dial loopback only.
func runLibp2pSwarm(ctx context.Context, a *app, f swarmFlags) error {
	opts := libp2p.SwarmOptions{
		Network:  f.network,
		Nodes:    f.nodes,
		Host:     f.host,
		BasePort: f.port,
		DataDir:  f.data,
		Logger:   a.logger,
	}
	ip, err := netip.ParseAddr(f.host)
	if err != nil {
		return usagef("--host %q is not an IP address", f.host)
	}
	if !ip.IsLoopback() {
		opts.AllowDial = []netip.Prefix{} // any address
	}
	sw, err := libp2p.NewSwarm(ctx, opts)
	if err != nil {
		return err
	}
	defer sw.Close()
	fmt.Fprintln(a.stdout, sw.URI())
	fmt.Fprintf(a.stderr, "stickypub: %d libp2p nodes of network %q are up; pass the URI above to --store. Ctrl-C stops them.\n", f.nodes, f.network)
	<-ctx.Done()
	return nil
}
