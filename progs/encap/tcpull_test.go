package encap_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
	"github.com/tunmux/tunmux/progs/encap"
)

// packetSocket is an AF_PACKET socket bound to one interface.
type packetSocket struct{ fd int }

// openPacketSocket opens a packet socket on ifname inside e's namespace;
// with vnetHdr, frames written to it start with a struct virtio_net_hdr.
func (e *env) openPacketSocket(t *testing.T, ifname string, vnetHdr bool) *packetSocket {
	t.Helper()
	var s packetSocket
	e.ns.Do(t, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		s.fd = fd
		if vnetHdr {
			if err := unix.SetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
				return err
			}
		}
		ifc2, err := netdev.Lookup(ifname)
		if err != nil {
			return err
		}
		return unix.Bind(s.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc2.Index})
	})
	t.Cleanup(func() { unix.Close(s.fd) })
	return &s
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// receive returns the first frame of at least min bytes to arrive within a
// few seconds, or nil.
func (s *packetSocket) receive(t *testing.T, min int) []byte {
	t.Helper()
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err == nil && n >= min {
			return append([]byte(nil), buf[:n]...)
		}
	}
	return nil
}

// TestTCPullsHeadersBeyondTheHead: a frame whose headers are not in the
// skb's linear part (written through a packet socket with a virtio-net
// header announcing 14 linear bytes, and larger than a page, so the kernel
// puts the rest in page fragments) is still encapsulated and decapsulated
// by the TC programs, which pull the headers in and parse again, and comes
// out whole. Test runs cannot build such skbs: this goes through veths.
func TestTCPullsHeadersBeyondTheHead(t *testing.T) {
	e := newEnv(t)
	for _, ifc := range []string{"ul0", "ul1", "ov0", "ov1"} {
		e.ns.Run(t, "ip", "link", "set", ifc, "mtu", "9000")
	}
	tn := e.tunnel("10.0.7.1", "10.0.7.2", nil)
	e.ns.Do(t, func() error {
		for _, a := range []struct {
			prog  *ebpf.Program
			index int
		}{{e.objs.EncapTc, e.ov.Index}, {e.objs.DecapTc, e.ul.Index}} {
			l, err := link.AttachTCX(link.TCXOptions{Program: a.prog, Interface: a.index, Attach: ebpf.AttachTCXIngress})
			if err != nil {
				return err
			}
			t.Cleanup(func() { l.Close() })
		}
		return nil
	})
	jumbo := func(src, dst string) []byte {
		ip, et := testnet.IPLayer(src, dst, layers.IPProtocolUDP)
		udp := &layers.UDP{SrcPort: 7000, DstPort: 7001}
		_ = udp.SetNetworkLayerForChecksum(ip.(gopacket.NetworkLayer))
		payload := make([]byte, 6000)
		for i := range payload {
			payload[i] = byte(i)
		}
		return serialize(t, &layers.Ethernet{SrcMAC: wl1MAC, DstMAC: wl2MAC, EthernetType: et}, ip, udp, gopacket.Payload(payload))
	}
	// A virtio-net header: no checksum to fill, no GSO, 14 bytes of header.
	vnet := make([]byte, 10)
	binary.LittleEndian.PutUint16(vnet[2:], 14)

	t.Run("encap", func(t *testing.T) {
		out := e.openPacketSocket(t, "ul1", false)
		in := e.openPacketSocket(t, "ov1", true)
		frame := jumbo("10.0.7.1", "10.0.7.2")
		before := e.counters()
		if _, err := unix.Write(in.fd, append(append([]byte(nil), vnet...), frame...)); err != nil {
			t.Fatal(err)
		}
		got := out.receive(t, len(frame)+50)
		after := e.counters()
		if got == nil {
			t.Fatalf("nothing left the underlay; counters moved: encap-tc vxlan %d, pass_malformed %d",
				after[encap.EncapStatS_ENCAP_TC__VXLAN]-before[encap.EncapStatS_ENCAP_TC__VXLAN],
				after[encap.EncapStatS_ENCAP_TC__PASS_MALFORMED]-before[encap.EncapStatS_ENCAP_TC__PASS_MALFORMED])
		}
		checkOuter(t, got, len(frame), 4789)
		if !bytes.Equal(got[50:], frame) {
			t.Errorf("the inner frame changed on the way")
		}
		if d := after[encap.EncapStatS_ENCAP_TC__VXLAN] - before[encap.EncapStatS_ENCAP_TC__VXLAN]; d != 1 {
			t.Errorf("encap-tc/vxlan moved by %d, want 1", d)
		}
		if c := e.tunnelCounters("10.0.7.1", "10.0.7.2"); c.TxPackets != 1 || c.TxBytes != uint64(len(frame)) {
			t.Errorf("tunnel counters %+v, want 1 frame of %d bytes sent", c, len(frame))
		}
	})
	t.Run("decap", func(t *testing.T) {
		out := e.openPacketSocket(t, "ov1", false)
		in := e.openPacketSocket(t, "ul1", true)
		inner := jumbo("10.0.7.2", "10.0.7.1")
		frame := udpTunnel(t, outerOpts{dport: 4789}, vxlanHdr(tn.VNI), inner)
		before := e.counters()
		if _, err := unix.Write(in.fd, append(append([]byte(nil), vnet...), frame...)); err != nil {
			t.Fatal(err)
		}
		got := out.receive(t, len(inner))
		after := e.counters()
		if d := after[encap.EncapStatS_DECAP_TC__VXLAN] - before[encap.EncapStatS_DECAP_TC__VXLAN]; d != 1 {
			t.Errorf("decap-tc/vxlan moved by %d, want 1 (pass_malformed moved by %d)", d,
				after[encap.EncapStatS_DECAP_TC__PASS_MALFORMED]-before[encap.EncapStatS_DECAP_TC__PASS_MALFORMED])
		}
		if !bytes.Equal(got, inner) {
			t.Errorf("the overlay received %d bytes, want the %d-byte inner frame", len(got), len(inner))
		}
	})
}

