package l2tp_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
	"github.com/tunmux/tunmux/progs/l2tp"
)

var (
	hostA   = net.HardwareAddr{0x02, 0, 0, 0, 0x0b, 0x01}
	hostB   = net.HardwareAddr{0x02, 0, 0, 0, 0x0b, 0x02}
	lcce1   = net.HardwareAddr{0x02, 0, 0, 0, 0x0c, 0x01} // tunnel side of this LCCE
	lcce2   = net.HardwareAddr{0x02, 0, 0, 0, 0x0c, 0x02} // the peer LCCE
	cookie4 = []byte{0xca, 0xfe, 0xf0, 0x0d}
	cookie8 = []byte{1, 2, 3, 4, 5, 6, 7, 8}
)

// env is an unpinned l2tp object run inside a private namespace holding the
// Ethernet-side interface eth1 and the tunnel interface tun0.
type env struct {
	t     *testing.T
	ns    *testnet.Netns
	objs  l2tp.L2tpObjects
	state *maps.L2TPState
	lock  *maps.Lock
	eth   netdev.Iface
	tun   netdev.Iface
}

func newEnv(t *testing.T) *env {
	testnet.RequireRoot(t)
	e := &env{t: t, ns: testnet.NewNetns(t, "l2p")}
	testnet.Veth(t, e.ns, "eth1", e.ns, "eth1p")
	testnet.Veth(t, e.ns, "tun0", e.ns, "tun0p")
	e.ns.Run(t, "ip", "link", "set", "tun0", "mtu", "1500")
	if err := l2tp.LoadL2tpObjects(&e.objs, nil); err != nil {
		t.Fatalf("load l2tp objects: %v", err)
	}
	t.Cleanup(func() { e.objs.Close() })
	var err error
	e.state, err = maps.NewL2TPState(map[string]*ebpf.Map{
		"sessions": e.objs.Sessions, "by_eth": e.objs.ByEth, "udp_ports": e.objs.UdpPorts,
		"session_stats": e.objs.SessionStats, "neigh": e.objs.Neigh, "names": e.objs.Names,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.lock = testnet.Lock(t)
	e.ns.Do(t, func() error {
		if e.eth, err = netdev.Lookup("eth1"); err != nil {
			return err
		}
		e.tun, err = netdev.Lookup("tun0")
		return err
	})
	return e
}

// session describes one test session: this end is LCCE 1.
type session struct {
	encap      maps.L2TPEncap
	family     int
	cookieLen  int
	l2spec     bool
	staticMAC  bool
	localPort  uint16
	peerCookie []byte
}

func (c session) String() string {
	return fmt.Sprintf("%s/ipv%d/cookie%d/l2spec-%v", c.encap, c.family, c.cookieLen, c.l2spec)
}

func (c session) addrs() (netip.Addr, netip.Addr) {
	if c.family == 6 {
		return netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	}
	return netip.MustParseAddr("172.16.0.1"), netip.MustParseAddr("172.16.0.2")
}

func (c session) cookie() []byte {
	switch c.cookieLen {
	case 4:
		return cookie4
	case 8:
		return cookie8
	}
	return []byte{}
}

// put writes the session as local id 100, peer id 200, replacing the last one.
func (e *env) put(c session) maps.Session {
	e.t.Helper()
	_, _ = e.state.DeleteSession(e.lock, 100)
	local, peer := c.addrs()
	s := maps.Session{
		ID: 100, PeerID: 200, Encap: c.encap, L2Spec: c.l2spec,
		Local: netip.AddrPortFrom(local, 0), Peer: netip.AddrPortFrom(peer, 0),
		Cookie: c.cookie(), PeerCookie: c.peerCookie,
		EthIface: "eth1", TunnelIface: "tun0", EthIndex: uint32(e.eth.Index), TunnelIndex: uint32(e.tun.Index),
	}
	if c.peerCookie == nil {
		s.PeerCookie = c.cookie()
	}
	if c.encap == maps.L2TPOverUDP {
		lp := c.localPort
		if lp == 0 {
			lp = 1701
		}
		s.Local, s.Peer = netip.AddrPortFrom(local, lp), netip.AddrPortFrom(peer, 1701)
	}
	if c.staticMAC {
		s.PeerMAC, s.LocalMAC = lcce2, lcce1
	}
	if err := e.state.PutSession(e.lock, s, maps.Upsert); err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) counters() []uint64 { return testnet.Counters(e.t, e.objs.Stats) }

// run runs prog on frame as received on ifindex (with GSO size gso), and
// checks that exactly one counter moved, by one: want.
func (e *env) run(prog *ebpf.Program, ifindex int, frame []byte, gso uint32, want l2tp.L2tpStat) (uint32, []byte) {
	e.t.Helper()
	ctx := testnet.TCIn(ifindex)
	ctx.GsoSize = gso
	return e.runCtx(prog, frame, ctx, want)
}

// runCtx is run with the whole skb context given.
func (e *env) runCtx(prog *ebpf.Program, frame []byte, ctx testnet.SkbCtx, want l2tp.L2tpStat) (uint32, []byte) {
	e.t.Helper()
	return testnet.RunCounted(e.t, testnet.ProgRun{Prog: prog, Stats: e.objs.Stats, Frame: frame, Ctx: ctx, Room: 512, Ns: e.ns,
		Want: int(want), Name: testnet.CounterNamer(e.t, dataplane.L2TPDataplane.CounterNames)})
}

func (e *env) expectPass(frame []byte, want l2tp.L2tpStat) {
	e.t.Helper()
	ret, out := e.run(e.objs.L2tpDecap, e.tun.Index, frame, 0, want)
	if ret != testnet.TCXNext {
		e.t.Errorf("verdict %d, want TCX_NEXT", int32(ret))
	}
	if !bytes.Equal(out, frame) {
		e.t.Errorf("frame changed although it passed")
	}
}

// l2tpHeader is the L2TPv3 header of the session as its peer (id 200 -> 100) sends it.
func l2tpHeader(c session, sid uint32, cookie []byte) []byte {
	var h []byte
	if c.encap == maps.L2TPOverUDP {
		h = append(h, 0x00, 0x03, 0x00, 0x00)
	}
	h = binary.BigEndian.AppendUint32(h, sid)
	h = append(h, cookie...)
	if c.l2spec {
		h = append(h, 0, 0, 0, 0)
	}
	return h
}

// fromPeer builds what the peer LCCE sends for inner frame: outer Ethernet,
// IP (from the peer to us), UDP (1701) or protocol 115, then the L2TP header.
func fromPeer(t *testing.T, c session, hdr, inner []byte) []byte {
	local, peer := c.addrs()
	proto := layers.IPProtocol(115)
	if c.encap == maps.L2TPOverUDP {
		proto = layers.IPProtocolUDP
	}
	ip, et := testnet.IPLayer(peer.String(), local.String(), proto)
	ls := []gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: lcce2, DstMAC: lcce1, EthernetType: et}, ip}
	if c.encap == maps.L2TPOverUDP {
		udp := &layers.UDP{SrcPort: 1701, DstPort: 1701}
		_ = udp.SetNetworkLayerForChecksum(ip.(gopacket.NetworkLayer))
		ls = append(ls, udp)
	}
	ls = append(ls, gopacket.Payload(append(append([]byte{}, hdr...), inner...)))
	return testnet.Serialize(t, ls...)
}

