package encap_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
	"github.com/tunmux/tunmux/progs/encap"
)

// env is a loaded, unpinned encap object with tunnels, run inside a private
// network namespace whose interfaces are the tunnels' underlay and overlay.
type env struct {
	t     *testing.T
	ns    *testnet.Netns
	objs  encap.EncapObjects
	state *maps.EncapState
	lock  *maps.Lock
	ul    netdev.Iface // underlay (MTU 1500)
	ov    netdev.Iface // overlay
	lone  netdev.Iface // an interface without a redirect slot
}

func newEnv(t *testing.T) *env {
	testnet.RequireRoot(t)
	e := &env{t: t, ns: testnet.NewNetns(t, "pkt")}
	testnet.Veth(t, e.ns, "ul0", e.ns, "ul1")
	testnet.Veth(t, e.ns, "ov0", e.ns, "ov1")
	testnet.Veth(t, e.ns, "lone0", e.ns, "lone1")
	e.ns.Run(t, "ip", "link", "set", "ul0", "mtu", "1500")
	if err := encap.LoadEncapObjects(&e.objs, nil); err != nil {
		t.Fatalf("load encap objects: %v", err)
	}
	t.Cleanup(func() { e.objs.Close() })
	var err error
	e.state, err = maps.NewEncapState(map[string]*ebpf.Map{"tunnels": e.objs.Tunnels, "tunnels4": e.objs.Tunnels4, "tunnel_stats": e.objs.TunnelStats, "devmap": e.objs.Devmap, "slots": e.objs.Slots})
	if err != nil {
		t.Fatal(err)
	}
	e.lock = testnet.Lock(t)
	e.ns.Do(t, func() error {
		for _, x := range []struct {
			name string
			dst  *netdev.Iface
		}{{"ul0", &e.ul}, {"ov0", &e.ov}, {"lone0", &e.lone}} {
			ifc, err := netdev.Lookup(x.name)
			if err != nil {
				return err
			}
			*x.dst = ifc
		}
		for _, ifc := range []netdev.Iface{e.ul, e.ov} {
			slot := maps.Slot{In: uint32(ifc.Index), InName: ifc.Name, Out: uint32(ifc.Index), OutName: ifc.Name}
			if err := e.state.PutSlot(e.lock, slot); err != nil {
				return err
			}
		}
		return nil
	})
	return e
}

// tunnel adds a tunnel from src to dst (the local workload's view).
func (e *env) tunnel(src, dst string, edit func(*maps.Tunnel)) maps.Tunnel {
	e.t.Helper()
	tn := maps.Tunnel{
		TunnelKey:     maps.TunnelKey{InnerSrc: netip.MustParseAddr(src), InnerDst: netip.MustParseAddr(dst)},
		Proto:         maps.ProtoVXLAN,
		VNI:           100,
		OuterSrc:      netip.AddrFrom4([4]byte(node1IP)),
		OuterDst:      netip.AddrFrom4([4]byte(node2IP)),
		SrcMAC:        node1MAC,
		DstMAC:        node2MAC,
		UnderlayIndex: uint32(e.ul.Index),
		OverlayIndex:  uint32(e.ov.Index),
	}
	if edit != nil {
		edit(&tn)
	}
	if err := e.state.PutTunnel(e.lock, tn, maps.Upsert); err != nil {
		e.t.Fatal(err)
	}
	return tn
}

// protocolTunnels adds a tunnel of each protocol: VXLAN (VNI 100)
// 10.0.0.1->10.0.0.2, GENEVE (VNI geneveVNI) 10.0.1.1->10.0.1.2 and VLAN
// 300 10.0.2.1->10.0.2.2.
func (e *env) protocolTunnels(geneveVNI uint32) {
	e.t.Helper()
	e.tunnel("10.0.0.1", "10.0.0.2", nil)
	e.tunnel("10.0.1.1", "10.0.1.2", func(tn *maps.Tunnel) { tn.Proto, tn.VNI = maps.ProtoGENEVE, geneveVNI })
	e.tunnel("10.0.2.1", "10.0.2.2", func(tn *maps.Tunnel) {
		tn.Proto, tn.VNI, tn.VlanID, tn.OuterSrc, tn.OuterDst, tn.SrcMAC, tn.DstMAC = maps.ProtoVLAN, 0, 300, netip.Addr{}, netip.Addr{}, nil, nil
	})
}

// counters reads every counter's packets, summed over CPUs.
func (e *env) counters() []uint64 { return testnet.Counters(e.t, e.objs.Stats) }

// run runs prog on frame inside the namespace, and checks that exactly one
// counter moved, by one: want.
func (e *env) run(prog *ebpf.Program, frame []byte, want encap.EncapStat) (uint32, []byte) {
	e.t.Helper()
	return e.runCtx(prog, frame, nil, want)
}

