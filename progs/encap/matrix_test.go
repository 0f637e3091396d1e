package encap_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/progs/encap"
)

// IPv6 underlay addresses of the two nodes.
var (
	node1IP6 = netip.MustParseAddr("fd10::1")
	node2IP6 = netip.MustParseAddr("fd10::2")
)

// hook is one attachment point's programs and outcomes.
type hook struct {
	name          string
	encap, decap  func(*env) *ebpf.Program
	redirect      uint32 // the verdict of a frame sent on
	drop          uint32
	pass          uint32
	encapStat     map[maps.Proto]encap.EncapStat
	decapStat     map[maps.Proto]encap.EncapStat
	tooBig        encap.EncapStat
	decapCritical encap.EncapStat
}

var hooks = []hook{
	{
		name: "xdp", redirect: testnet.XDPRedirect, drop: testnet.XDPDrop, pass: testnet.XDPPass,
		encap: func(e *env) *ebpf.Program { return e.objs.Encap },
		decap: func(e *env) *ebpf.Program { return e.objs.Decap },
		encapStat: map[maps.Proto]encap.EncapStat{
			maps.ProtoGENEVE: encap.EncapStatS_ENCAP__GENEVE, maps.ProtoVXLAN: encap.EncapStatS_ENCAP__VXLAN, maps.ProtoVLAN: encap.EncapStatS_ENCAP__VLAN},
		decapStat: map[maps.Proto]encap.EncapStat{
			maps.ProtoGENEVE: encap.EncapStatS_DECAP__GENEVE, maps.ProtoVXLAN: encap.EncapStatS_DECAP__VXLAN, maps.ProtoVLAN: encap.EncapStatS_DECAP__VLAN},
		tooBig:        encap.EncapStatS_ENCAP__DROP_TOO_BIG,
		decapCritical: encap.EncapStatS_DECAP__DROP_CRITICAL_OPT,
	},
	{
		name: "tc", redirect: testnet.TCActRedirect, drop: testnet.TCActShot, pass: testnet.TCXNext,
		encap: func(e *env) *ebpf.Program { return e.objs.EncapTc },
		decap: func(e *env) *ebpf.Program { return e.objs.DecapTc },
		encapStat: map[maps.Proto]encap.EncapStat{
			maps.ProtoGENEVE: encap.EncapStatS_ENCAP_TC__GENEVE, maps.ProtoVXLAN: encap.EncapStatS_ENCAP_TC__VXLAN, maps.ProtoVLAN: encap.EncapStatS_ENCAP_TC__VLAN},
		decapStat: map[maps.Proto]encap.EncapStat{
			maps.ProtoGENEVE: encap.EncapStatS_DECAP_TC__GENEVE, maps.ProtoVXLAN: encap.EncapStatS_DECAP_TC__VXLAN, maps.ProtoVLAN: encap.EncapStatS_DECAP_TC__VLAN},
		tooBig:        encap.EncapStatS_ENCAP_TC__DROP_TOO_BIG,
		decapCritical: encap.EncapStatS_DECAP_TC__DROP_CRITICAL_OPT,
	},
}

// pairTunnels adds the tunnel a->b on node 1 and its mirror b->a on node 2,
// over an IPv4 or IPv6 underlay.
func pairTunnels(n1, n2 *env, a, b string, proto maps.Proto, outer6 bool, edit func(*maps.Tunnel)) {
	set := func(tn *maps.Tunnel, local, remote netip.Addr, lmac, rmac net.HardwareAddr) {
		tn.Proto = proto
		switch proto {
		case maps.ProtoVLAN:
			tn.VNI, tn.VlanID, tn.OuterSrc, tn.OuterDst, tn.SrcMAC, tn.DstMAC = 0, 301, netip.Addr{}, netip.Addr{}, nil, nil
		default:
			tn.VNI, tn.OuterSrc, tn.OuterDst, tn.SrcMAC, tn.DstMAC = 0x123456, local, remote, lmac, rmac
		}
		if edit != nil {
			edit(tn)
		}
	}
	l1, l2 := netip.AddrFrom4([4]byte(node1IP)), netip.AddrFrom4([4]byte(node2IP))
	if outer6 {
		l1, l2 = node1IP6, node2IP6
	}
	n1.tunnel(a, b, func(tn *maps.Tunnel) { set(tn, l1, l2, node1MAC, node2MAC) })
	n2.tunnel(b, a, func(tn *maps.Tunnel) { set(tn, l2, l1, node2MAC, node1MAC) })
}