// checkEncapsulated checks an encapsulated frame field by field and returns
// where the inner frame starts.
func checkEncapsulated(t *testing.T, c session, out []byte, innerLen int) int {
	t.Helper()
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth == nil || !bytes.Equal(eth.SrcMAC, lcce1) || !bytes.Equal(eth.DstMAC, lcce2) {
		t.Fatalf("outer Ethernet: %v", eth)
	}
	l2 := 4 + c.cookieLen
	if c.l2spec {
		l2 += 4
	}
	if c.encap == maps.L2TPOverUDP {
		l2 += 12
	}
	local, peer := c.addrs()
	off := 14
	if c.family == 4 {
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip == nil || ip.IHL != 5 || ip.TTL != 64 || ip.Flags != layers.IPv4DontFragment || !ip.SrcIP.Equal(local.AsSlice()) || !ip.DstIP.Equal(peer.AsSlice()) {
			t.Fatalf("outer IPv4: %+v", ip)
		}
		if int(ip.Length) != 20+l2+innerLen {
			t.Errorf("outer IPv4 total length %d, want %d", ip.Length, 20+l2+innerLen)
		}
		if testnet.Checksum(out[14:34]) != 0 {
			t.Errorf("outer IPv4 checksum does not verify")
		}
		if want := map[maps.L2TPEncap]layers.IPProtocol{maps.L2TPOverIP: 115, maps.L2TPOverUDP: 17}[c.encap]; ip.Protocol != want {
			t.Errorf("outer protocol %d, want %d", ip.Protocol, want)
		}
		off += 20
	} else {
		ip6, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if ip6 == nil || ip6.HopLimit != 64 || !ip6.SrcIP.Equal(local.AsSlice()) || !ip6.DstIP.Equal(peer.AsSlice()) {
			t.Fatalf("outer IPv6: %+v", ip6)
		}
		if int(ip6.Length) != l2+innerLen {
			t.Errorf("outer IPv6 payload length %d, want %d", ip6.Length, l2+innerLen)
		}
		off += 40
	}
	if c.encap == maps.L2TPOverUDP {
		udp := out[off : off+8]
		if binary.BigEndian.Uint16(udp) != 1701 || binary.BigEndian.Uint16(udp[2:]) != 1701 || int(binary.BigEndian.Uint16(udp[4:])) != l2+innerLen {
			t.Errorf("UDP header %x", udp)
		}
		csum := binary.BigEndian.Uint16(udp[6:])
		if c.family == 4 && csum != 0 {
			t.Errorf("IPv4 UDP checksum %#x, want 0", csum)
		}
		if c.family == 6 {
			local16, peer16 := local.As16(), peer.As16()
			pseudo := append(append(local16[:], peer16[:]...), 0, 0, 0, 0, 0, 0, 0, 17)
			binary.BigEndian.PutUint32(pseudo[32:], uint32(len(out)-off))
			if csum == 0 || testnet.Checksum(append(pseudo, out[off:]...)) != 0 {
				t.Errorf("IPv6 UDP checksum %#x does not verify", csum)
			}
		}
		off += 8
		if !bytes.Equal(out[off:off+4], []byte{0x00, 0x03, 0x00, 0x00}) {
			t.Errorf("L2TP flags/version/reserved %x, want 00030000", out[off:off+4])
		}
		off += 4
	}
	if sid := binary.BigEndian.Uint32(out[off:]); sid != 200 {
		t.Errorf("session id %d, want the peer's 200", sid)
	}
	off += 4
	if !bytes.Equal(out[off:off+c.cookieLen], c.cookie()) {
		t.Errorf("cookie %x, want %x", out[off:off+c.cookieLen], c.cookie())
	}
	off += c.cookieLen
	if c.l2spec {
		if !bytes.Equal(out[off:off+4], []byte{0, 0, 0, 0}) {
			t.Errorf("L2-specific sublayer %x, want 0", out[off:off+4])
		}
		off += 4
	}
	return off
}

