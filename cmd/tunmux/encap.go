package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
)

func (a *app) tunnelCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tunnel",
		Short: "Add, update, get, delete and list encap tunnels",
		Long: `Tunnels of the encap dataplane. A tunnel is keyed by the inner pair (two IPv4
or two IPv6 addresses) that the local workload sends (--inner-src, --inner-dst)
and serves both directions:
  encap: frames from inner-src to inner-dst (IP, and ARP or IPv6 neighbour
         solicitations between the two) get the tunnel's headers and leave
         on --underlay (IPv4 or IPv6 underlay, either with either);
  decap: frames from inner-dst to inner-src that arrive with the tunnel's
         protocol, port, VNI or VLAN id and outer destination = --outer-src are
         stripped and leave on --overlay.
Each tunnel holds a redirect slot for its --underlay and --overlay (see
'tunmux devmap list'); a slot lives as long as a tunnel or 'devmap add' holds it.`,
		Example: `  tunmux tunnel add --inner-src 10.0.0.1 --inner-dst 10.0.0.2 --proto vlan --vlan-id 100 \
      --underlay eth0 --overlay veth-wl
  tunmux tunnel list
  tunmux tunnel update --inner-src 10.0.0.1 --inner-dst 10.0.0.2 --vlan-id 200
  tunmux tunnel del --inner-src 10.0.0.1 --inner-dst 10.0.0.2`,
	}
	cmd.AddCommand(a.tunnelPutCommand("add"), a.tunnelPutCommand("update"),
		a.tunnelKeyCommand("get"), a.tunnelKeyCommand("del"), a.tunnelListCommand())
	return cmd
}

// keyFlags adds --inner-src and --inner-dst.
func keyFlags(fs *pflag.FlagSet, args *maps.TunnelArgs) {
	fs.StringVar(&args.InnerSrc, "inner-src", "", "inner source (IPv4 or IPv6), as the local workload sends it (key)")
	fs.StringVar(&args.InnerDst, "inner-dst", "", "inner destination, of the same family (key)")
}

func (a *app) tunnelPutCommand(verb string) *cobra.Command {
	var (
		args    maps.TunnelArgs
		replace bool
	)
	cmd := &cobra.Command{
		Use:  verb + " --inner-src IP --inner-dst IP [flags]",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode := apply.Create
			switch {
			case verb == "update":
				mode = apply.Modify
			case replace:
				mode = apply.Replace
			}
			var t maps.Tunnel
			doc := &apply.Document{Encap: &apply.EncapSection{Tunnels: one(args)}}
			return a.write(dataplane.EncapDataplane, doc, mode, nil, nil, func(root *maps.Root) error {
				key, err := maps.ParseTunnelKey(args.InnerSrc, args.InnerDst)
				if err != nil {
					return err
				}
				return read(a, dataplane.OpenEncap, func(e *dataplane.Encap) error {
					t, err = e.State.GetTunnel(key)
					return err
				})
			}, func() any { return tunnelDetail(t) })
		},
	}
	if verb == "add" {
		cmd.Short = "Add a tunnel (fails if its key exists, unless --replace)"
		cmd.Long = `Add a tunnel. It encapsulates frames from --inner-src to --inner-dst onto
--underlay and decapsulates the answers onto --overlay (see 'tunmux tunnel
--help'). geneve and vxlan need --vni, --outer-src, --outer-dst and --dst-mac;
vlan needs --vlan-id and takes no outer flags. Redirect slots for --underlay and
--overlay are taken first; a veth target is made ready (GRO on at its peer).
Every problem with the flags is reported at once (exit 2), and nothing changes.`
		cmd.Example = `  # GENEVE, VNI 100, from this node (192.168.1.1) to its peer (192.168.1.2)
  tunmux tunnel add --inner-src 10.0.0.1 --inner-dst 10.0.0.2 --proto geneve --vni 100 \
      --outer-src 192.168.1.1 --outer-dst 192.168.1.2 --dst-mac 02:00:00:00:00:02 \
      --underlay eth0 --overlay veth-wl
  # 802.1Q tag 100: no outer IP or MAC flags
  tunmux tunnel add --inner-src 10.0.0.1 --inner-dst 10.0.0.2 --proto vlan --vlan-id 100 \
      --underlay eth0 --overlay veth-wl
  # IPv6 workloads over an IPv6 underlay, with one GENEVE option
  tunmux tunnel add --inner-src fd00::1 --inner-dst fd00::2 --proto geneve --vni 100 \
      --outer-src fd01::1 --outer-dst fd01::2 --dst-mac 02:00:00:00:00:02 \
      --geneve-opt 0102:03:deadbeef --underlay eth0 --overlay veth-wl`
		cmd.Flags().BoolVar(&replace, "replace", false, "replace the tunnel if its key exists (the flags describe the whole tunnel)")
	} else {
		cmd.Short = "Change fields of an existing tunnel (fails if its key is missing)"
		cmd.Long = `Change an existing tunnel: the flags given replace those fields, the others
are kept. Changing --proto to vlan drops the outer fields; changing it from vlan
to geneve or vxlan needs --vni, --outer-src, --outer-dst and --dst-mac.`
		cmd.Example = `  tunmux tunnel update --inner-src 10.0.0.1 --inner-dst 10.0.0.2 --vni 200`
	}
	fs := cmd.Flags()
	keyFlags(fs, &args)
	fs.StringVar(&args.Proto, "proto", "", "tunnel protocol: geneve|vxlan|vlan")
	fs.StringVar(&args.VNI, "vni", "", "virtual network identifier, geneve and vxlan: 0..16777215")
	fs.StringVar(&args.VlanID, "vlan-id", "", "802.1Q VLAN id, vlan: 1..4094")
	fs.StringVar(&args.OuterSrc, "outer-src", "", "outer source, IPv4 or IPv6: this node's underlay address (geneve, vxlan)")
	fs.StringVar(&args.OuterDst, "outer-dst", "", "outer destination, of the same family: the peer node's underlay address (geneve, vxlan)")
	fs.StringVar(&args.SrcMAC, "src-mac", "", "outer Ethernet source (geneve, vxlan; default: the underlay's MAC)")
	fs.StringVar(&args.DstMAC, "dst-mac", "", "outer Ethernet destination: the next hop towards --outer-dst (geneve, vxlan)")
	fs.StringVar(&args.InnerDstMAC, "inner-dst-mac", "", "rewrite the inner destination MAC of unicast frames on encap (optional)")
	fs.StringVar(&args.SrcPort, "src-port", "", "outer UDP source port 1..65535 (geneve, vxlan; default: derived per inner flow, as the kernel's vxlan does)")
	fs.StringVar(&args.Underlay, "underlay", "", "interface where encapsulated frames leave")
	fs.StringVar(&args.Overlay, "overlay", "", "interface where decapsulated frames go")
	fs.Var(&geneveOptsFlag{&args.GeneveOpts}, "geneve-opt", "a GENEVE option CLASS:TYPE:HEXDATA (hex; repeat; TYPE bit 0x80 marks it critical; up to 64 bytes in all; 'none' clears them on update)")
	return cmd
}

