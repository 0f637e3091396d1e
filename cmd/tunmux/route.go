package main

import (
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/hrw"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

func (a *app) routeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "route",
		Short: "Overlay routes to weighted, health-aware tunnel nexthops",
		Long: `The route dataplane sends packets for overlay prefixes (an LPM table, IPv4 and
IPv6) to one of up to 8 nexthops per route, chosen per flow by weighted
rendezvous hashing among the healthy ones: it sets the tunnel key (remote, VNI)
and redirects the packet to a flow-based vxlan or geneve device (docs/route.md).`,
		Example: `  tunmux load route
  tunmux route dev create vxlan0 --proto vxlan --local 192.168.50.1
  tunmux route dev create rt0 --routes          # the device routes point at
  tunmux attach route rt0
  ip route add 10.200.0.0/16 dev rt0
  tunmux route add 10.200.0.0/16 --nexthop 192.168.50.2,vni=100 --nexthop 192.168.50.3,vni=100,weight=2
  tunmux peer set 192.168.50.3 --health down    # its flows move to the others`,
	}
	for _, verb := range []string{"add", "update"} {
		cmd.AddCommand(a.routePutCommand(verb))
	}
	dev := &cobra.Command{
		Use:     "dev",
		Short:   "Create, delete and list the route dataplane's devices",
		Example: "  tunmux route dev create vxlan0 --proto vxlan --local 192.168.50.1\n  tunmux route dev create rt0 --routes\n  tunmux route dev list",
	}
	dev.AddCommand(a.routeDevCreateCommand(), a.routeDevDelCommand(), a.routeDevListCommand())
	cmd.AddCommand(a.routeGetCommand(), a.routeDelCommand(), a.routeListCommand(), dev)
	return cmd
}

func (a *app) routePutCommand(verb string) *cobra.Command {
	var (
		nexthops []string
		replace  bool
	)
	cmd := &cobra.Command{
		Use:  verb + " PREFIX --nexthop REMOTE[,vni=N][,weight=W][,dev=IFACE][,proto=vxlan|geneve|none][,mac=MAC] ...",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mode := apply.Create
			switch {
			case verb == "update":
				mode = apply.Modify
			case replace:
				mode = apply.Replace
			}
			var t routeTable
			doc := &apply.Document{Route: &apply.RouteSection{Routes: one(apply.RouteArgs{Prefix: args[0], Nexthops: nexthops})}}
			return a.write(dataplane.RouteDataplane, doc, mode, routeNames, nil, func(*maps.Root) error {
				p, err := maps.ParsePrefix("PREFIX", args[0])
				if err != nil {
					return err
				}
				t, err = a.readRoute(func(r *dataplane.Route) (maps.Route, error) { return r.State.Get(p) }, nil)
				return err
			}, func() any { return t })
		},
	}
	const nexthopHelp = `Each --nexthop is REMOTE[,key=value...], REMOTE the peer's underlay address
(IPv4 or IPv6, either with either overlay family):
  vni=N        the VNI, 0..16777215 (required for vxlan and geneve)
  weight=W     1..65535 (default 1): the nexthop's share of flows is its share
               of the route's total weight
  proto=P      vxlan (default) | geneve | none (no tunnel: out of dev= to the
               remote as a neighbour)
  dev=IFACE    the device to send through (default: the protocol's device from
               'route dev create'; for vxlan and geneve it must be flow-based)
  mac=MAC      the inner destination MAC (default: the remote's tunnel device
               MAC by the rule 02:a:b:c:d:ff, from the last 4 bytes of REMOTE)
Up to 8 nexthops; more is an error.`
	if verb == "add" {
		cmd.Short = "Add a route (fails if the prefix has one, unless --replace)"
		cmd.Long = "Add the route of PREFIX (an IPv4 or IPv6 CIDR).\n\n" + nexthopHelp
		cmd.Example = "  tunmux route add 10.200.0.0/16 --nexthop 192.168.50.2,vni=100 --nexthop 192.168.50.3,vni=100,weight=2\n" +
			"  tunmux route add fd00:200::/48 --nexthop fd50::2,vni=100\n" +
			"  tunmux route add 10.201.0.0/16 --nexthop fd50::3,vni=7 --replace"
		cmd.Flags().BoolVar(&replace, "replace", false, "replace the route if the prefix has one")
	} else {
		cmd.Short = "Replace the nexthops of an existing route (exit 3 if there is none)"
		cmd.Long = "Give the route of PREFIX a new set of nexthops, in one atomic write.\n\n" + nexthopHelp
		cmd.Example = "  tunmux route update 10.200.0.0/16 --nexthop 192.168.50.2,vni=100 --nexthop 192.168.50.4,vni=100"
	}
	cmd.Flags().StringArrayVar(&nexthops, "nexthop", nil, "a nexthop: REMOTE[,vni=N][,weight=W][,dev=IFACE][,proto=vxlan|geneve|none][,mac=MAC] (repeat, up to 8)")
	return cmd
}