// runCtx is run with a context for the program (testnet.SkbCtx, XDPMd).
func (e *env) runCtx(prog *ebpf.Program, frame []byte, ctx any, want encap.EncapStat) (uint32, []byte) {
	e.t.Helper()
	return testnet.RunCounted(e.t, testnet.ProgRun{Prog: prog, Stats: e.objs.Stats, Frame: frame, Ctx: ctx, Room: 512, Ns: e.ns,
		Want: int(want), Name: testnet.CounterNamer(e.t, dataplane.EncapDataplane.CounterNames)})
}

// redirect runs prog on frame, checks the counter want and the verdict
// XDP_REDIRECT, and returns the output frame.
func (e *env) redirect(t *testing.T, prog *ebpf.Program, frame []byte, want encap.EncapStat) []byte {
	t.Helper()
	ret, out := e.run(prog, frame, want)
	if ret != testnet.XDPRedirect {
		t.Fatalf("verdict %d, want XDP_REDIRECT", ret)
	}
	return out
}

// expectPass runs prog and checks that the frame passed untouched.
func (e *env) expectPass(prog *ebpf.Program, frame []byte, want encap.EncapStat) {
	e.t.Helper()
	e.expectPassAs(prog, frame, want, testnet.XDPPass)
}

// expectPassAs runs prog and checks that the frame went on untouched with
// verdict pass (XDP_PASS, or TCX_NEXT for the TC programs).
func (e *env) expectPassAs(prog *ebpf.Program, frame []byte, want encap.EncapStat, pass uint32) {
	e.t.Helper()
	ret, out := e.run(prog, frame, want)
	if ret != pass {
		e.t.Errorf("verdict %d, want %d (pass on)", ret, pass)
	}
	if !bytes.Equal(out, frame) {
		e.t.Errorf("frame changed although it passed:\n got %x\nwant %x", out, frame)
	}
}

// skipIfTestRunRefuses skips t if the kernel refuses to build a test-run
// skb of frame: it checks the first IP header itself.
func (e *env) skipIfTestRunRefuses(t *testing.T, prog *ebpf.Program, frame []byte) {
	t.Helper()
	testnet.SkipIfTestRunRefuses(t, e.ns, prog, frame, nil)
}

// checkOuter checks the outer Ethernet/IPv4/UDP headers of an encapsulated
// frame and returns its UDP layer.
func checkOuter(t *testing.T, out []byte, innerLen int, dport uint16) *layers.UDP {
	t.Helper()
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || ip == nil || udp == nil {
		t.Fatalf("encapsulated frame does not decode as Ethernet/IPv4/UDP: %v", pkt)
	}
	if !bytes.Equal(eth.SrcMAC, node1MAC) || !bytes.Equal(eth.DstMAC, node2MAC) || eth.EthernetType != layers.EthernetTypeIPv4 {
		t.Errorf("outer Ethernet %s -> %s type %v", eth.SrcMAC, eth.DstMAC, eth.EthernetType)
	}
	if ip.Version != 4 || ip.IHL != 5 || ip.TTL != 64 || ip.Protocol != layers.IPProtocolUDP || ip.Flags != layers.IPv4DontFragment || ip.FragOffset != 0 {
		t.Errorf("outer IPv4 header fields: %+v", ip)
	}
	if !ip.SrcIP.Equal(node1IP) || !ip.DstIP.Equal(node2IP) {
		t.Errorf("outer IPv4 %s -> %s, want %s -> %s", ip.SrcIP, ip.DstIP, node1IP, node2IP)
	}
	if int(ip.Length) != 20+8+8+innerLen {
		t.Errorf("outer IPv4 total length %d, want %d", ip.Length, 20+8+8+innerLen)
	}
	if c := ipv4Checksum(out[14:34]); c != 0 {
		t.Errorf("outer IPv4 checksum %#04x does not verify", ip.Checksum)
	}
	if uint16(udp.DstPort) != dport || int(udp.Length) != 8+8+innerLen || udp.Checksum != 0 {
		t.Errorf("outer UDP dport %d len %d csum %#x, want %d, %d, 0", udp.DstPort, udp.Length, udp.Checksum, dport, 8+8+innerLen)
	}
	return udp
}