// geneveOptsFlag collects --geneve-opt values; given at all, it is non-nil.
type geneveOptsFlag struct{ vals *[]string }

func (f *geneveOptsFlag) String() string { return strings.Join(*f.vals, " ") }
func (f *geneveOptsFlag) Set(v string) error {
	*f.vals = append(*f.vals, v)
	return nil
}
func (f *geneveOptsFlag) Type() string { return "stringArray" }

func (a *app) tunnelKeyCommand(verb string) *cobra.Command {
	var args maps.TunnelArgs
	cmd := &cobra.Command{
		Use:  verb + " --inner-src IP --inner-dst IP",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := maps.ParseTunnelKey(args.InnerSrc, args.InnerDst)
			if err != nil {
				return err
			}
			var t maps.Tunnel
			get := func(*maps.Root) error {
				return read(a, dataplane.OpenEncap, func(e *dataplane.Encap) error {
					var err error
					t, err = e.State.GetTunnel(key)
					return err
				})
			}
			if verb == "get" {
				if err := get(nil); err != nil {
					return err
				}
				return a.printer.Print(tunnelDetail(t))
			}
			doc := &apply.Document{Encap: &apply.EncapSection{Tunnels: one(args)}}
			return a.write(dataplane.EncapDataplane, doc, apply.Remove, nil, get, nil, func() any { return deletedTunnel(t) })
		},
	}
	if verb == "get" {
		cmd.Short = "Show one tunnel (exit 3 if there is none)"
		cmd.Example = `  tunmux tunnel get --inner-src 10.0.0.1 --inner-dst 10.0.0.2 -o json`
	} else {
		cmd.Short = "Delete a tunnel and release the slots only it held (exit 3 if there is none)"
		cmd.Example = `  tunmux tunnel del --inner-src 10.0.0.1 --inner-dst 10.0.0.2`
	}
	keyFlags(cmd.Flags(), &args)
	return cmd
}

func (a *app) tunnelListCommand() *cobra.Command {
	return listing(a, &cobra.Command{Use: "list", Short: "List every tunnel", Example: `  tunmux tunnel list -o json`}, dataplane.OpenEncap,
		func(e *dataplane.Encap) ([]maps.Tunnel, error) {
			list, err := e.State.ListTunnels()
			e.State.FillCounters(list)
			return list, err
		}, func(t []maps.Tunnel) tunnelTable { return t })
}

