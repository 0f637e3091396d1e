package dataplane

import (
	"errors"
	"fmt"
	"net"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// CarrierOptions are the parameters of SetCarrier.
type CarrierOptions struct {
	OnMiss  string // drop (default) or pass
	PeerMAC string // Ethernet carrier: the far end's MAC (default: a veth's peer)
	Netns   string
}

// SetCarrier makes iface the carrier: the ingress program goes on it (and
// off the previous carrier), and members' packets leave through it from then
// on. An Ethernet carrier needs the far end's MAC: --peer-mac, or a veth's
// own peer.
func (m *Mux) SetCarrier(lock *maps.Lock, iface string, opts CarrierOptions) (maps.Carrier, error) {
	var c maps.Carrier
	onMiss, err1 := maps.ParseOnMiss(opts.OnMiss)
	err2 := maps.ValidateIfaceName("IFACE", iface)
	var peerMAC net.HardwareAddr
	var err3 error
	if opts.PeerMAC != "" {
		if peerMAC, err3 = net.ParseMAC(opts.PeerMAC); err3 != nil || len(peerMAC) != 6 || peerMAC[0]&1 == 1 {
			err3 = maps.Invalid("--peer-mac", opts.PeerMAC, "is not a unicast MAC address", "six hex bytes like 02:00:00:00:00:02")
		}
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		return c, err
	}
	old, hadOld, err := m.State.Carrier()
	if err != nil {
		return c, err
	}
	err = netdev.Do(opts.Netns, func() error {
		ifc, ino, err := lookupHere("IFACE", iface, opts.Netns)
		if err != nil {
			return err
		}
		if members, err := m.State.Members(); err == nil {
			for _, mem := range members {
				if mem.Ifindex == uint32(ifc.Index) {
					return fmt.Errorf("%s is member %s: %w; a member cannot carry the others", iface, mem, maps.ErrInUse)
				}
			}
		}
		c = maps.Carrier{Name: ifc.Name, Ifindex: uint32(ifc.Index), L2: ifc.L2, OnMiss: onMiss, Netns: ino}
		if ifc.L2 {
			c.SrcMAC = ifc.MAC
			switch {
			case peerMAC != nil:
				c.DstMAC = peerMAC
			case ifc.IsVeth():
				if _, err := netdev.InPeer(ifc, nsDisplayName(opts.Netns), func(p netdev.Iface) error {
					c.DstMAC = p.MAC
					return nil
				}); err != nil {
					return fmt.Errorf("find the MAC of %s's veth peer (%v): %w; give --peer-mac", iface, err, maps.ErrInvalid)
				}
			default:
				return maps.Invalid("--peer-mac", "", fmt.Sprintf("is required: %s is an Ethernet carrier, and frames need the far end's MAC", iface), "the MAC of the interface at the carrier's other end")
			}
		} else if peerMAC != nil {
			return maps.Invalid("--peer-mac", opts.PeerMAC, fmt.Sprintf("is invalid: %s carries no Ethernet header", iface), "omit it")
		}
		prog, _ := m.DP.Program("mux-ingress")
		if _, err := m.attach(lock, prog, ifc.Name, AttachOptions{Netns: opts.Netns}); err != nil {
			return err
		}
		if err := m.State.SetCarrier(lock, c); err != nil {
			return err
		}
		if hadOld && (old.Ifindex != c.Ifindex || old.Netns != ino) {
			// By the record: the old carrier may be gone, or recreated
			// under its name with another index.
			return detachRecord(lock, m.DP, maps.Attachment{Program: prog.Name, Netns: old.Netns, Ifindex: old.Ifindex, Hook: prog.Hook})
		}
		return nil
	})
	return c, err
}

// MemberOptions are the parameters of AddMember.
type MemberOptions struct {
	Label  string
	Create bool   // create a persistent TUN device
	MTU    string // with Create: its MTU (default: the carrier's)
	Netns  string
}

// AddMember makes interface name a member with a label: created as a TUN
// device (sized to the carrier's MTU) with Create, adopted otherwise. The
// egress program goes on it. A label or an interface already used is an
// error naming the member that has it.
func (m *Mux) AddMember(lock *maps.Lock, name string, opts MemberOptions) (maps.Member, error) {
	var mem maps.Member
	label, err1 := maps.ParseLabel("--label", opts.Label)
	err2 := maps.ValidateIfaceName("NAME", name)
	var mtu uint64
	var err3 error
	if opts.MTU != "" {
		if !opts.Create {
			err3 = maps.Invalid("--mtu", opts.MTU, "is only valid with --create", "omit it, or add --create")
		} else if n, err := maps.ParseUint("--mtu", opts.MTU, 68, 65535); err != nil {
			err3 = err
		} else {
			mtu = n
		}
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		return mem, err
	}
	members, err := m.State.Members()
	if err != nil {
		return mem, err
	}
	for _, other := range members {
		if other.Label == label {
			return mem, fmt.Errorf("label %d is member %s's: %w", label, other, maps.ErrInUse)
		}
		if other.Name == name {
			return mem, fmt.Errorf("%s is already member %s: %w", name, other, maps.ErrInUse)
		}
	}
	carrier, hasCarrier, err := m.State.Carrier()
	if err != nil {
		return mem, err
	}
	err = inNamespace(opts.Netns, func(ino uint64) error {
		var ifc netdev.Iface
		if opts.Create {
			if _, err := netdev.Lookup(name); err == nil {
				return maps.Invalid("NAME", name, "already exists, so --create cannot create it", "a new interface name, or leave --create out to adopt it")
			}
			// The member takes the carrier's transmit offloads and, unless
			// --mtu says otherwise, its MTU.
			off := netdev.TUNOffloads{Checksum: true, TSO: true}
			if hasCarrier {
				c, err := netdev.ByIndex(int(carrier.Ifindex))
				if err != nil {
					return fmt.Errorf("carrier %s: %w", carrier.Name, err)
				}
				if off, err = netdev.OffloadsOf(c.Name); err != nil {
					return fmt.Errorf("carrier %s: %w", carrier.Name, err)
				}
				if mtu == 0 {
					mtu = uint64(c.MTU)
				}
			} else if mtu == 0 {
				return maps.Invalid("--mtu", "", "is required when no carrier is set (the member is sized to the carrier's MTU)", "68..65535, or set the carrier first")
			}
			if ifc, err = netdev.CreateTUN(name, int(mtu), off); err != nil {
				return err
			}
		} else if ifc, err = lookupArg("NAME", name, opts.Netns); err != nil {
			return err
		}
		if hasCarrier && uint32(ifc.Index) == carrier.Ifindex {
			return fmt.Errorf("%s is the carrier: %w", name, maps.ErrInUse)
		}
		mem = maps.Member{Name: ifc.Name, Label: label, Ifindex: uint32(ifc.Index), L2: ifc.L2, MAC: ifc.MAC, Created: opts.Create, Netns: ino}
		prog, _ := m.DP.Program("mux-egress")
		_, err = m.attach(lock, prog, ifc.Name, AttachOptions{Netns: opts.Netns})
		if err == nil {
			err = m.State.PutMember(lock, mem)
		}
		if err != nil && opts.Create {
			_ = netdev.DeleteLink(name) // its link goes with it
		}
		return err
	})
	return mem, err
}

// DeleteMember removes the member called name: its label stops, the egress
// program comes off, and a TUN device tunmux created is deleted.
func (m *Mux) DeleteMember(lock *maps.Lock, name, netnsName string) (maps.Member, error) {
	if err := maps.ValidateIfaceName("NAME", name); err != nil {
		return maps.Member{}, err
	}
	mem, err := m.State.Member(name)
	if err != nil {
		return mem, err
	}
	if err := m.State.DeleteMember(lock, mem); err != nil {
		return mem, err
	}
	return mem, netdev.Do(netnsName, func() error {
		// By the record: the member may be gone, or recreated under its
		// name with another index.
		prog, _ := m.DP.Program("mux-egress")
		if err := detachRecord(lock, m.DP, maps.Attachment{Program: prog.Name, Netns: mem.Netns, Ifindex: mem.Ifindex, Hook: prog.Hook}); err != nil {
			return err
		}
		if mem.Created {
			if err := netdev.DeleteLink(name); err != nil && !errors.Is(err, netdev.ErrNoInterface) {
				return err
			}
		}
		return nil
	})
}
