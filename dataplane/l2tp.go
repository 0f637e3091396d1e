package dataplane

import (
	"fmt"
	"time"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// neighbourWait is how long a session write waits for the underlay
// neighbour to be resolved.
const neighbourWait = 2 * time.Second

// learnNextHop has the kernel resolve the peer on the tunnel interface and
// records its MAC address for the program, which needs it for non-IP frames
// (IP frames go through the kernel's neighbour table). It returns a warning
// when the peer cannot be resolved.
func (l *L2TP) learnNextHop(lock *maps.Lock, s maps.Session, tun netdev.Iface) string {
	const consequence = "until it is, non-IP frames (ARP among them) are dropped and counted; IP frames still cross, resolved by the kernel"
	peer := s.Peer.Addr()
	known, err := netdev.ResolveNeighbour(tun.Name, tun.Index, s.Local.Addr(), peer, neighbourWait)
	if err != nil {
		return fmt.Sprintf("could not resolve %s on %s (%v): %s", peer, tun.Name, err, consequence)
	}
	mac, ok := netdev.NeighbourMAC(tun.Index, peer)
	if !known || !ok {
		return fmt.Sprintf("%s does not answer address resolution on %s yet: %s", peer, tun.Name, consequence)
	}
	if err := l.State.SetNeighbour(lock, s.ID, mac, tun.MAC); err != nil {
		return err.Error()
	}
	return ""
}

// sessionMTUWarning says so when the host sending into the session's
// Ethernet side (its veth peer, or the interface itself) may send frames
// larger than the session carries over its tunnel interface: those are
// dropped, counted as drop_too_big (as mtuWarning does for encap).
func sessionMTUWarning(s maps.Session, eth, tun netdev.Iface, here string) string {
	limit := tun.MTU - 14 - s.Overhead() // IP bytes of an Ethernet frame that fits
	sender, mtu := netdev.Describe(here, eth.Name), eth.MTU
	if eth.IsVeth() {
		desc, err := netdev.InPeer(eth, here, func(p netdev.Iface) error {
			mtu = p.MTU
			return nil
		})
		if err != nil {
			return ""
		}
		sender = desc
	}
	if mtu <= limit {
		return ""
	}
	return fmt.Sprintf("%s has MTU %d, but session %d carries at most %d bytes of IP in an Ethernet frame over %s (MTU %d, 14 bytes of Ethernet and %d of headers): larger frames are dropped and counted as too big; set that MTU to %d (docs/l2tp.md, MTU)",
		sender, mtu, s.ID, limit, tun.Name, tun.MTU, s.Overhead(), limit)
}
