package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
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

Dataplanes:
` + dataplaneHelp(),
		Example: `  tunmux load encap
  tunmux load encap --max-entries 65536`,
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
				res, err = dataplane.Load(lock, dp, dataplane.LoadOptions{MaxEntries: maxEntries, Version: version})
				return err
			})
			if err != nil {
				return err
			}
			return a.printer.Print(loadView(res))
		},
	}
	cmd.Flags().Uint32Var(&maxEntries, "max-entries", 0, "capacity of the dataplane's main table (encap: tunnels); default: the pinned capacity, or 1024 on a first load")
	return cmd
}

type loadView dataplane.LoadResult

func (v loadView) Text() string {
	var did []string
	if len(v.Upgraded) > 0 {
		did = append(did, "replaced program code of "+strings.Join(v.Upgraded, " "))
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
	return &cobra.Command{
		Use:   "unload DATAPLANE",
		Short: "Detach a dataplane everywhere and remove its pins",
		Long: `Unload a dataplane: remove its pinned links (which detaches its programs from
every interface), then its programs and maps (their entries are lost), then
its folder. Unloading a dataplane that is not loaded does nothing.`,
		Example: `  tunmux unload encap`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dp, err := dataplane.Lookup(args[0])
			if err != nil {
				return err
			}
			root, err := maps.OpenRoot(maps.RootPath(a.bpffs), false)
			if err != nil {
				return err
			}
			res := dataplane.UnloadResult{Dataplane: dp.Name, Path: root.Dir(dp.Name), Detached: []string{}, Removed: []string{}}
			if root.Exists() {
				lock, err := root.Lock(a.lockTimeout)
				if err != nil {
					return err
				}
				defer lock.Release()
				if res, err = dataplane.Unload(lock, dp); err != nil {
					return err
				}
			}
			return a.printer.Print(unloadView(res))
		},
	}
}

type unloadView dataplane.UnloadResult

func (v unloadView) Text() string {
	if len(v.Detached)+len(v.Removed) == 0 {
		return fmt.Sprintf("%s was not loaded at %s, nothing changed", v.Dataplane, v.Path)
	}
	return fmt.Sprintf("%s unloaded from %s: %d links detached, %d pins removed", v.Dataplane, v.Path, len(v.Detached), len(v.Removed))
}