// innerPair returns the i-th workload address pair of a family.
func innerPair(v6 bool, i int) (string, string) {
	if v6 {
		return fmt.Sprintf("fd00:%x::1", i), fmt.Sprintf("fd00:%x::2", i)
	}
	return fmt.Sprintf("10.%d.0.1", i), fmt.Sprintf("10.%d.0.2", i)
}

// checkOuterFamily checks the outer Ethernet/IP/UDP headers of a frame
// encapsulated from node 1 to node 2, over IPv4 or IPv6, and returns the
// offset of the tunnel header. An IPv6 UDP checksum must be present and
// right (these frames are not GSO).
func checkOuterFamily(t *testing.T, out []byte, outer6 bool, tunnelLen, innerLen int, dport uint16) int {
	t.Helper()
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || udp == nil {
		t.Fatalf("encapsulated frame does not decode as Ethernet/IP/UDP: %v", pkt)
	}
	if !bytes.Equal(eth.SrcMAC, node1MAC) || !bytes.Equal(eth.DstMAC, node2MAC) {
		t.Errorf("outer Ethernet %s -> %s", eth.SrcMAC, eth.DstMAC)
	}
	udpLen := 8 + tunnelLen + innerLen
	if uint16(udp.DstPort) != dport || int(udp.Length) != udpLen {
		t.Errorf("outer UDP dport %d len %d, want %d, %d", udp.DstPort, udp.Length, dport, udpLen)
	}
	if udp.SrcPort < 32768 || udp.SrcPort >= 61000 {
		t.Errorf("outer UDP source port %d outside 32768..60999", udp.SrcPort)
	}
	if !outer6 {
		checkOuter(t, out, innerLen+tunnelLen-8, dport)
		return 14 + 20 + 8
	}
	ip, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if ip == nil || eth.EthernetType != layers.EthernetTypeIPv6 {
		t.Fatalf("outer header is not IPv6: %v", pkt)
	}
	if ip.HopLimit != 64 || ip.NextHeader != layers.IPProtocolUDP || int(ip.Length) != udpLen ||
		!ip.SrcIP.Equal(node1IP6.AsSlice()) || !ip.DstIP.Equal(node2IP6.AsSlice()) {
		t.Errorf("outer IPv6 header: hop limit %d next %v length %d %s -> %s", ip.HopLimit, ip.NextHeader, ip.Length, ip.SrcIP, ip.DstIP)
	}
	if udp.Checksum == 0 {
		t.Errorf("outer IPv6 UDP checksum is 0 on a frame that is not GSO")
	}
	// Pseudo-header + UDP datagram: sums to 0xffff when the checksum is right.
	pseudo := append(append([]byte(nil), out[22:54]...), 0, 0, 0, 0, 0, 0, 0, 17)
	binary.BigEndian.PutUint16(pseudo[34:], uint16(udpLen))
	if c := testnet.Checksum(append(pseudo, out[54:54+udpLen]...)); c != 0 {
		t.Errorf("outer IPv6 UDP checksum %#04x does not verify", udp.Checksum)
	}
	return 14 + 40 + 8
}

// counters returns the per-tunnel counters of src->dst.
func (e *env) tunnelCounters(src, dst string) maps.TunnelCounters {
	e.t.Helper()
	tn, err := e.state.GetTunnel(maps.TunnelKey{InnerSrc: netip.MustParseAddr(src), InnerDst: netip.MustParseAddr(dst)})
	if err != nil {
		e.t.Fatal(err)
	}
	return tn.Counters
}

