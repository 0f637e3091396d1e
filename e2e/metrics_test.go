package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/metrics"
)

// parseMetrics parses the text format with Prometheus's own parser.
func parseMetrics(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the metrics: %v", err)
	}
	return mfs
}

// value returns the value of the series of family name whose labels
// include want, failing when there is not exactly one.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no family %s", name)
	}
	var found []float64
	for _, m := range mf.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			found = append(found, m.Counter.GetValue())
		case m.Gauge != nil:
			found = append(found, m.Gauge.GetValue())
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series", name, want, len(found))
	}
	return found[0]
}

// TestMetricsMatchStatsAndPings serves node 1's metrics, scrapes them as
// Prometheus would around 20 pings, and requires the per-tunnel counters
// to move by exactly the pings, the program counters to equal `tunmux
// stats`, and `tunmux metrics` to print the same families.
func TestMetricsMatchStatsAndPings(t *testing.T) {
	b := newBed(t)
	for n := 1; n <= 2; n++ {
		b.TunmuxNode(n, "vxlan", "--vni", "6300")
		o := 3 - n
		b.ns(fmt.Sprintf("w%d", n)).Run(t, "ip", "neigh", "replace", fmt.Sprintf("10.0.0.%d", o),
			"lladdr", fmt.Sprintf("02:00:00:00:0%d:0%d", o, o), "nud", "permanent", "dev", "eth0")
	}
	b.ping(1, "10.0.0.2")
	root := b.Args(1)[:2]

	serve := exec.Command(bin, append(append([]string{}, root...), "serve", "--metrics-addr", "127.0.0.1:0")...)
	stderr, err := serve.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = serve.Process.Kill(); _ = serve.Wait() })
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil || !strings.Contains(line, "serving") {
		t.Fatalf("tunmux serve: %q %v", line, err)
	}
	addr := strings.Fields(line)[len(strings.Fields(line))-1]
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	if resp, body := get("/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get("/nope"); resp.StatusCode != 404 {
		t.Errorf("/nope: %d", resp.StatusCode)
	}
	scrape := func() map[string]*dto.MetricFamily {
		t.Helper()
		resp, body := get("/metrics")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != metrics.ContentType {
			t.Fatalf("/metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return parseMetrics(t, strings.NewReader(body))
	}
	tunnel := map[string]string{"inner_src": "10.0.0.1", "inner_dst": "10.0.0.2", "proto": "vxlan", "direction": "tx"}
	rx := map[string]string{"inner_src": "10.0.0.1", "inner_dst": "10.0.0.2", "proto": "vxlan", "direction": "rx"}
	before := scrape()
	const count, frame = 20, 14 + 20 + 8 + 56
	if out, err := b.ns("w1").Try("ping", "-c", fmt.Sprint(count), "-i", "0.01", "-W", "2", "10.0.0.2"); err != nil || !strings.Contains(out, fmt.Sprintf("%d received", count)) {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	after := scrape()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tunmux_tunnel_packets_total", tunnel, count},
		{"tunmux_tunnel_bytes_total", tunnel, count * frame},
		{"tunmux_tunnel_packets_total", rx, count},
		{"tunmux_program_packets_total", map[string]string{"dataplane": "encap", "program": "encap", "outcome": "vxlan"}, count},
		{"tunmux_program_packets_total", map[string]string{"dataplane": "encap", "program": "decap", "outcome": "vxlan"}, count},
	} {
		if got := value(t, after, c.name, c.labels) - value(t, before, c.name, c.labels); got != c.want {
			t.Errorf("%s%v moved %v over %d pings, want %v", c.name, c.labels, got, count, c.want)
		}
	}
	// Every program counter agrees with tunmux stats: at least what stats
	// read before the scrape, at most what it read after (the stack's own
	// IPv6 frames may cross meanwhile, counted pass_not_tunnel).
	type statRow struct {
		Program, Outcome string
		Packets, Bytes   uint64
	}
	readStats := func() map[[2]string]statRow {
		var rows []statRow
		if err := json.Unmarshal([]byte(b.Tunmux(1, "-o", "json", "stats").Stdout), &rows); err != nil {
			t.Fatal(err)
		}
		out := map[[2]string]statRow{}
		for _, r := range rows {
			out[[2]string{r.Program, r.Outcome}] = r
		}
		return out
	}
	lo := readStats()
	now := scrape()
	hi := readStats()
	for k, l := range lo {
		h := hi[k]
		labels := map[string]string{"dataplane": "encap", "program": k[0], "outcome": k[1]}
		p, by := value(t, now, "tunmux_program_packets_total", labels), value(t, now, "tunmux_program_bytes_total", labels)
		if p < float64(l.Packets) || p > float64(h.Packets) || by < float64(l.Bytes) || by > float64(h.Bytes) {
			t.Errorf("%s/%s: metrics %v packets %v bytes; stats before %d %d, after %d %d", k[0], k[1], p, by, l.Packets, l.Bytes, h.Packets, h.Bytes)
		}
	}
	for _, l := range []map[string]string{{"program": "encap", "interface": "wl0", "state": "attached"}, {"program": "decap", "interface": "ul0", "state": "attached"}} {
		if v := value(t, now, "tunmux_link_attached", l); v != 1 {
			t.Errorf("tunmux_link_attached%v = %v", l, v)
		}
	}
	if v := value(t, now, "tunmux_map_entries", map[string]string{"dataplane": "encap", "map": "tunnels4"}); v != 1 {
		t.Errorf("tunmux_map_entries of tunnels4 = %v, want 1", v)
	}
	if v := value(t, now, "tunmux_doctor_check_ok", map[string]string{"check": "mtu"}); v != 1 {
		t.Errorf("doctor's mtu check in the metrics: %v", v)
	}
	// tunmux metrics prints the same families once.
	printed := parseMetrics(t, strings.NewReader(testnet.MustTunmux(t, bin, append(root, "metrics")...).Stdout))
	for name := range now {
		if printed[name] == nil {
			t.Errorf("tunmux metrics lacks %s", name)
		}
	}
	_ = serve.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tunmux serve after SIGINT: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("tunmux serve did not stop on SIGINT")
	}
}
