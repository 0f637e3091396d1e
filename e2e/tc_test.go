package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
)

// TestTCHookEndToEnd runs each protocol over the TC hook with the senders'
// offloads left on (TSO, checksum offload, GSO across the tunnel), for
// IPv4 and IPv6 workloads: ping and TCP both ways, the wire decoded by
// tshark, the TC programs' counters, and status naming the hook.
func TestTCHookEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		proto  string
		id     []string
		filter string
	}{
		{"geneve", []string{"--vni", "6001"}, "udp port 6081"},
		{"vxlan", []string{"--vni", "6002"}, "udp port 4789"},
		{"vlan", []string{"--vlan-id", "310"}, "vlan 310"},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			b := newBedFor(t, "tc")
			for n := 1; n <= 2; n++ {
				b.TunmuxNodeWith(n, testnet.Node{Proto: tc.proto, IDArgs: tc.id, Hook: "tc", Inner: []int{4, 6}})
			}
			done := b.capture(tc.filter, 4, "_ws.malformed", "ip.checksum.status")
			b.ping(1, "10.0.0.2")
			for i, row := range done() {
				if row[0] != "" || (row[1] != "" && !strings.HasPrefix(row[1], "1")) {
					t.Errorf("frame %d on the wire: malformed or bad IPv4 checksum: %v", i+1, row)
				}
			}
			b.ping(2, "10.0.0.1")
			b.ping(1, "fd00::2")
			b.ping(2, "fd00::1")
			b.tcp(1)
			b.tcp(2)
			tcpTransfer(t, b.ns("w1"), b.ns("w2"), "fd00::2")
			udpSmall(t, b.ns("w1"), b.ns("w2"), "10.0.0.2")
			udpSmall(t, b.ns("w2"), b.ns("w1"), "fd00::1")
			for n := 1; n <= 2; n++ {
				if b.Counter(n, "encap-tc", tc.proto) == 0 || b.Counter(n, "decap-tc", tc.proto) == 0 {
					t.Errorf("node %d counted no %s encap or decap on the TC hook", n, tc.proto)
				}
				if d := b.Counter(n, "encap-tc", "drop_too_big") + b.Counter(n, "encap-tc", "drop_error") + b.Counter(n, "decap-tc", "drop_error"); d != 0 {
					t.Errorf("node %d dropped %d frames on the TC hook", n, d)
				}
			}
			checkHooks(t, b, 1, map[string]string{"encap-tc": "tc-ingress", "decap-tc": "tc-ingress"})
		})
	}
}

// newBedFor builds the testbed for a hook: the TC hook runs with the
// senders' offloads on, as an operator leaves them; XDP needs them off (the
// testbed's default).
func newBedFor(t *testing.T, hook string) *bed {
	b := newBed(t)
	if hook == "tc" {
		b.Offloads()
	}
	return b
}

// checkHooks checks that status lists node n's links with these hooks.
func checkHooks(t *testing.T, b *bed, n int, want map[string]string) {
	t.Helper()
	var st struct {
		Dataplanes []struct {
			Links []struct {
				Program string `json:"program"`
				Hook    string `json:"hook"`
			} `json:"links"`
		} `json:"dataplanes"`
	}
	out := b.Tunmux(n, "-o", "json", "status").Stdout
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Dataplanes) != 1 {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, l := range st.Dataplanes[0].Links {
		got[l.Program] = l.Hook
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("status links (program: hook) %v, want %v", got, want)
	}
}

// TestIPv6UnderlayEndToEnd: tunmux to tunmux over the IPv6 underlay, on
// each hook, IPv4 and IPv6 workloads (IPv4 over IPv6 and IPv6 over IPv6).
func TestIPv6UnderlayEndToEnd(t *testing.T) {
	for _, hook := range []string{"xdp", "tc"} {
		t.Run(hook, func(t *testing.T) {
			b := newBedFor(t, hook)
			b.WorkloadMTU(1430)
			for n := 1; n <= 2; n++ {
				b.TunmuxNodeWith(n, testnet.Node{Proto: "geneve", IDArgs: []string{"--vni", "6100"}, Hook: hook, Outer6: true, Inner: []int{4, 6}})
			}
			done := b.capture("ip6 and udp port 6081", 4, "_ws.malformed", "ipv6.src", "geneve.vni")
			b.ping(1, "10.0.0.2")
			for i, row := range done() {
				if row[0] != "" || !strings.HasPrefix(row[1], "fd01::") || !vniIs(row[2], 6100) {
					t.Errorf("frame %d on the wire: %v", i+1, row)
				}
			}
			b.ping(2, "fd00::1")
			b.tcp(1)
			tcpTransfer(t, b.ns("w2"), b.ns("w1"), "fd00::1")
			udpSmall(t, b.ns("w1"), b.ns("w2"), "10.0.0.2")
			udpSmall(t, b.ns("w2"), b.ns("w1"), "fd00::1")
		})
	}
}

