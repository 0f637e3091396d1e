package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

func dataplaneHelp() string {
	var b strings.Builder
	for _, d := range dataplane.All() {
		fmt.Fprintf(&b, "  %-10s %s\n", d.Name, d.Summary)
	}
	return b.String()
}

func (a *app) loadCommand() *cobra.Command {
	var maxEntries uint32
	var allowDowngrade bool
	cmd := &cobra.Command{
		Use:   "load DATAPLANE",
		Short: "Load a dataplane's programs and maps and pin them",
		Long: `Load a dataplane: create its maps, load its programs through the verifier and
pin both under <bpffs>/<dataplane>/. Loading again is safe: compatible pins are
reused (entries kept), missing ones created, and programs whose code changed
are replaced in place (their attachments move to the new code). A pinned map
that differs from what this tunmux expects (type, key or value size, capacity,
schema) is an error that names each difference and changes nothing.

Load also mends pins that split from the datapath, and lists what it mended:
a map pin removed or replaced by hand while the pinned programs still use
their map gets that map back (with the entries the datapath reads); a link
moved to another program is moved back to the pinned one. Other commands
refuse a split dataplane, and 'tunmux status' shows it as "split".

--max-entries on a loaded dataplane changes its capacity in place: its main
map and the maps sized with it are made anew at the new size, their entries
(and counters) copied, the programs loaded again with them and every
attachment moved to them, so frames keep flowing and nothing is lost. A size
below the entries a map holds is refused (exit 2).

Builds are ordered by the time of their commit ('tunmux version'). A load that
would replace programs written by a newer tunmux is refused (exit 1) and
changes nothing, unless --allow-downgrade. Each load that writes programs
records which tunmux wrote them, and which one's they replaced; 'tunmux status'
shows it.

Dataplanes:
` + dataplaneHelp(),
		Example: `  tunmux load encap
  tunmux load encap --max-entries 65536
  tunmux load encap --allow-downgrade`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dp, err := dataplane.Lookup(args[0])
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("max-entries") && (maxEntries < 1 || maxEntries > dataplane.MaxMaxEntries) {
				return maps.Invalid("--max-entries", fmt.Sprint(maxEntries), "is out of range", fmt.Sprintf("1..%d", dataplane.MaxMaxEntries))
			}
			var res dataplane.LoadResult
			err = a.mutate(true, dp, func(lock *maps.Lock) error {
				res, err = dataplane.Load(lock, dp, dataplane.LoadOptions{MaxEntries: maxEntries, Version: version, Built: buildTime(), AllowDowngrade: allowDowngrade})
				return err
			})
			if err != nil {
				return err
			}
			return a.printer.Print(loadView(res))
		},
	}
	cmd.Flags().BoolVar(&allowDowngrade, "allow-downgrade", false, "replace programs written by a newer tunmux with this one's (older) code")
	cmd.Flags().Uint32Var(&maxEntries, "max-entries", 0, "capacity of the dataplane's main table (encap: tunnels); default: the pinned capacity, or 1024 on a first load; on a loaded dataplane, resizes it in place")
	return cmd
}

type loadView dataplane.LoadResult

func (v loadView) Text() string {
	var did []string
	if r := v.Resized; r != nil {
		did = append(did, fmt.Sprintf("resized %s from %d to %d entries (%d entries moved, links kept)", strings.Join(r.Maps, " "), r.From, r.To, r.Moved))
	}
	if v.MigratedFrom != 0 {
		did = append(did, fmt.Sprintf("migrated its maps from schema %d", v.MigratedFrom))
	}
	if len(v.Upgraded) > 0 {
		what := "replaced program code of " + strings.Join(v.Upgraded, " ")
		if p := v.Provenance; p != nil && p.Replaced != "" {
			what += " (tunmux " + p.Replaced + "'s)"
			if p.Downgrade {
				what += ", a downgrade"
			}
		}
		did = append(did, what)
	}
	if len(v.Created) > 0 {
		did = append(did, "created "+strings.Join(v.Created, " "))
	}
	if len(v.Repaired) > 0 {
		did = append(did, fmt.Sprintf("repaired %d pins that disagreed with the datapath", len(v.Repaired)))
	}
	state := "already loaded, nothing changed"
	if len(did) > 0 {
		state = "loaded, " + strings.Join(did, ", ")
	}
	text := fmt.Sprintf("%s at %s: %s (capacity %d, schema %d)", v.Dataplane, v.Path, state, v.MaxEntries, v.Schema)
	for _, r := range v.Repaired {
		text += fmt.Sprintf("\n  repaired %s: %s", r.Pin, r.Action)
	}
	return text
}

