package dataplane

import (
	"errors"
	"fmt"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// tunnelWarnings says what the operator should know of a tunnel being
// written, and makes its VLAN tags visible to XDP where it can: tags of a
// veth underlay, the workload's MTU, critical GENEVE options.
func tunnelWarnings(t maps.Tunnel, under, over netdev.Iface, netnsName string) []string {
	var out []string
	if t.Proto == maps.ProtoVLAN {
		if warn := showVLANTags(under, netnsName); warn != "" {
			out = append(out, warn)
		}
	}
	if warn := mtuWarning(t, under, over, netnsName); warn != "" {
		out = append(out, warn)
	}
	for _, o := range t.GeneveOpts {
		if o.Critical() {
			out = append(out, fmt.Sprintf("--geneve-opt %s is critical (type bit 0x80): a receiver that does not understand it drops the frame (RFC 8926), tunmux's own decap included", o))
		}
	}
	return out
}

// identitySlotConflict says why a tunnel cannot hold slot as ifc's identity
// slot: it belongs to another namespace, or sends frames elsewhere.
func identitySlotConflict(ifc netdev.Iface, slot maps.Slot, ino uint64) error {
	if slot.Netns != ino {
		return fmt.Errorf("%s: ifindex %d already has a redirect slot for interface %s of another network namespace: %w; use one --bpffs root per network namespace",
			ifc.Name, ifc.Index, slot.InName, maps.ErrInUse)
	}
	if slot.Out != slot.In {
		return fmt.Errorf("%s: its redirect slot sends frames to %s (devmap add %s %s), and a tunnel needs it to send to %s itself: %w; run 'tunmux devmap del %s' first",
			ifc.Name, slot.OutName, slot.InName, slot.OutName, ifc.Name, maps.ErrInUse, slot.InName)
	}
	return nil
}

// makeReady makes a redirect target accept XDP-redirected frames, and says
// how. A veth drops such frames unless its peer has a NAPI context, which
// an XDP program or GRO gives it: tunmux turns GRO on at the peer (and
// leaves it on). Other devices receive them in their driver.
func makeReady(ifc netdev.Iface, netnsName string) (maps.Readiness, string, string) {
	if !ifc.IsVeth() {
		return maps.ReadyNotVeth, "", ""
	}
	ready := maps.NotReady
	peer, err := netdev.InPeer(ifc, nsDisplayName(netnsName), func(p netdev.Iface) error {
		if p.XDPProgID != 0 {
			ready = maps.ReadyPeerXDP
			return nil
		}
		on, err := netdev.GRO(p.Name)
		if err == nil && !on {
			err = netdev.SetGRO(p.Name, true)
		}
		if err == nil {
			ready = maps.ReadyGRO
		}
		return err
	})
	if err != nil {
		return maps.NotReady, peer, fmt.Sprintf("%s is a veth whose peer could not be made ready (%v): frames redirected to it from native XDP are dropped; turn GRO on at its peer (ethtool -K PEER gro on) or attach with --mode generic", ifc.Name, err)
	}
	return ready, peer, ""
}

// showVLANTags makes the tags of a VLAN tunnel's veth underlay travel inside
// the frame, where XDP can see them: the underlay puts the tags TC encap
// pushes into the frames it sends, and its peer stops handing tags over
// beside the frame (tx VLAN offload off at both). It returns a warning when
// it cannot.
func showVLANTags(ifc netdev.Iface, netnsName string) string {
	if !ifc.IsVeth() {
		return ""
	}
	if _, err := netdev.DisableTxVLANOffload(ifc.Name); err != nil {
		return fmt.Sprintf("could not turn tx VLAN offload off at %s (%v): tags TC encap pushes may travel beside the frame, unseen by XDP at the far end; run 'ethtool -K %s txvlan off'", ifc.Name, err, ifc.Name)
	}
	peer, err := netdev.InPeer(ifc, nsDisplayName(netnsName), func(p netdev.Iface) error {
		_, err := netdev.DisableTxVLANOffload(p.Name)
		return err
	})
	if err != nil {
		return fmt.Sprintf("could not turn tx VLAN offload off at %s, the peer of %s (%v): tagged frames arriving on %s may reach XDP untagged; run 'ethtool -K PEER txvlan off' in its namespace", peer, ifc.Name, err, ifc.Name)
	}
	return ""
}

// GetSlot returns the slot keyed by interface in, with its tunnels.
func (e *Encap) GetSlot(in, netnsName string) (maps.Slot, error) {
	idx, err := e.slotIndex(in, netnsName)
	if err != nil {
		return maps.Slot{}, err
	}
	slots, err := e.State.ListSlots()
	if err != nil {
		return maps.Slot{}, err
	}
	for _, s := range slots {
		if s.In == idx {
			one := []maps.Slot{s}
			ObserveSlots(one)
			return one[0], nil
		}
	}
	return maps.Slot{}, fmt.Errorf("redirect slot for %s: %w", in, maps.ErrNotFound)
}

// slotIndex resolves a slot's interface: by name in the namespace, or, when
// the interface is gone, by the name recorded with the slot.
func (e *Encap) slotIndex(in, netnsName string) (uint32, error) {
	if err := maps.ValidateIfaceName("IN", in); err != nil {
		return 0, err
	}
	var idx uint32
	err := netdev.Do(netnsName, func() error {
		ifc, err := netdev.Lookup(in)
		if err != nil {
			return err
		}
		idx = uint32(ifc.Index)
		return nil
	})
	if err == nil {
		return idx, nil
	}
	if !errors.Is(err, netdev.ErrNoInterface) {
		return 0, err
	}
	slots, lerr := e.State.ListSlots()
	if lerr != nil {
		return 0, lerr
	}
	for _, s := range slots {
		if s.InName == in {
			return s.In, nil
		}
	}
	return 0, fmt.Errorf("redirect slot for %s (no such interface, and no slot recorded under that name): %w", in, maps.ErrNotFound)
}

// mtuWarning says so when the sending side of the overlay (its veth peer, or
// the overlay itself) lets the workload send packets the tunnel cannot carry
// over the underlay: those are dropped and counted as too big.
func mtuWarning(t maps.Tunnel, under, over netdev.Iface, here string) string {
	sender, mtu, limit, exceeds := MTUExcess(t, under, over, here)
	if !exceeds {
		return ""
	}
	return fmt.Sprintf("%s has MTU %d, but this tunnel carries at most %d bytes of IP over %s (MTU %d, %d bytes of headers): larger packets will be dropped and counted as too big; set that MTU to %d (docs/encap.md, MTU)",
		sender, mtu, limit, under.Name, under.MTU, t.Overhead(), limit)
}

// MTUExcess finds the interface that sends into tunnel t's overlay (its
// veth peer, "netns/ifname", or the overlay itself) and reports whether its
// MTU exceeds the IP the tunnel carries over its underlay (limit).
func MTUExcess(t maps.Tunnel, under, over netdev.Iface, here string) (sender string, mtu, limit int, exceeds bool) {
	limit = under.MTU - t.Overhead()
	sender, mtu = netdev.Describe(here, over.Name), over.MTU
	if over.IsVeth() {
		desc, err := netdev.InPeer(over, here, func(p netdev.Iface) error {
			mtu = p.MTU
			return nil
		})
		if err != nil {
			return "", 0, limit, false
		}
		sender = desc
	}
	return sender, mtu, limit, mtu > limit
}
