package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
)

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
		Use:   "get IN",
		Short: "Show the slot keyed by interface IN (exit 3 if there is none)",
		Args:  cobra.ExactArgs(1),
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
		Use:   "del IN",
		Short: "Delete the slot keyed by interface IN (fails while a tunnel holds it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var slot maps.Slot
			doc := &apply.Document{Encap: &apply.EncapSection{Devmap: one(apply.SlotArgs{In: args[0]})}}
			return a.write(dataplane.EncapDataplane, doc, apply.Remove, slotNames, a.getSlot(args[0], &slot), nil, func() any { return deletedSlot(slot) })
		},
	}
}

func (a *app) devmapListCommand() *cobra.Command {
	return listing(a, &cobra.Command{Use: "list", Short: "List every redirect slot"}, dataplane.OpenEncap,
		func(e *dataplane.Encap) ([]maps.Slot, error) {
			slots, err := e.State.ListSlots()
			dataplane.ObserveSlots(slots)
			return slots, err
		}, func(s []maps.Slot) slotTable { return s })
}

type slotTable []maps.Slot

func (t slotTable) Header() []string {
	return []string{"in", "out", "kind", "ready", "peer", "tunnels"}
}

func (t slotTable) Rows() [][]string {
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
func (s slotView) Rows() [][]string { return slotTable{maps.Slot(s)}.Rows() }

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
