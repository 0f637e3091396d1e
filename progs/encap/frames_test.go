package encap_test

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/tunmux/tunmux/internal/testnet"
)

// Addresses of the packet tests.
var (
	wl1MAC   = net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x01} // workload 1
	wl2MAC   = net.HardwareAddr{0x02, 0, 0, 0, 0x02, 0x02} // workload 2
	node1MAC = net.HardwareAddr{0x02, 0, 0, 0, 0x0a, 0x01} // underlay of node 1
	node2MAC = net.HardwareAddr{0x02, 0, 0, 0, 0x0a, 0x02} // underlay of node 2
	rewrMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0x0b, 0x0b} // inner destination rewrite
	bcast    = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	node1IP  = net.IPv4(192, 168, 1, 1).To4()
	node2IP  = net.IPv4(192, 168, 1, 2).To4()
)

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	return testnet.Serialize(t, ls...)
}

// icmpFrame is an Ethernet/IPv4/ICMP echo request from src to dst.
func icmpFrame(t *testing.T, src, dst string, payload int) []byte {
	return testnet.ICMPFrame(t, wl1MAC, wl2MAC, src, dst, payload)
}

// tcpFrame is an Ethernet/IPv4/TCP segment with the given ports and IP options.
func tcpFrame(t *testing.T, src, dst string, sport, dport uint16, opts []layers.IPv4Option) []byte {
	return testnet.TCPFrame(t, wl1MAC, wl2MAC, src, dst, sport, dport, opts)
}

// arpFrame is a broadcast ARP request: who has dst? tell src.
func arpFrame(t *testing.T, src, dst string) []byte {
	return testnet.ARPFrame(t, wl1MAC, src, dst)
}

// outerOpts are the fields of an outer Ethernet/IPv4/UDP header.
type outerOpts struct {
	src, dst  net.IP
	sport     uint16
	dport     uint16
	ipOptions []layers.IPv4Option
	flags     layers.IPv4Flag
	fragOff   uint16
	proto     layers.IPProtocol
}

// udpTunnel wraps inner in outer Ethernet/IPv4/UDP with header hdr.
func udpTunnel(t *testing.T, o outerOpts, hdr, inner []byte) []byte {
	if o.src == nil {
		o.src = node2IP
	}
	if o.dst == nil {
		o.dst = node1IP
	}
	if o.sport == 0 {
		o.sport = 40000
	}
	if o.proto == 0 {
		o.proto = layers.IPProtocolUDP
	}
	eth := &layers.Ethernet{SrcMAC: node2MAC, DstMAC: node1MAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: o.proto, SrcIP: o.src, DstIP: o.dst, Options: o.ipOptions, Flags: o.flags, FragOffset: o.fragOff}
	payload := append(append([]byte(nil), hdr...), inner...)
	if o.proto != layers.IPProtocolUDP {
		return serialize(t, eth, ip, gopacket.Payload(payload))
	}
	udp := &layers.UDP{SrcPort: layers.UDPPort(o.sport), DstPort: layers.UDPPort(o.dport)}
	_ = udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, udp, gopacket.Payload(payload))
}

// vxlanHdr is a VXLAN header with the I flag and vni.
func vxlanHdr(vni uint32) []byte {
	h := make([]byte, 8)
	h[0] = 0x08
	binary.BigEndian.PutUint32(h[4:], vni<<8)
	return h
}

// geneveHdr is a GENEVE header for an Ethernet payload, with opts (a
// multiple of 4 bytes) as options and the given flags byte.
func geneveHdr(vni uint32, flags byte, opts []byte) []byte {
	h := make([]byte, 8)
	h[0] = byte(len(opts) / 4)
	h[1] = flags
	binary.BigEndian.PutUint16(h[2:], 0x6558)
	h[4], h[5], h[6] = byte(vni>>16), byte(vni>>8), byte(vni)
	return append(h, opts...)
}

// vlanTag inserts an 802.1Q tag with vid after the MAC addresses of frame.
func vlanTag(frame []byte, tpid uint16, vid uint16) []byte { return testnet.VLANTag(frame, tpid, vid) }

// ipv4Checksum is 0 over a header whose checksum is right.
func ipv4Checksum(h []byte) uint16 { return testnet.Checksum(h) }