type tunnelTable []maps.Tunnel

// Header is the default table's, within 80 columns for IPv4 tunnels; -o
// wide and 'tunnel get' show every field.
func (t tunnelTable) Header() []string {
	return []string{"tunnel", "proto", "remote", "underlay", "overlay", "tx-pkts", "rx-pkts"}
}

func (t tunnelTable) Rows() [][]string {
	rows := make([][]string, 0, len(t))
	for _, x := range t {
		remote := "-"
		if x.Proto.UsesUDP() {
			remote = x.OuterDst.String()
		}
		rows = append(rows, []string{x.TunnelKey.String(), x.Proto.String() + " " + strings.Fields(x.ID())[1], remote,
			x.Underlay, x.Overlay, fmt.Sprint(x.Counters.TxPackets), fmt.Sprint(x.Counters.RxPackets)})
	}
	return rows
}

// WideHeader is -o wide's: every column.
func (t tunnelTable) WideHeader() []string {
	return []string{"inner-src", "inner-dst", "proto", "id", "outer-src", "outer-dst", "dst-mac", "src-port", "underlay", "overlay", "tx-pkts", "rx-pkts", "too-big"}
}

// WideRows are -o wide's rows.
func (t tunnelTable) WideRows() [][]string {
	rows := make([][]string, 0, len(t))
	for _, x := range t {
		outerSrc, outerDst, dstMAC := "-", "-", "-"
		if x.Proto.UsesUDP() {
			outerSrc, outerDst, dstMAC = x.OuterSrc.String(), x.OuterDst.String(), x.DstMAC.String()
		}
		c := x.Counters
		rows = append(rows, []string{x.InnerSrc.String(), x.InnerDst.String(), x.Proto.String(), x.ID(),
			outerSrc, outerDst, dstMAC, x.SrcPortString(), x.Underlay, x.Overlay,
			fmt.Sprint(c.TxPackets), fmt.Sprint(c.RxPackets), fmt.Sprint(c.DropTooBig)})
	}
	return rows
}

// tunnelDetail prints one tunnel as field: value lines.
type tunnelDetail maps.Tunnel

func (t tunnelDetail) MarshalJSON() ([]byte, error) { return maps.Tunnel(t).MarshalJSON() }

func (t tunnelDetail) Text() string {
	x := maps.Tunnel(t)
	lines := [][2]string{
		{"inner-src", x.InnerSrc.String()}, {"inner-dst", x.InnerDst.String()},
		{"proto", x.Proto.String()}, {"id", x.ID()},
	}
	if x.Proto.UsesUDP() {
		lines = append(lines, [][2]string{
			{"outer-src", x.OuterSrc.String()}, {"outer-dst", x.OuterDst.String()},
			{"src-mac", x.SrcMAC.String()}, {"dst-mac", x.DstMAC.String()}, {"src-port", x.SrcPortString()},
		}...)
	}
	for _, o := range x.GeneveOpts {
		lines = append(lines, [2]string{"geneve-opt", o.String()})
	}
	if x.InnerDstMAC != nil {
		lines = append(lines, [2]string{"inner-dst-mac", x.InnerDstMAC.String()})
	}
	c := x.Counters
	lines = append(lines,
		[2]string{"underlay", fmt.Sprintf("%s (ifindex %d)", x.Underlay, x.UnderlayIndex)},
		[2]string{"overlay", fmt.Sprintf("%s (ifindex %d)", x.Overlay, x.OverlayIndex)},
		[2]string{"tx", fmt.Sprintf("%d packets, %d bytes", c.TxPackets, c.TxBytes)},
		[2]string{"rx", fmt.Sprintf("%d packets, %d bytes", c.RxPackets, c.RxBytes)},
		[2]string{"too big", fmt.Sprintf("%d dropped", c.DropTooBig)})
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%-14s %s\n", l[0]+":", l[1])
	}
	return b.String()
}

type deletedTunnel maps.Tunnel

func (t deletedTunnel) MarshalJSON() ([]byte, error) { return maps.Tunnel(t).MarshalJSON() }

func (t deletedTunnel) Text() string {
	return fmt.Sprintf("deleted tunnel %s (%s %s)", maps.Tunnel(t).TunnelKey, maps.Tunnel(t).Proto, maps.Tunnel(t).ID())
}

