package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/tunmux/tunmux/hrw"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Header room a tunnel device needs below the underlay MTU: outer IPv6 (40),
// UDP (8), VXLAN or option-less GENEVE (8) and the inner Ethernet header
// (14). IPv6 is the larger, so one device serves either underlay.
const tunnelOverhead = 70

// TunnelDevOptions are the parameters of CreateTunnelDev, as given.
type TunnelDevOptions struct {
	Proto string // vxlan|geneve
	Port  string // UDP port; default the protocol's
	Local string // this node's underlay address: the device's MAC follows from it
	MTU   string // default: the MTU of the interface holding Local (or 1500), less 70
	Netns string
}

// CreateTunnelDev creates a flow-based tunnel device and registers it as
// the default device of its protocol's nexthops. With Local, its MAC is
// maps.TunnelMAC(Local), the MAC its peers address inner frames to.
func (r *Route) CreateTunnelDev(lock *maps.Lock, name string, opts TunnelDevOptions) (maps.TunnelDev, error) {
	var d maps.TunnelDev
	var errs []error
	errs = append(errs, maps.ValidateIfaceName("NAME", name))
	proto, err := maps.ParseRouteProto("--proto", opts.Proto, false)
	if opts.Proto == "" {
		err = maps.Invalid("--proto", "", "is required", "vxlan|geneve")
	}
	errs = append(errs, err)
	port := uint64(proto.DefaultPort())
	if opts.Port != "" {
		n, ierr := maps.ParseUint("--port", opts.Port, 1, 65535)
		if ierr != nil {
			errs = append(errs, ierr)
		}
		port = n
	}
	var local netip.Addr
	if opts.Local != "" {
		a, err := maps.ParsePeerAddr("--local", opts.Local)
		if err == nil && (a.IsUnspecified() || a.IsMulticast()) {
			err = maps.Invalid("--local", opts.Local, "is not a unicast address", "this node's underlay address")
		}
		errs = append(errs, err)
		local = a
	}
	mtu := uint64(0)
	if opts.MTU != "" {
		n, ierr := maps.ParseUint("--mtu", opts.MTU, 68, 65535)
		if ierr != nil {
			errs = append(errs, ierr)
		}
		mtu = n
	}
	if err := errors.Join(errs...); err != nil {
		return d, err
	}
	old, registered, err := r.State.TunnelDev(proto)
	if err != nil {
		return d, err
	}
	err = inNamespace(opts.Netns, func(ino uint64) error {
		if registered {
			// A registration whose device is gone from here is stale.
			if now, err := netdev.ByIndex(int(old.Ifindex)); old.Netns != ino || (err == nil && now.Name == old.Name) {
				return fmt.Errorf("%s is already this root's %s device: %w; delete it with 'tunmux route dev del %s', or create another with ip link and give nexthops dev=",
					old.Name, proto, maps.ErrExists, old.Name)
			}
		}
		if _, err := netdev.Lookup(name); err == nil {
			return maps.Invalid("NAME", name, "already exists", "a new interface name")
		}
		if mtu == 0 {
			mtu = 1500 - tunnelOverhead
			if local.IsValid() {
				if holder, err := netdev.HolderOf(local); err == nil {
					mtu = uint64(holder.MTU - tunnelOverhead)
				}
			}
		}
		var mac []byte
		if local.IsValid() {
			mac = maps.TunnelMAC(local)
		}
		ifc, err := netdev.CreateFlowTunnel(proto.String(), name, uint16(port), int(mtu), mac)
		if errors.Is(err, netdev.ErrNoKernelSupport) {
			return fmt.Errorf("this kernel has no %s device type (not built into it or as a module), so tunmux cannot create %s: %w; use --proto vxlan, or a kernel with %s",
				proto, name, err, map[maps.RouteProto]string{maps.RouteProtoVXLAN: "CONFIG_VXLAN", maps.RouteProtoGeneve: "CONFIG_GENEVE"}[proto])
		}
		if err != nil {
			return err
		}
		d = maps.TunnelDev{Name: ifc.Name, Proto: proto, Ifindex: uint32(ifc.Index), Netns: ino, MAC: ifc.MAC, Local: local}
		if err := r.State.SetTunnelDev(lock, d); err != nil {
			_ = netdev.DeleteLink(name)
			return err
		}
		return nil
	})
	return d, err
}

