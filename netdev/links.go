package netdev

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TUN offload flags (linux/if_tun.h): checksums, TSO for IPv4 and IPv6, with ECN.
const tunOffloads = 0x01 | 0x02 | 0x04 | 0x08

// CreateTUN creates a persistent TUN device (no packet information header)
// with the given MTU and brings it up. A TUN device with no reader has no
// carrier, but its TC programs still run.
func CreateTUN(name string, mtu int) (Iface, error) {
	t := &netlink.Tuntap{
		LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu},
		Mode:      netlink.TUNTAP_MODE_TUN,
		Flags:     netlink.TUNTAP_NO_PI | netlink.TUNTAP_ONE_QUEUE,
		Queues:    1, // keep the file open until offloads are set
	}
	if err := netlink.LinkAdd(t); err != nil {
		return Iface{}, fmt.Errorf("create tun %s: %w", name, err)
	}
	// Let the stack hand the device unchecksummed TSO super-frames: its TC
	// egress program sends them on through the carrier, which segments
	// them (or passes them on whole), instead of segmenting here.
	for _, fd := range t.Fds {
		_ = unix.IoctlSetInt(int(fd.Fd()), unix.TUNSETOFFLOAD, tunOffloads)
		fd.Close()
	}
	l, err := netlink.LinkByName(name)
	if err == nil {
		if err = netlink.LinkSetMTU(l, mtu); err == nil {
			err = netlink.LinkSetUp(l)
		}
	}
	if err != nil {
		_ = DeleteLink(name)
		return Iface{}, fmt.Errorf("set up tun %s: %w", name, err)
	}
	return Lookup(name)
}

// DeleteLink deletes the interface called name.
func DeleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