func TestEncapPushesEachProtocol(t *testing.T) {
	e := newEnv(t)
	e.protocolTunnels(0xabcdef)
	var capture [][]byte

	t.Run("vxlan", func(t *testing.T) {
		frame := icmpFrame(t, "10.0.0.1", "10.0.0.2", 56)
		out := e.redirect(t, e.objs.Encap, frame, encap.EncapStatS_ENCAP__VXLAN)
		udp := checkOuter(t, out, len(frame), 4789)
		if udp.SrcPort < 32768 || udp.SrcPort >= 61000 {
			t.Errorf("source port %d outside the kernel vxlan range 32768..60999", udp.SrcPort)
		}
		vx := out[42:50]
		if vx[0] != 0x08 || binary.BigEndian.Uint32(vx[4:])>>8 != 100 || vx[1] != 0 || vx[2] != 0 || vx[3] != 0 || vx[7] != 0 {
			t.Errorf("VXLAN header %x, want flags 08 and VNI 100", vx)
		}
		if !bytes.Equal(out[50:], frame) {
			t.Errorf("inner frame changed:\n got %x\nwant %x", out[50:], frame)
		}
		capture = append(capture, out)
	})
	t.Run("geneve", func(t *testing.T) {
		frame := icmpFrame(t, "10.0.1.1", "10.0.1.2", 100)
		out := e.redirect(t, e.objs.Encap, frame, encap.EncapStatS_ENCAP__GENEVE)
		checkOuter(t, out, len(frame), 6081)
		pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
		gn, _ := pkt.Layer(layers.LayerTypeGeneve).(*layers.Geneve)
		if gn == nil {
			t.Fatalf("no GENEVE layer in %v", pkt)
		}
		if gn.Version != 0 || gn.OptionsLength != 0 || gn.OAMPacket || gn.CriticalOption || gn.Protocol != layers.EthernetTypeTransparentEthernetBridging || gn.VNI != 0xabcdef {
			t.Errorf("GENEVE header %+v", gn)
		}
		if !bytes.Equal(out[50:], frame) {
			t.Errorf("inner frame changed")
		}
		capture = append(capture, out)
	})
	t.Run("vlan", func(t *testing.T) {
		frame := icmpFrame(t, "10.0.2.1", "10.0.2.2", 56)
		out := e.redirect(t, e.objs.Encap, frame, encap.EncapStatS_ENCAP__VLAN)
		if want := vlanTag(frame, 0x8100, 300); !bytes.Equal(out, want) {
			t.Errorf("tagged frame\n got %x\nwant %x", out, want)
		}
		capture = append(capture, out)
	})
	t.Run("arp", func(t *testing.T) {
		frame := arpFrame(t, "10.0.0.1", "10.0.0.2")
		out := e.redirect(t, e.objs.Encap, frame, encap.EncapStatS_ENCAP__VXLAN)
		checkOuter(t, out, len(frame), 4789)
		if !bytes.Equal(out[50:], frame) {
			t.Errorf("inner ARP changed")
		}
		capture = append(capture, out)
	})
	t.Run("ip options and fragments", func(t *testing.T) {
		opts := []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}}
		frame := tcpFrame(t, "10.0.0.1", "10.0.0.2", 1234, 80, opts)
		ret, out := e.run(e.objs.Encap, frame, encap.EncapStatS_ENCAP__VXLAN)
		if ret != testnet.XDPRedirect || !bytes.Equal(out[50:], frame) {
			t.Fatalf("frame with IP options: verdict %d", ret)
		}
		capture = append(capture, out)
		frag := icmpFrame(t, "10.0.0.1", "10.0.0.2", 56)
		frag[14+6] |= 0x20 // more fragments
		binary.BigEndian.PutUint16(frag[14+10:], 0)
		binary.BigEndian.PutUint16(frag[14+10:], ipv4Checksum(frag[14:34]))
		ret, out = e.run(e.objs.Encap, frag, encap.EncapStatS_ENCAP__VXLAN)
		if ret != testnet.XDPRedirect || !bytes.Equal(out[50:], frag) {
			t.Fatalf("fragment: verdict %d", ret)
		}
	})
	t.Run("per-flow source port", func(t *testing.T) {
		port := func(sport uint16) uint16 {
			_, out := e.run(e.objs.Encap, tcpFrame(t, "10.0.0.1", "10.0.0.2", sport, 80, nil), encap.EncapStatS_ENCAP__VXLAN)
			return binary.BigEndian.Uint16(out[34:])
		}
		if first, again := port(1000), port(1000); first != again {
			t.Errorf("one flow got two source ports")
		}
		seen := map[uint16]bool{}
		for p := uint16(1000); p < 1016; p++ {
			seen[port(p)] = true
		}
		if len(seen) < 8 {
			t.Errorf("16 flows got only %d source ports: no entropy for ECMP", len(seen))
		}
	})
	t.Run("fixed source port and inner MAC rewrite", func(t *testing.T) {
		e.tunnel("10.0.3.1", "10.0.3.2", func(tn *maps.Tunnel) { tn.SrcPort, tn.InnerDstMAC = 5555, rewrMAC })
		frame := icmpFrame(t, "10.0.3.1", "10.0.3.2", 56)
		_, out := e.run(e.objs.Encap, frame, encap.EncapStatS_ENCAP__VXLAN)
		if got := binary.BigEndian.Uint16(out[34:]); got != 5555 {
			t.Errorf("source port %d, want 5555", got)
		}
		want := append([]byte(nil), frame...)
		copy(want, rewrMAC)
		if !bytes.Equal(out[50:], want) {
			t.Errorf("inner destination MAC not rewritten: %x", out[50:56])
		}
		// A broadcast (ARP request) keeps its destination.
		arp := arpFrame(t, "10.0.3.1", "10.0.3.2")
		_, out = e.run(e.objs.Encap, arp, encap.EncapStatS_ENCAP__VXLAN)
		if !bytes.Equal(out[50:], arp) {
			t.Errorf("broadcast destination rewritten: %x", out[50:56])
		}
	})
	t.Run("underlay MTU", func(t *testing.T) {
		// 1500 bytes of IP fill the underlay's MTU; +50 cannot leave.
		big := icmpFrame(t, "10.0.0.1", "10.0.0.2", 1500-20-8)
		if ret, _ := e.run(e.objs.Encap, big, encap.EncapStatS_ENCAP__DROP_TOO_BIG); ret != testnet.XDPDrop {
			t.Errorf("verdict %d, want XDP_DROP", ret)
		}
		// 50 bytes less fits exactly.
		fits := icmpFrame(t, "10.0.0.1", "10.0.0.2", 1500-20-8-50)
		if ret, _ := e.run(e.objs.Encap, fits, encap.EncapStatS_ENCAP__VXLAN); ret != testnet.XDPRedirect {
			t.Errorf("a frame that fits: verdict %d, want XDP_REDIRECT", ret)
		}
	})
	t.Run("vlan tag on a full frame", func(t *testing.T) {
		big := icmpFrame(t, "10.0.2.1", "10.0.2.2", 1500-20-8)
		ret, out := e.run(e.objs.Encap, big, encap.EncapStatS_ENCAP__VLAN)
		if ret != testnet.XDPRedirect || len(out) != len(big)+4 {
			t.Errorf("a full-size frame must take a tag: verdict %d, %d bytes", ret, len(out))
		}
	})

	tsharkCheck(t, capture, []string{"vxlan.vni", "geneve.vni", "vlan.id"}, [][]string{
		{"100", "", ""}, {"", "11259375", ""}, {"", "", "300"}, {"100", "", ""}, {"100", "", ""},
	})
}