func matrix() []session {
	var out []session
	for _, encap := range []maps.L2TPEncap{maps.L2TPOverIP, maps.L2TPOverUDP} {
		for _, family := range []int{4, 6} {
			for _, cookie := range []int{0, 4, 8} {
				for _, l2spec := range []bool{false, true} {
					out = append(out, session{encap: encap, family: family, cookieLen: cookie, l2spec: l2spec, staticMAC: true})
				}
			}
		}
	}
	return out
}

func TestEncapAndDecapEveryKind(t *testing.T) {
	e := newEnv(t)
	type group struct {
		cookie, l2spec int
	}
	captured := map[group][][]byte{}
	wantSID := map[group][]string{}
	for _, c := range matrix() {
		t.Run(c.String(), func(t *testing.T) {
			e.t = t
			e.put(c)
			// Encap: an IP frame, an ARP frame, a VLAN-tagged frame, an IPv6 ND-sized frame.
			frames := [][]byte{
				testnet.ICMPFrame(t, hostA, hostB, "10.1.0.1", "10.1.0.2", 100),
				testnet.ARPFrame(t, hostA, "10.1.0.1", "10.1.0.2"),
				testnet.VLANTag(testnet.ICMPFrame(t, hostA, hostB, "10.1.0.1", "10.1.0.2", 100), 0x8100, 42),
				testnet.ICMPFrame(t, hostA, hostB, "fd01::1", "fd01::2", 8),
			}
			want := l2tp.L2tpStatS_L2TP_ENCAP__IP
			if c.encap == maps.L2TPOverUDP {
				want = l2tp.L2tpStatS_L2TP_ENCAP__UDP
			}
			for i, frame := range frames {
				ret, out := e.run(e.objs.L2tpEncap, e.eth.Index, frame, 0, want)
				if ret != testnet.TCActRedirect {
					t.Fatalf("frame %d: verdict %d, want TC_ACT_REDIRECT", i, ret)
				}
				inner := checkEncapsulated(t, c, out, len(frame))
				if !bytes.Equal(out[inner:], frame) {
					t.Errorf("frame %d: inner frame\n got %x\nwant %x", i, out[inner:], frame)
				}
				g := group{c.cookieLen, map[bool]int{false: 0, true: 1}[c.l2spec]}
				captured[g] = append(captured[g], out)
				wantSID[g] = append(wantSID[g], "200")
				// Decap: what the peer sends back comes out as the inner frame.
				reply := fromPeer(t, c, l2tpHeader(c, 100, c.cookie()), frame)
				dwant := l2tp.L2tpStatS_L2TP_DECAP__IP
				if c.encap == maps.L2TPOverUDP {
					dwant = l2tp.L2tpStatS_L2TP_DECAP__UDP
				}
				ret, got := e.run(e.objs.L2tpDecap, e.tun.Index, reply, 0, dwant)
				if ret != testnet.TCActRedirect {
					t.Fatalf("frame %d: decap verdict %d, want TC_ACT_REDIRECT", i, ret)
				}
				padded := append([]byte{}, frame...)
				for len(padded) < 60 {
					padded = append(padded, 0)
				}
				if !bytes.Equal(got, padded) {
					t.Errorf("frame %d: decapsulated\n got %x\nwant %x", i, got, padded)
				}
			}
			s, err := e.state.GetSession(100)
			if err != nil {
				t.Fatal(err)
			}
			if s.Counters.TxPackets != uint64(len(frames)) || s.Counters.RxPackets != uint64(len(frames)) || s.Counters.Drops != 0 {
				t.Errorf("session counters %+v, want %d each way", s.Counters, len(frames))
			}
		})
	}
	e.t = t
	// tshark, told the cookie size and sublayer, decodes every frame cleanly.
	for g, frames := range captured {
		// Without control messages tshark cannot know the pseudowire type:
		// it is told Ethernet, as it is told the cookie size and sublayer.
		prefs := []string{
			"-o", "l2tp.cookie_size:" + map[int]string{0: "None", 4: "4 Byte Cookie", 8: "8 Byte Cookie"}[g.cookie],
			"-o", "l2tp.l2_specific:" + map[int]string{0: "None", 1: "Default L2-Specific"}[g.l2spec],
			"-d", "l2tp.pw_type==0,eth",
		}
		rows := testnet.Tshark(t, frames, prefs, "l2tp.sid", "l2tp.cookie", "udp.checksum.status", "eth.src")
		for i, row := range rows {
			testnet.TsharkClean(t, i, row)
			if sid, err := strconv.ParseUint(row[3], 0, 32); err != nil || strconv.FormatUint(sid, 10) != wantSID[g][i] {
				t.Errorf("cookie %d, l2spec %d, frame %d: tshark session id %q, want 200: %v", g.cookie, g.l2spec, i+1, row[3], row)
			}
			if g.cookie > 0 && strings.ReplaceAll(row[4], ":", "") != hex.EncodeToString(map[int][]byte{4: cookie4, 8: cookie8}[g.cookie]) {
				t.Errorf("frame %d: tshark cookie %q", i+1, row[4])
			}
			// 1 good (IPv6), 3 not present (IPv4 sends 0); 0 would be bad.
			if row[5] != "" && row[5] != "1" && row[5] != "3" {
				t.Errorf("frame %d: UDP checksum status %q", i+1, row[5])
			}
			if !strings.Contains(row[6], hostA.String()) {
				t.Errorf("frame %d: tshark does not decode the inner Ethernet frame: %v", i+1, row)
			}
		}
	}
}

