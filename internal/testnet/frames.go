package testnet

import (
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Serialize builds a frame from layers, fixing lengths and checksums.
func Serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// IPLayer returns an IPv4 or IPv6 header from src to dst carrying proto.
func IPLayer(src, dst string, proto layers.IPProtocol) (gopacket.SerializableLayer, layers.EthernetType) {
	s, d := net.ParseIP(src), net.ParseIP(dst)
	if s.To4() != nil {
		return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: s.To4(), DstIP: d.To4()}, layers.EthernetTypeIPv4
	}
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: s, DstIP: d}, layers.EthernetTypeIPv6
}

// ICMPFrame is an Ethernet frame carrying an echo request (ICMP for IPv4,
// ICMPv6 for IPv6) from src to dst with payload bytes of data.
func ICMPFrame(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst string, payload int) []byte {
	t.Helper()
	if net.ParseIP(src).To4() == nil {
		ip, et := IPLayer(src, dst, layers.IPProtocolICMPv6)
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
		_ = icmp.SetNetworkLayerForChecksum(ip.(gopacket.NetworkLayer))
		return Serialize(t, &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: et}, ip, icmp,
			&layers.ICMPv6Echo{Identifier: 7, SeqNumber: 1}, gopacket.Payload(make([]byte, payload)))
	}
	ip, et := IPLayer(src, dst, layers.IPProtocolICMPv4)
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}
	return Serialize(t, &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: et}, ip, icmp, gopacket.Payload(make([]byte, payload)))
}

// TCPFrame is an Ethernet/IPv4/TCP segment with the given ports and IP options.
func TCPFrame(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst string, sport, dport uint16, opts []layers.IPv4Option) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4(), Options: opts}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1, SYN: true, Window: 1000}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	return Serialize(t, eth, ip, tcp, gopacket.Payload([]byte("hello")))
}

// ARPFrame is a broadcast ARP request from srcMAC: who has dst? tell src.
func ARPFrame(t testing.TB, srcMAC net.HardwareAddr, src, dst string) []byte {
	t.Helper()
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: bcast, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: srcMAC, SourceProtAddress: net.ParseIP(src).To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(dst).To4(),
	}
	return Serialize(t, eth, arp)
}

// VLANTag inserts a tag (tpid, tci) after the MAC addresses of frame.
func VLANTag(frame []byte, tpid uint16, tci uint16) []byte {
	out := append([]byte(nil), frame[:12]...)
	tag := make([]byte, 4)
	binary.BigEndian.PutUint16(tag, tpid)
	binary.BigEndian.PutUint16(tag[2:], tci)
	out = append(out, tag...)
	return append(out, frame[12:]...)
}

// Checksum is the Internet checksum of b (RFC 1071); 0 over a header with
// its checksum in place means the checksum is right.
func Checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Tshark has tshark decode Ethernet frames with extra arguments (such as
// "-o", "pref:value" or "-d", "decode-as") and returns, per frame, the values of fields plus three
// checks of its own at the front: _ws.malformed, _ws.expert.severity and
// ip.checksum.status. It fails the test if tshark is missing or fails.
func Tshark(t testing.TB, frames [][]byte, extra []string, fields ...string) [][]string {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatalf("tshark is needed to decode frames independently; run 'make deps': %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "frames.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, 0), CaptureLength: len(fr), Length: len(fr)}
		if err := w.WritePacket(ci, fr); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	args := []string{"-r", path, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=|",
		"-e", "_ws.malformed", "-e", "_ws.expert.severity", "-e", "ip.checksum.status"}
	args = append(args, extra...)
	for _, fl := range fields {
		args = append(args, "-e", fl)
	}
	var stderr strings.Builder
	cmd := exec.Command("tshark", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s%s", err, out, stderr.String())
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		rows = append(rows, strings.Split(line, "|"))
	}
	if len(rows) != len(frames) {
		t.Fatalf("tshark decoded %d frames, want %d:\n%s", len(rows), len(frames), out)
	}
	return rows
}

// TsharkClean checks the three leading columns of a Tshark row: no
// malformed field, no error-level expert item, a good IPv4 checksum (if any).
func TsharkClean(t testing.TB, i int, row []string) {
	t.Helper()
	if row[0] != "" {
		t.Errorf("frame %d: tshark finds a malformed field: %v", i+1, row)
	}
	for _, sev := range strings.Split(row[1], ",") {
		if n, err := strconv.ParseUint(sev, 0, 32); err == nil && n >= 0x00800000 {
			t.Errorf("frame %d: tshark reports an error-level expert item: %v", i+1, row)
		}
	}
	for _, st := range strings.Split(row[2], ",") {
		if st != "" && st != "1" {
			t.Errorf("frame %d: IPv4 checksum status %q, want 1 (good): %v", i+1, st, row)
		}
	}
}

// Counters reads a dataplane's stats map: every counter's packets, summed
// over CPUs.
func Counters(t testing.TB, stats *ebpf.Map) []uint64 {
	t.Helper()
	out := make([]uint64, stats.MaxEntries())
	for i := range out {
		var per []struct{ Packets, Bytes uint64 }
		if err := stats.Lookup(uint32(i), &per); err != nil {
			t.Fatal(err)
		}
		for _, c := range per {
			out[i] += c.Packets
		}
	}
	return out
}

// OneCounterMoved fails the test unless counter want, and no other, moved
// by exactly one between before and after. name names a counter.
func OneCounterMoved(t testing.TB, before, after []uint64, want int, name func(int) string) {
	t.Helper()
	for i := range after {
		d := after[i] - before[i]
		switch {
		case i == want && d != 1:
			t.Errorf("counter %s moved by %d, want 1", name(i), d)
		case i != want && d != 0:
			t.Errorf("counter %s moved by %d, want 0 (expected %s)", name(i), d, name(want))
		}
	}
}

// MapEntries counts the entries of m.
func MapEntries(t testing.TB, m *ebpf.Map) int {
	t.Helper()
	n := 0
	key := make([]byte, m.KeySize())
	val := make([]byte, m.ValueSize())
	it := m.Iterate()
	for it.Next(&key, &val) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// WithIPv6Ext inserts an 8-byte extension header of type ext (hop-by-hop 0,
// destination options 60; one PadN option) between the IPv6 header of
// frame, after its Ethernet header, and the payload, fixing the lengths.
func WithIPv6Ext(frame []byte, ext byte) []byte {
	const ip6 = 14 + 40
	hdr := []byte{frame[14+6], 0, 1, 4, 0, 0, 0, 0} // next header, length 0 (8 bytes), PadN
	out := append(append(append([]byte(nil), frame[:ip6]...), hdr...), frame[ip6:]...)
	out[14+6] = ext
	binary.BigEndian.PutUint16(out[14+4:], binary.BigEndian.Uint16(frame[14+4:])+8)
	return out
}
