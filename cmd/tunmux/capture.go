package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
	"github.com/tunmux/tunmux/observe"
)

// captureOptions are capture's flags.
type captureOptions struct {
	program  string
	where    string
	tunnel   string
	innerSrc string
	innerDst string
	count    int
	snaplen  int
	write    string
	timeout  time.Duration
}

func (a *app) captureCommand() *cobra.Command {
	var o captureOptions
	cmd := &cobra.Command{
		Use:   "capture (IFACE | --program PROGRAM) -w FILE|-",
		Short: "Write the frames tunmux's programs receive and send as pcapng, where tcpdump cannot see them",
		Long: `Capture frames as tunmux's programs see them: as each receives a frame (entry)
and as it leaves it (exit: encapsulated, decapsulated, or untouched), with the
outcome. XDP redirects frames past the kernel's taps, so tcpdump on the
interfaces never sees them; this does.

IFACE picks the programs attached to that interface (in --netns), every
dataplane and hook; --program picks every link of one program (encap, decap,
encap_tc, l2tp_encap, xconnect, route_egress, ...), in --netns only when given.

The file is pcapng: one interface block per program, interface and place
(named like "wl0:encap:exit"), and a comment on each packet naming the program,
the place, the action and the outcome counted for it, e.g.
"encap exit redirect->ul0 vxlan". '-w -' writes to standard output:
  tunmux capture wl0 -w - | tshark -r -

While the capture runs, the chosen links run the observed build of their
programs (the same code, reporting through a perf buffer); when it ends (-c,
--timeout, Ctrl-C, SIGTERM) they run the plain build again, which carries no
capture code at all. Frames are never held up: when user space falls behind,
records are lost (counted in the summary on standard error), not frames.
One capture or monitor at a time observes a link; one killed with SIGKILL
leaves its links observed until the next capture or monitor takes them over.`,
		Example: "  tunmux --netns node1 capture wl0 -c 10 -w /tmp/wl0.pcapng\n" +
			"  tunmux capture --program decap --where exit -w - | tshark -r - -V\n" +
			"  tunmux capture wl0 --tunnel 10.0.0.1-10.0.0.2 -w tunnel.pcapng",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.capture(args, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.program, "program", "", "capture every link of this program instead of one interface's programs")
	f.StringVar(&o.where, "where", "both", "which frames: entry (as received), exit (as left), or both")
	f.StringVar(&o.tunnel, "tunnel", "", "only frames of this tunnel, by its key INNER-SRC-INNER-DST (or INNER-SRC->INNER-DST, as 'tunnel list' shows it), outside or inside VXLAN/GENEVE, either direction")
	f.StringVar(&o.innerSrc, "inner-src", "", "with --inner-dst: the tunnel key, as an alternative to --tunnel")
	f.StringVar(&o.innerDst, "inner-dst", "", "with --inner-src: the tunnel key, as an alternative to --tunnel")
	f.IntVarP(&o.count, "count", "c", 0, "stop after this many frames written (0: until interrupted)")
	f.IntVar(&o.snaplen, "snaplen", 65535, "bytes kept of each frame, 1..65535")
	f.StringVarP(&o.write, "write", "w", "", "pcapng file to write, or - for standard output (required)")
	f.DurationVar(&o.timeout, "timeout", 0, "stop after this long (0: no limit)")
	return cmd
}

// parseCaptureOptions checks capture's flags: everything before anything is touched.
func parseCaptureOptions(args []string, o captureOptions) (where observe.Where, pair *observe.Pair, err error) {
	var errs []error
	switch {
	case len(args) == 1 && o.program != "":
		errs = append(errs, maps.Invalid("--program", o.program, "is given with an interface", "either IFACE or --program PROGRAM"))
	case len(args) == 0 && o.program == "":
		errs = append(errs, maps.Invalid("IFACE", "", "is required", "an interface name, or --program PROGRAM"))
	case len(args) == 1:
		if err := maps.ValidateIfaceName("IFACE", args[0]); err != nil {
			errs = append(errs, err)
		}
	}
	switch o.where {
	case "entry":
		where = observe.Entry
	case "exit":
		where = observe.Exit
	case "both":
		where = observe.Entry | observe.Exit
	default:
		errs = append(errs, maps.Invalid("--where", o.where, "is not a place", "entry|exit|both"))
	}
	if o.write == "" {
		errs = append(errs, maps.Invalid("-w", "", "is required", "a file to write, or - for standard output"))
	}
	if o.count < 0 {
		errs = append(errs, maps.Invalid("-c", strconv.Itoa(o.count), "is negative", "a number of frames, 0 for no limit"))
	}
	if o.snaplen < 1 || o.snaplen > 65535 {
		errs = append(errs, maps.Invalid("--snaplen", strconv.Itoa(o.snaplen), "is out of range", "1..65535"))
	}
	if o.timeout < 0 {
		errs = append(errs, maps.Invalid("--timeout", o.timeout.String(), "is negative", "a duration like 10s, 0 for no limit"))
	}
	pair, perr := parseTunnelPair(o)
	if perr != nil {
		errs = append(errs, perr)
	}
	return where, pair, errors.Join(errs...)
}

// parseTunnelPair reads --tunnel, or --inner-src with --inner-dst.
func parseTunnelPair(o captureOptions) (*observe.Pair, error) {
	const form = "INNER-SRC-INNER-DST or INNER-SRC->INNER-DST, like 10.0.0.1-10.0.0.2"
	if o.tunnel != "" && (o.innerSrc != "" || o.innerDst != "") {
		return nil, maps.Invalid("--tunnel", o.tunnel, "is given with --inner-src/--inner-dst", "one of the two forms")
	}
	src, dst := o.innerSrc, o.innerDst
	if o.tunnel != "" {
		s, d, ok := strings.Cut(o.tunnel, "->")
		if !ok {
			// Split at the dash between two addresses (IPv6 has none).
			i := strings.LastIndex(o.tunnel, "-")
			if i < 0 {
				return nil, maps.Invalid("--tunnel", o.tunnel, "is not a tunnel key", form)
			}
			s, d = o.tunnel[:i], o.tunnel[i+1:]
		}
		src, dst = s, d
	} else if src == "" && dst == "" {
		return nil, nil
	}
	a, err1 := netip.ParseAddr(src)
	b, err2 := netip.ParseAddr(dst)
	if err1 != nil || err2 != nil {
		flag := "--tunnel"
		if o.tunnel == "" {
			flag = "--inner-src/--inner-dst"
		}
		return nil, maps.Invalid(flag, src+" "+dst, "are not two IP addresses", form)
	}
	return &observe.Pair{Src: a.Unmap(), Dst: b.Unmap()}, nil
}

func (a *app) capture(args []string, o captureOptions) error {
	where, pair, err := parseCaptureOptions(args, o)
	if err != nil {
		return err
	}
	choose, err := a.linkChoice(args, o.program)
	if err != nil {
		return err
	}
	loaded, closeAll, err := a.openLoaded()
	if err != nil {
		return err
	}
	defer closeAll()
	stop := stopSignals() // before any link is observed: a signal must end it cleanly
	defer signal.Stop(stop)
	sess, err := observe.Open(loaded, choose, observe.Options{Where: where, Snaplen: uint32(o.snaplen)})
	if err != nil {
		if errors.Is(err, maps.ErrNotFound) {
			what := "on " + describeIn(a.netns, strings.Join(args, ""))
			if o.program != "" {
				what = "as program " + o.program
			}
			return fmt.Errorf("no tunmux program is attached %s: %w (see 'tunmux status')", what, maps.ErrNotFound)
		}
		return err
	}
	var out io.Writer = a.out
	var file *os.File
	if o.write != "-" {
		if file, err = os.Create(o.write); err != nil {
			sess.Close()
			return fmt.Errorf("-w %s: %w", o.write, err)
		}
		defer file.Close()
		out = file
	}
	w, err := observe.NewPcapngWriter(out, uint32(o.snaplen))
	if err != nil {
		sess.Close()
		return fmt.Errorf("write %s: %w", o.write, err)
	}
	if err := sess.Start(); err != nil {
		sess.Close()
		return err
	}
	fmt.Fprintf(a.errw, "tunmux: capturing %s at %s; Ctrl-C stops\n", strings.Join(sess.Observed(), ", "), o.where)
	written := map[observe.Where]int{}
	total := 0
	werr := readRecords(sess, stop, o.count, o.timeout, func(r observe.Record) (bool, error) {
		if r.Where == observe.Event || (pair != nil && !pair.Matches(r.Data, r.L3)) {
			return false, nil
		}
		if err := w.Write(r); err != nil {
			return false, err
		}
		if err := w.Flush(); err != nil {
			return false, err
		}
		written[r.Where]++
		total++
		return true, nil
	})
	cerr := sess.Close()
	summary := captureSummary{Frames: total, Entry: written[observe.Entry], Exit: written[observe.Exit], Lost: sess.Lost(), File: o.write}
	a.printSummary(summary)
	if werr != nil {
		return fmt.Errorf("capture: %w", werr)
	}
	return cerr
}

// readRecords hands the session's records to handle until count of them
// were taken (handle returns true for those; 0: no limit), timeout passes
// (0: none), a signal comes on stop, or handle or a reader fails.
func readRecords(sess *observe.Session, stop <-chan os.Signal, count int, timeout time.Duration, handle func(observe.Record) (bool, error)) error {
	var expire <-chan time.Time
	if timeout > 0 {
		expire = time.After(timeout)
	}
	for taken := 0; count == 0 || taken < count; {
		select {
		case r := <-sess.Records():
			took, err := handle(r)
			if err != nil {
				return err
			}
			if took {
				taken++
			}
		case err := <-sess.Err():
			return err
		case <-stop:
			return nil
		case <-expire:
			return nil
		}
	}
	return nil
}

// stopSignals are the signals that end a capture or monitor cleanly: its
// links run their plain programs again.
func stopSignals() chan os.Signal {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE, syscall.SIGHUP)
	return stop
}