func TestEncapPassesForeignAndMalformed(t *testing.T) {
	e := newEnv(t)
	e.tunnel("10.0.0.1", "10.0.0.2", nil)
	e.tunnel("10.0.9.1", "10.0.9.2", func(tn *maps.Tunnel) { tn.UnderlayIndex = uint32(e.lone.Index) })
	good := icmpFrame(t, "10.0.0.1", "10.0.0.2", 56)
	ipv6 := serialize(t,
		&layers.Ethernet{SrcMAC: wl1MAC, DstMAC: wl2MAC, EthernetType: layers.EthernetTypeIPv6},
		&layers.IPv6{Version: 6, NextHeader: layers.IPProtocolNoNextHeader, HopLimit: 64, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")})
	badARP := arpFrame(t, "10.0.0.1", "10.0.0.2")
	badARP[14+4] = 8 // hardware address length
	ihl4 := append([]byte(nil), good...)
	ihl4[14] = 0x44
	for _, c := range []struct {
		name  string
		frame []byte
		want  encap.EncapStat
	}{
		{"truncated IPv4 header", good[:14+12], encap.EncapStatS_ENCAP__PASS_MALFORMED},
		{"IHL below 5", ihl4, encap.EncapStatS_ENCAP__PASS_MALFORMED},
		{"truncated ARP", arpFrame(t, "10.0.0.1", "10.0.0.2")[:14+20], encap.EncapStatS_ENCAP__PASS_MALFORMED},
		{"ARP with 8-byte hardware addresses", badARP, encap.EncapStatS_ENCAP__PASS_MALFORMED},
		{"IPv6 of no tunnel", ipv6, encap.EncapStatS_ENCAP__PASS_NO_TUNNEL},
		{"truncated IPv6 header", ipv6[:14+30], encap.EncapStatS_ENCAP__PASS_MALFORMED},
		{"VLAN-tagged", vlanTag(good, 0x8100, 5), encap.EncapStatS_ENCAP__PASS_NOT_IP},
		{"no tunnel for the pair", icmpFrame(t, "10.0.0.2", "10.0.0.1", 56), encap.EncapStatS_ENCAP__PASS_NO_TUNNEL},
		{"underlay without a slot", icmpFrame(t, "10.0.9.1", "10.0.9.2", 56), encap.EncapStatS_ENCAP__PASS_NO_SLOT},
	} {
		t.Run(c.name, func(t *testing.T) { e.expectPass(e.objs.Encap, c.frame, c.want) })
		// The TC program passes the same frames on down the TCX chain
		// (it needs no slot: it redirects by ifindex).
		if tc, ok := encapTCStat[c.want]; ok {
			t.Run("tc/"+c.name, func(t *testing.T) {
				e.skipIfTestRunRefuses(t, e.objs.EncapTc, c.frame)
				e.expectPassAs(e.objs.EncapTc, c.frame, tc, testnet.TCXNext)
			})
		}
	}
}

func TestDecapStripsEachProtocol(t *testing.T) {
	e := newEnv(t)
	// Node 1's tunnels; received frames come from the peer, inner dst -> src swapped.
	e.protocolTunnels(200)
	expectDecap := func(t *testing.T, frame, inner []byte, want encap.EncapStat) {
		t.Helper()
		out := e.redirect(t, e.objs.Decap, frame, want)
		if !bytes.Equal(out, inner) {
			t.Errorf("decapsulated frame\n got %x\nwant %x", out, inner)
		}
	}
	t.Run("vxlan", func(t *testing.T) {
		inner := icmpFrame(t, "10.0.0.2", "10.0.0.1", 56)
		expectDecap(t, udpTunnel(t, outerOpts{dport: 4789}, vxlanHdr(100), inner), inner, encap.EncapStatS_DECAP__VXLAN)
	})
	t.Run("vxlan with outer IP options", func(t *testing.T) {
		inner := icmpFrame(t, "10.0.0.2", "10.0.0.1", 56)
		opts := []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}}
		expectDecap(t, udpTunnel(t, outerOpts{dport: 4789, ipOptions: opts}, vxlanHdr(100), inner), inner, encap.EncapStatS_DECAP__VXLAN)
	})
	t.Run("arp over vxlan", func(t *testing.T) {
		inner := arpFrame(t, "10.0.0.2", "10.0.0.1")
		expectDecap(t, udpTunnel(t, outerOpts{dport: 4789}, vxlanHdr(100), inner), inner, encap.EncapStatS_DECAP__VXLAN)
	})
	t.Run("geneve", func(t *testing.T) {
		inner := icmpFrame(t, "10.0.1.2", "10.0.1.1", 56)
		expectDecap(t, udpTunnel(t, outerOpts{dport: 6081}, geneveHdr(200, 0, nil), inner), inner, encap.EncapStatS_DECAP__GENEVE)
	})
	t.Run("geneve options skipped", func(t *testing.T) {
		inner := icmpFrame(t, "10.0.1.2", "10.0.1.1", 56)
		opt := []byte{0x01, 0x02, 0x03, 0x02, 1, 2, 3, 4, 5, 6, 7, 8} // class, type, 2 words of data
		expectDecap(t, udpTunnel(t, outerOpts{dport: 6081}, geneveHdr(200, 0, opt), inner), inner, encap.EncapStatS_DECAP__GENEVE)
	})
	t.Run("geneve with the longest options", func(t *testing.T) {
		inner := icmpFrame(t, "10.0.1.2", "10.0.1.1", 56)
		expectDecap(t, udpTunnel(t, outerOpts{dport: 6081}, geneveHdr(200, 0, make([]byte, 63*4)), inner), inner, encap.EncapStatS_DECAP__GENEVE)
	})
	t.Run("vlan", func(t *testing.T) {
		inner := icmpFrame(t, "10.0.2.2", "10.0.2.1", 56)
		expectDecap(t, vlanTag(inner, 0x8100, 300), inner, encap.EncapStatS_DECAP__VLAN)
	})
	t.Run("vlan with priority bits", func(t *testing.T) {
		inner := arpFrame(t, "10.0.2.2", "10.0.2.1")
		expectDecap(t, vlanTag(inner, 0x8100, 5<<13|300), inner, encap.EncapStatS_DECAP__VLAN)
	})
	t.Run("ethernet padding removed", func(t *testing.T) {
		inner := icmpFrame(t, "10.0.0.2", "10.0.0.1", 56)
		frame := append(udpTunnel(t, outerOpts{dport: 4789}, vxlanHdr(100), inner), 0, 0, 0, 0)
		expectDecap(t, frame, inner, encap.EncapStatS_DECAP__VXLAN)
	})
	t.Run("round trip", func(t *testing.T) {
		// What node 2's encap sends, node 1's decap restores.
		node2 := newEnv(t)
		node2.tunnel("10.0.0.2", "10.0.0.1", func(tn *maps.Tunnel) {
			tn.OuterSrc, tn.OuterDst = netip.AddrFrom4([4]byte(node2IP)), netip.AddrFrom4([4]byte(node1IP))
			tn.SrcMAC, tn.DstMAC = node2MAC, node1MAC
		})
		inner := tcpFrame(t, "10.0.0.2", "10.0.0.1", 4000, 22, nil)
		_, sent := node2.run(node2.objs.Encap, inner, encap.EncapStatS_ENCAP__VXLAN)
		expectDecap(t, sent, inner, encap.EncapStatS_DECAP__VXLAN)
	})
}

