package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
)

func (a *app) muxCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mux",
		Short: "Multiplex L3 interfaces through one carrier by a DSCP label",
		Long: `The mux dataplane carries up to 63 L3 interfaces (members) through one interface
(the carrier) with zero bytes of overhead: a member's packets get its label
(1..63) in the DSCP field and leave through the carrier; on the far side the
label selects the member, the DSCP field goes back to 0 and the packet arrives
on that member. DSCP 0 is the carrier's own traffic and passes untouched
(docs/mux.md).`,
		Example: `  tunmux load mux
  tunmux mux carrier set wg0                  # or an Ethernet carrier: a veth, a NIC
  tunmux mux member add m1 --label 1 --create # a TUN device sized to the carrier
  tunmux mux member list`,
	}
	carrier := &cobra.Command{
		Use:     "carrier",
		Short:   "Set or show the carrier",
		Example: "  tunmux mux carrier set wg0\n  tunmux mux carrier show -o json",
	}
	carrier.AddCommand(a.muxCarrierSetCommand(), a.muxCarrierShowCommand())
	member := &cobra.Command{
		Use:     "member",
		Short:   "Add, delete and list members",
		Example: "  tunmux mux member add m2 --label 2 --create --mtu 1420\n  tunmux mux member list\n  tunmux mux member del m2",
	}
	member.AddCommand(a.muxMemberAddCommand(), a.muxMemberDelCommand(), a.muxMemberListCommand())
	cmd.AddCommand(carrier, member)
	return cmd
}

func (a *app) muxCarrierSetCommand() *cobra.Command {
	var opts dataplane.CarrierOptions
	cmd := &cobra.Command{
		Use:   "set IFACE",
		Short: "Make IFACE the carrier (an L3 device such as wireguard or tun, or an Ethernet device)",
		Long: `Make IFACE the carrier. The kind is read from the link type: an L3 device (tun,
wireguard: no Ethernet header) or an Ethernet device (a veth, a NIC), whose frames
need the far end's MAC: --peer-mac, or, for a veth, its peer's. The carrier's
ingress program is attached (and removed from a previous carrier).`,
		Example: "  tunmux mux carrier set wg0\n  tunmux mux carrier set eth1 --peer-mac 02:00:00:00:00:02 --on-miss pass",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c maps.Carrier
			carrier := &apply.Entry[apply.CarrierArgs]{Args: apply.CarrierArgs{Iface: args[0], OnMiss: opts.OnMiss, PeerMAC: opts.PeerMAC}}
			doc := &apply.Document{Mux: &apply.MuxSection{Carrier: carrier}}
			return a.write(dataplane.MuxDataplane, doc, apply.Replace, map[string]string{"iface": "IFACE"}, nil, func(*maps.Root) error {
				return read(a, dataplane.OpenMux, func(m *dataplane.Mux) error {
					var err error
					c, _, err = m.State.Carrier()
					return err
				})
			}, func() any { return carrierView(c) })
		},
	}
	cmd.Flags().StringVar(&opts.OnMiss, "on-miss", "drop", "a label no member owns: drop|pass (counted either way)")
	cmd.Flags().StringVar(&opts.PeerMAC, "peer-mac", "", "Ethernet carrier: the MAC of its far end (default: a veth's peer)")
	return cmd
}

func (a *app) muxCarrierShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "show",
		Short:   "Show the carrier (exit 3 if none is set)",
		Example: "  tunmux mux carrier show\n  tunmux mux carrier show -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				c  maps.Carrier
				ok bool
			)
			err := read(a, dataplane.OpenMux, func(m *dataplane.Mux) error {
				var err error
				c, ok, err = m.State.Carrier()
				return err
			})
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("no carrier is set (tunmux mux carrier set IFACE): %w", maps.ErrNotFound)
			}
			return a.printer.Print(carrierView(c))
		},
	}
}

type carrierView maps.Carrier

func (c carrierView) Text() string {
	kind := "L3, no Ethernet header"
	if c.L2 {
		kind = "Ethernet, far end " + maps.Carrier(c).PeerMAC()
	}
	// Two lines, so that each fits 80 columns.
	return fmt.Sprintf("carrier %s (ifindex %d, %s)\n  a label no member owns: %s", c.Name, c.Ifindex, kind, c.OnMiss)
}

func (c carrierView) MarshalJSON() ([]byte, error) {
	return jsonOf(struct {
		maps.Carrier
		PeerMAC string `json:"peer_mac"`
	}{maps.Carrier(c), maps.Carrier(c).PeerMAC()})
}

