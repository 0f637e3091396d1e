package maps

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/progs/l2tp"
)

// L2TPEncap is how a session's frames travel: over IP (protocol 115) or UDP.
type L2TPEncap uint8

// Encapsulations; the values are those of enum encap_kind in l2tp.c.
const (
	L2TPOverIP  L2TPEncap = 1
	L2TPOverUDP L2TPEncap = 2
)

var l2tpEncapNames = map[L2TPEncap]string{L2TPOverIP: "ip", L2TPOverUDP: "udp"}

func (e L2TPEncap) String() string { return enumName(e, l2tpEncapNames, "encap") }

// DefaultL2TPPort is the UDP port of L2TP (RFC 3931).
const DefaultL2TPPort = 1701

const sessionFlagStaticMAC = 1

// Session is one L2TPv3 Ethernet pseudowire, keyed by its local session id.
type Session struct {
	ID          uint32         // local session id: what the peer sends, the key
	PeerID      uint32         // what this end sends
	Encap       L2TPEncap      //
	Local       netip.AddrPort // local underlay address (port: UDP only)
	Peer        netip.AddrPort // peer underlay address (port: UDP only)
	Cookie      []byte         // sent: 0, 4 or 8 bytes
	PeerCookie  []byte         // expected on receive: 0, 4 or 8 bytes
	L2Spec      bool           // the default 4-byte L2-specific sublayer
	EthIface    string         // the Ethernet side
	TunnelIface string         // the tunnel side
	PeerMAC     net.HardwareAddr
	// Set by the dataplane from the interfaces.
	EthIndex    uint32
	TunnelIndex uint32
	Netns       uint64 // inode of the namespace of both interfaces
	LocalMAC    net.HardwareAddr
	Counters    SessionCounters
}

// SessionCounters are a session's counters, summed over CPUs.
type SessionCounters struct {
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
	Drops     uint64 `json:"drops"`
}

// SessionArgs are the session flags as given; "" means not given.
type SessionArgs struct {
	SessionID, PeerSessionID string
	Encap                    string
	Local, Peer              string
	Cookie, PeerCookie       string
	L2Spec                   string
	EthIface, TunnelIface    string
	PeerMAC                  string
}

// ParseSessionID parses a session id given to flag: 1..2^32-1 (0 is reserved
// for control messages).
func ParseSessionID(flag, s string) (uint32, error) {
	if s == "" {
		return 0, Invalid(flag, "", "is required", "1..4294967295")
	}
	n, err := ParseUint(flag, s, 1, 1<<32-1)
	if err != nil {
		return 0, err
	}
	return uint32(n), nil
}

// Parse validates the arguments into a Session. With base nil every
// required flag must be given (add); otherwise the given flags replace
// base's fields (update). All problems are reported at once.
func (a SessionArgs) Parse(base *Session) (Session, error) {
	s := fromBase(base)
	var errs []error
	bad := func(err error) { errs = append(errs, err) }

	if id, err := ParseSessionID("--session-id", a.SessionID); err != nil {
		bad(err)
	} else {
		s.ID = id
	}
	if a.PeerSessionID != "" || base == nil {
		if id, err := ParseSessionID("--peer-session-id", a.PeerSessionID); err != nil {
			bad(err)
		} else {
			s.PeerID = id
		}
	}
	if a.Encap == "" && base == nil {
		bad(Invalid("--encap", "", "is required", "ip|udp"))
	}
	parseChoice(bad, "--encap", a.Encap, "unknown encapsulation", &s.Encap, choice[L2TPEncap]{"ip", L2TPOverIP}, choice[L2TPEncap]{"udp", L2TPOverUDP})
	for _, f := range []struct {
		flag, value string
		dst         *netip.AddrPort
	}{{"--local", a.Local, &s.Local}, {"--peer", a.Peer, &s.Peer}} {
		if f.value == "" {
			if base == nil {
				bad(Invalid(f.flag, "", "is required", "IP or IP:PORT (IPv6: [IP]:PORT)"))
			}
			continue
		}
		ap, portGiven, err := parseAddrPort(f.flag, f.value)
		if err != nil {
			bad(err)
			continue
		}
		if portGiven && s.Encap == L2TPOverIP {
			bad(Invalid(f.flag, f.value, "has a port, but --encap ip has no ports", "an address without a port"))
			continue
		}
		if !portGiven && base != nil && f.dst.IsValid() {
			ap = netip.AddrPortFrom(ap.Addr(), f.dst.Port()) // keep the port of an update
		}
		*f.dst = ap
	}
	for _, f := range []struct {
		flag, value string
		dst         *[]byte
	}{{"--cookie", a.Cookie, &s.Cookie}, {"--peer-cookie", a.PeerCookie, &s.PeerCookie}} {
		if f.value == "" {
			continue
		}
		c, err := parseCookie(f.flag, f.value)
		if err != nil {
			bad(err)
			continue
		}
		*f.dst = c
	}
	if a.L2Spec == "" && base == nil {
		s.L2Spec = true // as ip-l2tp: l2spec_type default
	}
	parseChoice(bad, "--l2spec", a.L2Spec, "unknown L2-specific sublayer", &s.L2Spec, choice[bool]{"none", false}, choice[bool]{"default", true})
	s.EthIface = ifaceName(bad, "--eth-iface", a.EthIface, s.EthIface)
	s.TunnelIface = ifaceName(bad, "--tunnel-iface", a.TunnelIface, s.TunnelIface)
	if a.PeerMAC != "" {
		if a.PeerMAC == "auto" {
			s.PeerMAC = nil
		} else if mac, err := parseMAC("--peer-mac", a.PeerMAC, true); err != nil {
			bad(err)
		} else {
			s.PeerMAC = mac
		}
	}
	errs = append(errs, s.check()...)
	return s, errors.Join(errs...)
}