func (a *app) routeGetCommand() *cobra.Command {
	var fl flowFlags
	cmd := &cobra.Command{
		Use:   "get PREFIX|ADDRESS [--from SRC [--ip-proto P] [--sport N] [--dport N]]",
		Short: "Show a route: the exact PREFIX, or the longest match for ADDRESS (exit 3 if none)",
		Long: `With a CIDR, show the route of exactly that prefix. With an address, show the
route the datapath uses for it: the longest prefix that contains it.

With --from, also say which nexthop a flow from SRC to ADDRESS takes, computed as
the program computes it (the same hash, weights, peer health and probe ports):
--ip-proto tcp|udp|sctp|udplite|icmp|N (default tcp), --sport and --dport for the
protocols with ports (default 0). A flow that no nexthop can take shows none.`,
		Example: "  tunmux route get 10.200.0.0/16\n  tunmux route get 10.200.3.4 -o json\n" +
			"  tunmux route get 10.200.3.4 --from 10.100.0.1 --ip-proto tcp --sport 40000 --dport 443",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, isAddr, err := maps.ParsePrefixOrAddr("PREFIX|ADDRESS", args[0])
			if err != nil {
				return err
			}
			flow, withFlow, err := fl.parse(p, isAddr)
			if err != nil {
				return err
			}
			chosen, probe := -1, false
			t, err := a.readRoute(func(r *dataplane.Route) (maps.Route, error) {
				if isAddr {
					return r.State.Lookup(p.Addr())
				}
				return r.State.Get(p)
			}, func(r *dataplane.Route, rt maps.Route) error {
				if !withFlow {
					return nil
				}
				var err error
				chosen, probe, err = r.Choose(rt, flow)
				return err
			})
			if err != nil {
				return err
			}
			t.one = true
			if withFlow {
				t.flow = &flowChoice{Flow: flow, Index: chosen, Probe: probe}
			}
			return a.printer.Print(t)
		},
	}
	cmd.Flags().StringVar(&fl.from, "from", "", "a flow's source address: say which nexthop the flow takes")
	cmd.Flags().StringVar(&fl.proto, "ip-proto", "tcp", "with --from: the flow's IP protocol: tcp|udp|sctp|udplite|icmp|0..255")
	cmd.Flags().StringVar(&fl.sport, "sport", "0", "with --from: the flow's source port")
	cmd.Flags().StringVar(&fl.dport, "dport", "0", "with --from: the flow's destination port")
	return cmd
}

// flowFlags are route get's flow flags, as given.
type flowFlags struct{ from, proto, sport, dport string }

var ipProtos = map[string]uint8{"tcp": 6, "udp": 17, "sctp": 132, "udplite": 136, "icmp": 1, "icmpv6": 58}

