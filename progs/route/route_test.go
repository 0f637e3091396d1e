package route_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/hrw"
	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
	"github.com/tunmux/tunmux/progs/route"
)

var (
	hostMAC = net.HardwareAddr{2, 0, 0, 0, 0x0e, 1}
	gwMAC   = net.HardwareAddr{2, 0, 0, 0, 0x0e, 2}
	tunMAC  = net.HardwareAddr{2, 0, 0, 0, 0x0e, 3}
)

type env struct {
	t    *testing.T
	objs route.RouteObjects
	st   *maps.RouteState
}

func newEnv(t *testing.T) *env {
	testnet.RequireRoot(t)
	e := &env{t: t}
	if err := route.LoadRouteObjects(&e.objs, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.objs.Close() })
	var err error
	e.st, err = maps.NewRouteState(map[string]*ebpf.Map{"routes": e.objs.Routes, "peers": e.objs.Peers, "tunnel_devs": e.objs.TunnelDevs, "config": e.objs.Config})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// nh is a vxlan nexthop to remote: its inner destination MAC follows the
// rule, so an output frame names the nexthop chosen.
func nh(remote string, weight uint16) maps.Nexthop {
	a := netip.MustParseAddr(remote)
	return maps.Nexthop{Remote: a, VNI: 100, Weight: weight, Proto: maps.RouteProtoVXLAN, Ifindex: 1, MAC: maps.TunnelMAC(a), SrcMAC: tunMAC}
}

func (e *env) put(prefix string, nhs ...maps.Nexthop) {
	e.t.Helper()
	if err := e.st.PutRoute(nil, maps.Route{Prefix: netip.MustParsePrefix(prefix), Nexthops: nhs}, maps.Upsert); err != nil {
		e.t.Fatal(err)
	}
}

// counterName names counter i for failure messages.
func counterName(i int) string {
	names, err := dataplane.RouteDataplane.CounterNames()
	if err != nil || i >= len(names) {
		return fmt.Sprint(i)
	}
	return names[i][0] + "/" + names[i][1]
}

// run runs route_egress on frame and checks that exactly counter want moved.
func (e *env) run(frame []byte, want route.RouteStat) (uint32, []byte) {
	e.t.Helper()
	return testnet.RunCounted(e.t, testnet.ProgRun{Prog: e.objs.RouteEgress, Stats: e.objs.Stats, Frame: frame, Room: 64,
		Want: int(want), Name: counterName})
}

// chosen runs frame and returns the remote whose MAC the frame now carries.
func (e *env) chosen(frame []byte, remotes []string) string {
	e.t.Helper()
	ret, out := e.run(frame, route.RouteStatS_ROUTE__TUNNELLED)
	if ret != testnet.TCActRedirect {
		e.t.Fatalf("verdict %d, want redirect", ret)
	}
	if !bytes.Equal(out[6:12], tunMAC) || !bytes.Equal(out[12:], frame[12:]) {
		e.t.Fatalf("frame changed past its destination MAC:\n%x\n%x", frame, out)
	}
	for _, r := range remotes {
		if bytes.Equal(out[:6], maps.TunnelMAC(netip.MustParseAddr(r))) {
			return r
		}
	}
	e.t.Fatalf("destination MAC %x is no nexthop's", out[:6])
	return ""
}

