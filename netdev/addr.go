package netdev

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Addresses returns the addresses of the interface called name that its
// owner gave it: global and site scope, not the IPv6 link-local address the
// kernel makes. Sorted, as CIDRs with the host part (10.0.0.1/24).
func Addresses(name string) ([]netip.Prefix, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, ErrNoInterface)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", name, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.Unmap().IsLinkLocalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// AddAddress gives the interface called name the address p (an IPv6 one
// without duplicate address detection, so that it is usable at once); an
// address it has already is not an error.
func AddAddress(name string, p netip.Prefix) error {
	defer Forget() // interfaces change: no answer kept stays true
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, ErrNoInterface)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := netlink.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s: %w", p, name, err)
	}
	return nil
}

// KernelRoute is a route of the kernel's main table through an interface:
// PREFIX [via GATEWAY] [src ADDRESS].
type KernelRoute struct {
	Prefix netip.Prefix
	Via    netip.Addr
	Src    netip.Addr
}

// String gives the route in the form ParseKernelRoute takes.
func (r KernelRoute) String() string {
	s := r.Prefix.String()
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.Src.IsValid() {
		s += " src " + r.Src.String()
	}
	return s
}

// ParseKernelRoute parses "PREFIX [via GATEWAY] [src ADDRESS]".
func ParseKernelRoute(s string) (KernelRoute, error) {
	var r KernelRoute
	f := strings.Fields(s)
	if len(f) == 0 {
		return r, errors.New("is empty")
	}
	p, err := netip.ParsePrefix(f[0])
	if err != nil {
		return r, fmt.Errorf("%q is not a CIDR prefix", f[0])
	}
	r.Prefix = p.Masked()
	for i := 1; i < len(f); i += 2 {
		if i+1 >= len(f) {
			return r, fmt.Errorf("%q lacks its address", f[i])
		}
		a, err := netip.ParseAddr(f[i+1])
		if err != nil || a.Is4() != p.Addr().Is4() {
			return r, fmt.Errorf("%s %q is not an address of the prefix's family", f[i], f[i+1])
		}
		switch f[i] {
		case "via":
			r.Via = a
		case "src":
			r.Src = a
		default:
			return r, fmt.Errorf("unknown word %q (accepted: via, src)", f[i])
		}
	}
	return r, nil
}

// RoutesVia returns the routes of the kernel's main table through the
// interface called name that its owner added (not those the kernel makes
// for its addresses), sorted.
func RoutesVia(name string) ([]KernelRoute, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, ErrNoInterface)
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("routes through %s: %w", name, err)
	}
	var out []KernelRoute
	for _, rt := range routes {
		if rt.Protocol == unix.RTPROT_KERNEL || rt.Type != unix.RTN_UNICAST || rt.Dst == nil {
			continue
		}
		ip, _ := netip.AddrFromSlice(rt.Dst.IP)
		ones, _ := rt.Dst.Mask.Size()
		r := KernelRoute{Prefix: netip.PrefixFrom(ip.Unmap(), ones)}
		if a, ok := netip.AddrFromSlice(rt.Gw); ok {
			r.Via = a.Unmap()
		}
		if a, ok := netip.AddrFromSlice(rt.Src); ok {
			r.Src = a.Unmap()
		}
		if r.Prefix.Addr().Is6() && r.Prefix.Addr().IsMulticast() {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// AddRoute adds r through the interface called name; a route that exists
// already is not an error.
func AddRoute(name string, r KernelRoute) error {
	defer Forget() // interfaces change: no answer kept stays true
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, ErrNoInterface)
	}
	p := r.Prefix
	nr := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	} else {
		nr.Scope = netlink.SCOPE_LINK
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if err := netlink.RouteAdd(nr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add route %s dev %s: %w", r, name, err)
	}
	return nil
}