// parse turns the flags into the flow the program would hash for a packet
// from --from to ADDRESS.
func (fl flowFlags) parse(p netip.Prefix, isAddr bool) (hrw.Flow, bool, error) {
	if fl.from == "" {
		return hrw.Flow{}, false, nil
	}
	if !isAddr {
		return hrw.Flow{}, false, maps.Invalid("--from", fl.from, "needs an ADDRESS to go to, not a prefix", "route get ADDRESS --from SRC")
	}
	src, err := netip.ParseAddr(fl.from)
	if err != nil || src.Unmap().Is4() != p.Addr().Is4() {
		return hrw.Flow{}, false, maps.Invalid("--from", fl.from, "is not an address of the destination's family", "an IPv4 source for an IPv4 ADDRESS, IPv6 for IPv6")
	}
	f := hrw.Flow{Src: src.Unmap(), Dst: p.Addr()}
	proto, ok := ipProtos[fl.proto]
	if !ok {
		n, ierr := maps.ParseUint("--ip-proto", fl.proto, 0, 255)
		if ierr != nil {
			ierr.Accepted = "tcp|udp|sctp|udplite|icmp|icmpv6|0..255"
			return f, false, ierr
		}
		proto = uint8(n)
	}
	f.Proto = proto
	sport, err1 := maps.ParseUint("--sport", fl.sport, 0, 65535)
	dport, err2 := maps.ParseUint("--dport", fl.dport, 0, 65535)
	if err1 != nil {
		return f, false, err1
	}
	if err2 != nil {
		return f, false, err2
	}
	switch proto {
	case 6, 17, 132, 136:
		f.HasPorts = true
		f.Ports = [4]byte{byte(sport >> 8), byte(sport), byte(dport >> 8), byte(dport)}
	}
	return f, true, nil
}

// flowChoice is the nexthop a flow takes (Index -1: none).
type flowChoice struct {
	Flow  hrw.Flow
	Index int
	Probe bool
}

func (a *app) routeDelCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "del PREFIX",
		Short:   "Delete the route of exactly PREFIX (exit 3 if there is none)",
		Example: "  tunmux route del 10.200.0.0/16",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := maps.ParsePrefix("PREFIX", args[0])
			if err != nil {
				return err
			}
			doc := &apply.Document{Route: &apply.RouteSection{Routes: one(apply.RouteArgs{Prefix: args[0]})}}
			return a.write(dataplane.RouteDataplane, doc, apply.Remove, routeNames, nil, nil, func() any { return textResult{Message: "deleted route " + p.String(), Prefix: p.String()} })
		},
	}
}

func (a *app) routeListCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List every route with its nexthops and their peers' health",
		Example: "  tunmux route list\n  tunmux route list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				rs   []maps.Route
				down func(netip.Addr) bool
			)
			err := read(a, dataplane.OpenRoute, func(r *dataplane.Route) error {
				var err error
				if rs, err = r.State.Routes(); err != nil {
					return err
				}
				down, err = r.Health()
				return err
			})
			if err != nil {
				return err
			}
			if err := dataplane.NameDevs(a.netns, rs); err != nil {
				return err
			}
			return a.printer.Print(routeTable{routes: rs, down: down})
		},
	}
}

// routeTable prints routes a nexthop per row.
type routeTable struct {
	routes []maps.Route
	down   func(netip.Addr) bool
	one    bool        // a single route: JSON is an object, not a list
	flow   *flowChoice // route get --from: the nexthop the flow takes
}

// routeMACColumn is the inner-dst-mac column, shown with -o wide (and by
// route get -o wide) so that the default table fits 80 columns.
const routeMACColumn = 6

func (t routeTable) Header() []string { return withoutColumn(t.WideHeader(), routeMACColumn) }

func (t routeTable) Rows() [][]string {
	rows := t.WideRows()
	for i, r := range rows {
		rows[i] = withoutColumn(r, routeMACColumn)
	}
	return rows
}

// WideHeader is -o wide's: the inner destination MAC too.
func (t routeTable) WideHeader() []string {
	h := []string{"prefix", "remote", "vni", "weight", "proto", "dev", "inner-dst-mac", "health"}
	if t.flow != nil {
		h = append(h, "flow")
	}
	return h
}

// withoutColumn returns row without its column i.
func withoutColumn(row []string, i int) []string {
	return append(row[:i:i], row[i+1:]...)
}