// udpFrame is Ethernet/IP/UDP from src:sport to dst:dport.
func udpFrame(t *testing.T, src, dst string, sport, dport uint16) []byte {
	ip, et := testnet.IPLayer(src, dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	_ = udp.SetNetworkLayerForChecksum(ip.(gopacket.NetworkLayer))
	return testnet.Serialize(t, &layers.Ethernet{SrcMAC: hostMAC, DstMAC: gwMAC, EthernetType: et}, ip, udp, gopacket.Payload("data"))
}

func TestLongestMatch(t *testing.T) {
	e := newEnv(t)
	v4 := []string{"0.0.0.0/0", "10.0.0.0/8", "10.20.0.0/16", "10.20.30.0/24", "10.20.30.40/32"}
	v6 := []string{"::/0", "fd00::/8", "fd00:20::/32", "fd00:20:30::/64", "fd00:20:30::40/128"}
	remote := func(i int, v6 bool) string {
		if v6 {
			return fmt.Sprintf("fd50::%d", 10+i)
		}
		return fmt.Sprintf("192.168.50.%d", 10+i)
	}
	var remotes []string
	for i, p := range v4 {
		e.put(p, nh(remote(i, false), 1))
		remotes = append(remotes, remote(i, false))
	}
	for i, p := range v6 {
		e.put(p, nh(remote(i, true), 1))
		remotes = append(remotes, remote(i, true))
	}
	for _, c := range []struct {
		dst  string
		want int // index into the prefixes of the destination's family
	}{
		{"10.20.30.40", 4}, {"10.20.30.41", 3}, {"10.20.31.1", 2}, {"10.21.0.1", 1}, {"11.0.0.1", 0}, {"255.255.255.254", 0},
		{"fd00:20:30::40", 4}, {"fd00:20:30::41", 3}, {"fd00:20:31::1", 2}, {"fd01::1", 1}, {"2001:db8::1", 0},
	} {
		v6 := strings.Contains(c.dst, ":")
		src := "10.1.1.1"
		if v6 {
			src = "fd00:1::1"
		}
		if got, want := e.chosen(udpFrame(t, src, c.dst, 1000, 2000), remotes), remote(c.want, v6); got != want {
			t.Errorf("%s went to %s, want %s (route %d)", c.dst, got, want, c.want)
		}
		// userspace's lookup agrees with the datapath.
		r, err := e.st.Lookup(netip.MustParseAddr(c.dst))
		if err != nil || (v6 && r.Prefix.String() != v6Prefixes(v6)[c.want]) || (!v6 && r.Prefix.String() != v4[c.want]) {
			t.Errorf("route get %s: %v %v", c.dst, r.Prefix, err)
		}
	}
	// Each family misses on its own once its /0 is gone: IPv4 never
	// matches an IPv6 prefix, nor the other way round.
	for _, p := range []string{"0.0.0.0/0", "::/0"} {
		if err := e.st.DeleteRoute(nil, netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, dst := range []string{"11.0.0.1", "2001:db8::1"} {
		src := "10.1.1.1"
		if strings.Contains(dst, ":") {
			src = "fd00:1::1"
		}
		f := udpFrame(t, src, dst, 1, 2)
		ret, out := e.run(f, route.RouteStatS_ROUTE__PASS_NO_ROUTE)
		if ret != testnet.TCXNext || !bytes.Equal(out, f) {
			t.Errorf("%s: verdict %d, frame changed %v", dst, ret, !bytes.Equal(out, f))
		}
	}
}

func v6Prefixes(bool) []string {
	return []string{"::/0", "fd00::/8", "fd00:20::/32", "fd00:20:30::/64", "fd00:20:30::40/128"}
}

// flowFrames builds n UDP and TCP frames of distinct flows to dst, with the
// flow the Go mirror hashes for each.
func flowFrames(t *testing.T, n int, dst string) ([][]byte, []hrw.Flow) {
	frames := make([][]byte, n)
	fl := make([]hrw.Flow, n)
	v6 := strings.Contains(dst, ":")
	for i := range n {
		src := fmt.Sprintf("10.%d.%d.%d", 1+i/62500, (i/250)%250, 1+i%250)
		if v6 {
			src = fmt.Sprintf("fd00:1::%x:%x", i/4096, i%4096)
		}
		sport, dport := uint16(1024+i%50000), uint16(80+i%7)
		frames[i] = udpFrame(t, src, dst, sport, dport)
		f := hrw.Flow{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: 17, HasPorts: true}
		binary.BigEndian.PutUint16(f.Ports[:2], sport)
		binary.BigEndian.PutUint16(f.Ports[2:], dport)
		fl[i] = f
	}
	return frames, fl
}

func candidatesOf(nhs []maps.Nexthop, down map[string]bool) []hrw.Candidate {
	cs := make([]hrw.Candidate, len(nhs))
	for i, n := range nhs {
		cs[i] = hrw.Candidate{ID: n.ID(), Weight: n.Weight, Usable: !down[n.Remote.String()]}
	}
	return cs
}

// TestWeightsAndStability sends 10,000 flows through a route: each nexthop
// takes its share of the weight, every choice is the one package hrw
// computes, flows stay put when a nexthop is added (or move to it), and move
// off a peer only when it goes down.
func TestWeightsAndStability(t *testing.T) {
	for _, dst := range []string{"10.200.0.1", "fd00:200::1"} {
		t.Run(dst, func(t *testing.T) {
			e := newEnv(t)
			prefix := "10.200.0.0/16"
			remotes := []string{"192.168.50.2", "192.168.50.3", "fd50::4", "192.168.50.5"}
			if strings.Contains(dst, ":") {
				prefix = "fd00:200::/48"
			}
			nhs := []maps.Nexthop{nh(remotes[0], 1), nh(remotes[1], 2), nh(remotes[2], 5)}
			e.put(prefix, nhs...)
			const n = 10_000
			frames, flows := flowFrames(t, n, dst)
			first := make([]string, n)
			count := map[string]int{}
			for i, f := range frames {
				first[i] = e.chosen(f, remotes)
				count[first[i]]++
				if want := nhs[hrw.Pick(flows[i].Hash(), candidatesOf(nhs, nil))].Remote.String(); first[i] != want {
					t.Fatalf("flow %d went to %s; package hrw says %s", i, first[i], want)
				}
			}
			for _, x := range nhs {
				share, want := float64(count[x.Remote.String()])/n, float64(x.Weight)/8
				if math.Abs(share-want) > 0.03 {
					t.Errorf("%s (weight %d) took %.3f of flows, want %.3f", x.Remote, x.Weight, share, want)
				}
			}
			t.Logf("weights 1:2:5 over %d flows: %v", n, count)

			// A fourth nexthop takes flows only for itself.
			e.put(prefix, append(nhs, nh(remotes[3], 2))...)
			moved := 0
			for i, f := range frames {
				got := e.chosen(f, remotes)
				if got != first[i] {
					if got != remotes[3] {
						t.Fatalf("flow %d moved from %s to %s when %s was added", i, first[i], got, remotes[3])
					}
					moved++
				}
			}
			if frac := float64(moved) / n; math.Abs(frac-0.2) > 0.03 {
				t.Errorf("the new nexthop (weight 2 of 10) took %.3f of flows, want 0.2", frac)
			}
			e.put(prefix, nhs...)

			// A peer marked down loses its flows, and only its flows.
			if err := e.st.SetPeer(nil, maps.Peer{Remote: netip.MustParseAddr(remotes[2]), Down: true}); err != nil {
				t.Fatal(err)
			}
			for i, f := range frames {
				got := e.chosen(f, remotes)
				if got == remotes[2] || (first[i] != remotes[2] && got != first[i]) {
					t.Fatalf("flow %d: %s before, %s with %s down", i, first[i], got, remotes[2])
				}
				if want := nhs[hrw.Pick(flows[i].Hash(), candidatesOf(nhs, map[string]bool{remotes[2]: true}))].Remote.String(); got != want {
					t.Fatalf("flow %d went to %s; package hrw says %s", i, got, want)
				}
			}
			// Back up: every flow returns to its first nexthop.
			if err := e.st.SetPeer(nil, maps.Peer{Remote: netip.MustParseAddr(remotes[2])}); err != nil {
				t.Fatal(err)
			}
			for i, f := range frames[:1000] {
				if got := e.chosen(f, remotes); got != first[i] {
					t.Fatalf("flow %d: %s, want %s again", i, got, first[i])
				}
			}
		})
	}
}

func TestHealthAndProbes(t *testing.T) {
	e := newEnv(t)
	remotes := []string{"192.168.50.2", "192.168.50.3"}
	e.put("10.200.0.0/16", nh(remotes[0], 1), nh(remotes[1], 1))
	for _, r := range remotes {
		if err := e.st.SetPeer(nil, maps.Peer{Remote: netip.MustParseAddr(r), Down: true, ProbePort: 9997}); err != nil {
			t.Fatal(err)
		}
	}
	f := udpFrame(t, "10.1.1.1", "10.200.0.1", 5000, 53)
	if ret, out := e.run(f, route.RouteStatS_ROUTE__PASS_NO_HEALTHY); ret != testnet.TCXNext || !bytes.Equal(out, f) {
		t.Errorf("no healthy nexthop: verdict %d, frame changed %v", ret, !bytes.Equal(out, f))
	}
	// Probes reach a down peer; across flows, both of them.
	seen := map[string]bool{}
	for sport := uint16(1000); sport < 1064; sport++ {
		probe := udpFrame(t, "10.1.1.1", "10.200.0.1", sport, 9997)
		ret, out := e.run(probe, route.RouteStatS_ROUTE__PROBE_TO_DOWN_PEER)
		if ret != testnet.TCActRedirect {
			t.Fatalf("probe: verdict %d", ret)
		}
		for _, r := range remotes {
			if bytes.Equal(out[:6], maps.TunnelMAC(netip.MustParseAddr(r))) {
				seen[r] = true
			}
		}
	}
	if len(seen) != 2 {
		t.Errorf("probes reached %v, want both peers", seen)
	}
	// TCP to the probe port is no probe.
	tcp := testnet.TCPFrame(t, hostMAC, gwMAC, "10.1.1.1", "10.200.0.1", 1000, 9997, nil)
	e.run(tcp, route.RouteStatS_ROUTE__PASS_NO_HEALTHY)
	// One peer up: everything goes there, probes included (it is no probe
	// to a down peer then, or it is, by flow).
	if err := e.st.SetPeer(nil, maps.Peer{Remote: netip.MustParseAddr(remotes[0])}); err != nil {
		t.Fatal(err)
	}
	for sport := uint16(1000); sport < 1032; sport++ {
		if got := e.chosen(udpFrame(t, "10.1.1.1", "10.200.0.1", sport, 53), remotes); got != remotes[0] {
			t.Fatalf("flow %d went to %s, which is down", sport, got)
		}
	}
}

// TestHashInputs: the flow hash reads ports past IPv4 options and IPv6
// extension headers, and no ports from fragments, as package hrw says.
func TestHashInputs(t *testing.T) {
	e := newEnv(t)
	var nhs []maps.Nexthop
	var remotes []string
	for i := range 8 {
		r := fmt.Sprintf("192.168.50.%d", 10+i)
		nhs = append(nhs, nh(r, 1))
		remotes = append(remotes, r)
	}
	e.put("10.200.0.0/16", nhs...)
	e.put("fd00:200::/48", nhs...)
	cs := candidatesOf(nhs, nil)
	check := func(name string, frame []byte, f hrw.Flow) {
		t.Helper()
		got := e.chosen(frame, remotes)
		if want := nhs[hrw.Pick(f.Hash(), cs)].Remote.String(); got != want {
			t.Errorf("%s: went to %s, package hrw says %s", name, got, want)
		}
	}
	for i := range 40 {
		sport := uint16(2000 + i)
		flow := func(src, dst string, proto uint8, ports bool) hrw.Flow {
			f := hrw.Flow{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: proto, HasPorts: ports}
			binary.BigEndian.PutUint16(f.Ports[:2], sport)
			binary.BigEndian.PutUint16(f.Ports[2:], 443)
			return f
		}
		opts := []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		check("IPv4 with options", testnet.TCPFrame(t, hostMAC, gwMAC, "10.1.1.1", "10.200.0.9", sport, 443, opts), flow("10.1.1.1", "10.200.0.9", 6, true))

		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP("10.1.1.1").To4(), DstIP: net.ParseIP("10.200.0.9").To4(), Flags: layers.IPv4MoreFragments, Id: uint16(i)}
		udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 443}
		_ = udp.SetNetworkLayerForChecksum(ip)
		frag := testnet.Serialize(t, &layers.Ethernet{SrcMAC: hostMAC, DstMAC: gwMAC, EthernetType: layers.EthernetTypeIPv4}, ip, udp, gopacket.Payload("first fragment"))
		check("IPv4 first fragment", frag, flow("10.1.1.1", "10.200.0.9", 17, false))
		ip.Flags, ip.FragOffset = 0, 100
		later := testnet.Serialize(t, &layers.Ethernet{SrcMAC: hostMAC, DstMAC: gwMAC, EthernetType: layers.EthernetTypeIPv4}, ip, gopacket.Payload("a later fragment"))
		check("IPv4 later fragment", later, flow("10.1.1.1", "10.200.0.9", 17, false))

		// IPv6 with a hop-by-hop header (8 bytes, PadN) before UDP.
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6HopByHop, SrcIP: net.ParseIP("fd00:1::1"), DstIP: net.ParseIP("fd00:200::9")}
		hbh := []byte{byte(layers.IPProtocolUDP), 0, 1, 4, 0, 0, 0, 0}
		udp6 := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 443}
		_ = udp6.SetNetworkLayerForChecksum(ip6)
		udpBytes := testnet.Serialize(t, udp6, gopacket.Payload("data"))
		ext := testnet.Serialize(t, &layers.Ethernet{SrcMAC: hostMAC, DstMAC: gwMAC, EthernetType: layers.EthernetTypeIPv6}, ip6, gopacket.Payload(append(hbh, udpBytes...)))
		check("IPv6 hop-by-hop", ext, flow("fd00:1::1", "fd00:200::9", 17, true))

		// An IPv6 fragment header: no ports.
		ip6.NextHeader = layers.IPProtocolIPv6Fragment
		fh := []byte{byte(layers.IPProtocolUDP), 0, 0, 1, 0, 0, 0, byte(i)}
		fr6 := testnet.Serialize(t, &layers.Ethernet{SrcMAC: hostMAC, DstMAC: gwMAC, EthernetType: layers.EthernetTypeIPv6}, ip6, gopacket.Payload(append(fh, udpBytes...)))
		check("IPv6 fragment", fr6, flow("fd00:1::1", "fd00:200::9", 44, false))
	}
}