// FormErrors reports only the malformed flags among those given.
func (a SessionArgs) FormErrors() error {
	_, err := a.Parse(nil)
	return withoutMissing(err)
}

// check applies the rules between fields.
func (s *Session) check() []error {
	var errs []error
	if !s.Local.Addr().IsValid() || !s.Peer.Addr().IsValid() {
		return nil // already reported
	}
	if s.Local.Addr().Is4() != s.Peer.Addr().Is4() {
		errs = append(errs, Invalid("--peer", s.Peer.String(), "is not of the same IP family as --local", "an address of the same family as --local"))
	}
	if s.Local.Addr() == s.Peer.Addr() {
		errs = append(errs, Invalid("--peer", s.Peer.Addr().String(), "equals --local", "the peer LCCE's underlay address"))
	}
	if s.EthIface != "" && s.EthIface == s.TunnelIface {
		errs = append(errs, Invalid("--tunnel-iface", s.TunnelIface, "is also --eth-iface", "another interface"))
	}
	if s.Encap == L2TPOverUDP {
		if s.Local.Port() == 0 {
			s.Local = netip.AddrPortFrom(s.Local.Addr(), DefaultL2TPPort)
		}
		if s.Peer.Port() == 0 {
			s.Peer = netip.AddrPortFrom(s.Peer.Addr(), DefaultL2TPPort)
		}
	} else {
		s.Local, s.Peer = netip.AddrPortFrom(s.Local.Addr(), 0), netip.AddrPortFrom(s.Peer.Addr(), 0)
	}
	return errs
}

// parseAddrPort parses IP, IP:PORT or [IPv6]:PORT.
func parseAddrPort(flag, v string) (netip.AddrPort, bool, error) {
	const accepted = "IP or IP:PORT, like 192.0.2.1, 192.0.2.1:1701, 2001:db8::1 or [2001:db8::1]:1701"
	if a, err := netip.ParseAddr(v); err == nil {
		if !unicast(a) {
			return netip.AddrPort{}, false, Invalid(flag, v, "is not a unicast address", accepted)
		}
		return netip.AddrPortFrom(a.Unmap(), 0), false, nil
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		return netip.AddrPort{}, false, Invalid(flag, v, "is not an address or address:port", accepted)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, false, Invalid(flag, v, "has port 0", accepted)
	}
	if !unicast(ap.Addr()) {
		return netip.AddrPort{}, false, Invalid(flag, v, "is not a unicast address", accepted)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true, nil
}

func unicast(a netip.Addr) bool {
	return !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255}) && a.Zone() == ""
}

// parseCookie parses 8 or 16 hex digits (4 or 8 bytes), or "none".
func parseCookie(flag, v string) ([]byte, error) {
	const accepted = "8 or 16 hex digits (a 4- or 8-byte cookie), or none"
	if strings.EqualFold(v, "none") {
		return []byte{}, nil
	}
	b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimPrefix(v, "0x"), "0X"))
	if err != nil {
		return nil, Invalid(flag, v, "is not hex", accepted)
	}
	if len(b) != 4 && len(b) != 8 {
		return nil, Invalid(flag, v, fmt.Sprintf("is %d bytes", len(b)), accepted)
	}
	return b, nil
}

