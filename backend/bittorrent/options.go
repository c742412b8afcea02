package bittorrent

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/time/rate"
)

// Defaults used when Options or NodeOptions leave a field at zero.
const (
	// DefaultListen is the address a server binds when none is given.
	DefaultListen = "127.0.0.1:0"
	// DefaultReplicas is how many of the closest storing nodes hold an item.
	DefaultReplicas = 8
	// DefaultQueryTimeout bounds one KRPC query (it is the library's resend
	// delay: the query is sent once and abandoned after this long).
	DefaultQueryTimeout = time.Second
	// DefaultRecordLifetime is how long storing nodes keep an item after its
	// last put: BEP44's "about two hours", set explicitly on every node.
	DefaultRecordLifetime = 2 * time.Hour
	// DefaultRepublishWindow is how long a handle keeps items it wrote or
	// read alive after their last use.
	DefaultRepublishWindow = 24 * time.Hour
	// DefaultViewTTL is how long a handle trusts the closest set of a
	// target it found by traversal.
	DefaultViewTTL = 30 * time.Second
	// DefaultSendRate is each server's own send limit, in packets per
	// second (the library's shared default is 25/s for every server of a
	// process).
	DefaultSendRate = rate.Limit(20000)
)

// Options configure a Store handle (a client of a BEP44 network).
type Options struct {
	// Bootstrap lists storing nodes (host:port) to start from. Required:
	// the public BitTorrent routers are never used.
	Bootstrap []string
	// Listen is the local UDP address of the handle's own DHT server.
	// Default DefaultListen.
	Listen string
	// PrivateKey is the namespace key. With it the handle can write.
	PrivateKey ed25519.PrivateKey
	// PublicKey is the namespace's public key. It may be given alone for a
	// read-only handle; with PrivateKey it must match.
	PublicKey ed25519.PublicKey
	// SaltPrefix (at most MaxSaltPrefix bytes) separates several
	// namespaces under one key.
	SaltPrefix []byte
	// Replicas is how many of the closest nodes an operation addresses.
	// Default DefaultReplicas.
	Replicas int
	// WriteQuorum is how many distinct nodes must accept a put. Default
	// Replicas/2+1.
	WriteQuorum int
	// ReadQuorum is how many distinct nodes must answer a get. Default
	// Replicas-WriteQuorum+1, so that a read quorum meets a write quorum.
	ReadQuorum int
	// QueryTimeout bounds one KRPC query. Default DefaultQueryTimeout.
	QueryTimeout time.Duration
	// RecordLifetime is the item lifetime of the network's storing nodes,
	// declared in Capabilities. Default DefaultRecordLifetime.
	RecordLifetime time.Duration
	// RepublishInterval is how often the handle re-puts the signed items it
	// wrote or read within the last RepublishWindow. Default
	// RecordLifetime/2.
	RepublishInterval time.Duration
	// ViewTTL is how long the closest nodes found for a target are asked
	// directly before the handle traverses the DHT again (it also
	// traverses whenever one of them does not answer). Default
	// DefaultViewTTL.
	ViewTTL time.Duration
	// RepublishWindow is how long after the handle last wrote or read an
	// item it keeps re-putting it. Default DefaultRepublishWindow.
	RepublishWindow time.Duration
	// MaxKeySize is the longest key accepted. Default DefaultMaxKeySize.
	MaxKeySize int
	// SendRate is the handle's own send limiter. Default DefaultSendRate.
	SendRate rate.Limit
	// WrapConn, when set, wraps the handle's UDP socket (tests use
	// LoopbackOnly).
	WrapConn func(net.PacketConn) net.PacketConn
	// Logger receives warnings about bad peers. Default slog.Default().
	Logger *slog.Logger
}

// errOptions matches every invalid option.
var errOptions = errors.New("bittorrent: invalid options")

// withDefaults validates o and fills in defaults.
func (o Options) withDefaults() (Options, error) {
	if len(o.Bootstrap) == 0 {
		return o, fmt.Errorf("%w: no bootstrap nodes (the public routers are never used)", errOptions)
	}
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.PrivateKey != nil {
		if len(o.PrivateKey) != ed25519.PrivateKeySize {
			return o, fmt.Errorf("%w: private key of %d bytes", errOptions, len(o.PrivateKey))
		}
		pub := o.PrivateKey.Public().(ed25519.PublicKey)
		if o.PublicKey != nil && !pub.Equal(o.PublicKey) {
			return o, fmt.Errorf("%w: public key does not match the private key", errOptions)
		}
		o.PublicKey = pub
	}
	if len(o.PublicKey) != ed25519.PublicKeySize {
		return o, fmt.Errorf("%w: no namespace key (a public key of %d bytes is required)", errOptions, ed25519.PublicKeySize)
	}
	if err := checkPrefix(o.SaltPrefix); err != nil {
		return o, fmt.Errorf("%w: %v", errOptions, err)
	}
	if o.Replicas <= 0 {
		o.Replicas = DefaultReplicas
	}
	if o.WriteQuorum <= 0 {
		o.WriteQuorum = o.Replicas/2 + 1
	}
	if o.ReadQuorum <= 0 {
		o.ReadQuorum = max(1, o.Replicas-o.WriteQuorum+1)
	}
	if o.WriteQuorum > o.Replicas || o.ReadQuorum > o.Replicas {
		return o, fmt.Errorf("%w: quorums (write %d, read %d) exceed replicas %d", errOptions, o.WriteQuorum, o.ReadQuorum, o.Replicas)
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = DefaultQueryTimeout
	}
	if o.RecordLifetime <= 0 {
		o.RecordLifetime = DefaultRecordLifetime
	}
	if o.RepublishInterval <= 0 {
		o.RepublishInterval = o.RecordLifetime / 2
	}
	if o.ViewTTL <= 0 {
		o.ViewTTL = DefaultViewTTL
	}
	if o.RepublishWindow <= 0 {
		o.RepublishWindow = DefaultRepublishWindow
	}
	if o.MaxKeySize <= 0 {
		o.MaxKeySize = DefaultMaxKeySize
	}
	if o.SendRate <= 0 {
		o.SendRate = DefaultSendRate
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// resolveAddrs resolves host:port strings to UDP addresses.
func resolveAddrs(hostports []string) ([]*net.UDPAddr, error) {
	out := make([]*net.UDPAddr, 0, len(hostports))
	for _, hp := range hostports {
		a, err := net.ResolveUDPAddr("udp", hp)
		if err != nil {
			return nil, fmt.Errorf("%w: bootstrap %q: %v", errOptions, hp, err)
		}
		out = append(out, a)
	}
	return out, nil
}