func (a *app) devmapCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "devmap",
		Short: "Manage the encap dataplane's redirect slots",
		Long: `The encap dataplane's redirect map (a devmap hash, any ifindex). A slot keyed
by interface IN sends frames to interface OUT:
  - 'devmap add IN OUT' adds a plain slot, used by the redirect program
    ('tunmux attach redirect IN'): frames arriving on IN leave on OUT;
  - every tunnel holds an identity slot (IN = OUT) for its --underlay and
    --overlay, created with the first tunnel that needs it and released with
    the last. Deleting a slot that a tunnel holds fails and names the tunnel.
A slot's OUT must accept XDP-redirected frames; for a veth tunmux turns GRO on
at its peer, and READY says how the slot's target stands.`,
		Example: `  tunmux devmap add veth-wl eth0
  tunmux devmap list
  tunmux devmap del veth-wl`,
	}
	cmd.AddCommand(a.devmapAddCommand(), a.devmapGetCommand(), a.devmapDelCommand(), a.devmapListCommand())
	return cmd
}

func (a *app) devmapAddCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "add IN OUT",
		Short:   "Add a plain slot: frames arriving on IN leave on OUT",
		Example: "  tunmux devmap add veth-wl eth0\n  tunmux attach redirect veth-wl",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var slot maps.Slot
			doc := &apply.Document{Encap: &apply.EncapSection{Devmap: one(apply.SlotArgs{In: args[0], Out: args[1]})}}
			return a.write(dataplane.EncapDataplane, doc, apply.Create, slotNames, nil, a.getSlot(args[0], &slot), func() any { return slotView(slot) })
		},
	}
}

func (a *app) devmapGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "get IN",
		Short:   "Show the slot keyed by interface IN (exit 3 if there is none)",
		Example: "  tunmux devmap get veth-wl -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var slot maps.Slot
			if err := a.getSlot(args[0], &slot)(nil); err != nil {
				return err
			}
			return a.printer.Print(slotView(slot))
		},
	}
}

func (a *app) devmapDelCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "del IN",
		Short:   "Delete the slot keyed by interface IN (fails while a tunnel holds it)",
		Example: "  tunmux devmap del veth-wl",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var slot maps.Slot
			doc := &apply.Document{Encap: &apply.EncapSection{Devmap: one(apply.SlotArgs{In: args[0]})}}
			return a.write(dataplane.EncapDataplane, doc, apply.Remove, slotNames, a.getSlot(args[0], &slot), nil, func() any { return deletedSlot(slot) })
		},
	}
}

func (a *app) devmapListCommand() *cobra.Command {
	return listing(a, &cobra.Command{Use: "list", Short: "List every redirect slot", Example: "  tunmux devmap list -o wide"}, dataplane.OpenEncap,
		func(e *dataplane.Encap) ([]maps.Slot, error) {
			slots, err := e.State.ListSlots()
			dataplane.ObserveSlots(slots)
			return slots, err
		}, func(s []maps.Slot) slotTable { return s })
}

type slotTable []maps.Slot

// Header is the default table's: how many tunnels hold each slot (-o wide
// lists them), so that it fits 80 columns.
func (t slotTable) Header() []string {
	return []string{"in", "out", "kind", "ready", "peer", "tunnels"}
}

// Rows are the default table's rows.
func (t slotTable) Rows() [][]string {
	rows := t.WideRows()
	for i, s := range t {
		rows[i][5] = strconv.Itoa(len(s.Tunnels))
	}
	return rows
}

// WideHeader is -o wide's: the tunnels holding each slot, by key.
func (t slotTable) WideHeader() []string { return t.Header() }

// WideRows list the tunnels holding each slot.
func (t slotTable) WideRows() [][]string {
	rows := make([][]string, 0, len(t))
	for _, s := range t {
		kind := "tunnel"
		if s.Explicit {
			kind = "plain"
		}
		peer := s.Peer
		if peer == "" {
			peer = "-"
		}
		tunnels := strings.Join(s.Tunnels, " ")
		if tunnels == "" {
			tunnels = "-"
		}
		rows = append(rows, []string{
			fmt.Sprintf("%s (%d)", s.InName, s.In), fmt.Sprintf("%s (%d)", s.OutName, s.Out),
			kind, s.Readiness.String(), peer, tunnels,
		})
	}
	return rows
}

type slotView maps.Slot

func (s slotView) Header() []string { return slotTable{}.Header() }
func (s slotView) Rows() [][]string { return slotTable{maps.Slot(s)}.WideRows() }

type deletedSlot maps.Slot

func (s deletedSlot) Text() string {
	return fmt.Sprintf("deleted redirect slot %s -> %s", s.InName, s.OutName)
}

// slotNames are what errors call the fields of a devmap entry: the
// arguments of devmap add IN OUT.
var slotNames = map[string]string{"in": "IN", "out": "OUT"}

// getSlot returns a read of the slot keyed by interface in into slot.
func (a *app) getSlot(in string, slot *maps.Slot) func(*maps.Root) error {
	return func(*maps.Root) error {
		return read(a, dataplane.OpenEncap, func(e *dataplane.Encap) error {
			var err error
			*slot, err = e.GetSlot(in, a.netns)
			return err
		})
	}
}