// captureSummary is what capture says when it ends (on standard error).
type captureSummary struct {
	Frames int    `json:"frames"`
	Entry  int    `json:"entry"`
	Exit   int    `json:"exit"`
	Lost   uint64 `json:"lost"`
	File   string `json:"file"`
}

func (a *app) printSummary(s captureSummary) {
	if a.output == "json" {
		b, _ := jsonOf(s)
		fmt.Fprintf(a.errw, "%s\n", b)
		return
	}
	fmt.Fprintf(a.errw, "tunmux: %d frames captured (%d at entry, %d at exit), %d records lost\n", s.Frames, s.Entry, s.Exit, s.Lost)
}

// describeIn names an interface with its namespace for messages.
func describeIn(netns, iface string) string {
	if netns == "" {
		return iface
	}
	return netns + "/" + iface
}

// linkChoice picks the links of the interface args name (in --netns), or
// of --program (in --netns when given).
func (a *app) linkChoice(args []string, program string) (dataplane.LinkChoice, error) {
	var ino uint64
	var ifindex uint32
	err := netdev.Do(a.netns, func() error {
		var err error
		if ino, err = netdev.CurrentInode(); err != nil {
			return err
		}
		if len(args) == 1 {
			ifc, err := netdev.Lookup(args[0])
			if err != nil {
				return maps.Invalid("IFACE", args[0], "is not an interface"+inNetns(a.netns), "an interface name (ip link)")
			}
			ifindex = uint32(ifc.Index)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(args) == 1 {
		return func(_ string, _ maps.Hook, netns uint64, idx uint32) bool { return netns == ino && idx == ifindex }, nil
	}
	anyNetns := a.netns == ""
	return func(fn string, _ maps.Hook, netns uint64, _ uint32) bool {
		if !anyNetns && netns != ino {
			return false
		}
		return fn == program || dataplane.PinnedProgramName(fn) == program
	}, nil
}

// inNetns says " in namespace X" when one is given.
func inNetns(netns string) string {
	if netns == "" {
		return ""
	}
	return " in namespace " + netns
}

// openLoaded opens every dataplane loaded in the root.
func (a *app) openLoaded() ([]*dataplane.Loaded, func(), error) {
	root := a.root()
	names, err := root.Dataplanes()
	if err != nil {
		return nil, nil, err
	}
	var out []*dataplane.Loaded
	closeAll := func() {
		for _, l := range out {
			l.Close()
		}
	}
	for _, n := range names {
		dp, err := dataplane.Lookup(n)
		if err != nil {
			continue
		}
		l, err := dataplane.Open(root, dp)
		if errors.Is(err, maps.ErrNotLoaded) {
			continue
		}
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("nothing is loaded under %s: %w (run 'tunmux load DATAPLANE')", root.Path, maps.ErrNotLoaded)
	}
	return out, closeAll, nil
}
