// Command importfloor is the floor under any tunmux command's cost: a
// program that links the libraries tunmux is built on (cilium/ebpf, cobra,
// netlink, tablewriter) and does nothing else. BenchmarkControlPlane times
// it beside bpftool, so that the share of a command's cost that no change
// inside tunmux can remove is measured, not guessed.
package main

import (
	"os"

	_ "github.com/cilium/ebpf"
	_ "github.com/cilium/ebpf/link"
	_ "github.com/olekukonko/tablewriter"
	"github.com/spf13/cobra"
	_ "github.com/vishvananda/netlink"
)

func main() {
	root := &cobra.Command{Use: "importfloor", Run: func(*cobra.Command, []string) {}}
	if root.Execute() != nil {
		os.Exit(1)
	}
}