// TestEveryProtocolFamilyAndHook sends an ICMP echo (and, over the UDP
// tunnels, a TCP segment) through node 1's encap and node 2's decap for
// every protocol, underlay family, workload family and hook, and checks
// the wire format, the restored frame and the per-tunnel counters. The
// frames on the wire are decoded by tshark too.
func TestEveryProtocolFamilyAndHook(t *testing.T) {
	n1, n2 := newEnv(t), newEnv(t)
	var wire [][]byte
	var wireWant [][]string
	i := 0
	for _, h := range hooks {
		for _, proto := range []maps.Proto{maps.ProtoGENEVE, maps.ProtoVXLAN, maps.ProtoVLAN} {
			outers := []bool{false, true}
			if proto == maps.ProtoVLAN {
				outers = []bool{false} // no outer IP header
			}
			for _, outer6 := range outers {
				for _, inner6 := range []bool{false, true} {
					i++
					name := fmt.Sprintf("%s/%s/outer-ipv%d/inner-ipv%d", h.name, proto, map[bool]int{false: 4, true: 6}[outer6], map[bool]int{false: 4, true: 6}[inner6])
					if proto == maps.ProtoVLAN {
						name = fmt.Sprintf("%s/%s/inner-ipv%d", h.name, proto, map[bool]int{false: 4, true: 6}[inner6])
					}
					a, b := innerPair(inner6, i)
					t.Run(name, func(t *testing.T) {
						pairTunnels(n1, n2, a, b, proto, outer6, nil)
						frames := [][]byte{testnet.ICMPFrame(t, wl1MAC, wl2MAC, a, b, 100)}
						if proto != maps.ProtoVLAN {
							frames = append(frames, tcp46Frame(t, a, b))
						}
						var bytesSent uint64
						for _, frame := range frames {
							ret, out := n1.run(h.encap(n1), frame, h.encapStat[proto])
							if ret != h.redirect {
								t.Fatalf("encap verdict %d, want %d", ret, h.redirect)
							}
							switch {
							case proto == maps.ProtoVLAN && h.name == "tc":
								// TC pushes the tag beside the frame (skb metadata), which
								// a test run does not return; the wire carries it, as the
								// end-to-end tests show. Decap sees it as the stack would
								// leave it in a test run: in the frame.
								if !bytes.Equal(out, frame) {
									t.Errorf("frame changed under a pushed tag:\n got %x\nwant %x", out, frame)
								}
								out = vlanTag(frame, 0x8100, 301)
							case proto == maps.ProtoVLAN:
								if want := vlanTag(frame, 0x8100, 301); !bytes.Equal(out, want) {
									t.Errorf("tagged frame\n got %x\nwant %x", out, want)
								}
							default:
								dport := map[maps.Proto]uint16{maps.ProtoGENEVE: 6081, maps.ProtoVXLAN: 4789}[proto]
								off := checkOuterFamily(t, out, outer6, 8, len(frame), dport)
								if !bytes.Equal(out[off+8:], frame) {
									t.Errorf("inner frame changed:\n got %x\nwant %x", out[off+8:], frame)
								}
								wire = append(wire, out)
								vni := []string{"", "1193046"}
								if proto == maps.ProtoVXLAN {
									vni = []string{"1193046", ""}
								}
								wireWant = append(wireWant, vni)
							}
							bytesSent += uint64(len(frame))
							// Node 2 answers the same frame back in: it must come out as sent.
							ret, back := n2.run(h.decap(n2), out, h.decapStat[proto])
							if ret != h.redirect {
								t.Fatalf("decap verdict %d, want %d", ret, h.redirect)
							}
							if !bytes.Equal(back, frame) {
								t.Errorf("decapsulated frame\n got %x\nwant %x", back, frame)
							}
						}
						n := uint64(len(frames))
						if c := n1.tunnelCounters(a, b); c != (maps.TunnelCounters{TxPackets: n, TxBytes: bytesSent}) {
							t.Errorf("node 1 tunnel counters %+v, want %d frames, %d bytes sent", c, n, bytesSent)
						}
						if c := n2.tunnelCounters(b, a); c != (maps.TunnelCounters{RxPackets: n, RxBytes: bytesSent}) {
							t.Errorf("node 2 tunnel counters %+v, want %d frames, %d bytes received", c, n, bytesSent)
						}
					})
				}
			}
		}
	}
	rows := testnet.Tshark(t, wire, nil, "vxlan.vni", "geneve.vni", "udp.checksum.status")
	for j, row := range rows {
		testnet.TsharkClean(t, j, row)
		want := wireWant[j]
		vxlanVNI, geneveVNI, status := first(row[3]), first(row[4]), first(row[5])
		outer6 := binary.BigEndian.Uint16(wire[j][12:]) == 0x86dd
		// IPv4 outer UDP checksums are 0 (3: not present); IPv6 ones are verified (1: good).
		if !sameNumber(vxlanVNI, want[0]) || !sameNumber(geneveVNI, want[1]) || (outer6 && status != "1") || (!outer6 && status != "3") {
			t.Errorf("frame %d: tshark vxlan.vni, geneve.vni, udp.checksum.status = %v, want %v and 1 (IPv6) or 3 (IPv4, none)", j+1, row[3:], want[:2])
		}
	}
	t.Logf("tshark decoded %d frames on the wire with no malformed field", len(rows))
}