func TestNotOurs(t *testing.T) {
	e := newEnv(t)
	e.put("0.0.0.0/0", nh("192.168.50.2", 1))
	arp := testnet.ARPFrame(t, hostMAC, "10.1.1.1", "10.1.1.2")
	if ret, out := e.run(arp, route.RouteStatS_ROUTE__PASS_NOT_IP); ret != testnet.TCXNext || !bytes.Equal(out, arp) {
		t.Errorf("ARP: verdict %d", ret)
	}
	// An IPv4 header cut short (the test run needs its 20 bytes; its IHL
	// promises options that are not there, and a bad version).
	good := udpFrame(t, "10.1.1.1", "10.200.0.1", 1, 2)
	bad := append([]byte(nil), good...)
	bad[14] = 0x35 // version 3
	if ret, _ := e.run(bad, route.RouteStatS_ROUTE__PASS_MALFORMED); ret != testnet.TCXNext {
		t.Errorf("version 3: verdict %d", ret)
	}
	bad[14] = 0x44 // IHL 4
	if ret, _ := e.run(bad, route.RouteStatS_ROUTE__PASS_MALFORMED); ret != testnet.TCXNext {
		t.Errorf("IHL 4: verdict %d", ret)
	}
}

// TestTableHeader: log2_table.h is what package hrw computes.
func TestTableHeader(t *testing.T) {
	b, err := os.ReadFile("log2_table.h")
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	body = body[strings.Index(body, "{"):]
	for i, v := range hrw.Table {
		if !strings.Contains(body, fmt.Sprintf("%d,", v)) {
			t.Fatalf("log2_table.h lacks entry %d (%d): run make generate", i, v)
		}
	}
	if n := strings.Count(body, ","); n != len(hrw.Table) {
		t.Fatalf("log2_table.h has %d entries, package hrw %d: run make generate", n, len(hrw.Table))
	}
}