func TestDecapPassesForeignAndMalformed(t *testing.T) {
	e := newEnv(t)
	e.protocolTunnels(200)
	e.tunnel("10.0.9.1", "10.0.9.2", func(tn *maps.Tunnel) { tn.OverlayIndex = uint32(e.lone.Index) })

	inner := icmpFrame(t, "10.0.0.2", "10.0.0.1", 56)
	vx := func(o outerOpts, vni uint32, in []byte) []byte {
		o.dport = 4789
		return udpTunnel(t, o, vxlanHdr(vni), in)
	}
	good := vx(outerOpts{}, 100, inner)
	withTotLen := func(frame []byte, tot uint16) []byte {
		f := append([]byte(nil), frame...)
		binary.BigEndian.PutUint16(f[16:], tot)
		binary.BigEndian.PutUint16(f[24:], 0)
		binary.BigEndian.PutUint16(f[24:], ipv4Checksum(f[14:34]))
		return f
	}
	withUDPLen := func(frame []byte, l uint16) []byte {
		f := append([]byte(nil), frame...)
		binary.BigEndian.PutUint16(f[38:], l)
		return f
	}
	noIFlag := append([]byte(nil), good...)
	noIFlag[42] = 0
	ipv6Inner := serialize(t,
		&layers.Ethernet{SrcMAC: wl2MAC, DstMAC: wl1MAC, EthernetType: layers.EthernetTypeIPv6},
		&layers.IPv6{Version: 6, NextHeader: layers.IPProtocolNoNextHeader, HopLimit: 64, SrcIP: net.ParseIP("fd00::2"), DstIP: net.ParseIP("fd00::1")})
	lldpInner := append(append([]byte{}, wl1MAC...), append(append([]byte{}, wl2MAC...), 0x88, 0xcc, 2, 7, 4, 0, 0, 0, 0, 0, 1)...)
	lldpInner = append(lldpInner, make([]byte, 60-len(lldpInner))...)
	genInner := icmpFrame(t, "10.0.1.2", "10.0.1.1", 56)
	gen := func(flags byte, vni uint32) []byte {
		return udpTunnel(t, outerOpts{dport: 6081}, geneveHdr(vni, flags, nil), genInner)
	}
	genV1 := gen(0, 200)
	genV1[42] |= 0x40 // version 1
	genIPPayload := gen(0, 200)
	binary.BigEndian.PutUint16(genIPPayload[44:], 0x0800)
	vlanInner := icmpFrame(t, "10.0.2.2", "10.0.2.1", 56)
	outerIHL4 := append([]byte(nil), good...)
	outerIHL4[14] = 0x44
	good6 := udp6Tunnel(t, geneveHdr(200, 0, nil), genInner)
	// Option length 63 words: 252 bytes of options the packet does not hold.
	genOptsPastPacket := gen(0, 200)
	genOptsPastPacket[42] = 63
	// 12 bytes of options, but a UDP length that ends at the options'
	// first inner Ethernet byte: the inner frame lies past the datagram.
	genOptsPastUDP := withUDPLen(udpTunnel(t, outerOpts{dport: 6081}, geneveHdr(200, 0, make([]byte, 12)), genInner), 8+8+14)
	// The UDP datagram ends after the inner Ethernet header; the inner
	// IPv4 header follows in bytes the IP packet still counts.
	innerIPPastUDP := withUDPLen(good, 8+8+14)
	// The IP packet ends after the inner Ethernet header; the inner IPv4
	// header lies in trailing bytes (Ethernet padding) behind it.
	innerIPInPadding := withUDPLen(withTotLen(good, 20+8+8+14), 8+8+14)

	for _, c := range []struct {
		name  string
		frame []byte
		want  encap.EncapStat
	}{
		// Foreign frames.
		{"ARP on the underlay", arpFrame(t, "192.168.1.2", "192.168.1.1"), encap.EncapStatS_DECAP__PASS_NOT_TUNNEL},
		{"outer TCP", udpTunnel(t, outerOpts{proto: layers.IPProtocolTCP}, make([]byte, 20), inner), encap.EncapStatS_DECAP__PASS_NOT_TUNNEL},
		{"other UDP port", udpTunnel(t, outerOpts{dport: 53}, vxlanHdr(100), inner), encap.EncapStatS_DECAP__PASS_NOT_TUNNEL},
		{"outer fragment (MF)", vx(outerOpts{flags: layers.IPv4MoreFragments}, 100, inner), encap.EncapStatS_DECAP__PASS_FRAGMENT},
		{"outer fragment (offset)", vx(outerOpts{fragOff: 100}, 100, inner), encap.EncapStatS_DECAP__PASS_FRAGMENT},
		{"unknown VNI", vx(outerOpts{}, 101, inner), encap.EncapStatS_DECAP__PASS_MISMATCH},
		{"wrong outer destination", vx(outerOpts{dst: net.IPv4(192, 168, 1, 9).To4()}, 100, inner), encap.EncapStatS_DECAP__PASS_MISMATCH},
		{"VXLAN for a GENEVE tunnel", vx(outerOpts{}, 200, genInner), encap.EncapStatS_DECAP__PASS_MISMATCH},
		{"inner pair without tunnel", vx(outerOpts{}, 100, icmpFrame(t, "10.0.0.1", "10.0.0.2", 56)), encap.EncapStatS_DECAP__PASS_NO_TUNNEL},
		{"inner IPv6 of no tunnel", vx(outerOpts{}, 100, ipv6Inner), encap.EncapStatS_DECAP__PASS_NO_TUNNEL},
		{"inner LLDP", vx(outerOpts{}, 100, lldpInner), encap.EncapStatS_DECAP__PASS_INNER_NOT_IP},
		{"GENEVE control packet", gen(0x80, 200), encap.EncapStatS_DECAP__PASS_OAM},
		{"GENEVE carrying IP, not Ethernet", genIPPayload, encap.EncapStatS_DECAP__PASS_NOT_TUNNEL},
		{"VLAN id of no tunnel", vlanTag(vlanInner, 0x8100, 301), encap.EncapStatS_DECAP__PASS_MISMATCH},
		{"stacked VLAN", vlanTag(vlanTag(vlanInner, 0x8100, 300), 0x8100, 300), encap.EncapStatS_DECAP__PASS_STACKED_VLAN},
		{"802.1ad inside 802.1Q", vlanTag(vlanTag(vlanInner, 0x8100, 300), 0x88a8, 300)[:], encap.EncapStatS_DECAP__PASS_NOT_TUNNEL},
		{"overlay without a slot", vx(outerOpts{}, 100, icmpFrame(t, "10.0.9.2", "10.0.9.1", 56)), encap.EncapStatS_DECAP__PASS_NO_SLOT},
		// Malformed frames.
		{"truncated outer IPv4", good[:14+16], encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"truncated UDP", good[:34+6], encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"truncated VXLAN", withTotLen(good[:42+4], 20+8+4), encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"truncated inner Ethernet", withTotLen(good[:50+10], 20+8+8+10), encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"truncated inner IPv4", withTotLen(good[:64+10], 20+8+8+14+10), encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"IP total length beyond the frame", withTotLen(good, uint16(len(good)-14+10)), encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"UDP length beyond the datagram", withUDPLen(good, uint16(len(good)-34+8)), encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"VXLAN without the I flag", noIFlag, encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"GENEVE version 1", genV1, encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"truncated VLAN tag", vlanTag(vlanInner, 0x8100, 300)[:16], encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"outer IHL below 5", outerIHL4, encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"truncated outer IPv6", good6[:14+30], encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"outer IPv6 cut after its header", good6[:14+40+4], encap.EncapStatS_DECAP__PASS_MALFORMED},
		// Extension headers are not walked: UDP behind one is not seen as a
		// tunnel, and the kernel's stack gets the packet.
		{"outer IPv6 hop-by-hop before UDP", testnet.WithIPv6Ext(good6, 0), encap.EncapStatS_DECAP__PASS_NOT_TUNNEL},
		{"outer IPv6 destination options before UDP", testnet.WithIPv6Ext(good6, 60), encap.EncapStatS_DECAP__PASS_NOT_TUNNEL},
		{"GENEVE options past the packet", genOptsPastPacket, encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"GENEVE options past the UDP length", genOptsPastUDP, encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"inner IPv4 header past the UDP length", innerIPPastUDP, encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"inner IPv4 header past the IP length", innerIPInPadding, encap.EncapStatS_DECAP__PASS_MALFORMED},
	} {
		t.Run(c.name, func(t *testing.T) { e.expectPass(e.objs.Decap, c.frame, c.want) })
		tc, ok := decapTCStat[c.want]
		if c.name == "stacked VLAN" {
			tc = encap.EncapStatS_DECAP_TC__PASS_INNER_NOT_IP // TC reads the inner tag as the payload's type
		}
		if ok {
			t.Run("tc/"+c.name, func(t *testing.T) {
				e.skipIfTestRunRefuses(t, e.objs.DecapTc, c.frame)
				e.expectPassAs(e.objs.DecapTc, c.frame, tc, testnet.TCXNext)
			})
		}
	}

	t.Run("GENEVE critical option dropped", func(t *testing.T) {
		ret, _ := e.run(e.objs.Decap, gen(0x40, 200), encap.EncapStatS_DECAP__DROP_CRITICAL_OPT)
		if ret != testnet.XDPDrop {
			t.Errorf("verdict %d, want XDP_DROP", ret)
		}
		if ret, _ = e.run(e.objs.DecapTc, gen(0x40, 200), encap.EncapStatS_DECAP_TC__DROP_CRITICAL_OPT); ret != testnet.TCActShot {
			t.Errorf("TC verdict %d, want TC_ACT_SHOT", ret)
		}
	})
}