// TestInteropWithKernelVXLANOverIPv6: tunmux (each hook) and the kernel's
// vxlan device over the IPv6 underlay, traffic both ways. The kernel peer
// accepts zero UDP checksums (udp6zerocsumrx): tunmux's TC hook sends GSO
// frames with none (RFC 6935/6936).
func TestInteropWithKernelVXLANOverIPv6(t *testing.T) {
	for _, hook := range []string{"xdp", "tc"} {
		t.Run(hook, func(t *testing.T) {
			b := newBedFor(t, hook)
			b.WorkloadMTU(1430)
			b.TunmuxNodeWith(1, testnet.Node{Proto: "vxlan", IDArgs: []string{"--vni", "4343"}, Hook: hook, Outer6: true})
			b.KernelVXLANNodeOver(2, 4343, 6)
			done := b.capture("ip6 and udp port 4789", 6, "ipv6.src", "vxlan.vni", "_ws.malformed")
			b.ping(1, "10.0.0.2")
			from := map[string]bool{}
			for _, r := range done() {
				if !vniIs(r[1], 4343) || r[2] != "" {
					t.Errorf("VXLAN frame on the wire: %v", r)
				}
				from[r[0]] = true
			}
			if !from["fd01::1"] || !from["fd01::2"] {
				t.Errorf("want frames from tunmux (fd01::1) and the kernel's vxlan (fd01::2), saw %v", from)
			}
			b.ping(2, "10.0.0.1")
			b.tcp(1)
			b.tcp(2)
			udpSmall(t, b.ns("w1"), b.ns("w2"), "10.0.0.2")
			udpSmall(t, b.ns("w2"), b.ns("w1"), "10.0.0.1")
			program := map[string]string{"xdp": "decap", "tc": "decap-tc"}[hook]
			if b.Counter(1, program, "vxlan") == 0 {
				t.Errorf("tunmux decapsulated nothing from the kernel's vxlan")
			}
		})
	}
}

// tunnelCounters reads node n's counters of the tunnel src->dst.
func tunnelCounters(t *testing.T, b *bed, n int, src, dst string) (c struct {
	TxPackets, TxBytes, RxPackets, RxBytes, DropTooBig uint64
}) {
	t.Helper()
	var tn struct {
		Counters struct {
			TxPackets  uint64 `json:"tx_packets"`
			TxBytes    uint64 `json:"tx_bytes"`
			RxPackets  uint64 `json:"rx_packets"`
			RxBytes    uint64 `json:"rx_bytes"`
			DropTooBig uint64 `json:"drop_too_big"`
		} `json:"counters"`
	}
	out := b.Tunmux(n, "-o", "json", "tunnel", "get", "--inner-src", src, "--inner-dst", dst).Stdout
	if err := json.Unmarshal([]byte(out), &tn); err != nil {
		t.Fatalf("tunnel get JSON: %v\n%s", err, out)
	}
	c.TxPackets, c.TxBytes, c.RxPackets, c.RxBytes, c.DropTooBig = tn.Counters.TxPackets, tn.Counters.TxBytes, tn.Counters.RxPackets, tn.Counters.RxBytes, tn.Counters.DropTooBig
	return c
}

