package libp2p

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	lprecord "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// errOptions is the cause of every invalid-options error.
var errOptions = errors.New("libp2p: invalid options")

// nodeConfig is what newNode needs: the network-wide settings and this
// node's own.
type nodeConfig struct {
	network      string
	server       bool
	listen       []string
	priv         crypto.PrivKey // nil: a fresh Ed25519 key
	host         host.Host      // non-nil: use this host (not owned)
	store        ds.Batching    // nil: in memory
	validator    lprecord.Validator
	maxValue     int
	recordAge    time.Duration
	gater        *dialGater
	relayHints   bool // subscribe to the hint topic to relay hints (servers)
	logger       *slog.Logger
	extraOptions []dht.Option
}

// node is one libp2p host with the private DHT and the hint topic: a
// storing server of a swarm, or the client behind a Store.
type node struct {
	host      host.Host
	ownsHost  bool
	dht       *dht.IpfsDHT
	msgr      *pb.ProtocolMessenger
	ps        *pubsub.PubSub
	topic     *pubsub.Topic
	relay     *pubsub.Subscription
	store     ds.Batching
	gater     *dialGater
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// protocolPrefix derives the DHT protocol prefix from a network name.
func protocolPrefix(network string) protocol.ID {
	return protocol.ID("/stickypub/" + network)
}

// hintTopic is the pubsub topic of a network's change hints.
func hintTopic(network string) string { return "/stickypub/" + network + "/hints/1" }

// newHost builds a libp2p host for a private network: TCP only, no relay,
// no NAT port mapping, no metrics, the dial gater, unlimited resources
// (the adapter bounds its own concurrency).
func newHost(cfg nodeConfig) (host.Host, error) {
	priv := cfg.priv
	if priv == nil {
		var err error
		if priv, _, err = crypto.GenerateEd25519Key(nil); err != nil {
			return nil, fmt.Errorf("libp2p: identity: %w", err)
		}
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.Ping(false),
	}
	if cfg.gater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.gater))
	}
	if len(cfg.listen) > 0 {
		opts = append(opts, libp2p.ListenAddrStrings(cfg.listen...))
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("libp2p: host: %w", err)
	}
	return h, nil
}

// newNode starts a node. On error everything it started is closed.
func newNode(ctx context.Context, cfg nodeConfig) (_ *node, err error) {
	n := &node{gater: cfg.gater}
	defer func() {
		if err != nil {
			_ = n.close()
		}
	}()
	if cfg.host != nil {
		n.host = cfg.host
	} else {
		if n.host, err = newHost(cfg); err != nil {
			return n, err
		}
		n.ownsHost = true
	}
	n.store = cfg.store
	if n.store == nil {
		n.store = dssync.MutexWrap(ds.NewMapDatastore())
	}
	mode := dht.ModeClient
	if cfg.server {
		mode = dht.ModeServer
	}
	v := cfg.validator
	if v == nil {
		v = validator{maxValue: cfg.maxValue}
	}
	dopts := []dht.Option{
		dht.Mode(mode),
		dht.ProtocolPrefix(protocolPrefix(cfg.network)),
		dht.Validator(lprecord.NamespacedValidator{namespace: v}),
		dht.Datastore(newAbsentDatastore(n.store)),
		dht.MaxRecordAge(cfg.recordAge),
		dht.DisableProviders(),
		// Never the public bootstrap list: peers are connected explicitly.
		dht.BootstrapPeers(),
		dht.WithCustomMessageSender(newStreamSender),
	}
	dopts = append(dopts, cfg.extraOptions...)
	bg, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	if n.dht, err = dht.New(n.host, dopts...); err != nil {
		return n, fmt.Errorf("libp2p: dht: %w", err)
	}
	if n.msgr, err = pb.NewProtocolMessenger(n.dht.MessageSender()); err != nil {
		return n, fmt.Errorf("libp2p: messenger: %w", err)
	}
	// Hints are only hints: unsigned (verifying a signature on every
	// relay cost more than the rest of the hint path), identified by
	// their content, so identical hints are relayed once.
	if n.ps, err = pubsub.NewGossipSub(bg, n.host,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pubsubpb.Message) string {
			sum := sha256.Sum256(m.GetData())
			return string(sum[:])
		}),
	); err != nil {
		return n, fmt.Errorf("libp2p: pubsub: %w", err)
	}
	if n.topic, err = n.ps.Join(hintTopic(cfg.network)); err != nil {
		return n, fmt.Errorf("libp2p: hint topic: %w", err)
	}
	if cfg.relayHints {
		if n.relay, err = n.topic.Subscribe(); err != nil {
			return n, fmt.Errorf("libp2p: hint subscription: %w", err)
		}
		n.wg.Go(func() {
			for {
				if _, err := n.relay.Next(bg); err != nil {
					return
				}
			}
		})
	}
	return n, ctx.Err()
}

// id is the node's peer ID.
func (n *node) id() peer.ID { return n.host.ID() }

// addrs returns the node's dialable addresses with /p2p/<id>.
func (n *node) addrs() []ma.Multiaddr {
	out, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	return out
}

// connect dials every peer in infos (in parallel) and returns how many
// connected.
func (n *node) connect(ctx context.Context, infos []peer.AddrInfo) (int, error) {
	var (
		mu   sync.Mutex
		ok   int
		errs []error
		wg   sync.WaitGroup
	)
	for _, ai := range infos {
		if ai.ID == n.host.ID() {
			continue
		}
		wg.Go(func() {
			err := n.host.Connect(ctx, ai)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ai.ID, err))
				return
			}
			ok++
		})
	}
	wg.Wait()
	return ok, errors.Join(errs...)
}

// waitTable waits until the routing table holds at least want peers.
func (n *node) waitTable(ctx context.Context, want int) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for n.dht.RoutingTable().Size() < want {
		select {
		case <-ctx.Done():
			return fmt.Errorf("routing table holds %d of %d peers: %w", n.dht.RoutingTable().Size(), want, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// waitFull waits until the routing table holds want peers, or its size
// has not changed for settle (some peers may not be servers, or gone).
func (n *node) waitFull(ctx context.Context, want int, settle time.Duration) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	size, since := n.dht.RoutingTable().Size(), time.Now()
	for size < want && time.Since(since) < settle {
		select {
		case <-ctx.Done():
			return fmt.Errorf("routing table holds %d of %d servers: %w", size, want, ctx.Err())
		case <-t.C:
		}
		if now := n.dht.RoutingTable().Size(); now != size {
			size, since = now, time.Now()
		}
	}
	return nil
}

// close stops the node and, when it owns them, its host and datastore.
func (n *node) close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.relay != nil {
			n.relay.Cancel()
		}
		if n.topic != nil {
			_ = n.topic.Close()
		}
		if n.dht != nil {
			errs = append(errs, n.dht.Close())
		}
		if n.cancel != nil {
			n.cancel()
		}
		if n.ownsHost && n.host != nil {
			errs = append(errs, n.host.Close())
		}
		n.wg.Wait()
		if c, ok := n.store.(interface{ Close() error }); ok && n.store != nil {
			errs = append(errs, c.Close())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