// TestDropErrorWhereTheKernelRefuses reaches the TC programs' DROP_ERROR:
// a test-run skb given a gso_size has no GSO type, and bpf_skb_adjust_room
// refuses to grow or shrink a GSO skb that is neither TCP nor UDP GSO
// (-ENOTSUPP). The frame is dropped, never sent on half changed.
//
// The XDP programs' DROP_ERROR cannot be reached by a test: encap grows the
// head by at most 134 bytes (Ethernet, IPv6, UDP, GENEVE and 64 bytes of
// options) into the 256 bytes of headroom an XDP frame has, of which the
// kernel keeps 40 (struct xdp_frame) and metadata takes at most 32 in a
// test run; and decap shrinks a frame only to an inner frame whose headers
// it checked to lie inside it.
func TestDropErrorWhereTheKernelRefuses(t *testing.T) {
	e := newEnv(t)
	e.protocolTunnels(200)
	gso := testnet.TCIn(e.ul.Index)
	gso.GsoSize, gso.GsoSegs = 100, 2
	for _, c := range []struct {
		name  string
		prog  *ebpf.Program
		frame []byte
		want  encap.EncapStat
	}{
		{"encap of a GSO frame over VXLAN", e.objs.EncapTc, tcpFrame(t, "10.0.0.1", "10.0.0.2", 1000, 80, nil), encap.EncapStatS_ENCAP_TC__DROP_ERROR},
		{"decap of a GSO frame from VXLAN", e.objs.DecapTc, udpTunnel(t, outerOpts{dport: 4789}, vxlanHdr(100), tcpFrame(t, "10.0.0.2", "10.0.0.1", 80, 1000, nil)), encap.EncapStatS_DECAP_TC__DROP_ERROR},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			if ret, _ := e.runCtx(c.prog, c.frame, gso, c.want); ret != testnet.TCActShot {
				t.Errorf("verdict %d, want TC_ACT_SHOT", ret)
			}
		})
	}
}