func (s Session) kernelValue() l2tp.L2tpSession {
	v := l2tp.L2tpSession{
		Encap:         uint8(s.Encap),
		Family:        4,
		CookieLen:     uint8(len(s.Cookie)),
		PeerCookieLen: uint8(len(s.PeerCookie)),
		LocalPort:     htons(s.Local.Port()),
		PeerPort:      htons(s.Peer.Port()),
		PeerSessionId: s.PeerID,
		EthIfindex:    s.EthIndex,
		TunnelIfindex: s.TunnelIndex,
	}
	if s.L2Spec {
		v.L2spec = 1
	}
	copy(v.Cookie[:], s.Cookie)
	copy(v.PeerCookie[:], s.PeerCookie)
	putAddr := func(dst *[4]uint32, a netip.Addr) {
		if a.Is4() {
			dst[0] = be32(a)
			return
		}
		b := a.As16()
		for i := range dst {
			dst[i] = be32(netip.AddrFrom4([4]byte(b[4*i : 4*i+4])))
		}
	}
	if s.Local.Addr().Is6() {
		v.Family = 6
	}
	putAddr(&v.Local, s.Local.Addr())
	putAddr(&v.Peer, s.Peer.Addr())
	if s.PeerMAC != nil {
		v.Flags |= sessionFlagStaticMAC
		copy(v.PeerMac[:], s.PeerMAC)
		copy(v.LocalMac[:], s.LocalMAC)
	}
	return v
}

func sessionFromKernel(id uint32, v l2tp.L2tpSession) Session {
	s := Session{
		ID: id, PeerID: v.PeerSessionId, Encap: L2TPEncap(v.Encap), L2Spec: v.L2spec != 0,
		Cookie: append([]byte{}, v.Cookie[:v.CookieLen&0xf]...), PeerCookie: append([]byte{}, v.PeerCookie[:v.PeerCookieLen&0xf]...),
		EthIndex: v.EthIfindex, TunnelIndex: v.TunnelIfindex,
	}
	getAddr := func(src [4]uint32) netip.Addr {
		if v.Family == 4 {
			return fromBE32(src[0])
		}
		var b [16]byte
		for i := range src {
			w := fromBE32(src[i]).As4()
			copy(b[4*i:], w[:])
		}
		return netip.AddrFrom16(b)
	}
	s.Local = netip.AddrPortFrom(getAddr(v.Local), htons(v.LocalPort))
	s.Peer = netip.AddrPortFrom(getAddr(v.Peer), htons(v.PeerPort))
	if v.Flags&sessionFlagStaticMAC != 0 {
		s.PeerMAC = append(net.HardwareAddr{}, v.PeerMac[:]...)
		s.LocalMAC = append(net.HardwareAddr{}, v.LocalMac[:]...)
	}
	return s
}

// SessionJSON is the stable JSON form of a session (docs/json.md).
type SessionJSON struct {
	SessionID     uint32          `json:"session_id"`
	PeerSessionID uint32          `json:"peer_session_id"`
	Encap         string          `json:"encap"`
	Local         string          `json:"local"`
	LocalPort     *uint16         `json:"local_port"`
	Peer          string          `json:"peer"`
	PeerPort      *uint16         `json:"peer_port"`
	Cookie        string          `json:"cookie"`
	PeerCookie    string          `json:"peer_cookie"`
	L2Spec        string          `json:"l2spec"`
	EthIface      string          `json:"eth_iface"`
	EthIndex      uint32          `json:"eth_ifindex"`
	TunnelIface   string          `json:"tunnel_iface"`
	TunnelIndex   uint32          `json:"tunnel_ifindex"`
	PeerMAC       *string         `json:"peer_mac"`
	Overhead      int             `json:"overhead"` // bytes added to a frame, outer IP header included
	Counters      SessionCounters `json:"counters"`
}