// capture reads frames arriving on ifname (in the calling thread's
// namespace) through a packet socket.
type capture struct{ fd int }

func openCapture(t *testing.T, ifname string) *capture {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	tv := unix.Timeval{Sec: 2}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	t.Cleanup(func() { unix.Close(fd) })
	return &capture{fd: fd}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// next returns the first frame for which match is true, or fails after 2 s
// without frames.
func (c *capture) next(t *testing.T, match func(gopacket.Packet) bool) gopacket.Packet {
	t.Helper()
	buf := make([]byte, 65536)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			t.Fatalf("capture: no matching frame: %v", err)
		}
		p := gopacket.NewPacket(append([]byte(nil), buf[:n]...), layers.LayerTypeEthernet, gopacket.Default)
		if match(p) {
			return p
		}
	}
}

// TestTunnelKey sends real packets into a routes TUN device running
// route_egress_l3 and reads what the kernel's flow-based vxlan device put on
// the wire: outer destination (IPv4 or IPv6, as the nexthop says), VNI and
// inner MACs, for every mix of overlay and underlay families; and a proto
// none nexthop, sent out as a plain packet to the remote as a neighbour.
func TestTunnelKey(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNetns(t, "rtk")
	testnet.Veth(t, ns, "u0", ns, "u1")
	ns.Run(t, "ip", "addr", "add", "192.168.70.1/24", "dev", "u0")
	ns.Run(t, "ip", "addr", "add", "fd70::1/64", "dev", "u0", "nodad")
	var u1 netdev.Iface
	ns.Do(t, func() error {
		var err error
		u1, err = netdev.Lookup("u1")
		return err
	})
	for _, a := range []string{"192.168.70.2", "fd70::2"} {
		ns.Run(t, "ip", "neigh", "replace", a, "lladdr", u1.MAC.String(), "dev", "u0", "nud", "permanent")
	}
	e := newEnv(t)
	var vx, rt, u0 netdev.Iface
	ns.Do(t, func() error {
		var err error
		if vx, err = netdev.CreateFlowTunnel("vxlan", "vxlan0", 4789, 1430, maps.TunnelMAC(netip.MustParseAddr("192.168.70.1"))); err != nil {
			return err
		}
		if rt, err = netdev.CreateTUN("rt0", 1430, netdev.TUNOffloads{Checksum: true, TSO: true}); err != nil {
			return err
		}
		if u0, err = netdev.Lookup("u0"); err != nil {
			return err
		}
		l, err := link.AttachTCX(link.TCXOptions{Program: e.objs.RouteEgressL3, Interface: rt.Index, Attach: ebpf.AttachTCXEgress})
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		return nil
	})
	tun := func(remote string, vni uint32) maps.Nexthop {
		a := netip.MustParseAddr(remote)
		return maps.Nexthop{Remote: a, VNI: vni, Weight: 1, Proto: maps.RouteProtoVXLAN, Ifindex: uint32(vx.Index), MAC: maps.TunnelMAC(a), SrcMAC: vx.MAC}
	}
	cases := []struct {
		prefix, dst string
		nh          maps.Nexthop
	}{
		{"10.200.0.0/16", "10.200.0.5", tun("192.168.70.2", 4242)},
		{"fd00:200::/48", "fd00:200::5", tun("fd70::2", 77)},
		{"10.201.0.0/16", "10.201.0.5", tun("fd70::2", 5)},
		{"fd00:201::/48", "fd00:201::5", tun("192.168.70.2", 16777215)},
		{"10.202.0.0/16", "10.202.0.5", maps.Nexthop{Remote: netip.MustParseAddr("192.168.70.2"), Weight: 1, Proto: maps.RouteProtoNone, Ifindex: uint32(u0.Index)}},
	}
	for _, c := range cases {
		e.put(c.prefix, c.nh)
		ns.Run(t, "ip", "route", "add", c.prefix, "dev", "rt0")
	}
	for i, c := range cases {
		t.Run(c.dst, func(t *testing.T) {
			marker := []byte(fmt.Sprintf("tunmux-route-%d", i))
			ns.Do(t, func() error {
				cp := openCapture(t, "u1")
				conn, err := net.Dial("udp", net.JoinHostPort(c.dst, "5555"))
				if err != nil {
					return err
				}
				defer conn.Close()
				if _, err := conn.Write(marker); err != nil {
					return err
				}
				p := cp.next(t, func(p gopacket.Packet) bool { return bytes.Contains(p.Data(), marker) })
				if c.nh.Proto == maps.RouteProtoNone {
					eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
					if !bytes.Equal(eth.DstMAC, u1.MAC) || !bytes.Equal(eth.SrcMAC, u0.MAC) || p.Layer(layers.LayerTypeVXLAN) != nil {
						t.Errorf("proto none: frame %v", p)
					}
					return nil
				}
				outerDst := ""
				if ip4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok && p.Layer(layers.LayerTypeVXLAN) != nil && c.nh.Remote.Is4() {
					outerDst = ip4.DstIP.String()
				}
				if ip6, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok && c.nh.Remote.Is6() {
					outerDst = ip6.DstIP.String()
				}
				if outerDst != c.nh.Remote.String() {
					t.Fatalf("outer destination %q, want %s:\n%v", outerDst, c.nh.Remote, p)
				}
				vxl, ok := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
				if !ok || vxl.VNI != c.nh.VNI {
					t.Fatalf("VXLAN %+v, want VNI %d", vxl, c.nh.VNI)
				}
				inner := gopacket.NewPacket(vxl.Payload, layers.LayerTypeEthernet, gopacket.Default)
				ie := inner.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
				if !bytes.Equal(ie.DstMAC, c.nh.MAC) || !bytes.Equal(ie.SrcMAC, vx.MAC) {
					t.Errorf("inner MACs %s -> %s, want %s -> %s", ie.SrcMAC, ie.DstMAC, vx.MAC, c.nh.MAC)
				}
				nl := inner.NetworkLayer()
				if nl == nil || nl.NetworkFlow().Dst().String() != c.dst {
					t.Errorf("inner packet %v, want one to %s", inner, c.dst)
				}
				return nil
			})
		})
	}
}

