package dataplane

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Encap manages the encap dataplane's entries: tunnels and the redirect
// slots they hold.
type Encap struct {
	*Loaded
	State *maps.EncapState
}

// OpenEncap opens the loaded encap dataplane under root.
func OpenEncap(root *maps.Root) (*Encap, error) {
	l, err := Open(root, EncapDataplane)
	if err != nil {
		return nil, err
	}
	st, err := maps.NewEncapState(l.Maps)
	if err != nil {
		l.Close()
		return nil, err
	}
	return &Encap{Loaded: l, State: st}, nil
}

// TunnelResult is what a tunnel write did.
type TunnelResult struct {
	Tunnel maps.Tunnel
	// Warnings are things the operator should know (a redirect target that
	// could not be made ready, ...).
	Warnings []string
}

// PutTunnel validates args and writes the tunnel: with maps.Add it must be
// new, with maps.Update it must exist (and args replace only the fields
// given), with maps.Upsert either. Slots for its interfaces are written
// first; slots the tunnel no longer needs are released after.
func (e *Encap) PutTunnel(lock *maps.Lock, args maps.TunnelArgs, mode maps.PutMode, netnsName string) (TunnelResult, error) {
	var res TunnelResult
	key, keyErr := maps.ParseTunnelKey(args.InnerSrc, args.InnerDst)
	var old *maps.Tunnel
	if keyErr == nil {
		o, err := e.State.GetTunnel(key)
		switch {
		case err == nil:
			old = &o
		case !errors.Is(err, maps.ErrNotFound):
			return res, err
		case mode == maps.Update:
			// Report malformed flags before the missing key.
			if ferr := args.FormErrors(); ferr != nil {
				return res, ferr
			}
			return res, err
		}
	}
	var base *maps.Tunnel
	if mode == maps.Update {
		base = old // update replaces only the fields given
	}
	t, err := args.Parse(base)
	if err != nil {
		return res, err
	}
	if mode == maps.Add && old != nil {
		return res, fmt.Errorf("tunnel %s: %w (use tunnel update, or add --replace)", key, maps.ErrExists)
	}

	err = netdev.Do(netnsName, func() error {
		ino, err := netdev.CurrentInode()
		if err != nil {
			return err
		}
		under, err1 := lookupArg("--underlay", t.Underlay, netnsName)
		over, err2 := lookupArg("--overlay", t.Overlay, netnsName)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		t.UnderlayIndex, t.OverlayIndex = uint32(under.Index), uint32(over.Index)
		t.OverlayPeerNetns = over.PeerElsewhere()
		if t.Proto.UsesUDP() && t.SrcMAC == nil {
			if len(under.MAC) != 6 {
				return maps.Invalid("--src-mac", "", fmt.Sprintf("is required: %s has no Ethernet address", under.Name), "a unicast MAC address")
			}
			t.SrcMAC = under.MAC
		}
		// Check both slots before writing either.
		ifaces := []netdev.Iface{under}
		if over.Index != under.Index {
			ifaces = append(ifaces, over)
		}
		flags := map[int]string{under.Index: "--underlay", over.Index: "--overlay"}
		for _, ifc := range ifaces {
			if err := e.checkIdentitySlot(flags[ifc.Index], ifc, ino); err != nil {
				return err
			}
		}
		var created []uint32
		for _, ifc := range ifaces {
			slot, isNew, warn, err := e.holdIdentitySlot(lock, ifc, ino, netnsName)
			if warn != "" {
				res.Warnings = append(res.Warnings, warn)
			}
			if err != nil {
				e.releaseSlots(lock, created)
				return err
			}
			if isNew {
				created = append(created, slot.In)
			}
		}
		res.Warnings = append(res.Warnings, tunnelWarnings(t, under, over, netnsName)...)
		if err := e.State.PutTunnel(lock, t, mode); err != nil {
			e.releaseSlots(lock, created)
			return err
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if old != nil {
		for _, idx := range []uint32{old.UnderlayIndex, old.OverlayIndex} {
			if idx != t.UnderlayIndex && idx != t.OverlayIndex {
				if err := e.releaseSlotIfUnused(lock, idx); err != nil {
					res.Warnings = append(res.Warnings, err.Error())
				}
			}
		}
	}
	res.Tunnel, err = e.State.GetTunnel(t.TunnelKey)
	return res, err
}

// DeleteTunnel removes a tunnel, then releases the slots nothing else holds.
func (e *Encap) DeleteTunnel(lock *maps.Lock, key maps.TunnelKey) (maps.Tunnel, error) {
	t, err := e.State.GetTunnel(key)
	if err != nil {
		return t, err
	}
	if err := e.State.DeleteTunnel(lock, key); err != nil {
		return t, err
	}
	for _, idx := range []uint32{t.UnderlayIndex, t.OverlayIndex} {
		if err := e.releaseSlotIfUnused(lock, idx); err != nil {
			return t, err
		}
	}
	return t, nil
}

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

// checkIdentitySlot fails if ifc's slot exists but is not an identity slot
// of the same namespace.
func (e *Encap) checkIdentitySlot(flag string, ifc netdev.Iface, ino uint64) error {
	slot, err := e.State.GetSlot(uint32(ifc.Index))
	if errors.Is(err, maps.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := identitySlotConflict(ifc, slot, ino); err != nil {
		return fmt.Errorf("%s %w", flag, err)
	}
	return nil
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

// holdIdentitySlot makes sure ifc has an identity slot, made ready to
// receive redirected frames. isNew says whether this call created it.
func (e *Encap) holdIdentitySlot(lock *maps.Lock, ifc netdev.Iface, ino uint64, netnsName string) (slot maps.Slot, isNew bool, warning string, err error) {
	existing, err := e.State.GetSlot(uint32(ifc.Index))
	isNew = errors.Is(err, maps.ErrNotFound)
	if err != nil && !isNew {
		return slot, false, "", err
	}
	slot = maps.Slot{In: uint32(ifc.Index), InName: ifc.Name, Out: uint32(ifc.Index), OutName: ifc.Name, Netns: ino}
	if !isNew {
		slot.Explicit = existing.Explicit
	}
	slot.Readiness, slot.Peer, warning = makeReady(ifc, netnsName)
	return slot, isNew, warning, e.State.PutSlot(lock, slot)
}

// releaseSlots deletes slots created by a write that then failed.
func (e *Encap) releaseSlots(lock *maps.Lock, ins []uint32) {
	for _, in := range ins {
		_ = e.State.DeleteSlot(lock, in)
	}
}

// releaseSlotIfUnused deletes an identity slot that no tunnel holds and that
// `devmap add` did not create.
func (e *Encap) releaseSlotIfUnused(lock *maps.Lock, in uint32) error {
	slot, err := e.State.GetSlot(in)
	if errors.Is(err, maps.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if slot.Explicit {
		return nil
	}
	users, err := e.State.TunnelsUsing(in)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return nil
	}
	return e.State.DeleteSlot(lock, in)
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

// AddSlot adds a plain redirect slot: frames that the redirect program
// receives on in leave on out.
func (e *Encap) AddSlot(lock *maps.Lock, in, out, netnsName string) (maps.Slot, []string, error) {
	var slot maps.Slot
	var warnings []string
	errs := errors.Join(maps.ValidateIfaceName("IN", in), maps.ValidateIfaceName("OUT", out))
	if errs != nil {
		return slot, nil, errs
	}
	err := netdev.Do(netnsName, func() error {
		inIfc, err1 := lookupArg("IN", in, netnsName)
		outIfc, err2 := lookupArg("OUT", out, netnsName)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		ino, err := netdev.CurrentInode()
		if err != nil {
			return err
		}
		if existing, err := e.State.GetSlot(uint32(inIfc.Index)); err == nil {
			return fmt.Errorf("redirect slot %s -> %s: %w", existing.InName, existing.OutName, maps.ErrExists)
		}
		slot = maps.Slot{In: uint32(inIfc.Index), InName: inIfc.Name, Out: uint32(outIfc.Index), OutName: outIfc.Name, Netns: ino, Explicit: true}
		var warn string
		slot.Readiness, slot.Peer, warn = makeReady(outIfc, netnsName)
		if warn != "" {
			warnings = append(warnings, warn)
		}
		return e.State.PutSlot(lock, slot)
	})
	if err != nil {
		return slot, warnings, err
	}
	slot, err = e.GetSlot(in, netnsName)
	return slot, warnings, err
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
			return s, nil
		}
	}
	return maps.Slot{}, fmt.Errorf("redirect slot for %s: %w", in, maps.ErrNotFound)
}

// DeleteSlot removes the plain slot keyed by interface in. A slot that
// tunnels hold is refused with maps.ErrInUse naming them.
func (e *Encap) DeleteSlot(lock *maps.Lock, in, netnsName string) (maps.Slot, error) {
	slot, err := e.GetSlot(in, netnsName)
	if err != nil {
		return slot, err
	}
	if len(slot.Tunnels) > 0 {
		return slot, fmt.Errorf("redirect slot %s is used by tunnel %s: %w; delete those tunnels first",
			slot.InName, strings.Join(slot.Tunnels, ", tunnel "), maps.ErrInUse)
	}
	return slot, e.State.DeleteSlot(lock, slot.In)
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
	limit := under.MTU - t.Overhead()
	sender, mtu := netdev.Describe(here, over.Name), over.MTU
	if over.IsVeth() {
		desc, err := netdev.InPeer(over, here, func(p netdev.Iface) error {
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
	return fmt.Sprintf("%s has MTU %d, but this tunnel carries at most %d bytes of IP over %s (MTU %d, %d bytes of headers): larger packets will be dropped and counted as too big; set that MTU to %d (docs/encap.md, MTU)",
		sender, mtu, limit, under.Name, under.MTU, t.Overhead(), limit)
}
