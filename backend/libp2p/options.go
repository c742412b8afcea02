package libp2p

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// namespace is the DHT record namespace of the project: record keys are
// "/stickypub/<prefix>/<key>".
const namespace = "stickypub"

// Defaults applied to zero Options fields.
const (
	// DefaultNetwork names the private network when Options.Network is empty.
	DefaultNetwork = "stickypub"
	// DefaultReplicas is the replica set size. The DHT's own k is 20,
	// sized for the open internet; a private network with a write quorum
	// of a majority keeps every record through the loss of 4 of its 10
	// replicas at half the traffic (see docs/libp2p.md).
	DefaultReplicas = 10
	// DefaultMaxKeySize is the longest key, in bytes, not counting the prefix.
	DefaultMaxKeySize = 512
	// DefaultMaxValueSize is the largest value, in bytes. Every write sends
	// the value to the whole replica set, so the default is modest.
	DefaultMaxValueSize = 64 << 10
	// MaxValueSizeLimit is the most MaxValueSize may be: a DHT message
	// frame is 4 MiB.
	MaxValueSizeLimit = 1 << 20
	// DefaultRecordLifetime is how long storing nodes keep a record after
	// its last write (the DHT's MaxRecordAge).
	DefaultRecordLifetime = 48 * time.Hour
	// DefaultRPCTimeout bounds one request to one peer.
	DefaultRPCTimeout = 5 * time.Second
	// DefaultReadGrace is how long Get keeps waiting for slower replicas
	// once a read quorum has answered.
	DefaultReadGrace = 25 * time.Millisecond
	// DefaultHintWindow is how long change hints are gathered before one
	// pubsub message carries them all.
	DefaultHintWindow = 10 * time.Millisecond
	// DefaultWatchPoll is how often a watch re-reads its key in case a
	// hint was lost.
	DefaultWatchPoll = 3 * time.Second
	// DefaultMaxTracked bounds the records a handle re-puts.
	DefaultMaxTracked = 100_000
	// DefaultConnectTimeout bounds joining the network in Open.
	DefaultConnectTimeout = 30 * time.Second
)

// Lookup says how a handle finds a key's replica set.
type Lookup string

// Lookup modes.
const (
	// LookupNetwork runs a Kademlia lookup for every operation: correct on
	// a network of any size.
	LookupNetwork Lookup = "network"
	// LookupTable takes the closest peers from the handle's own routing
	// table, saving the lookup round trips. Correct only while the table
	// holds every server of the network (small private networks; see
	// docs/libp2p.md).
	LookupTable Lookup = "table"
)

// Options configures a handle (Open, New). Network-wide settings
// (Network, MaxValueSize, RecordLifetime) must match the storing nodes'.
type Options struct {
	// Network names the private network. It derives the DHT protocol
	// prefix (/stickypub/<network>) and the pubsub hint topic, so nodes of
	// different networks never talk. Empty means DefaultNetwork.
	Network string
	// Bootstrap lists peers to connect to (multiaddrs with /p2p/<id>).
	// The public bootstrap list of the library is never used.
	Bootstrap []string
	// Listen lists addresses to listen on; empty listens nowhere (a
	// client makes outbound connections only).
	Listen []string
	// KeyFile keeps the node's identity key; created when missing. Empty
	// means a fresh identity per handle.
	KeyFile string
	// Prefix is a key namespace inside the network (handles with other
	// prefixes never see each other's keys).
	Prefix string

	// Replicas is the replica set size; 0 means DefaultReplicas.
	Replicas int
	// WriteQuorum is how many distinct acceptances a write needs; 0 means
	// a majority of the replica set found.
	WriteQuorum int
	// ReadQuorum is how many replicas must answer a Get; 0 means a
	// majority of the replica set found.
	ReadQuorum int
	// Agree is how many replicas must return the very same record for Get
	// to believe it; 0 means 2 (1 when the replica set has fewer than 4
	// peers), so that one lying peer cannot invent a record.
	Agree int
	// Lookup selects how replica sets are found; empty means LookupNetwork.
	Lookup Lookup

	// MaxKeySize and MaxValueSize are the limits; 0 means the defaults.
	MaxKeySize, MaxValueSize int
	// RecordLifetime is the storing nodes' record age limit; 0 means
	// DefaultRecordLifetime.
	RecordLifetime time.Duration
	// RefreshInterval is how often the records the handle wrote or read
	// are re-put while it is open; 0 means a quarter of RecordLifetime,
	// negative disables refreshing.
	RefreshInterval time.Duration
	// KeepFor limits refreshing to records written or read within this
	// long; 0 refreshes every tracked record while the handle is open.
	KeepFor time.Duration
	// MaxTracked bounds the records remembered for refreshing; 0 means
	// DefaultMaxTracked.
	MaxTracked int

	// RPCTimeout bounds one request to one peer; 0 means DefaultRPCTimeout.
	RPCTimeout time.Duration
	// ReadGrace is how long Get waits for more replicas once a read
	// quorum answered; 0 means DefaultReadGrace.
	ReadGrace time.Duration
	// HintWindow gathers change hints into one pubsub message; 0 means
	// DefaultHintWindow, negative disables publishing hints.
	HintWindow time.Duration
	// WatchPoll is how often a watch re-reads its key; 0 means
	// DefaultWatchPoll, negative disables the re-read.
	WatchPoll time.Duration
	// ConnectTimeout bounds joining the network; 0 means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration

	// AllowDial restricts outgoing dials to addresses in these prefixes
	// (e.g. 127.0.0.0/8); empty allows any address. Refused dials are
	// counted in Stats.RefusedDials.
	AllowDial []netip.Prefix
	// Logger receives the adapter's log records; nil means slog.Default().
	Logger *slog.Logger
}