func (a *app) unloadCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "unload DATAPLANE | --all",
		Short: "Detach a dataplane (or every one) everywhere and remove its pins",
		Long: `Unload a dataplane: remove its pinned links (which detaches its programs from
every interface), then its programs and maps (their entries are lost), then
its folder. Unloading a dataplane that is not loaded does nothing.

Devices its commands created (mux members made with 'mux member add --create';
the tunnel and routes devices of 'route dev create') are kept by 'unload
DATAPLANE', and listed: unloading to load again (an upgrade) leaves interfaces,
their addresses and the kernel's routes through them in place. Adopt a member
again ('mux member add NAME' without --create), point nexthops at a kept tunnel
device with dev=, or delete them with 'ip link del'.

With --all, every dataplane under the root is unloaded, every device their
commands created is deleted (in the namespace recorded for it, found by its
inode; one that cannot be reached is listed as left behind), and the root
folder itself is removed. A folder under the root that is not a dataplane this
tunmux knows is left alone, and with it the root.`,
		Example: `  tunmux unload encap
  tunmux unload --all`,
		Args: func(cmd *cobra.Command, args []string) error {
			if all {
				if len(args) > 0 {
					return fmt.Errorf("--all unloads every dataplane: give no DATAPLANE")
				}
				return nil
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var dp *dataplane.Dataplane
			if !all {
				var err error
				if dp, err = dataplane.Lookup(args[0]); err != nil {
					return err
				}
			}
			root, err := maps.OpenRoot(maps.RootPath(a.bpffs), false)
			if err != nil {
				return err
			}
			if all {
				res := dataplane.UnloadAllResult{Root: root.Path, Dataplanes: []dataplane.UnloadResult{}, Left: []string{}}
				if root.Exists() {
					lock, release, err := a.lockRoot(root)
					if err != nil {
						return err
					}
					defer release()
					if res, err = dataplane.UnloadAll(lock, a.netns); err != nil {
						return err
					}
				}
				for _, d := range res.Dataplanes {
					a.warnLeft(d)
				}
				return a.printer.Print(unloadAllView(res))
			}
			res := dataplane.UnloadResult{Dataplane: dp.Name, Path: root.Dir(dp.Name), Detached: []string{}, Removed: []string{}, Left: []string{}, Devices: []dataplane.Device{}}
			if root.Exists() {
				lock, release, err := a.lockRoot(root)
				if err != nil {
					return err
				}
				defer release()
				if res, err = dataplane.Unload(lock, dp, dataplane.UnloadOptions{Netns: a.netns}); err != nil {
					return err
				}
			}
			a.warnLeft(res)
			return a.printer.Print(unloadView(res))
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "unload every dataplane under the root, delete the devices their commands created, and remove the root folder")
	return cmd
}

// warnLeft warns about what unload left in a dataplane's folder because
// tunmux's layout does not name it.
func (a *app) warnLeft(res dataplane.UnloadResult) {
	if len(res.Left) > 0 {
		a.warn(fmt.Sprintf("kept %s: it holds %s, which tunmux did not create; look, and remove them by hand (rm) if they are not needed", res.Path, strings.Join(res.Left, ", ")))
	}
}

type unloadView dataplane.UnloadResult

func (v unloadView) Text() string {
	var text string
	if len(v.Detached)+len(v.Removed) == 0 {
		text = fmt.Sprintf("%s was not loaded at %s, nothing changed", v.Dataplane, v.Path)
	} else {
		text = fmt.Sprintf("%s unloaded from %s: %d links detached, %d pins removed", v.Dataplane, v.Path, len(v.Detached), len(v.Removed))
	}
	for _, d := range v.Devices {
		text += "\n  " + deviceLine(d)
	}
	if v.DevicesUnknown != "" {
		text += "\n  devices it created, if any, are unknown: " + v.DevicesUnknown
	}
	return text
}

// deviceLine describes what happened to a device tunmux created.
func deviceLine(d dataplane.Device) string {
	line := fmt.Sprintf("%s %s (%s)", d.State, netdev.Describe(d.Netns, d.Name), d.Kind)
	if d.State == "kept" {
		line += ": tunmux created it; 'ip link del' removes it"
	}
	if d.Reason != "" {
		line += ": " + d.Reason
	}
	return line
}

type unloadAllView dataplane.UnloadAllResult

func (v unloadAllView) Text() string {
	var b strings.Builder
	if len(v.Dataplanes) == 0 && len(v.Left) == 0 && !v.RootRemoved {
		fmt.Fprintf(&b, "nothing loaded under %s, nothing changed\n", v.Root)
		return b.String()
	}
	if len(v.Dataplanes) > 0 {
		rows := [][]string{}
		for _, d := range v.Dataplanes {
			var deleted []string
			for _, dev := range d.Devices {
				if dev.State == "deleted" {
					deleted = append(deleted, netdev.Describe(dev.Netns, dev.Name))
				}
			}
			if len(deleted) == 0 {
				deleted = []string{"-"}
			}
			rows = append(rows, []string{d.Dataplane, fmt.Sprint(len(d.Detached)), fmt.Sprint(len(d.Removed)), strings.Join(deleted, ", ")})
		}
		_ = renderTable(&b, []string{"dataplane", "links detached", "pins removed", "devices deleted"}, rows)
	}
	for _, d := range v.Dataplanes {
		for _, dev := range d.Devices {
			if dev.State != "deleted" {
				fmt.Fprintf(&b, "%s: %s\n", d.Dataplane, deviceLine(dev))
			}
		}
		if d.DevicesUnknown != "" {
			fmt.Fprintf(&b, "%s: devices it created, if any, are unknown (left behind): %s\n", d.Dataplane, d.DevicesUnknown)
		}
	}
	if v.RootRemoved {
		fmt.Fprintf(&b, "removed %s\n", v.Root)
	} else {
		fmt.Fprintf(&b, "kept %s: it still holds %s (not dataplanes this tunmux knows)\n", v.Root, strings.Join(v.Left, ", "))
	}
	return b.String()
}