// TestPeersDownCount: the count that gates peer lookups follows the peers
// marked down through every change.
func TestPeersDownCount(t *testing.T) {
	e := newEnv(t)
	a, b := netip.MustParseAddr("192.168.50.2"), netip.MustParseAddr("fd50::3")
	want := func(n uint32) {
		t.Helper()
		if got, err := e.st.PeersDown(); err != nil || got != n {
			t.Fatalf("peers down: %d (%v), want %d", got, err, n)
		}
	}
	steps := []struct {
		do   func() error
		down uint32
	}{
		{func() error { return e.st.SetPeer(nil, maps.Peer{Remote: a, Down: true}) }, 1},
		{func() error { return e.st.SetPeer(nil, maps.Peer{Remote: a, Down: true, ProbePort: 9}) }, 1},
		{func() error { return e.st.SetPeer(nil, maps.Peer{Remote: b}) }, 1},
		{func() error { return e.st.SetPeer(nil, maps.Peer{Remote: b, Down: true}) }, 2},
		{func() error { return e.st.SetPeer(nil, maps.Peer{Remote: a}) }, 1},
		{func() error { return e.st.DeletePeer(nil, b) }, 0},
		{func() error { return e.st.DeletePeer(nil, a) }, 0},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatal(err)
		}
		want(s.down)
	}
}