// JSON returns the stable JSON form of s.
func (s Session) JSON() SessionJSON {
	j := SessionJSON{
		SessionID: s.ID, PeerSessionID: s.PeerID, Encap: s.Encap.String(),
		Local: s.Local.Addr().String(), Peer: s.Peer.Addr().String(),
		Cookie: hex.EncodeToString(s.Cookie), PeerCookie: hex.EncodeToString(s.PeerCookie),
		L2Spec: s.L2SpecString(), EthIface: s.EthIface, EthIndex: s.EthIndex,
		TunnelIface: s.TunnelIface, TunnelIndex: s.TunnelIndex, Overhead: s.Overhead(), Counters: s.Counters,
	}
	if s.Encap == L2TPOverUDP {
		lp, pp := s.Local.Port(), s.Peer.Port()
		j.LocalPort, j.PeerPort = &lp, &pp
	}
	if s.PeerMAC != nil {
		m := s.PeerMAC.String()
		j.PeerMAC = &m
	}
	return j
}

// MarshalJSON encodes s in its stable JSON form.
func (s Session) MarshalJSON() ([]byte, error) { return json.Marshal(s.JSON()) }

// L2SpecString is "default" or "none".
func (s Session) L2SpecString() string {
	if s.L2Spec {
		return "default"
	}
	return "none"
}

// Endpoint formats an underlay endpoint as given on the command line.
func (s Session) Endpoint(ap netip.AddrPort) string {
	if s.Encap == L2TPOverUDP {
		return ap.String()
	}
	return ap.Addr().String()
}

// Overhead is the number of bytes the session adds to a frame, outer IP
// header included (outer Ethernet excluded).
func (s Session) Overhead() int {
	n := 4 + len(s.Cookie)
	if s.Encap == L2TPOverUDP {
		n += 8 + 4
	}
	if s.L2Spec {
		n += 4
	}
	if s.Local.Addr().Is4() {
		return n + 20
	}
	return n + 40
}

// L2TPState is the pinned state of the l2tp dataplane.
type L2TPState struct {
	sessions, byEth, udpPorts, stats, neigh, names *ebpf.Map
}

// NewL2TPState wraps the l2tp dataplane's open maps, by name.
func NewL2TPState(ms map[string]*ebpf.Map) (*L2TPState, error) {
	s := &L2TPState{sessions: ms["sessions"], byEth: ms["by_eth"], udpPorts: ms["udp_ports"], stats: ms["session_stats"], neigh: ms["neigh"], names: ms["names"]}
	if s.sessions == nil || s.byEth == nil || s.udpPorts == nil || s.stats == nil || s.neigh == nil || s.names == nil {
		return nil, fmt.Errorf("l2tp state: missing maps: %w", ErrNotLoaded)
	}
	return s, nil
}

// GetSession returns the session with local id id, with its counters, or an
// error wrapping ErrNotFound. Interface names are left for the caller.
func (st *L2TPState) GetSession(id uint32) (Session, error) {
	var v l2tp.L2tpSession
	if err := lookupFound(st.sessions, &id, &v, fmt.Errorf("session %d: %w", id, ErrNotFound), fmt.Sprintf("session %d", id)); err != nil {
		return Session{}, err
	}
	s := sessionFromKernel(id, v)
	st.fill(&s)
	return s, nil
}

// fill adds a session's counters, interface names and namespace.
func (st *L2TPState) fill(s *Session) {
	s.Counters = st.counters(s.ID)
	var n l2tp.L2tpSessionNames
	if st.names.Lookup(&s.ID, &n) == nil {
		s.EthIface, s.TunnelIface, s.Netns = cString(n.Eth[:]), cString(n.Tunnel[:]), n.Netns
	}
}

// ListSessions returns every session, sorted by id, with its counters.
func (st *L2TPState) ListSessions() ([]Session, error) {
	out, err := listMap(st.sessions, "sessions", sessionFromKernel)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	for i := range out {
		st.fill(&out[i])
	}
	return out, nil
}

func (st *L2TPState) counters(id uint32) SessionCounters {
	return sumPerCPU[l2tp.L2tpSessionCounters, SessionCounters](st.stats, id)
}

// SessionOnEth returns the id of the session of Ethernet-side ifindex, if any.
func (st *L2TPState) SessionOnEth(ifindex uint32) (uint32, bool) {
	var id uint32
	return id, st.byEth.Lookup(&ifindex, &id) == nil
}