// The TC programs' counters for the outcomes the XDP ones share (frames
// the XDP programs pass for want of a slot, TC sends by ifindex).
var (
	encapTCStat = map[encap.EncapStat]encap.EncapStat{
		encap.EncapStatS_ENCAP__PASS_NOT_IP:    encap.EncapStatS_ENCAP_TC__PASS_NOT_IP,
		encap.EncapStatS_ENCAP__PASS_MALFORMED: encap.EncapStatS_ENCAP_TC__PASS_MALFORMED,
		encap.EncapStatS_ENCAP__PASS_NO_TUNNEL: encap.EncapStatS_ENCAP_TC__PASS_NO_TUNNEL,
	}
	decapTCStat = map[encap.EncapStat]encap.EncapStat{
		encap.EncapStatS_DECAP__PASS_NOT_TUNNEL:   encap.EncapStatS_DECAP_TC__PASS_NOT_TUNNEL,
		encap.EncapStatS_DECAP__PASS_MALFORMED:    encap.EncapStatS_DECAP_TC__PASS_MALFORMED,
		encap.EncapStatS_DECAP__PASS_FRAGMENT:     encap.EncapStatS_DECAP_TC__PASS_FRAGMENT,
		encap.EncapStatS_DECAP__PASS_INNER_NOT_IP: encap.EncapStatS_DECAP_TC__PASS_INNER_NOT_IP,
		encap.EncapStatS_DECAP__PASS_STACKED_VLAN: encap.EncapStatS_DECAP_TC__PASS_INNER_NOT_IP,
		encap.EncapStatS_DECAP__PASS_OAM:          encap.EncapStatS_DECAP_TC__PASS_OAM,
		encap.EncapStatS_DECAP__PASS_NO_TUNNEL:    encap.EncapStatS_DECAP_TC__PASS_NO_TUNNEL,
		encap.EncapStatS_DECAP__PASS_MISMATCH:     encap.EncapStatS_DECAP_TC__PASS_MISMATCH,
	}
)

