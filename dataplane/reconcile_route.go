package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// DesiredRoute is a route as a desired-state file gives it, its nexthops
// resolved.
type DesiredRoute struct {
	Route maps.Route
	Line  int
}

// DesiredPeer is a peer health entry as a desired-state file gives it.
type DesiredPeer struct {
	Peer maps.Peer
	Line int
}

// RoutePlan is what ExecuteRoute will do.
type RoutePlan struct {
	Changes   []Change
	putPeers  []maps.Peer
	putRoutes []maps.Route
	delRoutes []netip.Prefix
	delPeers  []netip.Addr
}

// PlanRoute compares the desired routes and peers with the pinned ones:
// missing or different entries are written; the routes and peers named in
// delRoutes and delPeers are removed, and with prune every one the desired
// state lacks.
func (r *Route) PlanRoute(routes []DesiredRoute, peers []DesiredPeer, delRoutes []netip.Prefix, delPeers []netip.Addr, prune bool) (*RoutePlan, error) {
	plan := &RoutePlan{}
	current, currentPeers, err := both(r.State.Routes, r.State.Peers)
	if err != nil {
		return nil, err
	}
	cur := make([]DesiredRoute, len(current))
	for i, rt := range current {
		cur[i] = DesiredRoute{Route: rt}
	}
	routeKey := func(d DesiredRoute) netip.Prefix { return d.Route.Prefix }
	rd := diff(cur, routes, routeKey,
		func(a, b DesiredRoute) bool { return sameRoute(a.Route, b.Route) }, removeRule(prune, routeKey, delRoutes))
	for _, d := range rd.add {
		plan.putRoutes = append(plan.putRoutes, d.Route)
		plan.Changes = append(plan.Changes, Change{Action: "add", Kind: "route", Key: d.Route.Prefix.String(), Detail: describeNexthops(d.Route), Line: d.Line})
	}
	for _, c := range rd.change {
		plan.putRoutes = append(plan.putRoutes, c.new.Route)
		plan.Changes = append(plan.Changes, Change{Action: "change", Kind: "route", Key: c.new.Route.Prefix.String(),
			Detail: describeNexthops(c.old.Route) + " -> " + describeNexthops(c.new.Route), Line: c.new.Line})
	}
	for _, d := range rd.remove {
		plan.delRoutes = append(plan.delRoutes, d.Route.Prefix)
		plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "route", Key: d.Route.Prefix.String(), Detail: describeNexthops(d.Route)})
	}
	curPeers := make([]DesiredPeer, len(currentPeers))
	for i, p := range currentPeers {
		curPeers[i] = DesiredPeer{Peer: p}
	}
	peerKey := func(d DesiredPeer) netip.Addr { return d.Peer.Remote }
	pd := diff(curPeers, peers, peerKey,
		func(a, b DesiredPeer) bool { return a.Peer == b.Peer }, removeRule(prune, peerKey, delPeers))
	for _, d := range pd.add {
		plan.putPeers = append(plan.putPeers, d.Peer)
		plan.Changes = append(plan.Changes, Change{Action: "add", Kind: "peer", Key: d.Peer.Remote.String(), Detail: describePeer(d.Peer), Line: d.Line})
	}
	for _, c := range pd.change {
		plan.putPeers = append(plan.putPeers, c.new.Peer)
		plan.Changes = append(plan.Changes, Change{Action: "change", Kind: "peer", Key: c.new.Peer.Remote.String(), Detail: describePeer(c.old.Peer) + " -> " + describePeer(c.new.Peer), Line: c.new.Line})
	}
	for _, d := range pd.remove {
		plan.delPeers = append(plan.delPeers, d.Peer.Remote)
		plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "peer", Key: d.Peer.Remote.String(), Detail: describePeer(d.Peer)})
	}
	return plan, nil
}

func describeNexthops(r maps.Route) string {
	parts := make([]string, len(r.Nexthops))
	for i, n := range r.Nexthops {
		parts[i] = n.String()
	}
	return strings.Join(parts, " ")
}

func describePeer(p maps.Peer) string {
	s := p.Health()
	if p.ProbePort != 0 {
		s += ", probe port " + strconv.Itoa(int(p.ProbePort))
	}
	return s
}

// sameRoute compares what the datapath reads of two routes.
func sameRoute(a, b maps.Route) bool {
	return a.Prefix == b.Prefix && slices.EqualFunc(a.Nexthops, b.Nexthops, func(x, y maps.Nexthop) bool {
		return x.Same(y) && x.Weight == y.Weight && x.Ifindex == y.Ifindex && x.MAC.String() == y.MAC.String() && x.SrcMAC.String() == y.SrcMAC.String()
	})
}

