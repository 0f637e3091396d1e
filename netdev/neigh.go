package netdev

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NeighbourMAC returns the link-layer address the kernel has for ip on
// interface ifindex, if it has a usable one.
func NeighbourMAC(ifindex int, ip netip.Addr) (net.HardwareAddr, bool) {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := netlink.NeighList(ifindex, family)
	if err != nil {
		return nil, false
	}
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && n.State&nudValid != 0 && len(n.HardwareAddr) == 6 {
			return n.HardwareAddr, true
		}
	}
	return nil, false
}

// NextHop returns the address whose link-layer address frames to ip go to
// (ip itself when on-link, else the gateway of the route to it) and the
// interface they leave by, as the kernel routes them now.
func NextHop(ip netip.Addr) (netip.Addr, int, error) {
	routes, err := netlink.RouteGet(ip.AsSlice())
	if err != nil || len(routes) == 0 {
		return netip.Addr{}, 0, fmt.Errorf("no route to %s: %v", ip, err)
	}
	if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok && gw.IsValid() && !gw.IsUnspecified() {
		return gw.Unmap(), routes[0].LinkIndex, nil
	}
	return ip, routes[0].LinkIndex, nil
}

// NeighbourKnown reports whether the kernel has a usable neighbour entry
// (link-layer address) for ip on interface ifindex.
func NeighbourKnown(ifindex int, ip netip.Addr) bool {
	_, ok := NeighbourMAC(ifindex, ip)
	return ok
}

// ResolveNeighbour makes the kernel resolve ip on interface ifname (ARP or
// neighbour discovery) by sending one UDP datagram to its discard port
// (9) from local, and waits up to timeout for the entry. It reports whether
// the neighbour is known.
func ResolveNeighbour(ifname string, ifindex int, local, ip netip.Addr, timeout time.Duration) (bool, error) {
	if NeighbourKnown(ifindex, ip) {
		return true, nil
	}
	network := "udp4"
	if ip.Is6() {
		network = "udp6"
	}
	d := net.Dialer{
		LocalAddr: &net.UDPAddr{IP: local.AsSlice()},
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	conn, err := d.Dial(network, netip.AddrPortFrom(ip, 9).String())
	if err != nil {
		return false, fmt.Errorf("probe %s through %s: %w", ip, ifname, err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte{0})
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if NeighbourKnown(ifindex, ip) {
			return true, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false, nil
}

// nudValid is the kernel's NUD_VALID: states with a usable address.
const nudValid = netlink.NUD_PERMANENT | netlink.NUD_NOARP | netlink.NUD_REACHABLE | netlink.NUD_PROBE | netlink.NUD_STALE | netlink.NUD_DELAY
