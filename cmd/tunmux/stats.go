package main

import (
	"errors"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
)

func (a *app) statsCommand() *cobra.Command {
	var nonzero bool
	cmd := &cobra.Command{
		Use:   "stats [DATAPLANE]",
		Short: "Show every program's outcome counters, summed over CPUs",
		Long: `Show the per-CPU outcome counters of every program of a dataplane (or of
every loaded dataplane), summed over CPUs. Each frame a program sees is counted
once, under the outcome it got: e.g. encap/vxlan (encapsulated), decap/pass_no_tunnel
(passed untouched: no tunnel for its inner pair). docs/ lists every counter.`,
		Example: "  tunmux stats encap\n  tunmux stats -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := a.root()
			var dps []*dataplane.Dataplane
			if len(args) == 1 {
				dp, err := dataplane.Lookup(args[0])
				if err != nil {
					return err
				}
				dps = append(dps, dp)
			} else {
				names, err := root.Dataplanes()
				if err != nil {
					return err
				}
				for _, n := range names {
					if dp, err := dataplane.Lookup(n); err == nil {
						dps = append(dps, dp)
					}
				}
			}
			out := statsTable{}
			for _, dp := range dps {
				l, err := dataplane.Open(root, dp)
				if err != nil {
					if len(args) == 0 && errors.Is(err, maps.ErrNotLoaded) {
						continue
					}
					return err
				}
				cs, err := l.Stats()
				l.Close()
				if err != nil {
					return err
				}
				for _, c := range cs {
					if !nonzero || c.Packets != 0 {
						out = append(out, c)
					}
				}
			}
			return a.printer.Print(out)
		},
	}
	cmd.Flags().BoolVar(&nonzero, "nonzero", false, "show only counters that have counted something")
	return cmd
}

type statsTable []dataplane.Counter

func (t statsTable) Header() []string {
	return []string{"dataplane", "program", "outcome", "packets", "bytes"}
}

func (t statsTable) Rows() [][]string {
	rows := make([][]string, 0, len(t))
	for _, c := range t {
		rows = append(rows, []string{c.Dataplane, c.Program, c.Outcome,
			strconv.FormatUint(c.Packets, 10), strconv.FormatUint(c.Bytes, 10)})
	}
	return rows
}
