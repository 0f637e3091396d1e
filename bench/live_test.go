// Package bench measures tunmux (make bench): the encap programs' packet
// rates with XDP live frames beside a bare devmap-redirect floor, and TCP
// and 64-byte UDP over tunmux VXLAN beside the kernel's vxlan, in one run.
// It holds benchmarks only; scripts/bench.sh turns their output into one
// table of ratios.
package bench

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
	"github.com/tunmux/tunmux/progs/encap"
)

// xdpMd is struct xdp_md, the context of an XDP test run.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// liveEnv: frames "arrive" on in0 and are redirected to out0, whose peer
// out1 runs XDP_DROP (the program's cost alone) or XDP_PASS (the whole path).
type liveEnv struct {
	ns    *testnet.Netns
	objs  encap.EncapObjects
	state *maps.EncapState
	in    netdev.Iface
	out   netdev.Iface
}

func newLiveEnv(b *testing.B, peerVerdict uint32) *liveEnv {
	testnet.RequireRoot(b)
	e := &liveEnv{ns: testnet.NewNetns(b, "live")}
	testnet.Veth(b, e.ns, "in0", e.ns, "in1")
	testnet.Veth(b, e.ns, "out0", e.ns, "out1")
	if err := encap.LoadEncapObjects(&e.objs, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.objs.Close() })
	var err error
	if e.state, err = maps.NewEncapState(map[string]*ebpf.Map{"tunnels": e.objs.Tunnels, "tunnel_stats": e.objs.TunnelStats, "devmap": e.objs.Devmap, "slots": e.objs.Slots}); err != nil {
		b.Fatal(err)
	}
	root, err := maps.OpenRoot(testnet.BPFRoot(b, nil), true)
	if err != nil {
		b.Fatal(err)
	}
	lock, err := root.Lock(time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(lock.Release)
	peer, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, int32(peerVerdict)), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { peer.Close() })
	e.ns.Do(b, func() error {
		if e.in, err = netdev.Lookup("in0"); err != nil {
			return err
		}
		if e.out, err = netdev.Lookup("out0"); err != nil {
			return err
		}
		out1, err := netdev.Lookup("out1")
		if err != nil {
			return err
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: peer, Interface: out1.Index, Flags: link.XDPDriverMode})
		if err != nil {
			return err
		}
		b.Cleanup(func() { l.Close() })
		// The floor: frames arriving on in0 leave on out0 untouched.
		if err := e.state.PutSlot(lock, maps.Slot{In: uint32(e.in.Index), InName: "in0", Out: uint32(e.out.Index), OutName: "out0"}); err != nil {
			return err
		}
		return e.state.PutSlot(lock, maps.Slot{In: uint32(e.out.Index), InName: "out0", Out: uint32(e.out.Index), OutName: "out0"})
	})
	for i, proto := range []maps.Proto{maps.ProtoVXLAN, maps.ProtoGENEVE, maps.ProtoVLAN} {
		tn := maps.Tunnel{
			TunnelKey: maps.TunnelKey{InnerSrc: netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), InnerDst: netip.AddrFrom4([4]byte{10, 0, byte(i), 2})},
			Proto:     proto, VNI: 100, OuterSrc: netip.MustParseAddr("192.168.1.1"), OuterDst: netip.MustParseAddr("192.168.1.2"),
			SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0xa, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0xa, 2},
			UnderlayIndex: uint32(e.out.Index), OverlayIndex: uint32(e.out.Index),
		}
		if proto == maps.ProtoVLAN {
			tn.VNI, tn.VlanID, tn.OuterSrc, tn.OuterDst, tn.SrcMAC, tn.DstMAC = 0, 100, netip.Addr{}, netip.Addr{}, nil, nil
		}
		if err := e.state.PutTunnel(lock, tn, maps.Add); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// frame64 is a 64-byte Ethernet frame (60 bytes without FCS) carrying UDP
// from 10.0.<n>.<src> to 10.0.<n>.<dst>.
func frame64(b *testing.B, n, src, dst byte) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 1, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 2, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(10, 0, n, src), DstIP: net.IPv4(10, 0, n, dst)}
	udp := &layers.UDP{SrcPort: 1000, DstPort: 2000}
	_ = udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(make([]byte, 18))); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// encapsulated wraps a frame as node 2 would send it to node 1 (outer
