package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
)

func (a *app) xconnectCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "xconnect",
		Short: "Cross-connect interface pairs by XDP devmap redirect",
		Long: `The xconnect dataplane cross-connects pairs of interfaces: frames arriving on one
end leave on the other, untouched, by XDP devmap redirect (the xdp-xconnect
model). Any ifindex fits (a devmap hash). 'add' attaches the program to both ends
and 'del' detaches it; veth ends are made ready to receive redirected frames
(GRO on at their peers).`,
		Example: `  tunmux load xconnect
  tunmux xconnect add veth1 veth2
  tunmux xconnect list
  tunmux xconnect del veth1`,
	}
	cmd.AddCommand(a.xconnectAddCommand(), a.xconnectDelCommand(), a.xconnectListCommand())
	return cmd
}

func (a *app) xconnectAddCommand() *cobra.Command {
	var mode string
	cmd := &cobra.Command{
		Use:   "add IFACE_A IFACE_B",
		Short: "Cross-connect two interfaces (the same one twice: a self-connect)",
		Long: `Cross-connect IFACE_A and IFACE_B: frames arriving on either leave on the other.
An interface already in a pair is an error naming the pair.`,
		Example: "  tunmux xconnect add veth1 veth2\n  tunmux --netns lab xconnect add eth1 eth2 --mode generic",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p maps.Pair
			doc := &apply.Document{Xconnect: &apply.XconnectSection{Pairs: one(apply.PairArgs{A: args[0], B: args[1], Mode: mode})}}
			return a.write(dataplane.XconnectDataplane, doc, apply.Create, pairNames, nil, a.getPair(args[0], &p), func() any { return pairTable{p} })
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "", "XDP attach mode of both ends: native (the default) or generic")
	return cmd
}

func (a *app) xconnectDelCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "del IFACE",
		Short:   "Remove the pair IFACE is in and detach both ends (exit 3 if it is in none)",
		Example: "  tunmux xconnect del veth1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p maps.Pair
			doc := &apply.Document{Xconnect: &apply.XconnectSection{Pairs: one(apply.PairArgs{A: args[0]})}}
			return a.write(dataplane.XconnectDataplane, doc, apply.Remove, map[string]string{"a": "IFACE"}, a.getPair(args[0], &p), nil, func() any { return deletedPair(p) })
		},
	}
}

func (a *app) xconnectListCommand() *cobra.Command {
	return listing(a, &cobra.Command{Use: "list", Short: "List every pair with packets and bytes in each direction", Example: "  tunmux xconnect list -o json"},
		dataplane.OpenXconnect, func(x *dataplane.Xconnect) ([]maps.Pair, error) {
			pairs, err := x.State.ListPairs()
			dataplane.ObservePairs(pairs)
			return pairs, err
		},
		func(p []maps.Pair) pairTable { return p })
}

// pairTable is xconnect list: packets each way and whether both ends are
// ready by default; bytes and how each end is ready with -o wide.
type pairTable []maps.Pair

func (t pairTable) Header() []string {
	return []string{"a", "b", "a-to-b-pkts", "b-to-a-pkts", "ready"}
}

func (t pairTable) Rows() [][]string {
	rows := make([][]string, 0, len(t))
	for _, p := range t {
		ready := shortReadiness(p.B.Readiness.String())
		if a := shortReadiness(p.A.Readiness.String()); p.A.Ifindex != p.B.Ifindex && a != ready {
			ready = fmt.Sprintf("%s: %s, %s: %s", p.A.Name, a, p.B.Name, ready)
		}
		rows = append(rows, []string{pairEnd(p.A), pairEnd(p.B), fmt.Sprint(p.AtoB.Packets), fmt.Sprint(p.BtoA.Packets), ready})
	}
	return rows
}

// WideHeader is -o wide's: bytes each way, and why each end is ready.
func (t pairTable) WideHeader() []string {
	return []string{"a", "b", "a-to-b-pkts", "a-to-b-bytes", "b-to-a-pkts", "b-to-a-bytes", "ready"}
}

// WideRows is -o wide's rows.
func (t pairTable) WideRows() [][]string {
	rows := make([][]string, 0, len(t))
	for _, p := range t {
		ready := p.B.Readiness.String()
		if p.A.Ifindex != p.B.Ifindex && p.A.Readiness != p.B.Readiness {
			ready = fmt.Sprintf("%s: %s, %s: %s", p.A.Name, p.A.Readiness, p.B.Name, p.B.Readiness)
		}
		rows = append(rows, []string{pairEnd(p.A), pairEnd(p.B),
			fmt.Sprint(p.AtoB.Packets), fmt.Sprint(p.AtoB.Bytes), fmt.Sprint(p.BtoA.Packets), fmt.Sprint(p.BtoA.Bytes), ready})
	}
	return rows
}

// pairEnd is an end as the table shows it: name (ifindex).
func pairEnd(e maps.PairEnd) string { return fmt.Sprintf("%s (%d)", e.Name, e.Ifindex) }

// shortReadiness is a ready end's readiness without its reason ("ready
// (gro on veth peer)" is "ready"); a NOT READY end keeps its reason.
func shortReadiness(s string) string {
	if short, _, _ := strings.Cut(s, " ("); short == "ready" {
		return short
	}
	return s
}

type deletedPair maps.Pair

func (p deletedPair) Text() string { return "removed pair " + maps.Pair(p).Key() }

// pairNames are what errors call the ends of a pair: the arguments of
// xconnect add IFACE_A IFACE_B.
var pairNames = map[string]string{"a": "IFACE_A", "b": "IFACE_B"}

// getPair returns a read of the pair iface is in into p.
func (a *app) getPair(iface string, p *maps.Pair) func(*maps.Root) error {
	return func(*maps.Root) error {
		return read(a, dataplane.OpenXconnect, func(x *dataplane.Xconnect) error {
			var err error
			*p, err = x.PairOfName(iface, a.netns)
			return err
		})
	}
}
