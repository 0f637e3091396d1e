package bench

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/progs/route"
)

// BenchmarkRouteLookup measures the route program's cost per packet
// (BPF_PROG_TEST_RUN, repeated a million times on one frame: the program only rewrites MAC
// addresses in place, so every run does the same work) with 10 and with
// 100,000 prefixes in the trie, each with 1 and with 8 nexthops to choose
// from; the packet matches one of the longest prefixes.
func BenchmarkRouteLookup(b *testing.B) {
	testnet.RequireRoot(b)
	for _, prefixes := range []int{10, 100_000} {
		for _, nexthops := range []int{1, 8} {
			b.Run(fmt.Sprintf("prefixes-%d/nexthops-%d", prefixes, nexthops), func(b *testing.B) {
				var objs route.RouteObjects
				spec, err := route.LoadRoute()
				if err != nil {
					b.Fatal(err)
				}
				spec.Maps["routes"].MaxEntries = uint32(prefixes + 1)
				if err := spec.LoadAndAssign(&objs, nil); err != nil {
					b.Fatal(err)
				}
				defer objs.Close()
				st, err := maps.NewRouteState(map[string]*ebpf.Map{"routes": objs.Routes, "peers": objs.Peers, "tunnel_devs": objs.TunnelDevs, "config": objs.Config})
				if err != nil {
					b.Fatal(err)
				}
				var nhs []maps.Nexthop
				for i := 0; i < nexthops; i++ {
					a := netip.AddrFrom4([4]byte{192, 168, 50, byte(2 + i)})
					nhs = append(nhs, maps.Nexthop{Remote: a, VNI: 100, Weight: uint16(1 + i), Proto: maps.RouteProtoVXLAN, Ifindex: 1, MAC: maps.TunnelMAC(a), SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}})
				}
				// Random prefixes of 16 to 32 bits under 10/8, and the
				// /32 the packet goes to.
				r := rand.New(rand.NewPCG(1, uint64(prefixes)))
				for i := 0; i < prefixes-1; i++ {
					a := netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
					p, _ := a.Prefix(16 + r.IntN(17))
					if err := st.PutRoute(nil, maps.Route{Prefix: p, Nexthops: nhs}, maps.Upsert); err != nil {
						b.Fatal(err)
					}
				}
				dst := netip.MustParsePrefix("10.77.77.77/32")
				if err := st.PutRoute(nil, maps.Route{Prefix: dst, Nexthops: nhs}, maps.Upsert); err != nil {
					b.Fatal(err)
				}
				frame := udpFrame(b, "10.1.2.3", dst.Addr().String())
				ret, per, err := objs.RouteEgress.Benchmark(frame, lookupRepeat, nil)
				if err != nil {
					b.Fatal(err)
				}
				if ret != 7 { // TC_ACT_REDIRECT
					b.Fatalf("verdict %d, want redirect", ret)
				}
				b.ReportMetric(float64(per.Nanoseconds()), "ns/pkt")
			})
		}
	}
}

// lookupRepeat is how many times one benchmark run runs the program.
const lookupRepeat = 1_000_000

// udpFrame is an Ethernet/IPv4/UDP frame from src to dst.
func udpFrame(b *testing.B, src, dst string) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
	_ = udp.SetNetworkLayerForChecksum(ip)
	return testnet.Serialize(b, &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}, EthernetType: layers.EthernetTypeIPv4},
		ip, udp, gopacket.Payload(make([]byte, 18)))
}

// BenchmarkRoute measures TCP throughput and the rate of 64-byte UDP
// datagrams from a client to a remote node over vxlan, through a tunmux
// route (routes device rt0, the route program, the flow-based vxlan0)
// beside the same traffic through a plain kernel route to the same vxlan0
// (an lwtunnel 'encap ip' route; a static neighbour gives the inner MAC the
// route program writes). The way back is that kernel route in both.
func BenchmarkRoute(b *testing.B) {
	testnet.RequireRoot(b)
	c, r := testnet.NewNetns(b, "rbc"), testnet.NewNetns(b, "rbr")
	testnet.Veth(b, c, "e0", r, "e0")
	nodes := []*testnet.Netns{c, r}
	for i, ns := range nodes {
		ns.Run(b, "ip", "addr", "add", fmt.Sprintf("192.168.60.%d/24", i+1), "dev", "e0")
		ns.Run(b, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
		root := testnet.BPFRoot(b, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "route") })
		tm := func(args ...string) {
			testnet.MustTunmux(b, bin, append([]string{"--bpffs", root, "--netns", ns.Name}, args...)...)
		}
		tm("load", "route")
		tm("route", "dev", "create", "vxlan0", "--proto", "vxlan", "--local", fmt.Sprintf("192.168.60.%d", i+1))
		if i == 0 {
			tm("route", "dev", "create", "rt0", "--routes")
			tm("attach", "route", "rt0")
			tm("route", "add", "10.200.0.0/24", "--nexthop", "192.168.60.2,vni=100")
		}
	}
	c.Run(b, "ip", "addr", "add", "10.100.0.1/32", "dev", "vxlan0")
	c.Run(b, "ip", "neigh", "replace", "10.200.0.1", "lladdr", "02:c0:a8:3c:02:ff", "dev", "vxlan0", "nud", "permanent")
	r.Run(b, "ip", "addr", "add", "10.200.0.1/32", "dev", "vxlan0")
	r.Run(b, "ip", "route", "add", "10.100.0.0/24", "encap", "ip", "id", "100", "dst", "192.168.60.1", "dev", "vxlan0")
	r.Run(b, "ip", "neigh", "replace", "10.100.0.1", "lladdr", "02:c0:a8:3c:01:ff", "dev", "vxlan0", "nud", "permanent")
	// The same destination either way; only the client's route changes.
	for _, path := range []struct {
		name  string
		route []string
	}{
		{"tunmux-route", []string{"dev", "rt0"}},
		{"kernel-route", []string{"encap", "ip", "id", "100", "dst", "192.168.60.2", "dev", "vxlan0"}},
	} {
		b.Run(path.name, func(b *testing.B) {
			c.Run(b, "ip", append(append([]string{"route", "replace", "10.200.0.0/24"}, path.route...), "src", "10.100.0.1")...)
			testnet.WaitFor(b, 10*time.Second, "a ping to 10.200.0.1", func() bool {
				_, err := c.Try("ping", "-c", "1", "-W", "1", "10.200.0.1")
				return err == nil
			})
			measure(b, c, r, "10.200.0.1")
		})
	}
}
