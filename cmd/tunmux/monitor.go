package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
	"github.com/tunmux/tunmux/observe"
)

// monitorOptions are monitor's flags.
type monitorOptions struct {
	drops     bool
	dataplane string
	rate      int
	count     int
	timeout   time.Duration
}

func (a *app) monitorCommand() *cobra.Command {
	var o monitorOptions
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Stream one line per frame and what tunmux's programs did with it, with the reason",
		Long: `Stream events from tunmux's programs: one line per frame (a JSON object per
line with -o json) with the time, dataplane, program, interface, the outcome
counted for it (every outcome 'tunmux stats' knows, e.g. drop_too_big,
pass_no_tunnel, pass_bad_cookie, pass_no_healthy), the action and where a
redirect sent it, and the entry it belongs to: a tunnel's inner pair, an l2tp
session, a route's prefix and the nexthop chosen, a cross-connect's two ends.

--drops shows only drops and frames passed because nothing matched or the
entry refused them (drop_*, pass_no_*, pass_mismatch, pass_bad_cookie,
pass_malformed); the programs report nothing else.

Every program attached in the root is watched (in --netns only, when given;
of --dataplane only, when given). Events are limited per CPU (--rate a second,
in bursts of as many); a line after a gap says how many were left out. While
monitor runs, the links run the observed build of their programs; when it ends
(Ctrl-C, SIGTERM, -c, --timeout) they run the plain build again.`,
		Example: "  tunmux monitor --drops\n  tunmux --netns node1 monitor --dataplane encap -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.monitor(o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.drops, "drops", false, "only drops and passes on a miss")
	f.StringVar(&o.dataplane, "dataplane", "", "only this dataplane's programs")
	f.IntVar(&o.rate, "rate", 1000, "events a second per CPU at most, 1..1000000")
	f.IntVarP(&o.count, "count", "c", 0, "stop after this many events (0: until interrupted)")
	f.DurationVar(&o.timeout, "timeout", 0, "stop after this long (0: no limit)")
	return cmd
}

// monitorEvent is one line of monitor -o json.
type monitorEvent struct {
	Time       time.Time `json:"time"`
	Dataplane  string    `json:"dataplane"`
	Program    string    `json:"program"`
	Netns      string    `json:"netns"`
	Interface  string    `json:"interface"`
	Outcome    string    `json:"outcome"`
	Action     string    `json:"action"`
	Target     string    `json:"target"`
	Key        string    `json:"key"`
	Length     uint32    `json:"length"`
	Suppressed uint32    `json:"suppressed"`
}

func (a *app) monitor(o monitorOptions) error {
	var errs []error
	var only *dataplane.Dataplane
	if o.dataplane != "" {
		dp, err := dataplane.Lookup(o.dataplane)
		if err != nil {
			errs = append(errs, maps.Invalid("--dataplane", o.dataplane, "is not a dataplane", dataplaneNames()))
		}
		only = dp
	}
	if o.rate < 1 || o.rate > 1000000 {
		errs = append(errs, maps.Invalid("--rate", strconv.Itoa(o.rate), "is out of range", "1..1000000 events a second per CPU"))
	}
	if o.count < 0 {
		errs = append(errs, maps.Invalid("-c", strconv.Itoa(o.count), "is negative", "a number of events, 0 for no limit"))
	}
	if o.timeout < 0 {
		errs = append(errs, maps.Invalid("--timeout", o.timeout.String(), "is negative", "a duration like 10s, 0 for no limit"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var ino uint64
	if err := netdev.Do(a.netns, func() (err error) { ino, err = netdev.CurrentInode(); return err }); err != nil {
		return err
	}
	loaded, closeAll, err := a.openLoaded()
	if err != nil {
		return err
	}
	defer closeAll()
	if only != nil {
		var keep []*dataplane.Loaded
		for _, l := range loaded {
			if l.DP == only {
				keep = append(keep, l)
			}
		}
		if len(keep) == 0 {
			return fmt.Errorf("%s is not loaded under %s: %w (run 'tunmux load %s')", only.Name, a.root().Path, maps.ErrNotLoaded, only.Name)
		}
		loaded = keep
	}
	choose := func(_ string, _ maps.Hook, netns uint64, _ uint32) bool { return a.netns == "" || netns == ino }
	opt := observe.Options{Where: observe.Event, EventSnaplen: 128, Rate: uint64(o.rate), Burst: uint64(o.rate)}
	if o.drops {
		opt.Outcomes = problemOutcomes
	}
	stop := stopSignals()
	defer signal.Stop(stop)
	sess, err := observe.Open(loaded, choose, opt)
	if errors.Is(err, maps.ErrNotFound) {
		return fmt.Errorf("no tunmux program is attached%s: %w (see 'tunmux status')", inNetns(a.netns), maps.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if err := sess.Start(); err != nil {
		sess.Close()
		return err
	}
	fmt.Fprintf(a.errw, "tunmux: monitoring %s; Ctrl-C stops\n", strings.Join(sess.Observed(), ", "))
	enc := json.NewEncoder(a.out)
	enc.SetEscapeHTML(false)
	shown, suppressed := 0, uint64(0)
	rerr := readRecords(sess, stop, o.count, o.timeout, func(r observe.Record) (bool, error) {
		if r.Where != observe.Event {
			return false, nil
		}
		shown++
		suppressed += uint64(r.Suppressed)
		iface := r.Iface
		if r.Netns != "" {
			iface = r.Netns + "/" + iface
		}
		if a.output == "json" {
			return true, enc.Encode(monitorEvent{Time: r.Time.UTC(), Dataplane: r.Dataplane, Program: r.Program, Netns: r.Netns,
				Interface: r.Iface, Outcome: r.Outcome, Action: r.Action, Target: r.Target, Key: r.Key, Length: r.Length, Suppressed: r.Suppressed})
		}
		action := r.Action
		if r.Target != "" {
			action += "->" + r.Target
		}
		line := fmt.Sprintf("%s %s %s %s %s %s", r.Time.UTC().Format("15:04:05.000000"), r.Program, iface, r.Outcome, action, orDash(r.Key))
		line += fmt.Sprintf(" len %d", r.Length)
		if r.Suppressed > 0 {
			line += fmt.Sprintf(" (%d left out before this)", r.Suppressed)
		}
		_, err := fmt.Fprintln(a.out, line)
		return true, err
	})
	cerr := sess.Close()
	fmt.Fprintf(a.errw, "tunmux: %d events shown, %d left out by the rate limit, %d records lost\n", shown, suppressed, sess.Lost())
	if rerr != nil {
		return fmt.Errorf("monitor: %w", rerr)
	}
	return cerr
}

// problemOutcomes is the outcome mask of monitor --drops for a dataplane.
func problemOutcomes(dp *dataplane.Dataplane) [2]uint64 {
	var mask [2]uint64
	names, err := dp.CounterNames()
	if err != nil {
		return mask
	}
	for i, n := range names {
		if i < 128 && observe.Problem(n[1]) {
			mask[i/64] |= 1 << (i % 64)
		}
	}
	return mask
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// dataplaneNames lists the dataplanes for messages: "encap|l2tp|...".
func dataplaneNames() string {
	var names []string
	for _, dp := range dataplane.All() {
		names = append(names, dp.Name)
	}
	return strings.Join(names, "|")
}
