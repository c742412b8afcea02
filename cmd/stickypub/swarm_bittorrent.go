package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/stickypub/stickypub/backend/bittorrent"
)

// bittorrentKeyFile is the namespace key file of a bittorrent swarm, in
// --data or else the working directory.
const bittorrentKeyFile = "bep44-namespace.pem"

func init() { swarmBackends["bittorrent"] = runBittorrentSwarm }

// runBittorrentSwarm runs f.nodes BEP44 storing nodes on f.host (ports
// f.port+i, or free ones) until ctx ends. It prints the store URI, which
// names the namespace key file (created if missing): whoever holds that
// file can write the namespace. The nodes keep items in memory only; --data
// only holds the key file and --network is not used (a BEP44 namespace is
// its key).
func runBittorrentSwarm(ctx context.Context, a *app, f swarmFlags) error {
	dir := f.data
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bittorrent: %w", err)
	}
	keyPath, err := filepath.Abs(filepath.Join(dir, bittorrentKeyFile))
	if err != nil {
		return fmt.Errorf("bittorrent: %w", err)
	}
	if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return fmt.Errorf("bittorrent: %w", err)
		}
		if err := bittorrent.WriteKeyFile(keyPath, priv); err != nil {
			return fmt.Errorf("bittorrent: %w", err)
		}
		fmt.Fprintf(a.stderr, "created namespace key %s (whoever holds it can write)\n", keyPath)
	}
	if _, _, err := bittorrent.LoadKeyFile(keyPath); err != nil {
		return fmt.Errorf("bittorrent: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	start := time.Now()
	sw, err := startBittorrentSwarm(sctx, f)
	if err != nil {
		return fmt.Errorf("bittorrent: %w", err)
	}
	defer sw.Close()
	fmt.Fprintln(a.stdout, bittorrent.URI(sw.Addrs(), keyPath))
	fmt.Fprintf(a.stderr, "%d BEP44 nodes up on %s in %v; interrupt to stop\n", f.nodes, f.host, time.Since(start).Round(time.Millisecond))
	<-ctx.Done()
	return nil
}

// startBittorrentSwarm starts the nodes, on consecutive ports from f.port
// when it is set.
func startBittorrentSwarm(ctx context.Context, f swarmFlags) (*bittorrent.Swarm, error) {
	if f.port == 0 {
		return bittorrent.NewSwarm(ctx, f.nodes, bittorrent.NodeOptions{Listen: net.JoinHostPort(f.host, "0")})
	}
	return bittorrent.NewSwarmFunc(ctx, f.nodes, func(i int) bittorrent.NodeOptions {
		return bittorrent.NodeOptions{Listen: net.JoinHostPort(f.host, strconv.Itoa(f.port+i))}
	})
}