// ExecuteRoute carries a plan out: peers first (new routes meet their
// peers' health), then routes, then removals.
func (r *Route) ExecuteRoute(lock *maps.Lock, plan *RoutePlan) error {
	for _, p := range plan.putPeers {
		if err := r.State.SetPeer(lock, p); err != nil {
			return err
		}
	}
	for _, rt := range plan.putRoutes {
		if err := r.State.PutRoute(lock, rt, maps.Upsert); err != nil {
			return err
		}
	}
	for _, p := range plan.delRoutes {
		if err := r.State.DeleteRoute(lock, p); err != nil {
			return err
		}
	}
	for _, a := range plan.delPeers {
		if err := r.State.DeletePeer(lock, a); err != nil {
			return err
		}
	}
	return nil
}

// DesiredDevice is a route dataplane device as a desired-state file gives
// it: a flow-based tunnel device (tunmux route dev create NAME --proto P
// [--local A] [--port N] [--mtu M]) or, with Routes, the TUN device overlay
// routes point at (route dev create NAME --routes [--mtu M]).
type DesiredDevice struct {
	Name   string
	Routes bool
	Tunnel TunnelDevOptions // Proto, Port, Local, MTU; MTU alone for Routes
	Config DeviceConfig     // its addresses and kernel routes
	Line   int
}

// CurrentDevice is a device of the route dataplane found in the namespace:
// a registered tunnel device, or a TUN device running the route program.
type CurrentDevice struct {
	DesiredDevice
	Ifindex uint32
	proto   maps.RouteProto
}

// Devices lists the route dataplane's devices in the calling thread's
// namespace (inode ino), with their settings as the kernel has them: tunnel
// devices first (by protocol), then routes devices (by name).
func (r *Route) Devices(ino uint64) ([]CurrentDevice, error) {
	var out []CurrentDevice
	devs, err := r.State.TunnelDevs()
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		ifc, err := netdev.ByIndex(int(d.Ifindex))
		if d.Netns != ino || err != nil || ifc.Name != d.Name {
			continue // stale: the device is gone (or elsewhere)
		}
		c := CurrentDevice{Ifindex: d.Ifindex, proto: d.Proto, DesiredDevice: DesiredDevice{Name: d.Name,
			Tunnel: TunnelDevOptions{Proto: d.Proto.String(), MTU: fmt.Sprint(ifc.MTU)}}}
		if d.Local.IsValid() {
			c.Tunnel.Local = d.Local.String()
		}
		if port, err := netdev.TunnelPort(d.Name); err == nil {
			c.Tunnel.Port = fmt.Sprint(port)
		}
		out = append(out, c)
	}
	atts, err := maps.ListAttachments(r.Maps["attachments"])
	if err != nil {
		return nil, err
	}
	var routesDevs []CurrentDevice
	for _, a := range atts {
		if a.Program != "route" || a.Netns != ino {
			continue
		}
		ifc, err := netdev.ByIndex(int(a.Ifindex))
		if err != nil || ifc.Kind != "tuntap" {
			continue
		}
		routesDevs = append(routesDevs, CurrentDevice{Ifindex: uint32(ifc.Index),
			DesiredDevice: DesiredDevice{Name: ifc.Name, Routes: true, Tunnel: TunnelDevOptions{MTU: fmt.Sprint(ifc.MTU)}}})
	}
	sort.Slice(routesDevs, func(i, j int) bool { return routesDevs[i].Name < routesDevs[j].Name })
	return append(out, routesDevs...), nil
}

// DevicePlan is what reconciling the route devices will do.
type DevicePlan struct {
	Changes []Change
	remove  []CurrentDevice // pruned: after the routes
	replace []CurrentDevice // deleted before they are created again
	create  []DesiredDevice
	del     []string // deleted by the code of 'route dev del'
	// configure holds the addresses and routes to add, by device.
	configure map[string]DeviceConfig
}

// Creates reports whether the plan creates a device.
func (p *DevicePlan) Creates() bool { return p != nil && len(p.create) > 0 }

// DeviceOutcome is what executing a device plan made and deleted.
type DeviceOutcome struct {
	Tunnel  []maps.TunnelDev
	Routes  []netdev.Iface
	Deleted []DevDeleteResult
}

