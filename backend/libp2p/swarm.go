package libp2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// LoopbackOnly is the dial filter of local swarms: IPv4 and IPv6 loopback.
var LoopbackOnly = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// SwarmOptions configures a Swarm.
type SwarmOptions struct {
	// Network names the private network; empty means DefaultNetwork.
	Network string
	// Nodes is the number of server nodes to start.
	Nodes int
	// Host is the IP address to listen on; empty means 127.0.0.1.
	Host string
	// BasePort, when positive, makes node i listen on TCP port BasePort+i
	// (a stable URI across restarts); 0 picks free ports.
	BasePort int
	// DataDir keeps each node's identity key and records in
	// DataDir/node-NN, so a restarted swarm has the same peers and data.
	// Empty keeps everything in memory.
	DataDir string
	// MaxValueSize and RecordLifetime are the network's limits (0: the
	// defaults, as in Options).
	MaxValueSize   int
	RecordLifetime time.Duration
	// AllowDial restricts dials; nil means LoopbackOnly. Use an empty,
	// non-nil slice to allow every address.
	AllowDial []netip.Prefix
	// Logger receives log records; nil means slog.Default().
	Logger *slog.Logger
}

// Swarm runs server nodes of one private network in this process: the
// storing side of the DHT, used by tests, benchmarks and `stickypub swarm`.
type Swarm struct {
	opts    SwarmOptions
	mu      sync.Mutex
	nodes   []*node // nil where a node was killed
	created int     // nodes ever created (names data directories)
	refused uint64  // refused dials of closed nodes
}

