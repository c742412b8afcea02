package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/stickypub/stickypub/backend/bittorrent"
)

// runBittorrentSwarm runs a BEP44 swarm of o.nodes storing nodes on
// loopback and prints its store URI.
func runBittorrentSwarm(cmd *cobra.Command, a *app, o swarmOptions) error {
	ctx := cmd.Context()
	keyPath, err := filepath.Abs(o.key)
	if err != nil {
		return errSwarm("bittorrent", err)
	}
	if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return errSwarm("bittorrent", err)
		}
		if err := bittorrent.WriteKeyFile(keyPath, priv); err != nil {
			return errSwarm("bittorrent", err)
		}
		fmt.Fprintf(a.stderr, "created namespace key %s (whoever holds it can write)\n", keyPath)
	}
	if _, _, err := bittorrent.LoadKeyFile(keyPath); err != nil {
		return errSwarm("bittorrent", err)
	}
	sctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	start := time.Now()
	sw, err := bittorrent.NewSwarm(sctx, o.nodes, bittorrent.NodeOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		return errSwarm("bittorrent", err)
	}
	defer sw.Close()
	fmt.Fprintln(a.stdout, bittorrent.URI(sw.Addrs(), keyPath))
	fmt.Fprintf(a.stderr, "%d BEP44 nodes up on loopback in %v; interrupt to stop\n", o.nodes, time.Since(start).Round(time.Millisecond))
	<-ctx.Done()
	return nil
}
