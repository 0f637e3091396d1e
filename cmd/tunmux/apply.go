package main

import (
	"encoding/json"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/maps"
)

func (a *app) applyCommand() *cobra.Command {
	var (
		file                 string
		dryRun, prune, watch bool
		batch                int
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Make the pinned state equal a desired-state file (YAML or JSON)",
		Long: `Apply a desired-state file: encap tunnels and devmap slots, xconnect pairs, l2tp
sessions (docs/apply.md has the format and a full example of each section).

The whole file is parsed and every value and interface checked before anything
is written: a bad file changes nothing and exits 2 with every problem listed by
line. Dataplanes the file has sections for are loaded if they are not. The
changes (add, change, remove) are printed; --dry-run stops there. Entries that
the file's sections lack are left alone unless --prune; sections absent from the
file are never touched. Writes go in dependency order, with batch map operations,
under the lock. Applying the same file again changes nothing; a run cut short
converges when run again.

Interfaces are resolved by name at every apply, so applying again after an
interface was recreated repairs the redirect slots the kernel dropped.

--watch stays running and applies the file again whenever it changes; a bad
file is reported and the last good state keeps running.`,
		Example: `  tunmux apply -f desired.yaml --dry-run
  tunmux apply -f desired.yaml --prune -o json
  tunmux --netns lab apply -f xconnect.yaml --watch`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return maps.Invalid("-f", "", "is required", "the path of a YAML or JSON desired-state file")
			}
			if batch < 0 {
				return maps.Invalid("--batch", fmt.Sprint(batch), "is negative", "entries per batch map operation, 1 or more (0: 4096)")
			}
			opts := apply.Options{Netns: a.netns, DryRun: dryRun, Prune: prune, Chunk: batch, Version: version}
			root, err := maps.OpenRoot(maps.RootPath(a.bpffs), !dryRun)
			if err != nil {
				return err
			}
			if watch {
				ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				return apply.Watch(ctx, root, file, opts, a.lockTimeout, a.reportApply)
			}
			doc, err := apply.ReadFile(file)
			if err != nil {
				return err
			}
			var lock *maps.Lock
			if !dryRun {
				if lock, err = root.Lock(a.lockTimeout); err != nil {
					return err
				}
				defer lock.Release()
			}
			res, err := apply.Apply(root, lock, file, doc, opts)
			a.warn(res.Warnings...)
			if err != nil {
				return err
			}
			return a.printer.Print(applyView(res))
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the desired-state file (YAML or JSON)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the changes, write nothing")
	cmd.Flags().BoolVar(&prune, "prune", false, "remove the entries of the file's sections that the file does not have")
	cmd.Flags().BoolVar(&watch, "watch", false, "keep running and apply the file again whenever it changes")
	cmd.Flags().IntVar(&batch, "batch", 0, "entries per batch map operation (default 4096)")
	return cmd
}

// reportApply prints the outcome of one apply of --watch.
func (a *app) reportApply(res apply.Result, err error) {
	now := time.Now().Format(time.RFC3339)
	a.warn(res.Warnings...)
	if a.printer.Format == "json" {
		line := map[string]any{"time": now, "result": res}
		if err != nil {
			line["error"] = err.Error()
			line["kept_last_good"] = apply.IsBadFile(err)
		}
		b, _ := json.Marshal(line)
		fmt.Fprintln(a.out, string(b))
		return
	}
	if err != nil {
		fmt.Fprintf(a.errw, "tunmux: %s: %s\n", now, indentJoined(err))
		if apply.IsBadFile(err) {
			fmt.Fprintf(a.errw, "tunmux: %s: the last good state keeps running\n", now)
		}
		return
	}
	fmt.Fprintf(a.out, "%s: ", now)
	_ = a.printer.Print(applyView(res))
}

type applyView apply.Result

func (v applyView) Text() string {
	var b strings.Builder
	verb := "applied"
	if v.DryRun {
		verb = "would apply (dry run)"
	}
	if len(v.Changes) == 0 {
		fmt.Fprintf(&b, "%s: no changes\n", v.File)
		return b.String()
	}
	fmt.Fprintf(&b, "%s %s: %d to add, %d to change, %d to remove", verb, v.File, v.Summary["add"], v.Summary["change"], v.Summary["remove"])
	if n := v.Summary["load"]; n > 0 {
		fmt.Fprintf(&b, ", %d dataplane(s) to load", n)
	}
	b.WriteString("\n")
	rows := make([][]string, 0, len(v.Changes))
	for i, c := range v.Changes {
		if i == 200 {
			rows = append(rows, []string{"...", "", fmt.Sprintf("%d more", len(v.Changes)-200), "", ""})
			break
		}
		line := "-"
		if c.Line > 0 {
			line = fmt.Sprint(c.Line)
		}
		rows = append(rows, []string{c.Action, c.Kind, c.Key, c.Detail, line})
	}
	var t strings.Builder
	_ = renderTable(&t, []string{"action", "kind", "key", "detail", "line"}, rows)
	b.WriteString(t.String())
	return b.String()
}