func TestEncapLimits(t *testing.T) {
	e := newEnv(t)
	small := testnet.ICMPFrame(t, hostA, hostB, "10.1.0.1", "10.1.0.2", 8)
	t.Run("no session on the interface", func(t *testing.T) {
		e.t = t
		ret, out := e.run(e.objs.L2tpEncap, e.tun.Index, small, 0, l2tp.L2tpStatS_L2TP_ENCAP__PASS_NO_SESSION)
		if ret != testnet.TCXNext || !bytes.Equal(out, small) {
			t.Errorf("verdict %d", int32(ret))
		}
	})
	udp6 := session{encap: maps.L2TPOverUDP, family: 6, cookieLen: 8, l2spec: true, staticMAC: true}
	t.Run("MTU", func(t *testing.T) {
		e.t = t
		s := e.put(udp6)
		room := 1500 - s.Overhead() - 14 // largest inner L3 packet
		fits := testnet.ICMPFrame(t, hostA, hostB, "10.1.0.1", "10.1.0.2", room-28)
		if ret, _ := e.run(e.objs.L2tpEncap, e.eth.Index, fits, 0, l2tp.L2tpStatS_L2TP_ENCAP__UDP); ret != testnet.TCActRedirect {
			t.Errorf("a frame that fits exactly: verdict %d", ret)
		}
		big := testnet.ICMPFrame(t, hostA, hostB, "10.1.0.1", "10.1.0.2", room-28+1)
		if ret, _ := e.run(e.objs.L2tpEncap, e.eth.Index, big, 0, l2tp.L2tpStatS_L2TP_ENCAP__DROP_TOO_BIG); ret != testnet.TCActShot {
			t.Errorf("one byte too many: verdict %d, want TC_ACT_SHOT", ret)
		}
		// GSO: each segment of gso_size bytes must fit once encapsulated.
		// (A test-run skb with a gso_size is no real GSO skb: only the
		// refusal can be tested here; segments that fit cross end to end.)
		tso := testnet.TCPFrame(t, hostA, hostB, "10.1.0.1", "10.1.0.2", 1000, 2000, nil)
		if ret, _ := e.run(e.objs.L2tpEncap, e.eth.Index, tso, uint32(room-40+1), l2tp.L2tpStatS_L2TP_ENCAP__DROP_TOO_BIG); ret != testnet.TCActShot {
			t.Errorf("GSO segments one byte too big: verdict %d", ret)
		}
		if c, _ := e.state.GetSession(100); c.Counters.Drops != 2 {
			t.Errorf("session drops %d, want 2", c.Counters.Drops)
		}
	})
	t.Run("GSO over IP", func(t *testing.T) {
		e.t = t
		e.put(session{encap: maps.L2TPOverIP, family: 4, staticMAC: true})
		tso := testnet.TCPFrame(t, hostA, hostB, "10.1.0.1", "10.1.0.2", 1000, 2000, nil)
		if ret, _ := e.run(e.objs.L2tpEncap, e.eth.Index, tso, 1000, l2tp.L2tpStatS_L2TP_ENCAP__DROP_GSO_OVER_IP); ret != testnet.TCActShot {
			t.Errorf("verdict %d, want TC_ACT_SHOT", ret)
		}
	})
	t.Run("next hop", func(t *testing.T) {
		e.t = t
		c := session{encap: maps.L2TPOverUDP, family: 4}
		e.put(c)
		// No MAC known: IP frames go to the kernel's neighbour table, ARP cannot.
		if ret, _ := e.run(e.objs.L2tpEncap, e.eth.Index, small, 0, l2tp.L2tpStatS_L2TP_ENCAP__VIA_NEIGH); ret != testnet.TCActRedirect {
			t.Errorf("IP frame without a known next hop: verdict %d, want TC_ACT_REDIRECT", ret)
		}
		arp := testnet.ARPFrame(t, hostA, "10.1.0.1", "10.1.0.2")
		if ret, _ := e.run(e.objs.L2tpEncap, e.eth.Index, arp, 0, l2tp.L2tpStatS_L2TP_ENCAP__DROP_NO_NEIGH); ret != testnet.TCActShot {
			t.Errorf("ARP without a known next hop: verdict %d, want TC_ACT_SHOT", ret)
		}
		// Once tunmux recorded the next hop, ARP crosses with its MACs.
		if err := e.state.SetNeighbour(e.lock, 100, lcce2, lcce1); err != nil {
			t.Fatal(err)
		}
		ret, out := e.run(e.objs.L2tpEncap, e.eth.Index, arp, 0, l2tp.L2tpStatS_L2TP_ENCAP__UDP)
		if ret != testnet.TCActRedirect {
			t.Fatalf("ARP with a recorded next hop: verdict %d", ret)
		}
		checkEncapsulated(t, c, out, len(arp))
	})
}