// WideRows is -o wide's: a nexthop per row, every column.
func (t routeTable) WideRows() [][]string {
	var rows [][]string
	for _, r := range t.routes {
		for i, n := range r.Nexthops {
			prefix := ""
			if i == 0 {
				prefix = r.Prefix.String()
			}
			vni, mac := "-", "-"
			if n.Proto.Tunnelled() {
				vni, mac = fmt.Sprint(n.VNI), n.MAC.String()
			}
			health := "up"
			if t.down(n.Remote) {
				health = "down"
			}
			row := []string{prefix, n.Remote.String(), vni, fmt.Sprint(n.Weight), n.Proto.String(), n.Dev, mac, health}
			if t.flow != nil {
				mark := ""
				if t.flow.Index == i {
					mark = "<- takes"
					if t.flow.Probe {
						mark += " (probe)"
					}
				}
				row = append(row, mark)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

func (t routeTable) MarshalJSON() ([]byte, error) {
	out := make([]maps.RouteJSON, 0, len(t.routes))
	for _, r := range t.routes {
		out = append(out, r.JSON(t.down))
	}
	if t.one && len(out) == 1 {
		if t.flow != nil {
			var idx *int
			if t.flow.Index >= 0 {
				idx = &t.flow.Index
			}
			return jsonOf(struct {
				maps.RouteJSON
				FlowNexthop *int `json:"flow_nexthop"`
				FlowProbe   bool `json:"flow_probe"`
			}{out[0], idx, t.flow.Probe})
		}
		return jsonOf(out[0])
	}
	return jsonOf(out)
}

// textResult is a one-line result: its message for people, its fields for JSON.
type textResult struct {
	Message string `json:"-"`
	Prefix  string `json:"prefix,omitempty"`
	Name    string `json:"name,omitempty"`
	Kind    string `json:"kind,omitempty"`
}

func (r textResult) Text() string { return r.Message }

func (a *app) routeDevCreateCommand() *cobra.Command {
	var (
		topts                   dataplane.TunnelDevOptions
		routes                  bool
		addresses, kernelRoutes []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME (--proto vxlan|geneve [--local ADDR] [--port N] | --routes) [--mtu M]",
		Short: "Create the flow-based tunnel device, or the device routes point at",
		Long: `With --proto, create NAME as a flow-based (external) tunnel device: it sends
each packet to the remote and VNI the route program sets, and receives every VNI
on its port (4789 for vxlan, 6081 for geneve). It becomes the default device of
that protocol's nexthops. --local is this node's underlay address: the device's
MAC is derived from it (02:a:b:c:d:ff from its last 4 bytes), which is the MAC
its peers address inner frames to by default. MTU: that of the interface holding
--local (or 1500) less 70, room for an IPv6 or IPv4 underlay.

A kernel built without the geneve device type refuses --proto geneve; tunmux
says so (exit 1).

With --routes, create NAME as the device overlay routes point at (a TUN device
rather than a dummy one, which not every kernel builds): a persistent TUN device, up, with checksum and TSO offloads,
sized to the tunnel device's MTU. Then attach the route program to it:
  tunmux attach route NAME
  ip addr add 10.100.0.1/32 dev vxlan0     # the src the routes name
  ip route add 10.200.0.0/16 dev NAME src 10.100.0.1
Packets routed to it that no route matches (or whose nexthops are all down) go
on into the TUN device, which has no reader and drops them (counted).

--address and --kernel-route configure the device tunmux creates: they are part
of its state (export writes them, and a restore gives them back), since the
device's addresses and the kernel's routes through it go with it when
'unload --all' deletes it:
  tunmux route dev create vxlan0 --proto vxlan --local 192.168.50.1 --address 10.100.0.1/32
  tunmux route dev create rt0 --routes --kernel-route "10.200.0.0/16 src 10.100.0.1"`,
		Example: "  tunmux route dev create vxlan0 --proto vxlan --local 192.168.50.1\n  tunmux route dev create rt0 --routes",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topts.Netns = a.netns
			if routes == (topts.Proto != "") {
				return maps.Invalid("--proto", topts.Proto, "give either --proto (a tunnel device) or --routes (the device routes point at)", "--proto vxlan|geneve, or --routes")
			}
			if routes && (topts.Local != "" || topts.Port != "") {
				return maps.Invalid("--routes", "", "takes no --local or --port (they are tunnel device settings)", "--routes [--mtu M]")
			}
			dev := apply.DeviceArgs{Name: args[0], Proto: topts.Proto, Local: topts.Local, Port: topts.Port, MTU: topts.MTU,
				Address: addresses, KernelRoute: kernelRoutes}
			if routes {
				dev.Routes = "true"
			}
			doc := &apply.Document{Route: &apply.RouteSection{Devices: one(dev)}}
			res, err := a.edit(dataplane.RouteDataplane, doc, apply.Create, devNames, nil, nil)
			if err != nil {
				return err
			}
			if made := res.Done.Devices.Routes; len(made) == 1 {
				return a.printer.Print(devView{Name: made[0].Name, Kind: "routes", Ifindex: uint32(made[0].Index), MTU: made[0].MTU})
			}
			return a.printer.Print(tunnelDevView(res.Done.Devices.Tunnel[0], a.netns))
		},
	}
	cmd.Flags().StringVar(&topts.Proto, "proto", "", "a tunnel device: vxlan|geneve")
	cmd.Flags().StringVar(&topts.Local, "local", "", "tunnel device: this node's underlay address; the device MAC follows from it")
	cmd.Flags().StringVar(&topts.Port, "port", "", "tunnel device: UDP port (default 4789 vxlan, 6081 geneve)")
	cmd.Flags().StringVar(&topts.MTU, "mtu", "", "the MTU (default: see above)")
	cmd.Flags().BoolVar(&routes, "routes", false, "create the device overlay routes point at (a TUN device)")
	deviceConfigFlags(cmd, &addresses, &kernelRoutes)
	return cmd
}

// devView is one route dataplane device.
type devView struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"` // tunnel or routes
	Proto   *string `json:"proto"`
	Ifindex uint32  `json:"ifindex"`
	MTU     int     `json:"mtu"`
	MAC     *string `json:"mac"`
	Local   *string `json:"local"`
}

func tunnelDevView(d maps.TunnelDev, netnsName string) devView {
	proto, mac := d.Proto.String(), d.MAC.String()
	v := devView{Name: d.Name, Kind: "tunnel", Proto: &proto, Ifindex: d.Ifindex, MAC: &mac}
	if d.Local.IsValid() {
		l := d.Local.String()
		v.Local = &l
	}
	_ = netdev.Do(netnsName, func() error {
		if ifc, err := netdev.ByIndex(int(d.Ifindex)); err == nil {
			v.MTU = ifc.MTU
		}
		return nil
	})
	return v
}

func (v devView) Text() string {
	if v.Kind == "routes" {
		return fmt.Sprintf("created %s (ifindex %d, mtu %d): a TUN device for overlay routes; next: tunmux attach route %s", v.Name, v.Ifindex, v.MTU, v.Name)
	}
	s := fmt.Sprintf("created %s device %s (ifindex %d, mtu %d, mac %s)", *v.Proto, v.Name, v.Ifindex, v.MTU, *v.MAC)
	if v.Local != nil {
		s += ", mac derived from " + *v.Local
	}
	return s
}

func (a *app) routeDevDelCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "del NAME",
		Short: "Delete a tunnel device no route uses, or a routes device (detached first)",
		Long: `Delete NAME: a tunnel device 'route dev create --proto' made (refused while a
route has a nexthop through it), or a TUN device running the route program (the
program is detached, then the device deleted).`,
		Example: "  tunmux route dev del rt0\n  tunmux route dev del vxlan0",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc := &apply.Document{Route: &apply.RouteSection{Devices: one(apply.DeviceArgs{Name: args[0]})}}
			done, err := a.edit(dataplane.RouteDataplane, doc, apply.Remove, devNames, nil, nil)
			if err != nil {
				return err
			}
			res := done.Done.Devices.Deleted[0]
			return a.printer.Print(textResult{Message: fmt.Sprintf("deleted %s device %s", res.Kind, res.Name), Name: res.Name, Kind: res.Kind})
		},
	}
}