// TestTaggedAndBadHeaders: a frame with a VLAN tag in it (802.1Q, or
// 802.1ad outside 802.1Q) is no IP packet to route_egress, and an IP header
// whose own length runs past the packet, or that announces an IPv6
// extension header the packet does not hold, is malformed: each goes on
// untouched, though a default route would take any packet.
func TestTaggedAndBadHeaders(t *testing.T) {
	e := newEnv(t)
	e.put("0.0.0.0/0", nh("192.168.50.2", 1))
	e.put("::/0", nh("fd50::2", 1))
	good4, good6 := udpFrame(t, "10.1.1.1", "10.200.0.1", 1, 2), udpFrame(t, "fd00:1::1", "fd00:200::1", 1, 2)
	ihl15 := append([]byte(nil), good4...)
	ihl15[14] = 0x4f // 60 bytes of header in a 32-byte packet
	hbh := append([]byte(nil), good6[:14+40]...)
	hbh[14+6] = 0 // a hop-by-hop header the packet ends before
	binary.BigEndian.PutUint16(hbh[14+4:], 0)
	for _, c := range []struct {
		name  string
		frame []byte
		want  route.RouteStat
	}{
		{"802.1Q-tagged IPv4", testnet.VLANTag(good4, 0x8100, 10), route.RouteStatS_ROUTE__PASS_NOT_IP},
		{"802.1Q-tagged IPv6", testnet.VLANTag(good6, 0x8100, 10), route.RouteStatS_ROUTE__PASS_NOT_IP},
		{"802.1ad and 802.1Q tags", testnet.VLANTag(testnet.VLANTag(good4, 0x8100, 10), 0x88a8, 20), route.RouteStatS_ROUTE__PASS_NOT_IP},
		{"IPv4 header longer than the packet", ihl15, route.RouteStatS_ROUTE__PASS_MALFORMED},
		{"IPv6 hop-by-hop header cut off", hbh, route.RouteStatS_ROUTE__PASS_MALFORMED},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			if ret, out := e.run(c.frame, c.want); ret != testnet.TCXNext || !bytes.Equal(out, c.frame) {
				t.Errorf("verdict %d, frame changed %v", int32(ret), !bytes.Equal(out, c.frame))
			}
		})
	}
}