// NewSwarm starts opts.Nodes server nodes and connects them to each other.
func NewSwarm(ctx context.Context, opts SwarmOptions) (*Swarm, error) {
	if opts.Network == "" {
		opts.Network = DefaultNetwork
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.MaxValueSize == 0 {
		opts.MaxValueSize = DefaultMaxValueSize
	}
	if opts.RecordLifetime == 0 {
		opts.RecordLifetime = DefaultRecordLifetime
	}
	if opts.AllowDial == nil {
		opts.AllowDial = LoopbackOnly
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Nodes < 1 {
		return nil, fmt.Errorf("%w: a swarm needs at least one node", errOptions)
	}
	s := &Swarm{opts: opts}
	for range opts.Nodes {
		if _, err := s.Add(ctx); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// nodeSetup lets tests start misbehaving nodes.
type nodeSetup func(*nodeConfig)

// Add starts one more server node, connects it to every live node and
// returns its index.
func (s *Swarm) Add(ctx context.Context) (int, error) { return s.add(ctx, nil) }

func (s *Swarm) add(ctx context.Context, setup nodeSetup) (int, error) {
	s.mu.Lock()
	idx := s.created
	s.created++
	live := s.liveLocked()
	s.mu.Unlock()

	port := 0
	if s.opts.BasePort > 0 {
		port = s.opts.BasePort + idx
	}
	ip, err := netip.ParseAddr(s.opts.Host)
	if err != nil {
		return 0, fmt.Errorf("%w: host %q: %v", errOptions, s.opts.Host, err)
	}
	proto := "ip4"
	if ip.Is6() {
		proto = "ip6"
	}
	cfg := nodeConfig{
		network:    s.opts.Network,
		server:     true,
		listen:     []string{fmt.Sprintf("/%s/%s/tcp/%d", proto, ip, port)},
		maxValue:   s.opts.MaxValueSize,
		recordAge:  s.opts.RecordLifetime,
		gater:      newDialGater(s.opts.AllowDial, nil),
		relayHints: true,
		logger:     s.opts.Logger,
	}
	if s.opts.DataDir != "" {
		dir := filepath.Join(s.opts.DataDir, fmt.Sprintf("node-%02d", idx))
		if cfg.priv, err = LoadOrCreateKey(filepath.Join(dir, "key")); err != nil {
			return 0, err
		}
		if cfg.store, err = openBoltDatastore(dir); err != nil {
			return 0, err
		}
	}
	if setup != nil {
		setup(&cfg)
	}
	n, err := newNode(ctx, cfg)
	if err != nil {
		if cfg.store != nil && n == nil {
			_ = cfg.store.Close()
		}
		return 0, err
	}
	var infos []peer.AddrInfo
	for _, o := range live {
		infos = append(infos, peer.AddrInfo{ID: o.id(), Addrs: o.host.Addrs()})
	}
	if len(infos) > 0 {
		if ok, err := n.connect(ctx, infos); ok == 0 {
			_ = n.close()
			return 0, fmt.Errorf("libp2p: new swarm node reached no peer: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.waitTable(wctx, 1)
		cancel()
		if err != nil {
			_ = n.close()
			return 0, fmt.Errorf("libp2p: new swarm node: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.nodes) <= idx {
		s.nodes = append(s.nodes, nil)
	}
	s.nodes[idx] = n
	return idx, nil
}

func (s *Swarm) liveLocked() []*node {
	var out []*node
	for _, n := range s.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Live returns the indexes of the running nodes.
func (s *Swarm) Live() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for i, n := range s.nodes {
		if n != nil {
			out = append(out, i)
		}
	}
	return out
}

// Kill stops node i (its in-memory records are lost).
func (s *Swarm) Kill(i int) error {
	s.mu.Lock()
	if i < 0 || i >= len(s.nodes) || s.nodes[i] == nil {
		s.mu.Unlock()
		return fmt.Errorf("libp2p: swarm has no live node %d", i)
	}
	n := s.nodes[i]
	s.nodes[i] = nil
	s.refused += n.gater.refusedCount()
	s.mu.Unlock()
	return n.close()
}

// PeerID returns the peer ID of node i, live or not.
func (s *Swarm) PeerID(i int) peer.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= len(s.nodes) || s.nodes[i] == nil {
		return ""
	}
	return s.nodes[i].id()
}

// Bootstrap returns the multiaddrs (with /p2p/) of up to max live nodes
// (all of them when max <= 0).
func (s *Swarm) Bootstrap(max int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, n := range s.liveLocked() {
		if max > 0 && len(out) >= max {
			break
		}
		for _, a := range n.addrs() {
			out = append(out, a.String())
			break
		}
	}
	return out
}

// Options returns client Options that join this swarm: its network,
// limits, dial filter and up to four bootstrap peers. Replica sets come
// from the client's routing table (LookupTable): a local swarm is small
// enough that every client's table holds every server, which saves a
// lookup per operation.
func (s *Swarm) Options() Options {
	o := Options{
		Network:        s.opts.Network,
		Lookup:         LookupTable,
		Bootstrap:      s.Bootstrap(4),
		MaxValueSize:   s.opts.MaxValueSize,
		RecordLifetime: s.opts.RecordLifetime,
		AllowDial:      s.opts.AllowDial,
	}
	if o.MaxValueSize == DefaultMaxValueSize {
		o.MaxValueSize = 0
	}
	if o.RecordLifetime == DefaultRecordLifetime {
		o.RecordLifetime = 0
	}
	return o
}

// URI returns the store URI that joins this swarm (Options().URI()).
func (s *Swarm) URI() string { return s.Options().URI() }

// RefusedDials is the number of dials the nodes' address filters refused.
func (s *Swarm) RefusedDials() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := s.refused
	for _, n := range s.liveLocked() {
		total += n.gater.refusedCount()
	}
	return total
}

// Close stops every node.
func (s *Swarm) Close() error {
	s.mu.Lock()
	nodes := s.liveLocked()
	for _, n := range nodes {
		s.refused += n.gater.refusedCount()
	}
	s.nodes = nil
	s.mu.Unlock()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, n := range nodes {
		wg.Go(func() {
			if err := n.close(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
