package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/doctor"
	"github.com/tunmux/tunmux/maps"
)

func (a *app) doctorCommand() *cobra.Command {
	var sample time.Duration
	var failedOnly bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check, live, what makes frames vanish without a counter saying so; print the fix",
		Long: `Run live checks of everything loaded in the root, each with a verdict and,
when it fails, the exact command that fixes it. Exit 1 when any check fails.
Doctor changes nothing.

  bpffs         the root is on a bpffs
  schema        the pins are of this tunmux's schema
  loaded-state  the pins open (whole, not split)
  link          every attachment runs (a recreated interface leaves its link defunct)
  xdp-slot      the XDP slot of such an interface is not held by another program
  veth-peer     a redirect target that is a veth has GRO or an XDP program at its peer
  tx-checksum   no tx checksum offload sends into an XDP-hook encap or decap
  mtu           the overlay's MTU fits what each tunnel carries
  devmap-slot   the kernel has not dropped a redirect slot (it does when an interface goes)
  neighbour     each tunnel's next-hop MAC is the kernel's neighbour for its outer destination
  tunnel-dev    route: the tunnel devices are there and up
  rp-filter     route: no reverse-path filtering on the tunnel devices
  route-src     route: kernel routes to the routes device carry a src address
  xdp-drops     the kernel dropped no frame XDP redirected, counted for --sample at the
                kernel's xdp tracepoints (frames no program counter shows)`,
		Example: "  tunmux doctor\n  tunmux doctor -o json --sample 0",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sample < 0 {
				return maps.Invalid("--sample", sample.String(), "is negative", "a duration like 1s, 0 to skip the kernel's drop count")
			}
			var flags []string
			if a.bpffs != "" {
				flags = append(flags, "--bpffs", a.bpffs)
			}
			rep := doctor.Run(doctor.Options{Root: a.root(), Flags: strings.Join(flags, " "), Sample: sample})
			if a.output == "json" {
				if err := a.printer.Print(rep); err != nil {
					return err
				}
			} else {
				a.printDoctor(rep, failedOnly)
			}
			if !rep.OK {
				return fmt.Errorf("%d of %d checks failed", rep.Failed, rep.Checked)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&sample, "sample", time.Second, "how long to count the kernel's drops of redirected frames (0: skip)")
	cmd.Flags().BoolVar(&failedOnly, "failed", false, "show only the checks that failed")
	return cmd
}

// printDoctor prints a report: a line per check, the fix under a failure.
func (a *app) printDoctor(rep doctor.Report, failedOnly bool) {
	for _, r := range rep.Results {
		if failedOnly && r.Status != doctor.Fail {
			continue
		}
		verdict := "ok  "
		if r.Status == doctor.Fail {
			verdict = "FAIL"
		}
		fmt.Fprintf(a.out, "%s  %-12s %s: %s\n", verdict, r.Check, r.Subject, r.Message)
		if r.Fix != "" {
			fmt.Fprintf(a.out, "      fix: %s\n", r.Fix)
		}
	}
	fmt.Fprintf(a.out, "%d checks, %d failed\n", rep.Checked, rep.Failed)
}
