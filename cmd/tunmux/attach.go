package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

func programHelp() string {
	var names []string
	progs := dataplane.Attachable()
	for name := range progs {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		p, _ := progs[name].Program(name)
		fmt.Fprintf(&b, "  %-10s (%s, %s) %s\n", name, progs[name].Name, p.Hook, p.Role)
	}
	return b.String()
}

// programArg resolves the PROGRAM argument to its dataplane.
func programArg(name string) (*dataplane.Dataplane, error) {
	dp, ok := dataplane.Attachable()[name]
	if !ok {
		var names []string
		for n := range dataplane.Attachable() {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, maps.Invalid("PROGRAM", name, "is not an attachable program", strings.Join(names, "|"))
	}
	return dp, nil
}

func (a *app) attachCommand() *cobra.Command {
	var mode, hook string
	cmd := &cobra.Command{
		Use:   "attach PROGRAM IFACE",
		Short: "Attach a program to an interface with a pinned link",
		Long: `Attach a loaded dataplane's program to an interface. The attachment is a
bpf_link pinned under <bpffs>/<dataplane>/link_<program>_<netns>_<ifindex>, so
it outlives this command; 'tunmux detach' or 'tunmux unload' removes it.
Attaching the same program again is a no-op. One XDP program owns an
interface's XDP slot: if another holds it, the error names the owner.

Programs:
` + programHelp() + `
XDP modes: native (default; on a veth it turns TSO off at the peer) or generic
(works on any device, slower).

--hook tc attaches encap or decap at TC ingress of the same interface instead
of XDP (a TCX link, appended to the interface's TCX chain; frames tunmux does
not own go on down the chain). Encapsulation keeps GSO/TSO and checksum
offload, so the senders may keep their offloads on; decap delivers straight
into the workload namespace (bpf_redirect_peer) when the overlay is a veth
whose peer lives there. A program runs at one hook per interface (detach it to
switch), and encap and decap do not share one interface's TC ingress. The same
maps serve both hooks; 'tunmux stats encap' counts them apart (encap-tc,
decap-tc), 'tunmux status' shows each link's hook.`,
		Example: `  tunmux attach encap veth-wl
  tunmux attach decap eth0
  tunmux attach encap veth-wl --hook tc
  tunmux --netns node1 attach decap ul0 --mode generic`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dp, err := programArg(args[0])
			if err != nil {
				return err
			}
			if _, err := dataplane.ParseMode(mode); err != nil {
				return err
			}
			if hook != "" && hook != "xdp" && hook != "tc" {
				return maps.Invalid("--hook", hook, "unknown hook", "xdp|tc")
			}
			if err := maps.ValidateIfaceName("IFACE", args[1]); err != nil {
				return err
			}
			doc := &apply.Document{Attach: &apply.AttachSection{Entries: one(apply.AttachArgs{Program: args[0], Iface: args[1], Hook: hook, Mode: mode})}}
			res, err := a.edit(dp, doc, apply.Create, attachNames, nil, nil)
			if err != nil {
				return err
			}
			return a.printer.Print(attachView(res.Done.Attach.Attached[0]))
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "", "XDP attach mode: native (the default) or generic; XDP programs only")
	cmd.Flags().StringVar(&hook, "hook", "", "encap, decap: xdp (the default) or tc (TC ingress: keeps GSO)")
	return cmd
}

// attachNames are what errors call an attachment's fields: the arguments
// of attach PROGRAM IFACE.
var attachNames = map[string]string{"program": "PROGRAM", "iface": "IFACE"}

type attachView dataplane.AttachResult

func (v attachView) Text() string {
	where := netdev.Describe(v.Netns, v.Interface)
	if v.Already {
		return fmt.Sprintf("%s was already attached to %s (%s), nothing changed", v.Program, where, v.Hook)
	}
	return fmt.Sprintf("attached %s to %s (ifindex %d, %s, link %d)", v.Program, where, v.Ifindex, strings.TrimSpace(v.Hook+" "+v.Mode), v.LinkID)
}

func (a *app) detachCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "detach PROGRAM IFACE",
		Short: "Detach a program from an interface",
		Long: `Detach a program from an interface by removing its pinned link. Exits 3 if
the program is not attached there.

Programs:
` + programHelp(),
		Example: `  tunmux detach encap veth-wl`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dp, err := programArg(args[0])
			if err != nil {
				return err
			}
			if err := maps.ValidateIfaceName("IFACE", args[1]); err != nil {
				return err
			}
			doc := &apply.Document{Attach: &apply.AttachSection{Entries: one(apply.AttachArgs{Program: args[0], Iface: args[1]})}}
			res, err := a.edit(dp, doc, apply.Remove, attachNames, nil, nil)
			if err != nil {
				return err
			}
			return a.printer.Print(detachView(res.Done.Attach.Detached[0]))
		},
	}
}

type detachView dataplane.DetachResult

func (v detachView) Text() string {
	return fmt.Sprintf("detached %s from %s", v.Program, netdev.Describe(v.Netns, v.Interface))
}