// TestTCOuterIPv6ChecksumWithOffloadedInner: a sender that offloads its TCP
// checksum hands the TC hook a packet whose inner checksum is not filled in
// yet (CHECKSUM_PARTIAL: only the pseudo-header sum is there); the device,
// or the kernel before it, fills it in after the program ran. The outer
// IPv6 UDP checksum must be right for the packet as it will be then.
func TestTCOuterIPv6ChecksumWithOffloadedInner(t *testing.T) {
	e := newEnv(t)
	e.tunnel("10.0.8.1", "10.0.8.2", func(tn *maps.Tunnel) { tn.OuterSrc, tn.OuterDst = node1IP6, node2IP6 })
	e.ns.Do(t, func() error {
		l, err := link.AttachTCX(link.TCXOptions{Program: e.objs.EncapTc, Interface: e.ov.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		return nil
	})
	out := e.openPacketSocket(t, "ul1", false)
	in := e.openPacketSocket(t, "ov1", true)

	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: []byte{10, 0, 8, 1}, DstIP: []byte{10, 0, 8, 2}}
	tcp := &layers.TCP{SrcPort: 4000, DstPort: 80, Seq: 7, ACK: true, PSH: true, Window: 500}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	payload := []byte("an offloaded checksum, filled in after encapsulation")
	frame := serialize(t, &layers.Ethernet{SrcMAC: wl1MAC, DstMAC: wl2MAC, EthernetType: layers.EthernetTypeIPv4}, ip, tcp, gopacket.Payload(payload))
	final := binary.BigEndian.Uint16(frame[14+20+16:])
	// What the stack leaves for the device: the pseudo-header sum, folded.
	l4len := len(frame) - 34
	pseudo := append(append(append([]byte(nil), frame[26:34]...), 0, 6), byte(l4len>>8), byte(l4len))
	binary.BigEndian.PutUint16(frame[14+20+16:], ^testnet.Checksum(pseudo))
	vnet := make([]byte, 10)
	vnet[0] = 1                                 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	binary.LittleEndian.PutUint16(vnet[2:], 54) // header length
	binary.LittleEndian.PutUint16(vnet[6:], 34) // checksum start
	binary.LittleEndian.PutUint16(vnet[8:], 16) // checksum offset
	if _, err := unix.Write(in.fd, append(vnet, frame...)); err != nil {
		t.Fatal(err)
	}
	got := out.receive(t, len(frame)+70)
	if got == nil {
		t.Fatal("nothing left the underlay")
	}
	udpLen := len(got) - 54
	// The inner checksum as the device will fill it in.
	inner := got[54+16:]
	if c := binary.BigEndian.Uint16(inner[14+20+16:]); c == final {
		t.Fatalf("the inner checksum arrived filled in: the packet was not offloaded, so this tests nothing")
	}
	binary.BigEndian.PutUint16(inner[14+20+16:], final)
	outerPseudo := append(append([]byte(nil), got[22:54]...), 0, 0, byte(udpLen>>8), byte(udpLen), 0, 0, 0, 17)
	if binary.BigEndian.Uint16(got[54+6:]) == 0 {
		t.Fatalf("outer UDP checksum is 0 on a single packet")
	}
	if c := testnet.Checksum(append(outerPseudo, got[54:]...)); c != 0 {
		t.Errorf("outer IPv6 UDP checksum %#04x does not verify once the inner checksum is filled in", binary.BigEndian.Uint16(got[54+6:]))
	}
}
