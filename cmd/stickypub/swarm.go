package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// swarmFlags are the flags of "stickypub swarm" that every backend reads.
type swarmFlags struct {
	backend string
	network string
	nodes   int
	data    string
	host    string
	port    int
}

// swarmRunner runs a local network of nodes of one backend until ctx ends,
// printing the store URI that other processes use as the first line of
// stdout.
type swarmRunner func(ctx context.Context, a *app, f swarmFlags) error

// swarmBackends maps a --backend name to its runner. The swarm_<backend>.go
// files add themselves from init, so each backend's swarm stays in its own
// file (like the adapters' URI schemes in the backend registry).
var swarmBackends = map[string]swarmRunner{}

func newSwarmCmd(a *app) *cobra.Command {
	var f swarmFlags
	cmd := &cobra.Command{
		Use:   "swarm --backend NAME",
		Short: "Run a local network of DHT nodes and print its store URI",
		Long: `swarm runs a network of storing nodes of a peer-to-peer backend in this
process, on this machine only, until interrupted. It prints the store URI
that other stickypub processes pass to --store (first line of stdout).

With --data DIR each node keeps its identity and records in DIR, so a
restarted swarm (with --port) has the same peers, URI and data.`,
		Example: `  # Terminal 1: a 20-node libp2p Kademlia network
  stickypub swarm --backend libp2p --nodes 20 --port 4001

  # Terminals 2 and 3: use the printed URI
  stickypub --store 'libp2p://?network=…' subscribe demo
  stickypub --store 'libp2p://?network=…' publish demo hello`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			run, ok := swarmBackends[f.backend]
			if !ok {
				names := make([]string, 0, len(swarmBackends))
				for n := range swarmBackends {
					names = append(names, n)
				}
				slices.Sort(names)
				return usagef("--backend %q is not one of: %s", f.backend, strings.Join(names, ", "))
			}
			if f.nodes < 1 {
				return usagef("--nodes must be at least 1, got %d", f.nodes)
			}
			if f.port < 0 || f.port > 65535-f.nodes {
				return usagef("--port %d leaves no room for %d nodes", f.port, f.nodes)
			}
			if err := run(cmd.Context(), a, f); err != nil {
				return fmt.Errorf("swarm: %w", err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.backend, "backend", "", "peer-to-peer backend (required)")
	fl.StringVar(&f.network, "network", "stickypub-demo", "network name (nodes of other networks never talk to these)")
	fl.IntVar(&f.nodes, "nodes", 20, "number of nodes")
	fl.StringVar(&f.data, "data", "", "directory keeping each node's identity and records (default: memory only)")
	fl.StringVar(&f.host, "host", "127.0.0.1", "IP address to listen on")
	fl.IntVar(&f.port, "port", 0, "first TCP/UDP port (node i uses port+i); 0 picks free ports")
	return cmd
}
