package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/metrics"
)

func (a *app) applyCommand() *cobra.Command {
	var (
		file                 string
		dryRun, prune, watch bool
		allowMassPrune       bool
		batch                int
		resync               = durationFlag{d: apply.DefaultResync, accepted: "a duration such as 10s or 1m; 0 reconciles only when the file changes"}
		settle               = durationFlag{d: apply.DefaultSettle, accepted: "a duration such as 500ms or 2s; 0 applies every change at once"}
		maxPrune             = percentFlag(apply.DefaultMaxPrune)
		maxSize              = sizeFlag(apply.DefaultMaxFileSize)
		node                 string
		allowDowngrade       bool
		metricsAddr          string
		metricsOpts          metrics.Options
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Make the pinned state equal a desired-state file (YAML or JSON)",
		Long: `Apply a desired-state file, a section per dataplane: encap (tunnels and devmap
slots), l2tp (sessions), xconnect (pairs), mux (carrier and members), route
(tunnel devices, routes and peers), load (dataplanes and their capacity) and
attach (programs on interfaces); docs/apply.md has the format and a full
example of each section. xdp-xconnect's own configuration file (links: {eth0:
tap0, ...}) is taken as is, as the xconnect section (docs/xconnect.md).

A fleet file holds defaults: (every node's sections) and nodes: {NAME:
sections}, merged over the defaults entry by entry; --node NAME (default
$NODE_NAME, else the host name) picks the node. A node not listed gets the
defaults; without defaults it is an error (exit 2). ${VAR} and ${VAR:-DEFAULT}
in values are read from the environment (${NODE_NAME} is the node).

The whole file is parsed and every value and interface checked before anything
is written: a bad file changes nothing and exits 2 with every problem listed by
line. Dataplanes the file has sections for are loaded if they are not. The
changes (add, change, remove) are printed; --dry-run stops there. Entries that
the file's sections lack are left alone unless --prune; sections absent from the
file are never touched. Writes go in dependency order, with batch map operations,
under the lock. Applying the same file again changes nothing; a run cut short
converges when run again.

A --prune that would remove more than --max-prune (default 50%) of the pinned
entries of a kind (tunnels, slots, pairs, sessions, routes, peers) is refused,
changing nothing (exit 1), unless --allow-mass-prune; fewer than 10 removals of
a kind are always allowed. A dry run says whether the apply would be refused.

Interfaces are resolved by name at every apply, so applying again after an
interface was recreated repairs the redirect slots the kernel dropped.

--watch stays running and applies the file again whenever it changes, once its
content has stayed the same for --settle (a file renamed into place, as editors
save, is applied at once), so a half-written file is never applied. A bad file,
or a refused prune, is reported and the last good state keeps running. It also
reconciles again every --resync and soon after a link event in the namespace of
one of the file's interfaces: what it finds to write (an entry deleted by hand,
a slot the kernel dropped, a recreated interface) it writes and reports as
"repaired" (JSON: "repaired": true); a reconcile that finds nothing says nothing.
A kubelet's ConfigMap update (a swap of the mount's ..data symlink) is a new
version of the file like any other.

When --watch starts, its first apply also loads the file's dataplanes that
are loaded already: programs of another build are replaced by this build's in
place (links updated, maps and entries kept), reported as "upgrade". Programs
of a newer tunmux are left as they are, with a warning, unless
--allow-downgrade. Unchanged entries are not written again.

--metrics-addr serves, while it watches, /metrics (the series of 'tunmux
metrics', and tunmux_agent_* for the agent), /healthz (200 while the watch loop
turns: a liveness probe) and /readyz (200 once the file has applied since the
agent started: a readiness probe).`,
		Example: `  tunmux apply -f desired.yaml --dry-run
  tunmux apply -f desired.yaml --prune -o json
  tunmux apply -f desired.yaml --prune --max-prune 20%
  tunmux --netns lab apply -f xconnect.yaml --watch --resync 30s
  tunmux apply -f /etc/tunmux/fleet.yaml --watch --metrics-addr :9478
  tunmux apply -f /etc/xdp-xconnect/config.yaml --watch --prune
  NODE_IP=192.168.61.1 tunmux apply -f fleet.yaml --node node1 --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return maps.Invalid("-f", "", "is required", "the path of a YAML or JSON desired-state file")
			}
			if batch < 0 {
				return maps.Invalid("--batch", fmt.Sprint(batch), "is negative", "entries per batch map operation, 1 or more (0: 4096)")
			}
			for _, name := range []string{"resync", "settle", "metrics-addr", "metrics-entries", "metrics-doctor", "allow-downgrade"} {
				if cmd.Flags().Changed(name) && !watch {
					return maps.Invalid("--"+name, cmd.Flags().Lookup(name).Value.String(), "needs --watch", "--"+name+" with --watch")
				}
			}
			limit := int(maxPrune)
			if allowMassPrune {
				limit = apply.NoPruneLimit
			}
			apply.MaxFileSize = int64(maxSize)
			if !cmd.Flags().Changed("node") {
				node = apply.NodeName()
			} else if node == "" {
				return maps.Invalid("--node", node, "is empty", "the name of a node of the file's nodes: (default: $NODE_NAME, else the host name)")
			}
			sel := apply.Selector{Node: node}
			opts := apply.Options{Netns: a.netns, DryRun: dryRun, Prune: prune, Chunk: batch, Version: version, Built: buildTime(), AllowDowngrade: allowDowngrade}
			if watch && file == "-" {
				return maps.Invalid("-f", file, "cannot be watched", "the path of a file with --watch (standard input is read once)")
			}
			if metricsAddr != "" {
				if err := checkMetricsAddr(metricsAddr); err != nil {
					return err
				}
			}
			// The file is read before the root is made: a file that does
			// not parse creates nothing.
			var doc *apply.Document
			if !watch {
				var err error
				if doc, err = apply.ReadFile(file, sel); err != nil {
					return err
				}
			}
			root, err := maps.OpenRoot(maps.RootPath(a.bpffs), false)
			if err != nil {
				return err
			}
			if !watch && !dryRun && !root.Exists() {
				// Nothing is pinned yet: check the file before making the
				// root, so that a file that fails its checks creates none.
				if err := apply.Check(root, file, doc, opts); err != nil {
					return err
				}
			}
			if root, err = maps.OpenRoot(root.Path, !dryRun); err != nil {
				return err
			}
			if watch {
				ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				wopts := apply.WatchOptions{LockTimeout: a.lockTimeout, Settle: settle.d, Resync: resync.d, MaxPrune: limit, Select: sel,
					Status: &apply.WatchStatus{}}
				if metricsAddr != "" {
					metricsOpts.Root, metricsOpts.Agent = root, wopts.Status.Snapshot
					srv, err := a.startMetrics(metricsAddr, &metrics.Server{Options: metricsOpts,
						Live:  func() error { return wopts.Status.Live(time.Now()) },
						Ready: wopts.Status.Ready})
					if err != nil {
						return err
					}
					defer srv.close()
				}
				return apply.Watch(ctx, root, file, opts, wopts, a.reportApply)
			}
			var lock *maps.Lock
			if !dryRun {
				var release func()
				if lock, release, err = a.lockRoot(root); err != nil {
					return err
				}
				defer release()
			}
			res, err := apply.ApplyGuarded(root, lock, file, doc, opts, limit)
			a.warn(res.Warnings...)
			if err != nil {
				return err
			}
			return a.printer.Print(applyView(res))
		},
	}
	cmd.Flags().Var(&maxSize, "max-file-size", "the largest file read (K, M, G suffixes); a larger one is refused before it is read")
	cmd.Flags().StringVarP(&file, "file", "f", "", "the desired-state file (YAML or JSON), or - for standard input")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the changes, write nothing")
	cmd.Flags().BoolVar(&allowDowngrade, "allow-downgrade", false, "with --watch: let the agent replace programs of a newer tunmux with its own when it starts")
	cmd.Flags().StringVar(&node, "node", "", "in a fleet file (defaults: and nodes:), the node whose view to apply (default: $NODE_NAME, else the host name)")
	cmd.Flags().BoolVar(&prune, "prune", false, "remove the entries of the file's sections that the file does not have")
	cmd.Flags().Var(&maxPrune, "max-prune", "refuse a --prune that removes more than this share of a kind's pinned entries (10 or more of them)")
	cmd.Flags().BoolVar(&allowMassPrune, "allow-mass-prune", false, "let --prune remove any share of the pinned entries")
	cmd.Flags().BoolVar(&watch, "watch", false, "keep running: apply the file again whenever it changes, and repair drift")
	cmd.Flags().Var(&settle, "settle", "with --watch: apply new content once it has stayed the same this long (0: at once)")
	cmd.Flags().Var(&resync, "resync", "with --watch: reconcile again this often, repairing drift (0: only on file changes and link events)")
	cmd.Flags().IntVar(&batch, "batch", 0, "entries per batch map operation (default 4096)")
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "with --watch: serve /metrics, /healthz (the loop turns) and /readyz (the file applied) on HOST:PORT or :PORT")
	cmd.Flags().BoolVar(&metricsOpts.Entries, "metrics-entries", true, "with --metrics-addr: include the per-entry series")
	cmd.Flags().BoolVar(&metricsOpts.Doctor, "metrics-doctor", true, "with --metrics-addr: include doctor's checks")
	return cmd
}

// durationFlag is a duration flag of 0 or more that names its accepted form
// when the value is bad.
type durationFlag struct {
	d        time.Duration
	accepted string
}

func (f *durationFlag) String() string { return f.d.String() }
func (f *durationFlag) Type() string   { return "duration" }
func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("accepted: %s", f.accepted)
	}
	f.d = d
	return nil
}

// sizeFlag is a size in bytes, given as a number with an optional K, M or
// G suffix (powers of 1024).
type sizeFlag int64

func (f *sizeFlag) String() string { return strconv.FormatInt(int64(*f), 10) }
func (f *sizeFlag) Type() string   { return "size" }
func (f *sizeFlag) Set(s string) error {
	mult := int64(1)
	t := strings.TrimSpace(s)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K', 'k':
			mult, t = 1<<10, t[:n-1]
		case 'M', 'm':
			mult, t = 1<<20, t[:n-1]
		case 'G', 'g':
			mult, t = 1<<30, t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 1 || n > (1<<40)/mult {
		return errors.New("accepted: a size in bytes, 1 or more, with an optional K, M or G suffix, such as 512M")
	}
	*f = sizeFlag(n * mult)
	return nil
}

// percentFlag is a whole percentage, 0 to 100, given as 50% or 50.
type percentFlag int

func (p *percentFlag) String() string { return fmt.Sprintf("%d%%", int(*p)) }
func (p *percentFlag) Type() string   { return "percent" }
func (p *percentFlag) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	if err != nil || n < 0 || n > 100 {
		return errors.New("accepted: a whole percentage from 0 to 100, such as 50%")
	}
	*p = percentFlag(n)
	return nil
}

// reportApply prints one outcome of --watch: an apply of the file, a repair
// of drift, or an error.
func (a *app) reportApply(ev apply.Event) {
	res, err := ev.Result, ev.Err
	now := time.Now().Format(time.RFC3339)
	a.warn(res.Warnings...)
	if a.printer.Format == "json" {
		line := map[string]any{"time": now, "result": res, "repaired": ev.Repaired}
		if err != nil {
			line["error"] = err.Error()
			line["kept_last_good"] = apply.KeepsLastGood(err)
		}
		b, _ := json.Marshal(line)
		fmt.Fprintln(a.out, string(b))
		return
	}
	if err != nil {
		fmt.Fprintf(a.errw, "tunmux: %s: %s\n", now, indentJoined(err))
		if apply.KeepsLastGood(err) {
			fmt.Fprintf(a.errw, "tunmux: %s: the last good state keeps running\n", now)
		}
		return
	}
	fmt.Fprintf(a.out, "%s: ", now)
	if ev.Repaired {
		_ = a.printer.Print(repairView(res))
		return
	}
	_ = a.printer.Print(applyView(res))
}

// repairView is a repair of --watch, as text.
type repairView apply.Result

func (v repairView) Text() string { return applyView(v).text("repaired") }

type applyView apply.Result

func (v applyView) Text() string {
	verb := "applied"
	if v.DryRun {
		verb = "would apply (dry run)"
	}
	return v.text(verb)
}

// text is the report of an apply that verb says what it did.
func (v applyView) text(verb string) string {
	var b strings.Builder
	file := v.File
	if v.Fleet != nil {
		file += ", " + v.Fleet.String()
	}
	if len(v.Changes) == 0 {
		fmt.Fprintf(&b, "%s: no changes\n", file)
		return b.String()
	}
	fmt.Fprintf(&b, "%s %s: %d to add, %d to change, %d to remove", verb, file, v.Summary["add"], v.Summary["change"], v.Summary["remove"])
	if n := v.Summary["load"]; n > 0 {
		fmt.Fprintf(&b, ", %d dataplane(s) to load", n)
	}
	if n := v.Summary["upgrade"]; n > 0 {
		fmt.Fprintf(&b, ", %d dataplane(s) upgraded", n)
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
