package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testnet.MainWithTunmux(m, &bin)) }

// iperfSeconds is how long each iperf3 run lasts.
const iperfSeconds = 5

// iperf runs one iperf3 client in w1 against a server in w2 and returns
// its JSON report.
func iperf(b *testing.B, bed *testnet.Bed, args ...string) map[string]any {
	server := bed.NS("w2")
	stop := testnet.Background(b, server.Cmd("iperf3", "-s", "-1", "-p", "5201"))
	testnet.WaitFor(b, 10*time.Second, "iperf3 to listen", func() bool {
		out, _ := server.Try("ss", "-ltnH", "sport = :5201")
		return strings.Contains(out, "5201")
	})
	out, err := bed.NS("w1").Try("timeout", append([]string{"60", "iperf3", "-c", "10.0.0.2", "-p", "5201", "-J", "-t", fmt.Sprint(iperfSeconds)}, args...)...)
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
// senders, as frames crossing an XDP redirect need; the kernel's vxlan is
// measured that way and again with offloads back on (its best case). Each
// measurement runs once, whatever b.N.
func BenchmarkIperf(b *testing.B) {
	for _, dp := range []string{"tunmux-vxlan", "kernel-vxlan", "kernel-vxlan-offload"} {
		b.Run(dp, func(b *testing.B) {
			bed := testnet.NewBed(b, bin)
			for n := 1; n <= 2; n++ {
				if dp == "tunmux-vxlan" {
					bed.TunmuxNode(n, "vxlan", "--vni", "100")
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
			b.Run("tcp", func(b *testing.B) {
				res := iperf(b, bed)
				b.ReportMetric(field(res, "end", "sum_received", "bits_per_second")/1e9, "Gbit/s")
			})
			b.Run("udp64", func(b *testing.B) {
				res := iperf(b, bed, "-u", "-l", "64", "-b", "0")
				sum := func(k string) float64 { return field(res, "end", "sum", k) }
				if secs := sum("seconds"); secs > 0 {
					b.ReportMetric((sum("packets")-sum("lost_packets"))/secs, "rx-pps")
				}
				b.ReportMetric(sum("lost_percent"), "lost-%")
			})
		})
	}
}