// RoutesDevOptions are the parameters of CreateRoutesDev, as given.
type RoutesDevOptions struct {
	MTU   string // default: the smallest MTU of the registered tunnel devices
	Netns string
}

// CreateRoutesDev creates the device overlay routes point at: a persistent
// TUN device (no reader needed: its TC egress program runs all the same)
// with checksum and TSO offloads, so TCP hands it super-frames that the
// tunnel device carries whole, up.
func (r *Route) CreateRoutesDev(lock *maps.Lock, name string, opts RoutesDevOptions) (netdev.Iface, error) {
	var ifc netdev.Iface
	err1 := maps.ValidateIfaceName("NAME", name)
	mtu := uint64(0)
	var err2 error
	if opts.MTU != "" {
		n, ierr := maps.ParseUint("--mtu", opts.MTU, 68, 65535)
		if ierr != nil {
			err2 = ierr
		}
		mtu = n
	}
	if err := errors.Join(err1, err2); err != nil {
		return ifc, err
	}
	devs, err := r.State.TunnelDevs()
	if err != nil {
		return ifc, err
	}
	err = netdev.Do(opts.Netns, func() error {
		if _, err := netdev.Lookup(name); err == nil {
			return maps.Invalid("NAME", name, "already exists", "a new interface name")
		}
		if mtu == 0 {
			for _, d := range devs {
				if t, err := netdev.ByIndex(int(d.Ifindex)); err == nil && t.Name == d.Name && (mtu == 0 || uint64(t.MTU) < mtu) {
					mtu = uint64(t.MTU)
				}
			}
		}
		if mtu == 0 {
			return maps.Invalid("--mtu", "", "is required when no tunnel device is registered here (the routes device is sized to it)", "68..65535, or run 'route dev create NAME --proto vxlan' first")
		}
		var err error
		ifc, err = netdev.CreateTUN(name, int(mtu), netdev.TUNOffloads{Checksum: true, TSO: true})
		return err
	})
	return ifc, err
}

// DevDeleteResult says what DeleteDev did.
type DevDeleteResult struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // tunnel or routes
	Detached bool   `json:"detached"`
}

// DeleteDev deletes a device that `route dev create` made: a registered
// tunnel device that no route uses any more, or a TUN device with the route
// program attached (detached first).
func (r *Route) DeleteDev(lock *maps.Lock, name, netnsName string) (DevDeleteResult, error) {
	res := DevDeleteResult{Name: name}
	if err := maps.ValidateIfaceName("NAME", name); err != nil {
		return res, err
	}
	devs, routes, err := both(r.State.TunnelDevs, r.State.Routes)
	if err != nil {
		return res, err
	}
	err = inNamespace(netnsName, func(ino uint64) error {
		for _, d := range devs {
			if d.Name != name || d.Netns != ino {
				continue
			}
			n := 0
			for _, rt := range routes {
				for _, nh := range rt.Nexthops {
					if nh.Ifindex == d.Ifindex {
						n++
						break
					}
				}
			}
			if n > 0 {
				return fmt.Errorf("%s carries %d route(s): %w; delete or update them first", name, n, maps.ErrInUse)
			}
			if err := netdev.DeleteLink(name); err != nil && !errors.Is(err, netdev.ErrNoInterface) {
				return err
			}
			res.Kind = "tunnel"
			return r.State.ForgetTunnelDev(lock, d.Proto)
		}
		ifc, err := netdev.Lookup(name)
		if err != nil {
			return maps.Invalid("NAME", name, "is no device of the route dataplane here", "a device 'route dev list' shows")
		}
		prog, _ := r.DP.Program("route")
		if ifc.Kind != "tuntap" || !r.attachedTo(prog, ifc.Index, ino) {
			return maps.Invalid("NAME", name, "is neither a registered tunnel device nor a TUN device running the route program", "a device 'route dev list' shows")
		}
		if _, err := r.detach(lock, prog, name, netnsName); err != nil {
			return err
		}
		res.Kind, res.Detached = "routes", true
		return netdev.DeleteLink(name)
	})
	return res, err
}

