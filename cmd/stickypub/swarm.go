package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// swarmOptions are the flags shared by every swarm backend.
type swarmOptions struct {
	nodes int
	key   string
}

// swarmRunner runs a local network of one backend until the command's
// context ends, printing the store URI first.
type swarmRunner func(cmd *cobra.Command, a *app, o swarmOptions) error

// swarmBackends lists the backends "stickypub swarm" can run.
func swarmBackends() map[string]swarmRunner {
	return map[string]swarmRunner{
		"bittorrent": runBittorrentSwarm,
	}
}

func newSwarmCmd(a *app) *cobra.Command {
	var (
		o       swarmOptions
		backend string
	)
	names := make([]string, 0)
	for name := range swarmBackends() {
		names = append(names, name)
	}
	sort.Strings(names)
	cmd := &cobra.Command{
		Use:   "swarm --backend NAME",
		Short: "Run a local DHT network and print its store URI",
		Long: `Run a local network of DHT nodes on loopback (nothing contacts a public
address) and print, as the first line of standard output, the store URI that
other stickypub processes pass to --store. The network runs until the command
is interrupted; its data lives in the nodes' memory only.

Backends: ` + strings.Join(names, ", ") + `.

bittorrent: BEP44 mutable items on a mainline DHT of --nodes storing nodes.
Writing needs the namespace key (--key, created if missing); give the file
only to the processes that may write. A read-only URI uses
pubkey=HEX instead of key=PATH.`,
		Example: `  # Terminal 1
  stickypub swarm --backend bittorrent --nodes 20
  # prints e.g. bep44://?bootstrap=127.0.0.1:40001,...&key=/home/me/bep44-namespace.pem

  # Terminals 2 and 3
  stickypub --store 'bep44://?bootstrap=...&key=...' subscribe demo
  stickypub --store 'bep44://?bootstrap=...&key=...' publish demo hello`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			run, ok := swarmBackends()[backend]
			if !ok {
				return usagef("--backend %q: want one of %s", backend, strings.Join(names, ", "))
			}
			if o.nodes < 1 {
				return usagef("--nodes must be at least 1, got %d", o.nodes)
			}
			return run(cmd, a, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&backend, "backend", "", "network to run: "+strings.Join(names, ", "))
	f.IntVar(&o.nodes, "nodes", 20, "number of nodes")
	f.StringVar(&o.key, "key", "bep44-namespace.pem", "namespace key file (bittorrent; created if missing)")
	_ = cmd.MarkFlagRequired("backend")
	return cmd
}

// errSwarm wraps the failures of a swarm command.
func errSwarm(backend string, err error) error { return fmt.Errorf("swarm %s: %w", backend, err) }
