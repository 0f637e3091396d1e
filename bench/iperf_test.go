package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testnet.MainWithTunmux(m, &bin)) }

// iperfSeconds is how long each iperf3 run lasts.
const iperfSeconds = 5

// iperf runs one iperf3 client in namespace client against a server at ip
// in namespace server and returns its JSON report.
func iperf(b *testing.B, client, server *testnet.Netns, ip string, args ...string) map[string]any {
	stop := testnet.Background(b, server.Cmd("iperf3", "-s", "-1", "-p", "5201"))
	testnet.WaitFor(b, 10*time.Second, "iperf3 to listen", func() bool {
		out, _ := server.Try("ss", "-ltnH", "sport = :5201")
		return strings.Contains(out, "5201")
	})
	out, err := client.Try("timeout", append([]string{"60", "iperf3", "-c", ip, "-p", "5201", "-J", "-t", fmt.Sprint(iperfSeconds)}, args...)...)
	stop()
	if err != nil {
		b.Fatalf("iperf3 %v: %v\n%s", args, err, out)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		b.Fatalf("iperf3 JSON: %v\n%s", err, out)
	}
	return res
}

func field(m map[string]any, path ...string) float64 {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return 0
		}
		cur = mm[p]
	}
	f, _ := cur.(float64)
	return f
}

// BenchmarkIperf measures TCP throughput and the rate of 64-byte UDP
// datagrams from w1 to w2, over tunmux VXLAN and over the kernel's vxlan
// device, in the same run. The testbed turns tx checksum offload off at the
// senders, as frames crossing an XDP redirect need: tunmux's XDP hook and
// the kernel's vxlan are measured that way; tunmux's TC hook and the
// kernel's vxlan again with offloads back on (how an operator runs them).
// Each measurement runs once, whatever b.N.
func BenchmarkIperf(b *testing.B) {
	for _, dp := range []string{"tunmux-vxlan", "tunmux-vxlan-tc", "kernel-vxlan", "kernel-vxlan-offload"} {
		b.Run(dp, func(b *testing.B) {
			bed := testnet.NewBed(b, bin)
			if dp == "tunmux-vxlan-tc" {
				bed.Offloads()
			}
			for n := 1; n <= 2; n++ {
				switch dp {
				case "tunmux-vxlan":
					bed.TunmuxNode(n, "vxlan", "--vni", "100")
					continue
				case "tunmux-vxlan-tc":
					bed.TunmuxNodeWith(n, testnet.Node{Proto: "vxlan", IDArgs: []string{"--vni", "100"}, Hook: "tc"})
					continue
				}
				bed.KernelVXLANNode(n, 100)
				if dp == "kernel-vxlan-offload" {
					bed.NS(fmt.Sprintf("w%d", n)).Run(b, "ethtool", "-K", "eth0", "tx", "on")
					bed.NS(fmt.Sprintf("h%d", n)).Run(b, "ethtool", "-K", "ul0", "tx", "on")
				}
			}
			testnet.WaitFor(b, 15*time.Second, "a ping across the tunnel", func() bool {
				_, err := bed.NS("w1").Try("ping", "-c", "1", "-W", "1", "10.0.0.2")
				return err == nil
			})
			measure(b, bed.NS("w1"), bed.NS("w2"), "10.0.0.2")
		})
	}
}

// measure runs the TCP and 64-byte UDP measurements from client to ip.
func measure(b *testing.B, client, server *testnet.Netns, ip string) {
	b.Run("tcp", func(b *testing.B) {
		res := iperf(b, client, server, ip)
		b.ReportMetric(field(res, "end", "sum_received", "bits_per_second")/1e9, "Gbit/s")
	})
	b.Run("udp64", func(b *testing.B) {
		res := iperf(b, client, server, ip, "-u", "-l", "64", "-b", "0")
		sum := func(k string) float64 { return field(res, "end", "sum", k) }
		if secs := sum("seconds"); secs > 0 {
			b.ReportMetric((sum("packets")-sum("lost_packets"))/secs, "rx-pps")
		}
		b.ReportMetric(sum("lost_percent"), "lost-%")
	})
}

// BenchmarkL2TP measures TCP throughput and the rate of 64-byte UDP
// datagrams from host A to host B over a tunmux L2TPv3 pseudowire (over UDP,
// IPv4 underlay, 4-byte cookies, default sublayer), beside the same chain
// with each LCCE bridging its Ethernet side to a kernel vxlan device.
func BenchmarkL2TP(b *testing.B) {
	for _, dp := range []string{"tunmux-l2tp-udp", "kernel-vxlan-bridge"} {
		b.Run(dp, func(b *testing.B) {
			testnet.RequireRoot(b)
			prefix := testnet.Unique("tmxb") + "-"
			script := filepath.Join(testnet.TopDir(), "scripts", "testbed.sh")
			b.Cleanup(func() { testnet.Run(b, "bash", script, "down", prefix) })
			testnet.Run(b, "bash", script, "l2tp-up", prefix)
			ns := func(n string) *testnet.Netns { return &testnet.Netns{Name: prefix + n} }
			if dp == "kernel-vxlan-bridge" {
				testnet.Run(b, "bash", script, "l2tp-kvxlan", prefix)
			} else {
				overhead := 0
				for n := 1; n <= 2; n++ {
					root := testnet.BPFRoot(b, func(root string) { testnet.Tunmux(bin, "--bpffs", root, "unload", "l2tp") })
					tm := func(args ...string) testnet.Result {
						return testnet.MustTunmux(b, bin, append([]string{"--bpffs", root, "--netns", fmt.Sprintf("%sl%d", prefix, n)}, args...)...)
					}
					tm("load", "l2tp")
					tm("attach", "l2tp-encap", "eth1")
					tm("attach", "l2tp-decap", "tun0")
					r := tm("-o", "json", "l2tp", "session", "add", "--session-id", fmt.Sprint(100+n), "--peer-session-id", fmt.Sprint(103-n),
						"--encap", "udp", "--local", fmt.Sprintf("172.16.0.%d", n), "--peer", fmt.Sprintf("172.16.0.%d", 3-n),
						"--cookie", fmt.Sprintf("c00c1e0%d", n), "--peer-cookie", fmt.Sprintf("c00c1e0%d", 3-n),
						"--eth-iface", "eth1", "--tunnel-iface", "tun0")
					var s struct{ Overhead int }
					if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
						b.Fatal(err)
					}
					overhead = s.Overhead
				}
				for _, h := range []string{"a", "b"} {
					ns(h).Run(b, "ip", "link", "set", "eth0", "mtu", fmt.Sprint(1500-14-overhead))
				}
			}
			testnet.WaitFor(b, 15*time.Second, "a ping across the pseudowire", func() bool {
				_, err := ns("a").Try("ping", "-c", "1", "-W", "1", "10.1.0.2")
				return err == nil
			})
			measure(b, ns("a"), ns("b"), "10.1.0.2")
		})
	}
}