// PlanDevices compares the desired devices with those of the namespace: a
// missing device is created; a tunnel device whose settings differ is
// created again; with prune, devices the file lacks are deleted (after the
// routes, so that routes through them go first). A device's MTU, port and
// local address are compared only where the file gives them.
//
// A command's create (create) has every desired device created, so that
// the create code reports one that exists; the names in del are deleted by
// the code of 'route dev del'.
func (r *Route) PlanDevices(desired []DesiredDevice, del []string, prune, create bool, ino uint64) (*DevicePlan, error) {
	plan := &DevicePlan{del: del, configure: map[string]DeviceConfig{}}
	for _, name := range del {
		plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "device", Key: name})
	}
	if create {
		for _, d := range desired {
			plan.create = append(plan.create, d)
			plan.configure[d.Name] = d.Config
			plan.Changes = append(plan.Changes, Change{Action: "add", Kind: "device", Key: d.Name, Detail: deviceSummary(d), Line: d.Line})
		}
		return plan, nil
	}
	current, err := r.Devices(ino)
	if err != nil {
		return nil, err
	}
	key := func(d CurrentDevice) string { return d.Name }
	want := make([]CurrentDevice, len(desired))
	for i, d := range desired {
		want[i] = CurrentDevice{DesiredDevice: d}
	}
	dd := diff(current, want, key, func(old, d CurrentDevice) bool { return describeDevice(old.DesiredDevice, d.DesiredDevice) == "" }, removeRule[string, CurrentDevice](prune, key, nil))
	for _, a := range dd.add {
		plan.create = append(plan.create, a.DesiredDevice)
		plan.configure[a.Name] = a.Config
		plan.Changes = append(plan.Changes, Change{Action: "add", Kind: "device", Key: a.Name, Detail: deviceSummary(a.DesiredDevice), Line: a.Line})
	}
	for _, c := range dd.change {
		plan.replace = append(plan.replace, c.old)
		plan.create = append(plan.create, c.new.DesiredDevice)
		plan.configure[c.new.Name] = c.new.Config
		plan.Changes = append(plan.Changes, Change{Action: "change", Kind: "device", Key: c.new.Name,
			Detail: describeDevice(c.old.DesiredDevice, c.new.DesiredDevice) + ": created again", Line: c.new.Line})
	}
	for _, d := range dd.remove {
		plan.remove = append(plan.remove, d)
		plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "device", Key: d.Name, Detail: deviceSummary(d.DesiredDevice)})
	}
	plan.Changes = append(plan.Changes, planConfig("device", desired, plan.configure)...)
	return plan, nil
}

func deviceSummary(d DesiredDevice) string {
	if d.Routes {
		return "routes device (TUN)"
	}
	s := d.Tunnel.Proto + " tunnel device"
	if d.Tunnel.Local != "" {
		s += ", local " + d.Tunnel.Local
	}
	return s
}

// describeDevice names what differs between a current device and a desired
// one ("" when nothing does).
func describeDevice(cur, want DesiredDevice) string {
	var diffs []string
	if cur.Routes != want.Routes {
		return deviceSummary(cur) + " -> " + deviceSummary(want)
	}
	for _, f := range []struct{ name, cur, want string }{
		{"proto", cur.Tunnel.Proto, want.Tunnel.Proto}, {"local", cur.Tunnel.Local, want.Tunnel.Local},
		{"port", cur.Tunnel.Port, want.Tunnel.Port}, {"mtu", cur.Tunnel.MTU, want.Tunnel.MTU},
	} {
		if f.want != "" && f.want != f.cur || f.name == "local" && f.want != f.cur {
			diffs = append(diffs, fmt.Sprintf("%s %s -> %s", f.name, orDash(f.cur), orDash(f.want)))
		}
	}
	return strings.Join(diffs, "; ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ExecuteDevices creates the plan's devices (replaced ones deleted first),
// with the code `route dev create` runs. Call it inside the namespace.
func (r *Route) ExecuteDevices(lock *maps.Lock, plan *DevicePlan, netnsName string) (DeviceOutcome, error) {
	var out DeviceOutcome
	for _, name := range plan.del {
		res, err := r.DeleteDev(lock, name, netnsName)
		if err != nil {
			return out, err
		}
		out.Deleted = append(out.Deleted, res)
	}
	for _, d := range plan.replace {
		if err := r.deleteDevice(lock, d, netnsName); err != nil {
			return out, err
		}
	}
	for _, d := range plan.create {
		if d.Routes {
			ifc, err := r.CreateRoutesDev(lock, d.Name, RoutesDevOptions{MTU: d.Tunnel.MTU, Netns: netnsName})
			if err != nil {
				return out, err
			}
			out.Routes = append(out.Routes, ifc)
			continue
		}
		opts := d.Tunnel
		opts.Netns = netnsName
		td, err := r.CreateTunnelDev(lock, d.Name, opts)
		if err != nil {
			return out, err
		}
		out.Tunnel = append(out.Tunnel, td)
	}
	return out, configureAll(plan.configure)
}

// ExecuteDeviceRemovals deletes the devices the plan prunes; run it after
// the routes through them are gone.
func (r *Route) ExecuteDeviceRemovals(lock *maps.Lock, plan *DevicePlan, netnsName string) error {
	for _, d := range plan.remove {
		if err := r.deleteDevice(lock, d, netnsName); err != nil {
			return err
		}
	}
	return nil
}

// deleteDevice deletes a device of the dataplane: its registration or its
// route program first, then the interface.
func (r *Route) deleteDevice(lock *maps.Lock, d CurrentDevice, netnsName string) error {
	if d.Routes {
		prog, _ := r.DP.Program("route")
		ino, err := netdev.CurrentInode()
		if err != nil {
			return err
		}
		if err := detachRecord(lock, r.DP, maps.Attachment{Program: prog.Name, Netns: ino, Ifindex: d.Ifindex, Hook: prog.Hook}); err != nil {
			return err
		}
	} else if err := r.State.ForgetTunnelDev(lock, d.proto); err != nil {
		return err
	}
	if err := netdev.DeleteLink(d.Name); err != nil && !errors.Is(err, netdev.ErrNoInterface) {
		return err
	}
	return nil
}
