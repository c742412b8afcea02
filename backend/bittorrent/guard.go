package bittorrent

import (
	"fmt"
	"net"
	"sync"
)

// GuardedConn wraps a PacketConn and refuses to send to any address that
// is not loopback, recording each refused destination. Tests wrap every
// server's socket with it to prove that nothing ever contacts a public
// address.
type GuardedConn struct {
	net.PacketConn

	mu      sync.Mutex
	refused []net.Addr
}

// LoopbackOnly wraps pc in a GuardedConn.
func LoopbackOnly(pc net.PacketConn) *GuardedConn { return &GuardedConn{PacketConn: pc} }

// WriteTo implements net.PacketConn, refusing non-loopback destinations.
func (g *GuardedConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !isLoopback(addr) {
		g.mu.Lock()
		g.refused = append(g.refused, addr)
		g.mu.Unlock()
		return 0, fmt.Errorf("bittorrent: refusing to send to non-loopback address %v", addr)
	}
	return g.PacketConn.WriteTo(p, addr)
}

// Refused returns the destinations refused so far.
func (g *GuardedConn) Refused() []net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]net.Addr(nil), g.refused...)
}

// isLoopback reports whether addr is a loopback IP address.
func isLoopback(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.UDPAddr:
		return a.IP.IsLoopback()
	default:
		host, _, err := net.SplitHostPort(addr.String())
		if err != nil {
			return false
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
}