func (a *app) muxMemberAddCommand() *cobra.Command {
	var (
		opts                    dataplane.MemberOptions
		addresses, kernelRoutes []string
	)
	cmd := &cobra.Command{
		Use:   "add NAME --label N [--create [--mtu M]]",
		Short: "Make NAME a member under label N (1..63)",
		Long: `Make NAME a member: its packets leave through the carrier with label N (1..63)
in their DSCP field, and packets arriving on the carrier with label N arrive on
it. With --create tunmux creates NAME, a persistent TUN device sized to the
carrier's MTU (or --mtu) and taking the carrier's checksum and TSO offloads,
and brings it up; without it, NAME must exist. A label
or an interface already used is an error naming the member that has it.
With --create, --address and --kernel-route configure the device: they are part
of the member (export writes them; a restore gives them back).`,
		Example: "  tunmux mux member add m1 --label 1 --create --address 10.11.1.1/24\n  tunmux mux member add wg-site2 --label 2",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var mem maps.Member
			member := apply.MemberArgs{Name: args[0], Label: opts.Label, MTU: opts.MTU, Address: addresses, KernelRoute: kernelRoutes}
			if opts.Create {
				member.Create = "true"
			}
			doc := &apply.Document{Mux: &apply.MuxSection{Members: one(member)}}
			return a.write(dataplane.MuxDataplane, doc, apply.Create, memberNames, nil, a.getMember(args[0], &mem), func() any { return memberTable{mem} })
		},
	}
	cmd.Flags().StringVar(&opts.Label, "label", "", "the member's label: 1..63 (0 is the carrier's own traffic)")
	cmd.Flags().BoolVar(&opts.Create, "create", false, "create NAME as a persistent TUN device and bring it up")
	cmd.Flags().StringVar(&opts.MTU, "mtu", "", "with --create: the MTU (default: the carrier's)")
	deviceConfigFlags(cmd, &addresses, &kernelRoutes)
	return cmd
}

func (a *app) muxMemberDelCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "del NAME",
		Short:   "Remove a member (a TUN device tunmux created is deleted; exit 3 if there is none)",
		Example: "  tunmux mux member del m1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var mem maps.Member
			doc := &apply.Document{Mux: &apply.MuxSection{Members: one(apply.MemberArgs{Name: args[0]})}}
			return a.write(dataplane.MuxDataplane, doc, apply.Remove, memberNames, a.getMember(args[0], &mem), nil, func() any { return deletedMember(mem) })
		},
	}
}

func (a *app) muxMemberListCommand() *cobra.Command {
	return listing(a, &cobra.Command{Use: "list", Short: "List the members with packets and bytes each way", Example: "  tunmux mux member list -o json"},
		dataplane.OpenMux, func(m *dataplane.Mux) ([]maps.Member, error) { return m.State.Members() },
		func(m []maps.Member) memberTable { return m })
}

type memberTable []maps.Member

func (t memberTable) Header() []string {
	return []string{"name", "label", "ifindex", "kind", "created", "tx-pkts", "tx-bytes", "rx-pkts", "rx-bytes"}
}

func (t memberTable) Rows() [][]string {
	rows := make([][]string, 0, len(t))
	for _, m := range t {
		kind := "l3"
		if m.L2 {
			kind = "ethernet"
		}
		c := m.Counters
		rows = append(rows, []string{m.Name, fmt.Sprint(m.Label), fmt.Sprint(m.Ifindex), kind, fmt.Sprint(m.Created),
			fmt.Sprint(c.TxPackets), fmt.Sprint(c.TxBytes), fmt.Sprint(c.RxPackets), fmt.Sprint(c.RxBytes)})
	}
	return rows
}

type deletedMember maps.Member

func (m deletedMember) Text() string {
	s := fmt.Sprintf("removed member %s (label %d)", m.Name, m.Label)
	if m.Created {
		s += " and deleted the TUN device tunmux had created"
	}
	return s
}

// memberNames are what errors call a member's name: the argument of mux
// member add NAME.
var memberNames = map[string]string{"name": "NAME"}

// getMember returns a read of member name into mem.
func (a *app) getMember(name string, mem *maps.Member) func(*maps.Root) error {
	return func(*maps.Root) error {
		return read(a, dataplane.OpenMux, func(m *dataplane.Mux) error {
			var err error
			*mem, err = m.State.Member(name)
			return err
		})
	}
}