// attachedTo reports whether prog is attached to ifindex in namespace ino.
func (r *Route) attachedTo(p Program, ifindex int, ino uint64) bool {
	atts, err := maps.ListAttachments(r.Maps["attachments"])
	if err != nil {
		return false
	}
	for _, a := range atts {
		if a.Program == p.Name && a.Netns == ino && int(a.Ifindex) == ifindex {
			return true
		}
	}
	return false
}

// ResolveNexthops resolves nexthops against the registered tunnel devices
// devs, in the current namespace (inode ino).
func ResolveNexthops(specs []maps.NexthopSpec, devs []maps.TunnelDev, ino uint64) ([]maps.Nexthop, error) {
	var out []maps.Nexthop
	var errs []error
	for _, s := range specs {
		n := maps.Nexthop{Remote: s.Remote, VNI: s.VNI, Weight: s.Weight, Proto: s.Proto, Dev: s.Dev, MAC: s.MAC}
		if err := resolveDev(&n, devs, ino); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, n)
	}
	return out, errors.Join(errs...)
}

// resolveDev finds the nexthop's device: dev= or its protocol's registered
// tunnel device, which must be flow-based and of that protocol.
func resolveDev(n *maps.Nexthop, devs []maps.TunnelDev, ino uint64) error {
	flag := "--nexthop " + n.Remote.String()
	if n.Dev == "" {
		for _, d := range devs {
			if d.Proto == n.Proto && d.Netns == ino {
				n.Dev = d.Name
			}
		}
		if n.Dev == "" {
			return maps.Invalid(flag, "", "no "+n.Proto.String()+" device is registered in this namespace",
				"dev=IFACE, or create one with 'tunmux route dev create NAME --proto "+n.Proto.String()+"'")
		}
	}
	ifc, err := lookupArg(flag+" dev", n.Dev, "")
	if err != nil {
		return err
	}
	n.Ifindex = uint32(ifc.Index)
	if !n.Proto.Tunnelled() {
		return nil
	}
	kind, flow, err := netdev.FlowBased(n.Dev)
	if err != nil {
		return err
	}
	if kind != n.Proto.String() || !flow {
		return maps.Invalid(flag+" dev", n.Dev, "is not a flow-based (external) "+n.Proto.String()+" device",
			"a device made by 'tunmux route dev create NAME --proto "+n.Proto.String()+"' or 'ip link add NAME type "+n.Proto.String()+" external'")
	}
	if len(ifc.MAC) != 6 {
		return fmt.Errorf("%s has no Ethernet address", n.Dev)
	}
	n.SrcMAC = ifc.MAC
	if n.MAC == nil {
		n.MAC = maps.TunnelMAC(n.Remote)
	}
	return nil
}

// Health returns a function reporting whether a peer is marked down.
func (r *Route) Health() (func(netip.Addr) bool, error) {
	peers, err := r.State.Peers()
	if err != nil {
		return nil, err
	}
	down := map[netip.Addr]bool{}
	for _, p := range peers {
		down[p.Remote] = p.Down
	}
	return func(a netip.Addr) bool { return down[a] }, nil
}

