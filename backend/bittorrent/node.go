package bittorrent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/bep44"
	"github.com/anacrolix/dht/v2/krpc"
	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent/bencode"
	"golang.org/x/time/rate"
)

// NodeOptions configure a storing Node.
type NodeOptions struct {
	// Listen is the node's UDP address. Default DefaultListen.
	Listen string
	// Bootstrap lists nodes (host:port) to join through. Empty for the
	// first node of a network. The public routers are never used.
	Bootstrap []string
	// RecordLifetime is how long the node keeps an item after its last
	// put. Default DefaultRecordLifetime.
	RecordLifetime time.Duration
	// QueryTimeout bounds one query the node sends. Default
	// DefaultQueryTimeout.
	QueryTimeout time.Duration
	// SendRate is the node's own send limiter. Default DefaultSendRate.
	SendRate rate.Limit
	// NodeID fixes the node's ID (tests place nodes near a target).
	NodeID *krpc.ID
	// WrapConn, when set, wraps the node's socket.
	WrapConn func(net.PacketConn) net.PacketConn
	// OnQuery, when set, sees every query first and may answer it itself
	// (tests build misbehaving peers with it).
	OnQuery func(conn net.PacketConn, m *krpc.Msg, source net.Addr) (propagate bool)
}

// Node is a storing node of a BEP44 network that applies the spec's put
// rules (see specStore). A private network for this adapter is made of
// such nodes; handles (Store) only read and write through them.
type Node struct {
	srv   *dht.Server
	conn  net.PacketConn
	store *specStore
}

// NewNode starts a storing node. It joins the network through
// opts.Bootstrap (if any) before returning.
func NewNode(ctx context.Context, opts NodeOptions) (*Node, error) {
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.RecordLifetime <= 0 {
		opts.RecordLifetime = DefaultRecordLifetime
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = DefaultQueryTimeout
	}
	if opts.SendRate <= 0 {
		opts.SendRate = DefaultSendRate
	}
	boot, err := resolveAddrs(opts.Bootstrap)
	if err != nil {
		return nil, err
	}
	conn, err := listen(opts.Listen, opts.WrapConn)
	if err != nil {
		return nil, err
	}
	n := &Node{conn: conn, store: newSpecStore(opts.RecordLifetime)}
	cfg := baseConfig(conn, boot, opts.SendRate, opts.QueryTimeout)
	cfg.Store = n.store
	cfg.Exp = opts.RecordLifetime
	if opts.NodeID != nil {
		cfg.NodeId = *opts.NodeID
	}
	cfg.OnQuery = func(m *krpc.Msg, source net.Addr) bool {
		if opts.OnQuery != nil && !opts.OnQuery(conn, m, source) {
			return false
		}
		return n.precheckPut(m, source)
	}
	srv, err := dht.NewServer(cfg)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("bittorrent: starting node: %w", err)
	}
	n.srv = srv
	if len(boot) > 0 {
		if err := n.Bootstrap(ctx); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// precheckPut answers a put whose cas does not match the stored seq with
// 301 before the library's wrapper can answer 302 for it, so the node
// reports errors in the spec's order (cas first). specStore.Put re-checks
// under its lock, so this early answer only ever refuses what Put would.
func (n *Node) precheckPut(m *krpc.Msg, source net.Addr) bool {
	if m.Q != "put" || m.A == nil || m.A.Cas == 0 || m.A.Seq == nil || m.A.K == bep44.Empty32ByteArray {
		return true
	}
	n.store.mu.Lock()
	mismatch := n.store.casMismatch(putTarget(m.A), m.A.Cas)
	n.store.mu.Unlock()
	if !mismatch {
		return true
	}
	// Only now pay for the signature check: a bad item gets the library's
	// own answer (206), as the spec orders it before the cas.
	item := &bep44.Item{V: m.A.V, K: m.A.K, Salt: m.A.Salt, Sig: m.A.Sig, Cas: m.A.Cas, Seq: *m.A.Seq}
	if bep44.Check(item) != nil {
		return true
	}
	sendKRPCError(n.conn, source, m.T, bep44.ErrCasHashMismatched)
	return false
}

// sendKRPCError answers query t from source with a KRPC error.
func sendKRPCError(conn net.PacketConn, to net.Addr, t string, e krpc.Error) {
	b, err := bencode.Marshal(krpc.Msg{T: t, Y: "e", E: &e})
	if err == nil {
		_, _ = conn.WriteTo(b, to)
	}
}

// Bootstrap (re)fills the node's routing table from the network.
func (n *Node) Bootstrap(ctx context.Context) error {
	if _, err := n.srv.BootstrapContext(ctx); err != nil {
		return fmt.Errorf("bittorrent: bootstrapping node %v: %w", n.Addr(), err)
	}
	return nil
}

// Addr is the node's UDP address.
func (n *Node) Addr() *net.UDPAddr { return n.srv.Addr().(*net.UDPAddr) }

// ID is the node's DHT ID.
func (n *Node) ID() krpc.ID { return n.srv.ID() }

// Items returns how many live items the node stores.
func (n *Node) Items() int { return n.store.Len() }

// NumNodes is the size of the node's routing table.
func (n *Node) NumNodes() int { return n.srv.NumNodes() }

// Server exposes the node's DHT server.
func (n *Node) Server() *dht.Server { return n.srv }

// Close stops the node.
func (n *Node) Close() { n.srv.Close() }

// listen opens a UDP socket on addr and wraps it.
func listen(addr string, wrap func(net.PacketConn) net.PacketConn) (net.PacketConn, error) {
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("bittorrent: listening on %s: %w", addr, err)
	}
	if wrap != nil {
		conn = wrap(conn)
	}
	return conn, nil
}

// baseConfig is the server configuration every server of this package
// starts from. It is built by hand, never from NewDefaultServerConfig
// (whose StartingNodes are the public routers and whose send limiter is
// shared by the whole process).
func baseConfig(conn net.PacketConn, boot []*net.UDPAddr, sendRate rate.Limit, queryTimeout time.Duration) *dht.ServerConfig {
	starting := make([]dht.Addr, len(boot))
	for i, a := range boot {
		starting[i] = dht.NewAddr(a)
	}
	return &dht.ServerConfig{
		Conn:             conn,
		NoSecurity:       true,
		StartingNodes:    func() ([]dht.Addr, error) { return starting, nil },
		DefaultWant:      []krpc.Want{krpc.WantNodes},
		SendLimiter:      rate.NewLimiter(sendRate, max(1, int(sendRate))),
		QueryResendDelay: func() time.Duration { return queryTimeout },
		Logger:           alog.Default.FilterLevel(alog.Error),
	}
}

// discardLogger is a slog.Logger that drops everything.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