// tcp46Frame is a TCP segment of either family from a to b.
func tcp46Frame(t *testing.T, a, b string) []byte {
	ip, et := testnet.IPLayer(a, b, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1, ACK: true, Window: 1000}
	_ = tcp.SetNetworkLayerForChecksum(ip.(gopacket.NetworkLayer))
	return serialize(t, &layers.Ethernet{SrcMAC: wl1MAC, DstMAC: wl2MAC, EthernetType: et}, ip, tcp, gopacket.Payload(make([]byte, 300)))
}

// TestOversizeIsDroppedAndCounted: on both hooks and both underlay
// families, a frame that fits the underlay MTU once encapsulated leaves,
// one byte more is dropped, counted per tunnel and in stats.
func TestOversizeIsDroppedAndCounted(t *testing.T) {
	n1, n2 := newEnv(t), newEnv(t)
	i := 0
	for _, h := range hooks {
		for _, outer6 := range []bool{false, true} {
			for _, opts := range [][]maps.GeneveOpt{nil, {{Class: 0x0102, Type: 3, Data: make([]byte, 8)}}} {
				i++
				a, b := innerPair(outer6, 100+i) // the inner family follows the outer: both mixes are above
				proto, overhead := maps.ProtoVXLAN, 50
				if opts != nil {
					proto, overhead = maps.ProtoGENEVE, 50+12
				}
				if outer6 {
					overhead += 20
				}
				t.Run(fmt.Sprintf("%s/%s/outer-ipv%d/overhead-%d", h.name, proto, map[bool]int{false: 4, true: 6}[outer6], overhead), func(t *testing.T) {
					pairTunnels(n1, n2, a, b, proto, outer6, func(tn *maps.Tunnel) {
						if tn.Proto == maps.ProtoGENEVE {
							tn.GeneveOpts = opts
						}
					})
					icmpHdr := 8 + 20
					if outer6 {
						icmpHdr = 8 + 40
					}
					// The underlay's MTU is 1500: inner IP packets of 1500-overhead fit.
					fits := testnet.ICMPFrame(t, wl1MAC, wl2MAC, a, b, 1500-overhead-icmpHdr)
					if ret, _ := n1.run(h.encap(n1), fits, h.encapStat[proto]); ret != h.redirect {
						t.Errorf("a frame that fits exactly: verdict %d, want %d", ret, h.redirect)
					}
					big := testnet.ICMPFrame(t, wl1MAC, wl2MAC, a, b, 1500-overhead-icmpHdr+1)
					if ret, _ := n1.run(h.encap(n1), big, h.tooBig); ret != h.drop {
						t.Errorf("one byte too big: verdict %d, want %d (drop)", ret, h.drop)
					}
					c := n1.tunnelCounters(a, b)
					if c.TxPackets != 1 || c.DropTooBig != 1 || c.TxBytes != uint64(len(fits)) {
						t.Errorf("tunnel counters %+v, want 1 sent (%d bytes) and 1 too big", c, len(fits))
					}
				})
			}
		}
	}
}