// TestTruncatedIPHeaders sends frames whose IP header is cut short out of
// a real interface running route_egress (a test run refuses to build an
// skb whose first IP header is cut short): each is counted malformed and
// leaves untouched, as the kernel routed it, though a default route would
// take any packet.
//
// (route's DROP_ERROR cannot be reached by a test: bpf_skb_change_head
// fails only without memory or beyond 64 KiB, the Ethernet header is
// stored inside the frame, and bpf_skb_set_tunnel_key refuses only
// arguments the program never passes.)
func TestTruncatedIPHeaders(t *testing.T) {
	e := newEnv(t)
	e.put("0.0.0.0/0", nh("192.168.50.2", 1))
	e.put("::/0", nh("fd50::2", 1))
	ns := testnet.NewNetns(t, "rtt")
	testnet.Veth(t, ns, "r0", ns, "r1")
	// No IPv6 of the interfaces' own: only the test's frames cross.
	ns.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	testnet.AttachTCX(t, ns, e.objs.RouteEgress, "r0", ebpf.AttachTCXEgress)
	good4, good6 := udpFrame(t, "10.1.1.1", "10.200.0.1", 1, 2), udpFrame(t, "fd00:1::1", "fd00:200::1", 1, 2)
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"IPv4/1 byte", good4[:14+1]},
		{"IPv4/without its addresses", good4[:14+12]},
		{"IPv4/19 bytes", good4[:14+19]},
		{"IPv6/1 byte", good6[:14+1]},
		{"IPv6/without its destination", good6[:14+24]},
		{"IPv6/39 bytes", good6[:14+39]},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := testnet.Counters(t, e.objs.Stats)
			ns.Do(t, func() error {
				cp := openCapture(t, "r1")
				if err := testnet.Inject(t, ns, "r0", c.frame); err != nil {
					return err
				}
				cp.next(t, func(p gopacket.Packet) bool { return bytes.Equal(p.Data(), c.frame) })
				return nil
			})
			testnet.CountersMoved(t, e.objs.Stats, before, int(route.RouteStatS_ROUTE__PASS_MALFORMED), counterName)
		})
	}
}