func TestDecapForeignAndMalformed(t *testing.T) {
	e := newEnv(t)
	c := session{encap: maps.L2TPOverUDP, family: 4, cookieLen: 4, l2spec: true, staticMAC: true, peerCookie: cookie4}
	e.put(c)
	inner := testnet.ICMPFrame(t, hostB, hostA, "10.1.0.2", "10.1.0.1", 56)
	good := fromPeer(t, c, l2tpHeader(c, 100, cookie4), inner)
	if ret, _ := e.run(e.objs.L2tpDecap, e.tun.Index, good, 0, l2tp.L2tpStatS_L2TP_DECAP__UDP); ret != testnet.TCActRedirect {
		t.Fatalf("a good frame: verdict %d", ret)
	}
	ipc := c
	ipc.encap = maps.L2TPOverIP
	v2 := append([]byte(nil), good...)
	v2[14+20+8+1] = 0x02 // version 2
	ctrl := append([]byte(nil), good...)
	ctrl[14+20+8] = 0xc8 // T and L bits: a control message
	withTotLen := func(frame []byte, tot uint16) []byte {
		f := append([]byte(nil), frame...)
		binary.BigEndian.PutUint16(f[16:], tot)
		binary.BigEndian.PutUint16(f[24:], 0)
		binary.BigEndian.PutUint16(f[24:], testnet.Checksum(f[14:34]))
		return f
	}
	frag := withTotLen(good, uint16(len(good)-14))
	frag[14+6] = 0x20
	binary.BigEndian.PutUint16(frag[24:], 0)
	binary.BigEndian.PutUint16(frag[24:], testnet.Checksum(frag[14:34]))
	otherPort := fromPeer(t, c, l2tpHeader(c, 100, cookie4), inner)
	binary.BigEndian.PutUint16(otherPort[14+20+2:], 4789)
	v6 := c
	v6.family = 6
	ip6, _ := testnet.IPLayer("fd00::2", "fd00::1", layers.IPProtocolIPv6Fragment)
	v6frag := testnet.Serialize(t, &layers.Ethernet{SrcMAC: lcce2, DstMAC: lcce1, EthernetType: layers.EthernetTypeIPv6}, ip6, gopacket.Payload(make([]byte, 64)))
	ihl4 := append([]byte(nil), good...)
	ihl4[14] = 0x44
	withUDPLen := func(frame []byte, l int) []byte {
		f := append([]byte(nil), frame...)
		binary.BigEndian.PutUint16(f[14+20+4:], uint16(l))
		return f
	}
	l2tpLen := 8 + 4 + 4 + 4 // UDP, flags and version, session id, cookie, sublayer
	good6 := fromPeer(t, v6, l2tpHeader(v6, 100, cookie4), inner)
	// The IP packet ends inside the inner Ethernet header; the rest of the
	// frame (as Ethernet padding would) holds the inner frame.
	udpInPadding := withUDPLen(withTotLen(good, uint16(20+l2tpLen+6)), l2tpLen+6)
	ipInPadding := withTotLen(fromPeer(t, ipc, l2tpHeader(ipc, 100, cookie4), inner), 20+4+4+4+6)
	for _, tc := range []struct {
		name  string
		frame []byte
		want  l2tp.L2tpStat
	}{
		{"wrong session", fromPeer(t, c, l2tpHeader(c, 101, cookie4), inner), l2tp.L2tpStatS_L2TP_DECAP__PASS_NO_SESSION},
		{"wrong cookie", fromPeer(t, c, l2tpHeader(c, 100, []byte{9, 9, 9, 9}), inner), l2tp.L2tpStatS_L2TP_DECAP__PASS_BAD_COOKIE},
		{"version 2", v2, l2tp.L2tpStatS_L2TP_DECAP__PASS_VERSION},
		{"control message", ctrl, l2tp.L2tpStatS_L2TP_DECAP__PASS_CONTROL},
		{"over IP for a UDP session", fromPeer(t, ipc, l2tpHeader(ipc, 100, cookie4), inner), l2tp.L2tpStatS_L2TP_DECAP__PASS_MISMATCH},
		{"control message over IP", fromPeer(t, ipc, l2tpHeader(ipc, 0, nil), inner), l2tp.L2tpStatS_L2TP_DECAP__PASS_CONTROL},
		{"IPv6 underlay for an IPv4 session", fromPeer(t, v6, l2tpHeader(v6, 100, cookie4), inner), l2tp.L2tpStatS_L2TP_DECAP__PASS_MISMATCH},
		{"other UDP port", otherPort, l2tp.L2tpStatS_L2TP_DECAP__PASS_NOT_L2TP},
		{"IPv6 fragment", v6frag, l2tp.L2tpStatS_L2TP_DECAP__PASS_FRAGMENT},
		{"not IP", testnet.ARPFrame(t, lcce2, "172.16.0.2", "172.16.0.1"), l2tp.L2tpStatS_L2TP_DECAP__PASS_NOT_L2TP},
		{"outer ICMP", testnet.ICMPFrame(t, lcce2, lcce1, "172.16.0.2", "172.16.0.1", 20), l2tp.L2tpStatS_L2TP_DECAP__PASS_NOT_L2TP},
		{"outer fragment", frag, l2tp.L2tpStatS_L2TP_DECAP__PASS_FRAGMENT},
		// (BPF_PROG_TEST_RUN refuses an IPv4 frame shorter than an IPv4
		// header, so the cuts start after it.)
		{"datagram cut short", good[:40], l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED},
		{"truncated UDP", withTotLen(good[:14+20+4], 24), l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED},
		{"truncated L2TP header", withTotLen(good[:14+20+8+6], 34), l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED},
		{"truncated inner frame", withTotLen(good[:14+20+8+8+4+4+6], 20+8+8+4+4+6), l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED},
		{"IP length beyond the frame", withTotLen(good, uint16(len(good))), l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED},
		{"outer IHL below 5", ihl4, l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED},
		{"UDP length beyond the datagram", withUDPLen(good, len(good)-14-20+1), l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED},
		{"UDP length short of the IP payload", withUDPLen(good, l2tpLen+14), l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED},
		{"UDP length short of the L2TP header", withUDPLen(good, 8+4), l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED},
		{"inner frame past the IP length", udpInPadding, l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED},
		{"truncated outer IPv6", good6[:14+30], l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED},
		{"outer IPv6 cut inside UDP", good6[:14+40+4], l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED},
		// Extension headers are not walked: the packet is not seen as
		// L2TP, and goes on to the kernel's stack.
		{"outer IPv6 hop-by-hop before UDP", testnet.WithIPv6Ext(good6, 0), l2tp.L2tpStatS_L2TP_DECAP__PASS_NOT_L2TP},
		{"outer IPv6 destination options before UDP", testnet.WithIPv6Ext(good6, 60), l2tp.L2tpStatS_L2TP_DECAP__PASS_NOT_L2TP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			testnet.SkipIfTestRunRefuses(t, e.ns, e.objs.L2tpDecap, tc.frame, testnet.TCIn(e.tun.Index))
			e.expectPass(tc.frame, tc.want)
		})
	}
	t.Run("inner frame past the IP length, over IP", func(t *testing.T) {
		e.t = t
		e.put(ipc)
		e.expectPass(ipInPadding, l2tp.L2tpStatS_L2TP_DECAP__PASS_MALFORMED)
	})
}

