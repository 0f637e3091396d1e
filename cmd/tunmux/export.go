package main

import (
	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/apply"
)

func (a *app) exportCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "export [DATAPLANE...] [-o yaml|json] [-f FILE]",
		Short: "Print the node's pinned state as a desired-state file (for apply)",
		Long: `Print everything pinned under the bpffs root as a desired-state file that
'tunmux apply -f' takes: the dataplanes loaded and their capacity, the
attachments of attachable programs, and every entry and device of each
dataplane, with interfaces by name. With DATAPLANE arguments, only those.

Applying the file re-creates the state: after 'tunmux unload --all', or on the
empty bpffs of a rebooted node (docs/operations.md), 'tunmux apply -f FILE'
makes the same state, and 'tunmux export' prints the same file again. Values
that follow from an interface (a tunnel's source MAC that is its underlay's, an
Ethernet carrier's far-end MAC that is its veth peer's) are left out, so the
file still holds when those interfaces are made anew.

-f FILE writes the file atomically (a temporary file renamed over it), so a
reboot in between leaves the old file or the new one, never half of one.
Interfaces are named as they are in --netns (or the caller's namespace).`,
		Example: `  tunmux export > state.yaml
  tunmux export encap -o json
  tunmux export -f /etc/tunmux/state.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := apply.Export(a.root(), a.netns, args)
			if err != nil {
				return err
			}
			format := "yaml"
			if a.output == "json" {
				format = "json"
			}
			data, err := st.Encode(format)
			if err != nil {
				return err
			}
			if file != "" {
				if file == "-" {
					_, err = a.out.Write(data)
					return err
				}
				return apply.WriteFileAtomic(file, data)
			}
			_, err = a.out.Write(data)
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "write the file here, atomically, instead of to standard output")
	return cmd
}