// TestGeneveOptionsOnTheWire: a tunnel's options go out after the GENEVE
// header on both hooks and families; the peer's decap skips them, and skips
// the longest options the header can announce; a critical option it cannot
// honour is dropped.
func TestGeneveOptionsOnTheWire(t *testing.T) {
	n1, n2 := newEnv(t), newEnv(t)
	opts := []maps.GeneveOpt{{Class: 0x0102, Type: 0x03, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}, {Class: 0xffff, Type: 0x7f, Data: []byte{9, 9, 9, 9}}}
	wantOpts := []byte{0x01, 0x02, 0x03, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0x7f, 0x01, 9, 9, 9, 9}
	var wire [][]byte
	i := 0
	for _, h := range hooks {
		for _, outer6 := range []bool{false, true} {
			i++
			a, b := innerPair(false, 150+i)
			t.Run(fmt.Sprintf("%s/outer-ipv%d", h.name, map[bool]int{false: 4, true: 6}[outer6]), func(t *testing.T) {
				pairTunnels(n1, n2, a, b, maps.ProtoGENEVE, outer6, func(tn *maps.Tunnel) { tn.GeneveOpts = opts })
				frame := testnet.ICMPFrame(t, wl1MAC, wl2MAC, a, b, 64)
				ret, out := n1.run(h.encap(n1), frame, h.encapStat[maps.ProtoGENEVE])
				if ret != h.redirect {
					t.Fatalf("encap verdict %d", ret)
				}
				off := checkOuterFamily(t, out, outer6, 8+len(wantOpts), len(frame), 6081)
				gh := out[off : off+8]
				if gh[0] != byte(len(wantOpts)/4) || gh[1] != 0 || binary.BigEndian.Uint16(gh[2:]) != 0x6558 {
					t.Errorf("GENEVE header %x: want option length %d words, no flags, Ethernet payload", gh, len(wantOpts)/4)
				}
				if got := out[off+8 : off+8+len(wantOpts)]; !bytes.Equal(got, wantOpts) {
					t.Errorf("options on the wire %x, want %x", got, wantOpts)
				}
				if !bytes.Equal(out[off+8+len(wantOpts):], frame) {
					t.Errorf("inner frame changed")
				}
				wire = append(wire, out)
				ret, back := n2.run(h.decap(n2), out, h.decapStat[maps.ProtoGENEVE])
				if ret != h.redirect || !bytes.Equal(back, frame) {
					t.Errorf("decap of a frame with options: verdict %d, frame restored %v", ret, bytes.Equal(back, frame))
				}
				// 252 bytes of options, the most 6 bits of length announce.
				inner := testnet.ICMPFrame(t, wl2MAC, wl1MAC, b, a, 64)
				long := make([]byte, 63*4)
				long[0], long[1], long[2], long[3] = 0x01, 0x02, 0x03, 30
				long[124], long[125], long[126], long[127] = 0x01, 0x02, 0x04, 30
				in := udpTunnel(t, outerOpts{dport: 6081}, geneveHdr(0x123456, 0, long), inner)
				if outer6 {
					in = udp6Tunnel(t, geneveHdr(0x123456, 0, long), inner)
				}
				ret, back = n1.run(h.decap(n1), in, h.decapStat[maps.ProtoGENEVE])
				if ret != h.redirect || !bytes.Equal(back, inner) {
					t.Errorf("decap with 252 bytes of options: verdict %d, frame restored %v", ret, bytes.Equal(back, inner))
				}
				crit := append([]byte(nil), wantOpts...)
				crit[14] |= 0x80 // the second option becomes critical
				in = udpTunnel(t, outerOpts{dport: 6081}, geneveHdr(0x123456, 0x40, crit), inner)
				if outer6 {
					in = udp6Tunnel(t, geneveHdr(0x123456, 0x40, crit), inner)
				}
				if ret, _ := n1.run(h.decap(n1), in, h.decapCritical); ret != h.drop {
					t.Errorf("critical option: verdict %d, want drop", ret)
				}
			})
		}
	}
	rows := testnet.Tshark(t, wire, nil, "geneve.option.class", "geneve.option.type", "geneve.option.length")
	for j, row := range rows {
		testnet.TsharkClean(t, j, row)
		if row[3] != "0x0102,0xffff" && row[3] != "258,65535" {
			t.Errorf("frame %d: tshark option classes %q, want 0x0102 and 0xffff (%v)", j+1, row[3], row)
		}
	}
}

// udp6Tunnel wraps inner in outer Ethernet/IPv6/UDP from node 2 to node 1.
func udp6Tunnel(t *testing.T, hdr, inner []byte) []byte {
	eth := &layers.Ethernet{SrcMAC: node2MAC, DstMAC: node1MAC, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: node2IP6.AsSlice(), DstIP: node1IP6.AsSlice()}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 6081}
	_ = udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, udp, gopacket.Payload(append(append([]byte(nil), hdr...), inner...)))
}

// first is the outermost value of a tshark field that repeats inside.
func first(field string) string { return strings.Split(field, ",")[0] }

