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

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/progs/encap"
	"github.com/tunmux/tunmux/progs/limits"
)

// liveEnv: frames "arrive" on in0 and are redirected to out0, whose peer
// out1 runs XDP_DROP (the program's cost alone) or XDP_PASS (the whole path).
type liveEnv struct {
	*liveBed
	objs  encap.EncapObjects
	state *maps.EncapState
}

func newLiveEnv(b *testing.B, peerVerdict int32) *liveEnv {
	e := &liveEnv{liveBed: newLiveBed(b, "live", peerVerdict)}
	if err := encap.LoadEncapObjects(&e.objs, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.objs.Close() })
	var err error
	if e.state, err = maps.NewEncapState(map[string]*ebpf.Map{"tunnels": e.objs.Tunnels, "tunnels4": e.objs.Tunnels4, "tunnel_stats": e.objs.TunnelStats, "devmap": e.objs.Devmap, "slots": e.objs.Slots}); err != nil {
		b.Fatal(err)
	}
	lock := testnet.Lock(b)
	e.ns.Do(b, func() error {
		// The floor: frames arriving on in0 leave on out0 untouched.
		if err := e.state.PutSlot(lock, maps.Slot{In: uint32(e.in.Index), InName: "in0", Out: uint32(e.out.Index), OutName: "out0"}); err != nil {
			return err
		}
		return e.state.PutSlot(lock, maps.Slot{In: uint32(e.out.Index), InName: "out0", Out: uint32(e.out.Index), OutName: "out0"})
	})
	for _, v6 := range []bool{false, true} {
		for i, proto := range []maps.Proto{maps.ProtoVXLAN, maps.ProtoGENEVE, maps.ProtoVLAN} {
			inner, outer := innerPair(byte(i), 1, 2, v6), outerPair(v6)
			tn := maps.Tunnel{
				TunnelKey: maps.TunnelKey{InnerSrc: inner[0], InnerDst: inner[1]},
				Proto:     proto, VNI: 100, OuterSrc: outer[0], OuterDst: outer[1],
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
	}
	return e
}

// innerPair is the inner pair of tunnel n: 10.0.n.src -> 10.0.n.dst, or
// fd00:0:n::src -> fd00:0:n::dst.
func innerPair(n, src, dst byte, v6 bool) [2]netip.Addr {
	if v6 {
		return [2]netip.Addr{netip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, n, 15: src}), netip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, n, 15: dst})}
	}
	return [2]netip.Addr{netip.AddrFrom4([4]byte{10, 0, n, src}), netip.AddrFrom4([4]byte{10, 0, n, dst})}
}

// outerPair is the underlay pair of the tunnels: 192.168.1.1 -> .2, or
// fd10::1 -> fd10::2.
func outerPair(v6 bool) [2]netip.Addr {
	if v6 {
		return [2]netip.Addr{netip.MustParseAddr("fd10::1"), netip.MustParseAddr("fd10::2")}
	}
	return [2]netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("192.168.1.2")}
}

// frame64 is a 64-byte Ethernet frame (60 bytes without FCS) carrying UDP
// from 10.0.<n>.<src> to 10.0.<n>.<dst>; with v6, an 86-byte frame (the
// same 18 bytes of payload) from fd00:0:<n>::<src> to fd00:0:<n>::<dst>.
func frame64(b *testing.B, n, src, dst byte, v6 ...bool) []byte {
	pair := innerPair(n, src, dst, len(v6) > 0 && v6[0])
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 1, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 2, 2}, EthernetType: layers.EthernetTypeIPv4}
	udp := &layers.UDP{SrcPort: 1000, DstPort: 2000}
	var ip gopacket.SerializableLayer
	if pair[0].Is6() {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: pair[0].AsSlice(), DstIP: pair[1].AsSlice()}
		_ = udp.SetNetworkLayerForChecksum(ip6)
		ip = ip6
	} else {
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: pair[0].AsSlice(), DstIP: pair[1].AsSlice()}
		_ = udp.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(make([]byte, 18))); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// encapsulated wraps a frame as node 2 would send it to node 1 (outer