func (a *app) routeDevListCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the registered tunnel devices and where the route program is attached",
		Example: "  tunmux route dev list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := devTable{}
			err := read(a, dataplane.OpenRoute, func(r *dataplane.Route) error {
				devs, err := r.State.TunnelDevs()
				if err != nil {
					return err
				}
				for _, d := range devs {
					out = append(out, tunnelDevView(d, a.netns))
				}
				atts, err := maps.ListAttachments(r.Maps["attachments"])
				if err != nil {
					return err
				}
				for _, at := range atts {
					v := devView{Name: at.Ifname, Kind: "routes", Ifindex: at.Ifindex}
					_ = netdev.Do(a.netns, func() error {
						if ifc, err := netdev.ByIndex(int(at.Ifindex)); err == nil {
							v.MTU = ifc.MTU
							if ifc.L2 {
								v.Kind = "underlay"
							}
						}
						return nil
					})
					out = append(out, v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			return a.printer.Print(out)
		},
	}
}

type devTable []devView

func (t devTable) Header() []string {
	return []string{"name", "kind", "proto", "ifindex", "mtu", "mac", "mac-from"}
}

func (t devTable) Rows() [][]string {
	rows := make([][]string, 0, len(t))
	str := func(s *string) string {
		if s == nil {
			return "-"
		}
		return *s
	}
	for _, v := range t {
		rows = append(rows, []string{v.Name, v.Kind, str(v.Proto), fmt.Sprint(v.Ifindex), fmt.Sprint(v.MTU), str(v.MAC), str(v.Local)})
	}
	return rows
}

func (a *app) peerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peer",
		Short: "Set, show and clear the health of route peers",
		Long: `A peer is a nexthop's remote underlay address. Its health lives in one entry
keyed by that address, so every nexthop to it, in every route, flips with one
update; a peer without an entry is up. Flows of a peer marked down move to the
route's other nexthops (the others' flows stay where they are); a route whose
nexthops are all down passes its packets on as the kernel routed them (counted).
UDP traffic to a peer's --probe-port still reaches it while it is down, so a
health checker sees it come back.`,
		Example: `  tunmux peer set 192.168.50.3 --health down --probe-port 9997
  tunmux peer list
  tunmux peer set 192.168.50.3 --health up`,
	}
	cmd.AddCommand(a.peerSetCommand(), a.peerGetCommand(), a.peerDelCommand(), a.peerListCommand())
	return cmd
}

