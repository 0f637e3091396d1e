package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/render"
)

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status [DATAPLANE]",
		Short: "Show everything pinned: dataplanes, programs, maps, links, slots",
		Long: `Show everything tunmux has pinned under the bpffs root: each dataplane with its
schema and load parameters, its programs (id, tag), its maps (entries /
capacity), its links (program, interface, hook, mode, attached or defunct) and,
for encap, its redirect slots and how each target accepts redirected frames.`,
		Example: "  tunmux status\n  tunmux status encap\n  tunmux status -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if _, err := dataplane.Lookup(args[0]); err != nil {
					return err
				}
			}
			st, err := dataplane.ReadStatus(a.root())
			if err != nil {
				return err
			}
			if len(args) == 1 {
				var only []dataplane.DataplaneStatus
				for _, d := range st.Dataplanes {
					if d.Name == args[0] {
						only = append(only, d)
					}
				}
				if len(only) == 0 {
					return fmt.Errorf("%s under %s: %w (run 'tunmux load %s')", args[0], st.Root, maps.ErrNotLoaded, args[0])
				}
				st.Dataplanes = only
			}
			return a.printer.Print(statusView(st))
		},
	}
}

type statusView dataplane.Status

func (s statusView) Text() string {
	var b strings.Builder
	if len(s.Dataplanes) == 0 {
		fmt.Fprintf(&b, "nothing loaded under %s\n", s.Root)
		return b.String()
	}
	for i, d := range s.Dataplanes {
		if i > 0 {
			b.WriteString("\n")
		}
		// Two lines, so that each fits 80 columns.
		fmt.Fprintf(&b, "%s: %s at %s\n", d.Name, d.State, d.Path)
		if d.Meta != nil {
			fmt.Fprintf(&b, "  schema %d, capacity %d, loaded %s by tunmux %s\n", d.Meta.Schema, d.Meta.MaxEntries,
				d.Meta.LoadedAt.Format("2006-01-02 15:04:05Z"), d.Meta.Version)
		}
		if p := d.Provenance; p != nil {
			fmt.Fprintf(&b, "  programs written %s by tunmux %s\n", p.WrittenAt.Format("2006-01-02 15:04:05Z"), buildName(p.Version, p.Built))
			if p.Replaced != "" {
				how := "replacing"
				if p.Downgrade {
					how = "a DOWNGRADE (--allow-downgrade), replacing newer"
				}
				fmt.Fprintf(&b, "  %s tunmux %s\n", how, buildName(p.Replaced, p.ReplacedBuilt))
			}
		}
		if d.Error != "" {
			fmt.Fprintf(&b, "  problem: %s\n", d.Error)
		}
		section := func(title string, header []string, rows [][]string) {
			if len(rows) == 0 {
				return
			}
			fmt.Fprintf(&b, "\n%s\n", title)
			_ = render.WriteTable(&b, header, rows)
		}
		var rows [][]string
		for _, p := range d.Programs {
			// The links table below says where: here, how many run it.
			links := 0
			for _, l := range d.Links {
				// By the program the link runs (an L3 variant runs under
				// its program's name); a defunct link by its name.
				// An observed link runs a capture's build: by its name too.
				if (l.ProgID != 0 && l.ProgID == p.ID) || ((l.ProgID == 0 || l.State == "observed") && l.Program == p.Name) {
					links++
				}
			}
			rows = append(rows, []string{p.Name, fmt.Sprint(p.ID), p.Type, p.Tag, fmt.Sprint(links)})
		}
		section("programs", []string{"name", "id", "type", "tag", "links"}, rows)
		rows = nil
		for _, l := range d.Links {
			rows = append(rows, []string{l.Program, l.Where(), fmt.Sprint(l.Ifindex), l.Hook, l.Mode, fmt.Sprint(l.LinkID), l.State})
		}
		section("links", []string{"program", "interface", "ifindex", "hook", "mode", "link", "state"}, rows)
		rows = nil
		for _, m := range d.Maps {
			rows = append(rows, []string{m.Name, fmt.Sprint(m.ID), m.Type, fmt.Sprintf("%d/%d", m.Entries, m.Capacity)})
		}
		section("maps", []string{"name", "id", "type", "entries"}, rows)
		if len(d.Slots) > 0 {
			t := slotTable(d.Slots)
			section("redirect slots", t.Header(), t.Rows())
		}
	}
	return b.String()
}

// buildName is a tunmux build as status names it: its version and, when
// known, the date of its commit.
func buildName(version string, built time.Time) string {
	if built.IsZero() {
		return version
	}
	return version + " (of " + built.Format("2006-01-02") + ")"
}

// renderTable writes a table the way every command does.
func renderTable(w io.Writer, header []string, rows [][]string) error {
	return render.WriteTable(w, header, rows)
}