// destination the tunnels' outer source), over IPv4 or IPv6.
func encapsulated(b *testing.B, inner []byte, proto maps.Proto, v6 bool) []byte {
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
	outer := outerPair(v6)
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0xa, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0xa, 1}, EthernetType: layers.EthernetTypeIPv4}
	udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(port)}
	var ip gopacket.SerializableLayer
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: outer[1].AsSlice(), DstIP: outer[0].AsSlice()}
		_ = udp.SetNetworkLayerForChecksum(ip6)
		ip = ip6
	} else {
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: outer[1].AsSlice(), DstIP: outer[0].AsSlice(), Flags: layers.IPv4DontFragment}
		_ = udp.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(append(hdr, inner...))); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// runLive runs prog b.N times on frame in live-frame mode, as if received on
// in0, and reports packets per second; then as many again with bpf_stats
// on, and reports the program's run time per packet. The hit counter must
// have counted every run: live frames recycle pages, and a program that
// rewrote its own input in place would see its earlier output.
func (e *liveEnv) runLive(b *testing.B, prog *ebpf.Program, frame []byte, hit encap.EncapStat) {
	e.runCounted(b, prog, frame, e.objs.Stats, uint32(hit), fmt.Sprint(hit))
}

// runCounted is runLive for a program counting its outcomes in stats, the
// hit counter at index hit (named name).
func (e *liveEnv) runCounted(b *testing.B, prog *ebpf.Program, frame []byte, stats *ebpf.Map, hit uint32, name string) {
	before := testnet.Counters(b, stats)[hit]
	elapsed, _ := e.run(b, prog, frame)
	hits := testnet.Counters(b, stats)[hit] - before
	if hits < uint64(b.N)+uint64(b.N/10) {
		b.Fatalf("%s counted %d of %d runs: the measurement is not of the path it names", name, hits, b.N+b.N/10)
	}
	disable := enableStats(b)
	_, runNs := e.run(b, prog, frame)
	disable()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pps")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/pkt")
	b.ReportMetric(runNs, "run-ns")
}

// BenchmarkLive measures the encap and decap programs with XDP live frames
// beside a bare devmap-redirect floor, on one CPU, with the receiving peer
// dropping (the programs' cost) or passing (the whole path) the frames:
// packets per second and the programs' own run time (bpf_stats), with IPv4
// and with IPv6 (inner and outer).
func BenchmarkLive(b *testing.B) {
	for _, peer := range []struct {
		name    string
		verdict int32
	}{{"peer-drop", testnet.XDPDrop}, {"peer-pass", testnet.XDPPass}} {
		b.Run(peer.name, func(b *testing.B) {
			e := newLiveEnv(b, peer.verdict)
			b.Run("floor-redirect", func(b *testing.B) {
				e.runLive(b, e.objs.Redirect, frame64(b, 9, 1, 2), encap.EncapStatS_REDIRECT__OUT)
			})
			if peer.verdict == testnet.XDPDrop {
				benchObserve(b, e) // capture: off (encap-vxlan), observed idle, on
			}
			// The limits: the floor plus one 8-byte-key lookup, plus a
			// 50-byte header push, plus both (a featureless VXLAN encap).
			l := newLimitsEnv(b, e)
			for _, c := range []struct {
				name string
				prog *ebpf.Program
				hit  limits.LimitsStat
			}{
				{"limit-lookup", l.objs.Lookup, limits.LimitsStatS_LOOKUP__OUT},
				{"limit-push", l.objs.Push, limits.LimitsStatS_PUSH__OUT},
				{"limit-encap", l.objs.Encap, limits.LimitsStatS_ENCAP__OUT},
			} {
				b.Run(c.name, func(b *testing.B) {
					e.runCounted(b, c.prog, frame64(b, 0, 1, 2), l.objs.Stats, uint32(c.hit), c.name)
				})
			}
			for _, v6 := range []bool{false, true} {
				family := map[bool]string{false: "", true: "6"}[v6]
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
					b.Run(fmt.Sprintf("encap-%s%s", c.proto, family), func(b *testing.B) {
						e.runLive(b, e.objs.Encap, frame64(b, n, 1, 2, v6), c.encap)
					})
					if c.decaps {
						b.Run(fmt.Sprintf("decap-%s%s", c.proto, family), func(b *testing.B) {
							e.runLive(b, e.objs.Decap, encapsulated(b, frame64(b, n, 2, 1, v6), c.proto, v6), c.decap)
						})
					}
				}
			}
		})
	}
}