func (a *app) peerSetCommand() *cobra.Command {
	var opts struct{ Health, ProbePort string }
	cmd := &cobra.Command{
		Use:     "set REMOTE --health up|down [--probe-port N]",
		Short:   "Mark a peer up or down (and set its probe port)",
		Example: "  tunmux peer set 192.168.50.3 --health down\n  tunmux peer set 192.168.50.3 --health down --probe-port 9997\n  tunmux peer set fd50::3 --health up",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rep dataplane.PeerReport
			doc := &apply.Document{Route: &apply.RouteSection{Peers: one(apply.PeerArgs{Remote: args[0], Health: opts.Health, ProbePort: opts.ProbePort})}}
			return a.write(dataplane.RouteDataplane, doc, apply.Replace, peerNames, nil, func(*maps.Root) error {
				addr, err := maps.ParsePeerAddr("REMOTE", args[0])
				if err != nil {
					return err
				}
				return read(a, dataplane.OpenRoute, func(r *dataplane.Route) error {
					rep, err = r.PeerReport(addr)
					return err
				})
			}, func() any { return peerView(rep) })
		},
	}
	cmd.Flags().StringVar(&opts.Health, "health", "", "up|down")
	cmd.Flags().StringVar(&opts.ProbePort, "probe-port", "", "UDP port of health probes, which reach the peer even while it is down (0: none)")
	return cmd
}

func (a *app) peerGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "get REMOTE",
		Short:   "Show a peer's health entry (exit 3 if it has none: it counts as up)",
		Example: "  tunmux peer get 192.168.50.3 -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := maps.ParsePeerAddr("REMOTE", args[0])
			if err != nil {
				return err
			}
			var rep dataplane.PeerReport
			err = read(a, dataplane.OpenRoute, func(r *dataplane.Route) error {
				if _, err := r.State.Peer(addr); err != nil {
					return err
				}
				var err error
				rep, err = r.PeerReport(addr)
				return err
			})
			if err != nil {
				return err
			}
			return a.printer.Print(peerView(rep))
		},
	}
}