// withIPv4Options gives the outer IPv4 header of frame words 4-byte words
// of options (NOPs, then an end of options), fixing its lengths and checksum.
func withIPv4Options(frame []byte, words int) []byte {
	opts := make([]byte, 4*words)
	for i := range opts[:len(opts)-1] {
		opts[i] = 1 // NOP
	}
	out := append(append(append([]byte(nil), frame[:14+20]...), opts...), frame[14+20:]...)
	out[14] = 0x40 | byte(5+words)
	binary.BigEndian.PutUint16(out[14+2:], binary.BigEndian.Uint16(frame[14+2:])+uint16(len(opts)))
	binary.BigEndian.PutUint16(out[14+10:], 0)
	binary.BigEndian.PutUint16(out[14+10:], testnet.Checksum(out[14:14+20+len(opts)]))
	return out
}

// TestDecapOuterIPOptions: an outer IPv4 header with options (IHL above 5)
// is skipped by its length, over UDP and over IP: the inner frame comes out
// whole, as it went in.
func TestDecapOuterIPOptions(t *testing.T) {
	e := newEnv(t)
	inner := testnet.ICMPFrame(t, hostB, hostA, "10.1.0.2", "10.1.0.1", 56)
	for _, c := range []session{
		{encap: maps.L2TPOverUDP, family: 4, cookieLen: 4, l2spec: true, staticMAC: true},
		{encap: maps.L2TPOverIP, family: 4, cookieLen: 8, staticMAC: true},
	} {
		for _, words := range []int{1, 10} {
			t.Run(fmt.Sprintf("%s/%d-words", c, words), func(t *testing.T) {
				e.t = t
				e.put(c)
				frame := withIPv4Options(fromPeer(t, c, l2tpHeader(c, 100, c.cookie()), inner), words)
				want := map[maps.L2TPEncap]l2tp.L2tpStat{maps.L2TPOverUDP: l2tp.L2tpStatS_L2TP_DECAP__UDP, maps.L2TPOverIP: l2tp.L2tpStatS_L2TP_DECAP__IP}[c.encap]
				ret, out := e.run(e.objs.L2tpDecap, e.tun.Index, frame, 0, want)
				if ret != testnet.TCActRedirect || !bytes.Equal(out, inner) {
					t.Errorf("verdict %d, decapsulated\n got %x\nwant %x", ret, out, inner)
				}
			})
		}
	}
}