// PutSession writes s (its interface indexes set) in dependency order: its
// counters, the session, the UDP ports decap listens on, then the Ethernet
// interface's binding that encap follows; an old binding of the session to
// another Ethernet interface goes last. With Add the id must be new, with
// Update it must exist.
func (st *L2TPState) PutSession(_ *Lock, s Session, mode PutMode) error {
	old, err := st.GetSession(s.ID)
	exists := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	switch {
	case mode == Add && exists:
		return fmt.Errorf("session %d: %w (use l2tp session update)", s.ID, ErrExists)
	case mode == Update && !exists:
		return fmt.Errorf("session %d: %w", s.ID, ErrNotFound)
	}
	if !exists {
		zero := make([]l2tp.L2tpSessionCounters, ebpf.MustPossibleCPU())
		if err := st.stats.Update(&s.ID, zero, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			return fmt.Errorf("create counters of session %d: %w", s.ID, err)
		}
	}
	var names l2tp.L2tpSessionNames
	names.Netns = s.Netns
	putCString(names.Eth[:], s.EthIface)
	putCString(names.Tunnel[:], s.TunnelIface)
	if err := st.names.Put(&s.ID, &names); err != nil {
		return fmt.Errorf("record the interfaces of session %d: %w", s.ID, err)
	}
	v := s.kernelValue()
	if err := st.sessions.Update(&s.ID, &v, mode.flags()); err != nil {
		if errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("session %d: the session map is full (%d entries); load l2tp with a larger --max-entries: %w", s.ID, st.sessions.MaxEntries(), err)
		}
		return fmt.Errorf("write session %d: %w", s.ID, err)
	}
	_ = st.neigh.Delete(&s.ID) // resolve the next hop again
	if err := st.syncPorts(); err != nil {
		return err
	}
	if err := st.byEth.Put(&s.EthIndex, &s.ID); err != nil {
		return fmt.Errorf("bind %s to session %d: %w", s.EthIface, s.ID, err)
	}
	if exists && old.EthIndex != s.EthIndex {
		if err := st.byEth.Delete(&old.EthIndex); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("unbind the old Ethernet interface of session %d: %w", s.ID, err)
		}
	}
	return nil
}

// SetNeighbour records the outer MAC addresses of session id, as the
// neighbour table gives them; the program uses them for frames it cannot
// hand to the kernel's neighbour table (non-IP frames) until its own fib
// lookup finds fresher ones.
func (st *L2TPState) SetNeighbour(_ *Lock, id uint32, dst, src net.HardwareAddr) error {
	var v l2tp.L2tpNeighCache
	copy(v.Dmac[:], dst)
	copy(v.Smac[:], src)
	if err := st.neigh.Put(&id, &v); err != nil {
		return fmt.Errorf("record the next hop of session %d: %w", id, err)
	}
	return nil
}

// DeleteSession removes a session in reverse dependency order.
func (st *L2TPState) DeleteSession(_ *Lock, id uint32) (Session, error) {
	s, err := st.GetSession(id)
	if err != nil {
		return s, err
	}
	if bound, ok := st.SessionOnEth(s.EthIndex); ok && bound == id {
		if err := st.byEth.Delete(&s.EthIndex); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return s, fmt.Errorf("unbind session %d: %w", id, err)
		}
	}
	if err := st.sessions.Delete(&id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return s, fmt.Errorf("delete session %d: %w", id, err)
	}
	if err := st.syncPorts(); err != nil {
		return s, err
	}
	_ = st.stats.Delete(&id)
	_ = st.neigh.Delete(&id)
	_ = st.names.Delete(&id)
	return s, nil
}

// syncPorts makes udp_ports hold exactly the local ports of UDP sessions,
// each with its number of sessions.
func (st *L2TPState) syncPorts() error {
	all, err := st.ListSessions()
	if err != nil {
		return err
	}
	want := map[uint16]uint32{}
	for _, s := range all {
		if s.Encap == L2TPOverUDP {
			want[htons(s.Local.Port())]++
		}
	}
	for port, n := range want {
		if err := st.udpPorts.Put(&port, &n); err != nil {
			return fmt.Errorf("record UDP port %d: %w", htons(port), err)
		}
	}
	var (
		port  uint16
		n     uint32
		stale []uint16
	)
	it := st.udpPorts.Iterate()
	for it.Next(&port, &n) {
		if _, ok := want[port]; !ok {
			stale = append(stale, port)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list UDP ports: %w", err)
	}
	for _, p := range stale {
		if err := st.udpPorts.Delete(&p); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("forget UDP port %d: %w", htons(p), err)
		}
	}
	return nil
}

// CookieString formats a cookie for tables: hex, or "-".
func CookieString(c []byte) string {
	if len(c) == 0 {
		return "-"
	}
	return hex.EncodeToString(c)
}

// IDString formats a session id.
func IDString(id uint32) string { return strconv.FormatUint(uint64(id), 10) }
