package main

import (
	"fmt"
	"net"
	"net/netip"
	"os/signal"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/metrics"
)

func (a *app) metricsCommand() *cobra.Command {
	var o metrics.Options
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Print every counter and gauge once, in the Prometheus text format",
		Long: `Print tunmux's metrics once in the Prometheus text exposition format, for
node_exporter's textfile collector (write to a temporary file, then rename it
into the collector's directory):

  tunmux metrics > /var/lib/node_exporter/tunmux.prom.$$ &&
    mv /var/lib/node_exporter/tunmux.prom.$$ /var/lib/node_exporter/tunmux.prom

Series: tunmux_program_packets_total and _bytes_total by dataplane, program and
outcome (as 'tunmux stats'); per entry, labelled by its key: tunmux_tunnel_*,
tunmux_l2tp_session_*, tunmux_xconnect_*, tunmux_mux_member_*,
tunmux_route_nexthops, tunmux_route_peer_up; tunmux_map_entries and
_capacity; tunmux_link_attached; tunmux_doctor_check_ok (doctor's checks,
without the drop sample); tunmux_scrape_errors. docs/observability.md lists them.`,
		Example: "  tunmux metrics\n  tunmux metrics --entries=false",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Root = a.root()
			return metrics.Write(a.out, o)
		},
	}
	cmd.Flags().BoolVar(&o.Entries, "entries", true, "include the per-entry series (one set per tunnel, session, pair, member)")
	cmd.Flags().BoolVar(&o.Doctor, "doctor", true, "include doctor's checks")
	return cmd
}

func (a *app) serveCommand() *cobra.Command {
	var addr string
	var o metrics.Options
	cmd := &cobra.Command{
		Use:   "serve --metrics-addr ADDR",
		Short: "Serve /metrics (Prometheus), /healthz and /readyz over HTTP until stopped",
		Long: `Serve tunmux's metrics over HTTP: /metrics in the Prometheus text format (the
series 'tunmux metrics' prints, read from the pins at each scrape), and /healthz
and /readyz, which answer 200 "ok" while the bpffs root can be read and 503 with
the reason when it cannot. serve keeps no state: the dataplanes run from their
pins whether it runs or not. SIGINT or SIGTERM stops it.

'tunmux apply --watch --metrics-addr ADDR' serves the same paths from the agent
itself, its /healthz and /readyz saying whether the agent's loop turns and
whether it has applied its file (docs/kubernetes.md).`,
		Example: "  tunmux serve --metrics-addr :9478\n  tunmux serve --metrics-addr 127.0.0.1:9478 --entries=false",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Root = a.root()
			srv, err := a.startMetrics(addr, &metrics.Server{Options: o})
			if err != nil {
				return err
			}
			stop := stopSignals()
			defer signal.Stop(stop)
			select {
			case err := <-srv.done:
				return err
			case <-stop:
				return srv.close()
			}
		},
	}
	cmd.Flags().StringVar(&addr, "metrics-addr", "", "address to listen on for /metrics, /healthz and /readyz, HOST:PORT or :PORT")
	cmd.Flags().BoolVar(&o.Entries, "entries", true, "include the per-entry series")
	cmd.Flags().BoolVar(&o.Doctor, "doctor", true, "include doctor's checks")
	return cmd
}

// metricsAddr returns the address to listen on: HOST:PORT or :PORT, where
// HOST may also be an IPv6 address without brackets (fd00::1:9478, as
// Kubernetes expands $(NODE_IP):9478 on an IPv6 node: the last group is
// the port). It refuses what is neither, naming the flag.
func metricsAddr(addr string) (string, error) {
	if addr == "" {
		return "", maps.Invalid("--metrics-addr", "", "is required", "HOST:PORT or :PORT to listen on, like :9478")
	}
	if _, port, err := net.SplitHostPort(addr); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err == nil {
			return addr, nil
		}
		return "", maps.Invalid("--metrics-addr", addr, "has no port number", "HOST:PORT or :PORT, PORT 0..65535, like :9478")
	}
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		host, port := addr[:i], addr[i+1:]
		if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
			if _, err := strconv.ParseUint(port, 10, 16); err == nil {
				return net.JoinHostPort(host, port), nil
			}
		}
	}
	return "", maps.Invalid("--metrics-addr", addr, "is not HOST:PORT", "HOST:PORT or :PORT, like :9478 or [fd00::1]:9478")
}

// checkMetricsAddr refuses an address serve cannot listen on by its form.
func checkMetricsAddr(addr string) error {
	_, err := metricsAddr(addr)
	return err
}

// metricsServer is a metrics.Server running on its listener.
type metricsServer struct {
	ln   net.Listener
	done chan error
}

// close stops listening and waits for the requests being answered.
func (m *metricsServer) close() error {
	m.ln.Close()
	return <-m.done
}

// startMetrics listens on addr and serves srv until close.
func (a *app) startMetrics(addr string, srv *metrics.Server) (*metricsServer, error) {
	addr, err := metricsAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	fmt.Fprintf(a.errw, "tunmux: serving /metrics, /healthz and /readyz on %s\n", ln.Addr())
	m := &metricsServer{ln: ln, done: make(chan error, 1)}
	go func() { m.done <- srv.Serve(ln) }()
	return m, nil
}