// TestTunnelCountersMatchTraffic: per-tunnel packet counters agree with
// ping exactly (neighbours are fixed, so nothing else crosses), and byte
// counters with what iperf3 reports it sent and received, within the
// inner headers each frame (or GSO frame) adds: inner frames are counted.
func TestTunnelCountersMatchTraffic(t *testing.T) {
	for _, hook := range []string{"xdp", "tc"} {
		t.Run(hook, func(t *testing.T) {
			b := newBedFor(t, hook)
			for n := 1; n <= 2; n++ {
				b.TunmuxNodeWith(n, testnet.Node{Proto: "vxlan", IDArgs: []string{"--vni", "6200"}, Hook: hook})
				o := 3 - n
				b.ns(fmt.Sprintf("w%d", n)).Run(t, "ip", "neigh", "replace", fmt.Sprintf("10.0.0.%d", o),
					"lladdr", fmt.Sprintf("02:00:00:00:0%d:0%d", o, o), "nud", "permanent", "dev", "eth0")
			}
			before1, before2 := tunnelCounters(t, b, 1, "10.0.0.1", "10.0.0.2"), tunnelCounters(t, b, 2, "10.0.0.2", "10.0.0.1")
			const count, frame = 20, 14 + 20 + 8 + 56 // Ethernet, IPv4, ICMP, default payload
			out, err := b.ns("w1").Try("ping", "-c", fmt.Sprint(count), "-i", "0.01", "-W", "2", "10.0.0.2")
			if err != nil || !strings.Contains(out, fmt.Sprintf("%d received", count)) {
				t.Fatalf("ping: %v\n%s", err, out)
			}
			after1, after2 := tunnelCounters(t, b, 1, "10.0.0.1", "10.0.0.2"), tunnelCounters(t, b, 2, "10.0.0.2", "10.0.0.1")
			for _, c := range []struct {
				what      string
				got, want uint64
			}{
				{"node 1 tx packets", after1.TxPackets - before1.TxPackets, count},
				{"node 1 tx bytes", after1.TxBytes - before1.TxBytes, count * frame},
				{"node 1 rx packets", after1.RxPackets - before1.RxPackets, count},
				{"node 1 rx bytes", after1.RxBytes - before1.RxBytes, count * frame},
				{"node 2 rx packets", after2.RxPackets - before2.RxPackets, count},
				{"node 2 tx packets", after2.TxPackets - before2.TxPackets, count},
			} {
				if c.got != c.want {
					t.Errorf("%s after %d pings: %d, want %d", c.what, count, c.got, c.want)
				}
			}

			before1, before2 = after1, after2
			stop := testnet.Background(t, b.ns("w2").Cmd("iperf3", "-s", "-1", "-p", "5201"))
			testnet.WaitFor(t, 10*time.Second, "iperf3 to listen", func() bool {
				out, _ := b.ns("w2").Try("ss", "-ltnH", "sport = :5201")
				return strings.Contains(out, "5201")
			})
			out, err = b.ns("w1").Try("timeout", "60", "iperf3", "-c", "10.0.0.2", "-p", "5201", "-J", "-t", "2")
			stop()
			if err != nil {
				t.Fatalf("iperf3: %v\n%s", err, out)
			}
			var res struct {
				End struct {
					SumSent     struct{ Bytes float64 } `json:"sum_sent"`
					SumReceived struct{ Bytes float64 } `json:"sum_received"`
				} `json:"end"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.End.SumSent.Bytes == 0 {
				t.Fatalf("iperf3 JSON: %v\n%s", err, out)
			}
			after1, after2 = tunnelCounters(t, b, 1, "10.0.0.1", "10.0.0.2"), tunnelCounters(t, b, 2, "10.0.0.2", "10.0.0.1")
			tx := float64(after1.TxBytes - before1.TxBytes)
			rx := float64(after2.RxBytes - before2.RxBytes)
			t.Logf("iperf3 sent %.0f and received %.0f bytes; node 1's tunnel sent %.0f, node 2's received %.0f (ratios %.4f, %.4f)",
				res.End.SumSent.Bytes, res.End.SumReceived.Bytes, tx, rx, tx/res.End.SumSent.Bytes, rx/res.End.SumReceived.Bytes)
			// Every payload byte crosses in an inner frame, plus at most 10%
			// of headers (66 of 1514 bytes a frame, less with GSO). At the
			// end of a timed run iperf3's two counts may differ by what was
			// in flight (socket buffers: a few MB of GB), hence 0.99.
			if r := tx / res.End.SumSent.Bytes; r < 0.99 || r > 1.1 {
				t.Errorf("node 1's tunnel tx bytes / iperf3 bytes sent = %.4f, want 0.99..1.1", r)
			}
			if r := rx / res.End.SumReceived.Bytes; r < 0.99 || r > 1.1 {
				t.Errorf("node 2's tunnel rx bytes / iperf3 bytes received = %.4f, want 0.99..1.1", r)
			}
		})
	}
}