// sameNumber compares tshark's rendering of a number (decimal or hex) with want.
func sameNumber(got, want string) bool {
	if got == want {
		return true
	}
	g, err1 := strconv.ParseUint(got, 0, 64)
	w, err2 := strconv.ParseUint(want, 0, 64)
	return err1 == nil && err2 == nil && g == w
}

// TestTunnelCountersFollowTheirTunnel: counters survive an update of their
// tunnel, and a tunnel that takes the index of a deleted one starts at zero.
func TestTunnelCountersFollowTheirTunnel(t *testing.T) {
	e := newEnv(t)
	first := e.tunnel("10.0.0.1", "10.0.0.2", nil)
	e.tunnel("10.0.0.1", "10.0.0.3", nil)
	frame := testnet.ICMPFrame(t, wl1MAC, wl2MAC, "10.0.0.1", "10.0.0.2", 56)
	e.run(e.objs.Encap, frame, encap.EncapStatS_ENCAP__VXLAN)
	e.tunnel("10.0.0.1", "10.0.0.2", func(tn *maps.Tunnel) { tn.VNI = 77 }) // an update
	if c := e.tunnelCounters("10.0.0.1", "10.0.0.2"); c.TxPackets != 1 || c.TxBytes != uint64(len(frame)) {
		t.Errorf("counters after an update: %+v, want the frame sent before it", c)
	}
	got, err := e.state.GetTunnel(first.TunnelKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.state.DeleteTunnel(e.lock, first.TunnelKey); err != nil {
		t.Fatal(err)
	}
	third := e.tunnel("10.0.0.1", "10.0.0.4", nil)
	again, err := e.state.GetTunnel(third.TunnelKey)
	if err != nil {
		t.Fatal(err)
	}
	if again.CounterIndex != got.CounterIndex {
		t.Errorf("the new tunnel took counter index %d, want the freed %d", again.CounterIndex, got.CounterIndex)
	}
	if again.Counters != (maps.TunnelCounters{}) {
		t.Errorf("a new tunnel on a reused index starts with %+v, want zeros", again.Counters)
	}
	if c := e.tunnelCounters("10.0.0.1", "10.0.0.3"); c != (maps.TunnelCounters{}) {
		t.Errorf("another tunnel's counters moved: %+v", c)
	}
}

// TestShortInnerFrames: frames below Ethernet's 60-byte minimum, as a
// sender on this host hands them over unpadded, cross both hooks and both
// underlay families and come out as they went in (ARP under IPv6 on the TC
// hook comes out padded: the kernel will not shrink that skb further).
func TestShortInnerFrames(t *testing.T) {
	n1, n2 := newEnv(t), newEnv(t)
	i := 0
	for _, h := range hooks {
		for _, outer6 := range []bool{false, true} {
			i++
			a, b := innerPair(false, 160+i)
			t.Run(fmt.Sprintf("%s/outer-ipv%d", h.name, map[bool]int{false: 4, true: 6}[outer6]), func(t *testing.T) {
				pairTunnels(n1, n2, a, b, maps.ProtoVXLAN, outer6, nil)
				ip, et := testnet.IPLayer(a, b, layers.IPProtocolUDP)
				udp := &layers.UDP{SrcPort: 1, DstPort: 2}
				_ = udp.SetNetworkLayerForChecksum(ip.(gopacket.NetworkLayer))
				tiny := serialize(t, &layers.Ethernet{SrcMAC: wl1MAC, DstMAC: wl2MAC, EthernetType: et}, ip, udp, gopacket.Payload([]byte{1}))[:14+20+8+1]
				arp := testnet.ARPFrame(t, wl1MAC, a, b)[:42]
				for _, frame := range [][]byte{tiny, arp} {
					ret, out := n1.run(h.encap(n1), frame, h.encapStat[maps.ProtoVXLAN])
					if ret != h.redirect {
						t.Fatalf("encap verdict %d", ret)
					}
					ret, back := n2.run(h.decap(n2), out, h.decapStat[maps.ProtoVXLAN])
					want := frame
					if h.name == "tc" && outer6 && len(frame) == 42 {
						want = append(append([]byte(nil), frame...), make([]byte, 14+40-42)...)
					}
					if ret != h.redirect || !bytes.Equal(back, want) {
						t.Errorf("%d-byte frame: decap verdict %d\n got %x\nwant %x", len(frame), ret, back, want)
					}
				}
			})
		}
	}
}