// destination 192.168.1.1, the tunnel's outer source).
func encapsulated(b *testing.B, inner []byte, proto maps.Proto) []byte {
	if proto == maps.ProtoVLAN {
		out := append([]byte(nil), inner[:12]...)
		out = append(out, 0x81, 0x00, 0x00, 100)
		return append(out, inner[12:]...)
	}
	hdr := make([]byte, 8)
	port := uint16(4789)
	if proto == maps.ProtoGENEVE {
		port = 6081
		binary.BigEndian.PutUint16(hdr[2:], 0x6558)
		hdr[6] = 100
	} else {
		hdr[0] = 0x08
		binary.BigEndian.PutUint32(hdr[4:], 100<<8)
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0xa, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0xa, 1}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(192, 168, 1, 2), DstIP: net.IPv4(192, 168, 1, 1), Flags: layers.IPv4DontFragment}
	udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(port)}
	_ = udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(append(hdr, inner...))); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// counter sums a stats counter over CPUs.
func (e *liveEnv) counter(b *testing.B, id encap.EncapStat) uint64 {
	var per []encap.EncapCounter
	if err := e.objs.Stats.Lookup(uint32(id), &per); err != nil {
		b.Fatal(err)
	}
	var n uint64
	for _, c := range per {
		n += c.Packets
	}
	return n
}

// runLive runs prog b.N times on frame in live-frame mode, as if received on
// in0, and reports packets per second. The hit counter must have counted
// every run: live frames recycle pages, and a program that rewrote its own
// input in place would see its earlier output.
func (e *liveEnv) runLive(b *testing.B, prog *ebpf.Program, frame []byte, hit encap.EncapStat) {
	before := e.counter(b, hit)
	var elapsed time.Duration
	b.ResetTimer()
	e.ns.Do(b, func() error {
		opts := &ebpf.RunOptions{
			Data:    frame,
			Repeat:  uint32(b.N),
			Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
			Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(e.in.Index)},
		}
		start := time.Now()
		_, err := prog.Run(opts)
		elapsed = time.Since(start)
		return err
	})
	b.StopTimer()
	hits := e.counter(b, hit) - before
	if hits < uint64(b.N) {
		b.Fatalf("%v counted %d of %d runs: the measurement is not of the path it names", hit, hits, b.N)
	}
	b.ReportMetric(float64(hits)/elapsed.Seconds(), "pps")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(hits), "ns/pkt")
}

func BenchmarkLive(b *testing.B) {
	for _, peer := range []struct {
		name    string
		verdict uint32
	}{{"peer-drop", 1}, {"peer-pass", 2}} {
		b.Run(peer.name, func(b *testing.B) {
			e := newLiveEnv(b, peer.verdict)
			b.Run("floor-redirect", func(b *testing.B) {
				e.runLive(b, e.objs.Redirect, frame64(b, 9, 1, 2), encap.EncapStatS_REDIRECT__OUT)
			})
			for i, c := range []struct {
				proto  maps.Proto
				encap  encap.EncapStat
				decap  encap.EncapStat
				decaps bool
			}{
				{maps.ProtoVXLAN, encap.EncapStatS_ENCAP__VXLAN, encap.EncapStatS_DECAP__VXLAN, true},
				{maps.ProtoGENEVE, encap.EncapStatS_ENCAP__GENEVE, encap.EncapStatS_DECAP__GENEVE, true},
				// VLAN decap moves the MAC addresses over the tag inside the
				// frame; with recycled pages the next run would see a frame
				// without its tag, so it is not measured with live frames.
				{maps.ProtoVLAN, encap.EncapStatS_ENCAP__VLAN, 0, false},
			} {
				n := byte(i)
				b.Run(fmt.Sprintf("encap-%s", c.proto), func(b *testing.B) {
					e.runLive(b, e.objs.Encap, frame64(b, n, 1, 2), c.encap)
				})
				if c.decaps {
					b.Run(fmt.Sprintf("decap-%s", c.proto), func(b *testing.B) {
						e.runLive(b, e.objs.Decap, encapsulated(b, frame64(b, n, 2, 1), c.proto), c.decap)
					})
				}
			}
		})
	}
}
