package netdev

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TUN offload flags (linux/if_tun.h): checksums; TSO for IPv4 and IPv6, with ECN.
const (
	tunOffloadCsum = 0x01
	tunOffloadTSO  = 0x02 | 0x04 | 0x08
)

// TUNOffloads says which transmit offloads a TUN device takes.
type TUNOffloads struct {
	Checksum bool // the stack may hand it unchecksummed packets
	TSO      bool // and TCP super-frames (needs Checksum)
}

// OffloadsOf returns the transmit offloads of the interface called name,
// for a TUN device that sends everything on through it: a device taking
// offloads its path lacks would only move the work to that path.
func OffloadsOf(name string) (TUNOffloads, error) {
	csum, err := TxChecksum(name)
	if err != nil {
		return TUNOffloads{}, err
	}
	tso, err := TSO(name)
	if err != nil {
		return TUNOffloads{}, err
	}
	return TUNOffloads{Checksum: csum, TSO: csum && tso}, nil
}

// CreateTUN creates a persistent TUN device (no packet information header)
// with the given MTU and transmit offloads, and brings it up. A TUN device
// with no reader has no carrier, but its TC programs still run.
func CreateTUN(name string, mtu int, off TUNOffloads) (Iface, error) {
	defer Forget() // interfaces change: no answer kept stays true
	t := &netlink.Tuntap{
		LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu},
		Mode:      netlink.TUNTAP_MODE_TUN,
		Flags:     netlink.TUNTAP_NO_PI | netlink.TUNTAP_ONE_QUEUE,
		Queues:    1, // keep the file open until offloads are set
	}
	if err := netlink.LinkAdd(t); err != nil {
		return Iface{}, fmt.Errorf("create tun %s: %w", name, err)
	}
	// With offloads, the stack hands the device unchecksummed TSO
	// super-frames, and whatever its TC egress program sends them on
	// through checksums and segments them (or passes them on whole).
	flags := 0
	if off.Checksum {
		flags |= tunOffloadCsum
		if off.TSO {
			flags |= tunOffloadTSO
		}
	}
	for _, fd := range t.Fds {
		_ = unix.IoctlSetInt(int(fd.Fd()), unix.TUNSETOFFLOAD, flags)
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
	defer Forget() // interfaces change: no answer kept stays true
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