// TestDropOutcomes reaches the drops a test run can provoke, each counted
// in stats and as a drop of its session:
//   - DROP_GSO_VLAN: a GSO frame that is not plain IP. On the wire the stack
//     takes an 802.1Q tag out of the frame (skb->vlan_present); a test run
//     leaves it in, where the program sees a frame of ethertype 0x8100;
//   - DROP_NO_ROUTE: a non-IP frame (which bpf_redirect_neigh refuses) while
//     the fib has no route to the peer, and no MAC address is cached;
//   - DROP_ERROR, both ways: a test-run skb given a gso_size has no GSO
//     type, and bpf_skb_adjust_room refuses to resize a GSO skb that is
//     neither TCP nor UDP GSO (-ENOTSUPP).
func TestDropOutcomes(t *testing.T) {
	e := newEnv(t)
	// Forwarding on the tunnel interface, so that the fib lookup gets as
	// far as the route (else it answers FWD_DISABLED: DROP_NO_NEIGH).
	e.ns.Run(t, "sysctl", "-qw", "net.ipv4.conf.tun0.forwarding=1")
	udp := session{encap: maps.L2TPOverUDP, family: 4, cookieLen: 4, l2spec: true, staticMAC: true}
	noMAC := session{encap: maps.L2TPOverUDP, family: 4}
	tcp := testnet.TCPFrame(t, hostA, hostB, "10.1.0.1", "10.1.0.2", 1000, 2000, nil)
	fromPeerTCP := fromPeer(t, udp, l2tpHeader(udp, 100, udp.cookie()), testnet.TCPFrame(t, hostB, hostA, "10.1.0.2", "10.1.0.1", 2000, 1000, nil))
	for _, c := range []struct {
		name  string
		sess  session
		prog  *ebpf.Program
		frame []byte
		gso   uint32
		want  l2tp.L2tpStat
	}{
		{"GSO frame with a VLAN tag", udp, e.objs.L2tpEncap, testnet.VLANTag(tcp, 0x8100, 42), 1000, l2tp.L2tpStatS_L2TP_ENCAP__DROP_GSO_VLAN},
		{"ARP without a route to the peer", noMAC, e.objs.L2tpEncap, testnet.ARPFrame(t, hostA, "10.1.0.1", "10.1.0.2"), 0, l2tp.L2tpStatS_L2TP_ENCAP__DROP_NO_ROUTE},
		{"encap of a GSO frame the kernel will not grow", udp, e.objs.L2tpEncap, tcp, 100, l2tp.L2tpStatS_L2TP_ENCAP__DROP_ERROR},
		{"decap of a GSO frame the kernel will not shrink", udp, e.objs.L2tpDecap, fromPeerTCP, 100, l2tp.L2tpStatS_L2TP_DECAP__DROP_ERROR},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.put(c.sess)
			in := e.eth.Index
			if c.prog == e.objs.L2tpDecap {
				in = e.tun.Index
			}
			if ret, _ := e.run(c.prog, in, c.frame, c.gso, c.want); ret != testnet.TCActShot {
				t.Errorf("verdict %d, want TC_ACT_SHOT", int32(ret))
			}
			if s, err := e.state.GetSession(100); err != nil || s.Counters.Drops != 1 {
				t.Errorf("session counters %+v (%v), want 1 drop", s.Counters, err)
			}
		})
	}
	t.Run("GSO frame with an offloaded VLAN tag", func(t *testing.T) {
		e.t = t
		e.put(udp)
		ctx := testnet.TCIn(e.eth.Index)
		ctx.GsoSize, ctx.VlanPresent, ctx.VlanTci, ctx.VlanProto = 1000, 1, 42, 0x0081
		var err error
		e.ns.Do(t, func() error {
			_, err = e.objs.L2tpEncap.Run(&ebpf.RunOptions{Data: tcp, DataOut: make([]byte, len(tcp)+512), Context: ctx})
			return nil
		})
		if errors.Is(err, unix.EINVAL) {
			t.Skip("the kernel's test run refuses an skb context with VLAN fields (EINVAL), so no test run holds an offloaded tag; the tag left in the frame reaches the same drop above")
		}
		if ret, _ := e.runCtx(e.objs.L2tpEncap, tcp, ctx, l2tp.L2tpStatS_L2TP_ENCAP__DROP_GSO_VLAN); ret != testnet.TCActShot {
			t.Errorf("verdict %d, want TC_ACT_SHOT", int32(ret))
		}
	})
}
