package libp2p

import (
	"net/netip"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// dialGater refuses (and counts) dials to addresses outside the allowed
// prefixes, before any packet leaves. With no prefixes it allows all.
type dialGater struct {
	allow   []netip.Prefix
	refused atomic.Uint64
	// onRefuse, when set, sees every refused address (tests record them).
	onRefuse func(ma.Multiaddr)
}

func newDialGater(allow []netip.Prefix, onRefuse func(ma.Multiaddr)) *dialGater {
	return &dialGater{allow: allow, onRefuse: onRefuse}
}

// allowed reports whether addr may be dialled: its IP is inside an allowed
// prefix. Addresses without an IP (DNS names, relays) are refused when
// prefixes are set: resolving them could reach anywhere.
func (g *dialGater) allowed(addr ma.Multiaddr) bool {
	if len(g.allow) == 0 {
		return true
	}
	ip, err := manet.ToIP(addr)
	if err != nil {
		return false
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range g.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// InterceptPeerDial implements connmgr.ConnectionGater.
func (g *dialGater) InterceptPeerDial(peer.ID) bool { return true }

// InterceptAddrDial implements connmgr.ConnectionGater.
func (g *dialGater) InterceptAddrDial(_ peer.ID, addr ma.Multiaddr) bool {
	if g.allowed(addr) {
		return true
	}
	g.refused.Add(1)
	if g.onRefuse != nil {
		g.onRefuse(addr)
	}
	return false
}

// InterceptAccept implements connmgr.ConnectionGater.
func (g *dialGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured implements connmgr.ConnectionGater.
func (g *dialGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}

// InterceptUpgraded implements connmgr.ConnectionGater.
func (g *dialGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// refusedCount is the number of refused dials (0 on a nil gater).
func (g *dialGater) refusedCount() uint64 {
	if g == nil {
		return 0
	}
	return g.refused.Load()
}
