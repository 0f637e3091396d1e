package observe

import (
	"encoding/binary"
	"net/netip"
)

// Pair is an IP address pair that a frame carries, outside or inside a
// tunnel: a tunnel's key (inner source and destination).
type Pair struct{ Src, Dst netip.Addr }

// Matches reports whether the frame carries the pair, either way round, in
// its IP header or in the IP header of a VXLAN or GENEVE frame it carries
// (one level deep). l3: the frame starts with its IP header.
func (p Pair) Matches(frame []byte, l3 bool) bool {
	found := false
	ipPairs(frame, l3, func(q Pair) bool {
		found = q == p || q == Pair{Src: p.Dst, Dst: p.Src}
		return !found
	})
	return found
}

// ipPairs calls fn with the IP pair of the frame, then with that of the
// frame a VXLAN or GENEVE datagram in it carries (one level deep), while fn
// returns true.
func ipPairs(frame []byte, l3 bool, fn func(Pair) bool) {
	for depth := 0; depth < 2; depth++ {
		ip := frame
		if !l3 {
			var ok bool
			if ip, ok = skipEthernet(frame); !ok {
				return
			}
		}
		src, dst, udp, ok := ipAddrs(ip)
		if !ok || !fn(Pair{Src: src, Dst: dst}) {
			return
		}
		if frame, ok = tunnelPayload(udp); !ok {
			return
		}
		l3 = false
	}
}

// skipEthernet returns what follows the Ethernet header and up to two
// 802.1Q/802.1ad tags.
func skipEthernet(b []byte) ([]byte, bool) {
	if len(b) < 14 {
		return nil, false
	}
	typ, rest := binary.BigEndian.Uint16(b[12:]), b[14:]
	for i := 0; i < 2 && (typ == 0x8100 || typ == 0x88a8); i++ {
		if len(rest) < 4 {
			return nil, false
		}
		typ, rest = binary.BigEndian.Uint16(rest[2:]), rest[4:]
	}
	if typ != 0x0800 && typ != 0x86dd {
		return nil, false
	}
	return rest, true
}

// ipAddrs returns an IP header's addresses and, for UDP, the UDP header and
// what follows it.
func ipAddrs(b []byte) (src, dst netip.Addr, udp []byte, ok bool) {
	if len(b) < 1 {
		return
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return
		}
		ihl := int(b[0]&0xf) * 4
		src, dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		if b[9] == 17 && len(b) >= ihl+8 && ihl >= 20 {
			udp = b[ihl:]
		}
		return src, dst, udp, true
	case 6:
		if len(b) < 40 {
			return
		}
		src, dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		if b[6] == 17 && len(b) >= 48 {
			udp = b[40:]
		}
		return src, dst, udp, true
	}
	return
}

// tunnelPayload returns the Ethernet frame a VXLAN (4789) or GENEVE (6081)
// datagram carries.
func tunnelPayload(udp []byte) ([]byte, bool) {
	if len(udp) < 16 {
		return nil, false
	}
	switch binary.BigEndian.Uint16(udp[2:]) {
	case 4789:
		return udp[16:], true
	case 6081:
		n := 16 + int(udp[8]&0x3f)*4
		if len(udp) < n {
			return nil, false
		}
		return udp[n:], true
	}
	return nil, false
}