func TestRedirectAndPass(t *testing.T) {
	e := newEnv(t)
	frame := icmpFrame(t, "10.9.9.1", "10.9.9.2", 56)
	e.expectPass(e.objs.Pass, frame, encap.EncapStatS_PASS__PASS)
	// Without a slot for the ingress interface (loopback in a test run).
	e.expectPass(e.objs.Redirect, frame, encap.EncapStatS_REDIRECT__PASS_NO_SLOT)
	e.ns.Do(t, func() error {
		return e.state.PutSlot(e.lock, maps.Slot{In: 1, InName: "lo", Out: uint32(e.ul.Index), OutName: "ul0"})
	})
	ret, out := e.run(e.objs.Redirect, frame, encap.EncapStatS_REDIRECT__OUT)
	if ret != testnet.XDPRedirect || !bytes.Equal(out, frame) {
		t.Errorf("redirect: verdict %d, frame changed %v", ret, !bytes.Equal(out, frame))
	}
}

// tsharkCheck has tshark decode frames: no malformed field, good outer
// IPv4 checksums, and the given fields with the given values, frame by frame.
func tsharkCheck(t *testing.T, frames [][]byte, fields []string, want [][]string) {
	t.Helper()
	for i, row := range testnet.Tshark(t, frames, nil, fields...) {
		testnet.TsharkClean(t, i, row)
		for j, w := range want[i] {
			got := row[3+j]
			if idx := strings.IndexByte(got, ','); idx >= 0 {
				got = got[:idx] // the outer value of a field that repeats inside
			}
			if gn, err1 := strconv.ParseUint(got, 0, 64); err1 == nil {
				if wn, err2 := strconv.ParseUint(w, 0, 64); err2 == nil && gn == wn {
					continue
				}
			}
			if got != w {
				t.Errorf("frame %d: tshark %s = %q, want %q (%v)", i+1, fields[j], got, w, row)
			}
		}
	}
	t.Logf("tshark decoded %d encapsulated frames with no malformed field", len(frames))
}