// withDefaults fills zero fields and validates the result.
func (o Options) withDefaults() (Options, error) {
	if o.Network == "" {
		o.Network = DefaultNetwork
	}
	if o.Replicas == 0 {
		o.Replicas = DefaultReplicas
	}
	if o.Lookup == "" {
		o.Lookup = LookupNetwork
	}
	if o.MaxKeySize == 0 {
		o.MaxKeySize = DefaultMaxKeySize
	}
	if o.MaxValueSize == 0 {
		o.MaxValueSize = DefaultMaxValueSize
	}
	if o.RecordLifetime == 0 {
		o.RecordLifetime = DefaultRecordLifetime
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = o.RecordLifetime / 4
	}
	if o.MaxTracked == 0 {
		o.MaxTracked = DefaultMaxTracked
	}
	if o.RPCTimeout == 0 {
		o.RPCTimeout = DefaultRPCTimeout
	}
	if o.ReadGrace == 0 {
		o.ReadGrace = DefaultReadGrace
	}
	if o.HintWindow == 0 {
		o.HintWindow = DefaultHintWindow
	}
	if o.WatchPoll == 0 {
		o.WatchPoll = DefaultWatchPoll
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.Replicas < 1:
		return o, fmt.Errorf("%w: Replicas %d < 1", errOptions, o.Replicas)
	case o.WriteQuorum < 0 || o.ReadQuorum < 0 || o.Agree < 0:
		return o, fmt.Errorf("%w: negative quorum", errOptions)
	case o.WriteQuorum > o.Replicas || o.ReadQuorum > o.Replicas || o.Agree > o.Replicas:
		return o, fmt.Errorf("%w: a quorum exceeds Replicas (%d)", errOptions, o.Replicas)
	case o.Lookup != LookupNetwork && o.Lookup != LookupTable:
		return o, fmt.Errorf("%w: Lookup %q is neither %q nor %q", errOptions, o.Lookup, LookupNetwork, LookupTable)
	case o.MaxKeySize < 0:
		return o, fmt.Errorf("%w: MaxKeySize %d", errOptions, o.MaxKeySize)
	case o.MaxValueSize < 0 || o.MaxValueSize > MaxValueSizeLimit:
		return o, fmt.Errorf("%w: MaxValueSize %d is outside 1..%d", errOptions, o.MaxValueSize, MaxValueSizeLimit)
	case o.KeepFor < 0:
		return o, fmt.Errorf("%w: KeepFor %v", errOptions, o.KeepFor)
	case o.RecordLifetime < 0:
		return o, fmt.Errorf("%w: RecordLifetime %v", errOptions, o.RecordLifetime)
	}
	return o, nil
}

// capabilities is what a handle with these (defaulted) options declares.
func (o Options) capabilities() backend.Capabilities {
	return backend.Capabilities{
		// Every storing node applies compare-and-put, and a write needs a
		// quorum, but replica sets can differ between writers (churn,
		// routing) and a write that fails partway stays on the nodes that
		// took it: lost updates are possible. See docs/libp2p.md.
		Consistency:  backend.PerNodeCAS,
		MaxKeySize:   o.MaxKeySize,
		MaxValueSize: o.MaxValueSize,
		// Records survive on nodes with a DataDir, not on in-memory ones;
		// what the network keeps depends on its nodes, not on this handle.
		Persistent:     false,
		RecordLifetime: o.RecordLifetime,
	}
}

// quorum returns the majority of n, or q when set (capped at n).
func quorum(q, n int) int {
	if q == 0 {
		return n/2 + 1
	}
	return min(q, n)
}

// agreement returns how many identical answers Get needs among n replicas.
func (o Options) agreement(n int) int {
	if o.Agree > 0 {
		return min(o.Agree, n)
	}
	if n < 4 {
		return 1
	}
	return 2
}