func (a *app) peerDelCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "del REMOTE",
		Short:   "Remove a peer's health entry: it counts as up again (exit 3 if it has none)",
		Example: "  tunmux peer del 192.168.50.3",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := maps.ParsePeerAddr("REMOTE", args[0])
			if err != nil {
				return err
			}
			doc := &apply.Document{Route: &apply.RouteSection{Peers: one(apply.PeerArgs{Remote: args[0]})}}
			return a.write(dataplane.RouteDataplane, doc, apply.Remove, peerNames, nil, nil, func() any {
				return textResult{Message: "removed the health entry of peer " + addr.String() + " (it counts as up)", Name: addr.String()}
			})
		},
	}
}

func (a *app) peerListCommand() *cobra.Command {
	return listing(a, &cobra.Command{Use: "list", Short: "List peers: those with a health entry and those routes reach", Example: "  tunmux peer list -o json"},
		dataplane.OpenRoute, (*dataplane.Route).PeerReports, func(p []dataplane.PeerReport) peerTable { return p })
}

// peerTable prints peers.
type peerTable []dataplane.PeerReport

func (t peerTable) Header() []string {
	return []string{"remote", "health", "probe-port", "entry", "routes"}
}

func (t peerTable) Rows() [][]string {
	rows := make([][]string, 0, len(t))
	for _, p := range t {
		port := "-"
		if p.ProbePort != 0 {
			port = fmt.Sprint(p.ProbePort)
		}
		entry := "none (up)"
		if p.Set {
			entry = "set"
		}
		rows = append(rows, []string{p.Remote.String(), p.Health(), port, entry, fmt.Sprint(p.Routes)})
	}
	return rows
}

func (t peerTable) MarshalJSON() ([]byte, error) {
	out := make([]maps.PeerJSON, 0, len(t))
	for _, p := range t {
		out = append(out, p.JSON())
	}
	return jsonOf(out)
}

// peerView prints one peer: a table of one row, a JSON object.
type peerView dataplane.PeerReport

func (v peerView) Header() []string { return peerTable{}.Header() }

func (v peerView) Rows() [][]string { return peerTable{dataplane.PeerReport(v)}.Rows() }

func (v peerView) MarshalJSON() ([]byte, error) { return jsonOf(dataplane.PeerReport(v).JSON()) }

// readRoute reads the route find finds, with its peers' health and its
// nexthops' device names, as a table of one route; then, if given, more.
func (a *app) readRoute(find func(*dataplane.Route) (maps.Route, error), more func(*dataplane.Route, maps.Route) error) (routeTable, error) {
	var t routeTable
	err := read(a, dataplane.OpenRoute, func(r *dataplane.Route) error {
		rt, err := find(r)
		if err != nil {
			return err
		}
		if more != nil {
			if err := more(r, rt); err != nil {
				return err
			}
		}
		t.routes = []maps.Route{rt}
		t.down, err = r.Health()
		return err
	})
	if err != nil {
		return t, err
	}
	return t, dataplane.NameDevs(a.netns, t.routes)
}

// What errors call the fields the route commands take as arguments.
var (
	routeNames = map[string]string{"prefix": "PREFIX"}
	devNames   = map[string]string{"name": "NAME"}
	peerNames  = map[string]string{"remote": "REMOTE"}
)

// deviceConfigFlags adds --address and --kernel-route, which configure a
// device tunmux creates.
func deviceConfigFlags(cmd *cobra.Command, addresses, routes *[]string) {
	cmd.Flags().StringArrayVar(addresses, "address", nil, "an address to give the device, with its prefix length: 10.0.0.1/24 (repeat)")
	cmd.Flags().StringArrayVar(routes, "kernel-route", nil, "a kernel route through the device: \"PREFIX [via GATEWAY] [src ADDRESS]\" (repeat)")
}