// NameDevs fills in each nexthop's device name from its ifindex, in the
// namespace netnsName (a device gone since shows as "ifindex N").
func NameDevs(netnsName string, rs []maps.Route) error {
	names := map[uint32]string{}
	return netdev.Do(netnsName, func() error {
		for i := range rs {
			for j := range rs[i].Nexthops {
				n := &rs[i].Nexthops[j]
				name, ok := names[n.Ifindex]
				if !ok {
					if ifc, err := netdev.ByIndex(int(n.Ifindex)); err == nil {
						name = ifc.Name
					} else {
						name = fmt.Sprintf("ifindex %d", n.Ifindex)
					}
					names[n.Ifindex] = name
				}
				n.Dev = name
			}
		}
		return nil
	})
}

// PeerReport is a peer as `peer list` shows it: its entry, if any, and the
// routes that reach it.
type PeerReport struct {
	maps.Peer
	Set    bool
	Routes int
}

// JSON returns the report's stable JSON form.
func (p PeerReport) JSON() maps.PeerJSON {
	j := maps.PeerJSON{Remote: p.Remote.String(), Health: p.Health(), Set: p.Set, Routes: p.Routes}
	if p.ProbePort != 0 {
		port := p.ProbePort
		j.ProbePort = &port
	}
	return j
}

// PeerReports lists every peer with a health entry or a nexthop, by address.
func (r *Route) PeerReports() ([]PeerReport, error) {
	peers, routes, err := both(r.State.Peers, r.State.Routes)
	if err != nil {
		return nil, err
	}
	by := map[netip.Addr]*PeerReport{}
	for _, p := range peers {
		by[p.Remote] = &PeerReport{Peer: p, Set: true}
	}
	for _, rt := range routes {
		seen := map[netip.Addr]bool{}
		for _, n := range rt.Nexthops {
			if seen[n.Remote] {
				continue
			}
			seen[n.Remote] = true
			if by[n.Remote] == nil {
				by[n.Remote] = &PeerReport{Peer: maps.Peer{Remote: n.Remote}}
			}
			by[n.Remote].Routes++
		}
	}
	out := make([]PeerReport, 0, len(by))
	for _, p := range by {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Remote.Less(out[j].Remote) })
	return out, nil
}

// PeerReport reports one peer, whether or not it has an entry.
func (r *Route) PeerReport(a netip.Addr) (PeerReport, error) {
	reps, err := r.PeerReports()
	if err != nil {
		return PeerReport{}, err
	}
	for _, p := range reps {
		if p.Remote == a {
			return p, nil
		}
	}
	return PeerReport{Peer: maps.Peer{Remote: a}}, nil
}

// Choose returns the nexthop of rt that the flow f takes, as the program
// chooses it (package hrw, peer health, probe ports), or -1 if none is
// usable; probe is true when it is a down peer reached as probe traffic.
func (r *Route) Choose(rt maps.Route, f hrw.Flow) (int, bool, error) {
	peers, err := r.State.Peers()
	if err != nil {
		return -1, false, err
	}
	byAddr := map[netip.Addr]maps.Peer{}
	for _, p := range peers {
		byAddr[p.Remote] = p
	}
	var dport uint16
	if f.Proto == 17 && f.HasPorts {
		dport = uint16(f.Ports[2])<<8 | uint16(f.Ports[3])
	}
	cs := make([]hrw.Candidate, len(rt.Nexthops))
	probes := make([]bool, len(rt.Nexthops))
	for i, n := range rt.Nexthops {
		p := byAddr[n.Remote]
		probes[i] = p.Down && p.ProbePort != 0 && p.ProbePort == dport
		cs[i] = hrw.Candidate{ID: n.ID(), Weight: n.Weight, Usable: !p.Down || probes[i]}
	}
	i := -1
	if len(cs) == 1 {
		if cs[0].Usable {
			i = 0
		}
	} else {
		i = hrw.Pick(f.Hash(), cs)
	}
	if i < 0 {
		return -1, false, nil
	}
	return i, probes[i], nil
}
