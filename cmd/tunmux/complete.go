package main

import (
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vishvananda/netlink"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Completion: names from the machine and the pins, offered by shells
// through cobra's __complete (tunmux completion bash|zsh|fish|powershell).

// fixed completes from a fixed set.
func fixed(values ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// ifaceNames lists the interfaces in --netns (or here).
func (a *app) ifaceNames() []string {
	var names []string
	_ = netdev.Do(a.netns, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		return nil
	})
	sort.Strings(names)
	return names
}

func (a *app) completeIfaces(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return a.ifaceNames(), cobra.ShellCompDirectiveNoFileComp
}

// dataplaneNamesList lists every dataplane tunmux knows.
func dataplaneNamesList() []string {
	var out []string
	for _, dp := range dataplane.All() {
		out = append(out, dp.Name)
	}
	return out
}

// programNames lists the programs `attach` takes.
func programNames() []string {
	var out []string
	for _, dp := range dataplane.All() {
		for _, p := range dp.Programs {
			if p.Attachable {
				out = append(out, p.Name)
			}
		}
	}
	return out
}

// fromPins completes from what a loaded dataplane holds (nothing when it
// is not loaded).
func (a *app) fromPins(dp *dataplane.Dataplane, list func(*dataplane.Loaded) []string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		l, err := dataplane.Open(a.root(), dp)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer l.Close()
		return list(l), cobra.ShellCompDirectiveNoFileComp
	}
}

// tunnelAddrs lists, once each, one side of the pinned tunnels' keys.
func tunnelAddrs(side func(maps.TunnelKey) string) func(*dataplane.Loaded) []string {
	return func(l *dataplane.Loaded) []string {
		st, err := maps.NewEncapState(l.Maps)
		if err != nil {
			return nil
		}
		ts, _ := st.ListTunnels()
		seen := map[string]bool{}
		var out []string
		for _, t := range ts {
			if s := side(t.TunnelKey); !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
		return out
	}
}

func sessionIDs(l *dataplane.Loaded) []string {
	ss, _ := dataplane.ListOf(l, maps.NewL2TPState, (*maps.L2TPState).ListSessions)
	var out []string
	for _, s := range ss {
		out = append(out, strconv.FormatUint(uint64(s.ID), 10))
	}
	return out
}

func routePrefixes(l *dataplane.Loaded) []string {
	rs, _ := dataplane.ListOf(l, maps.NewRouteState, (*maps.RouteState).Routes)
	var out []string
	for _, r := range rs {
		out = append(out, r.Prefix.String())
	}
	return out
}

func muxMemberNames(l *dataplane.Loaded) []string {
	ms, _ := dataplane.ListOf(l, maps.NewMuxState, (*maps.MuxState).Members)
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// addCompletions registers argument and flag completions over the tree.
func (a *app) addCompletions(root *cobra.Command) {
	_ = root.RegisterFlagCompletionFunc("output", fixed("table", "wide", "json"))
	_ = root.RegisterFlagCompletionFunc("netns", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		names, _ := netdev.NamespaceNames()
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	byFlag := map[string]cobra.CompletionFunc{
		"hook": fixed("xdp", "tc"), "mode": fixed("native", "generic"), "where": fixed("entry", "exit", "both"),
		"encap": fixed("udp", "ip"), "health": fixed("up", "down"),
		"underlay": a.completeIfaces, "overlay": a.completeIfaces, "eth-iface": a.completeIfaces, "tunnel-iface": a.completeIfaces,
		"dataplane": fixed(dataplaneNamesList()...), "program": fixed(programNames()...),
		"inner-src":  a.fromPins(dataplane.EncapDataplane, tunnelAddrs(func(k maps.TunnelKey) string { return k.InnerSrc.String() })),
		"inner-dst":  a.fromPins(dataplane.EncapDataplane, tunnelAddrs(func(k maps.TunnelKey) string { return k.InnerDst.String() })),
		"session-id": a.fromPins(dataplane.L2TPDataplane, sessionIDs),
	}
	byPath := map[string]cobra.CompletionFunc{
		"tunmux load": fixed(dataplaneNamesList()...), "tunmux unload": fixed(dataplaneNamesList()...),
		"tunmux stats": fixed(dataplaneNamesList()...), "tunmux status": fixed(dataplaneNamesList()...),
		"tunmux export":          fixed(dataplaneNamesList()...),
		"tunmux capture":         a.completeIfaces,
		"tunmux xconnect add":    a.completeIfaces,
		"tunmux xconnect del":    a.completeIfaces,
		"tunmux devmap add":      a.completeIfaces,
		"tunmux mux carrier set": a.completeIfaces,
		"tunmux mux member del":  a.fromPins(dataplane.MuxDataplane, muxMemberNames),
		"tunmux route get":       a.fromPins(dataplane.RouteDataplane, routePrefixes),
		"tunmux route del":       a.fromPins(dataplane.RouteDataplane, routePrefixes),
		"tunmux route update":    a.fromPins(dataplane.RouteDataplane, routePrefixes),
		"tunmux attach":          a.programThenIface,
		"tunmux detach":          a.programThenIface,
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if f, ok := byPath[c.CommandPath()]; ok && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = f
		}
		c.LocalFlags().VisitAll(func(fl *pflag.Flag) {
			if f, ok := byFlag[fl.Name]; ok {
				_ = c.RegisterFlagCompletionFunc(fl.Name, f)
			}
		})
		if fl := c.LocalFlags().Lookup("proto"); fl != nil {
			if strings.HasPrefix(c.CommandPath(), "tunmux tunnel") {
				_ = c.RegisterFlagCompletionFunc("proto", fixed("geneve", "vxlan", "vlan"))
			} else {
				_ = c.RegisterFlagCompletionFunc("proto", fixed("vxlan", "geneve"))
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// programThenIface completes attach and detach: a program, then an
// interface.
func (a *app) programThenIface(cmd *cobra.Command, args []string, s string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return programNames(), cobra.ShellCompDirectiveNoFileComp
	}
	if len(args) == 1 {
		return a.completeIfaces(cmd, args, s)
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}
