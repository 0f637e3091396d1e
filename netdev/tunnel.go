package netdev

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoKernelSupport means the kernel lacks the device type asked for.
var ErrNoKernelSupport = errors.New("the kernel has no such device type")

// CreateFlowTunnel creates a flow-based (external, collect_md) tunnel
// device of kind "vxlan" or "geneve": it sends each packet to the remote
// and VNI set as its tunnel key, and receives every VNI on port. It is
// brought up with the given MTU and, if mac is set, that MAC address. A
// kernel without the device type gives an error wrapping ErrNoKernelSupport.
func CreateFlowTunnel(kind, name string, port uint16, mtu int, mac net.HardwareAddr) (Iface, error) {
	defer Forget() // interfaces change: no answer kept stays true
	attrs := netlink.LinkAttrs{Name: name, MTU: mtu, HardwareAddr: mac}
	var l netlink.Link
	switch kind {
	case "vxlan":
		l = &netlink.Vxlan{LinkAttrs: attrs, FlowBased: true, Port: int(port), Learning: false}
	case "geneve":
		l = &netlink.Geneve{LinkAttrs: attrs, FlowBased: true, Dport: port}
	default:
		return Iface{}, fmt.Errorf("unknown tunnel kind %q", kind)
	}
	if err := netlink.LinkAdd(l); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) {
			return Iface{}, fmt.Errorf("create %s device %s: %w (%v)", kind, name, ErrNoKernelSupport, err)
		}
		return Iface{}, fmt.Errorf("create %s device %s: %w", kind, name, err)
	}
	created, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetUp(created)
	}
	if err != nil {
		_ = DeleteLink(name)
		return Iface{}, fmt.Errorf("set up %s: %w", name, err)
	}
	return Lookup(name)
}

// FlowBased reports whether the interface called name is a flow-based
// (external) vxlan or geneve device, and its kind.
func FlowBased(name string) (kind string, ok bool, err error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return "", false, fmt.Errorf("look up %s: %w", name, err)
	}
	switch t := l.(type) {
	case *netlink.Vxlan:
		return "vxlan", t.FlowBased, nil
	case *netlink.Geneve:
		return "geneve", t.FlowBased, nil
	}
	return l.Type(), false, nil
}

// HolderOf returns the interface that holds address a, or ErrNoInterface.
func HolderOf(a netip.Addr) (Iface, error) {
	family := netlink.FAMILY_V4
	if a.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(nil, family)
	if err != nil {
		return Iface{}, fmt.Errorf("list addresses: %w", err)
	}
	for _, ad := range addrs {
		if got, ok := netip.AddrFromSlice(ad.IP); ok && got.Unmap() == a {
			return ByIndex(ad.LinkIndex)
		}
	}
	return Iface{}, fmt.Errorf("address %s: %w", a, ErrNoInterface)
}

// TunnelPort returns the UDP port of the vxlan or geneve device called name.
func TunnelPort(name string) (uint16, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("look up %s: %w", name, err)
	}
	switch t := l.(type) {
	case *netlink.Vxlan:
		return uint16(t.Port), nil
	case *netlink.Geneve:
		return t.Dport, nil
	}
	return 0, fmt.Errorf("%s is a %s device, not a tunnel device", name, l.Type())
}
