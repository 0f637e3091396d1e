package maps

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/hrw"
	"github.com/tunmux/tunmux/progs/route"
)

// RouteSchema is the layout version of the route dataplane's maps.
const RouteSchema = 1

// MaxNexthops is the most nexthops one route holds.
const MaxNexthops = hrw.MaxNexthops

// RouteProto is how a nexthop carries packets.
type RouteProto uint8

// Nexthop protocols; the values are the PROTO_* of route.c.
const (
	RouteProtoNone   RouteProto = 0 // out of dev to the remote as a neighbour, no tunnel
	RouteProtoVXLAN  RouteProto = 1
	RouteProtoGeneve RouteProto = 2
)

var routeProtoNames = map[RouteProto]string{RouteProtoNone: "none", RouteProtoVXLAN: "vxlan", RouteProtoGeneve: "geneve"}

func (p RouteProto) String() string { return enumName(p, routeProtoNames, "proto") }

// MarshalText gives the JSON form: none, vxlan or geneve.
func (p RouteProto) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Tunnelled reports whether the protocol sets a tunnel key.
func (p RouteProto) Tunnelled() bool { return p != RouteProtoNone }

// DefaultPort is the protocol's UDP port.
func (p RouteProto) DefaultPort() uint16 {
	if p == RouteProtoGeneve {
		return 6081
	}
	return 4789
}

// ParseRouteProto parses a nexthop protocol given to flag.
func ParseRouteProto(flag, s string, allowNone bool) (RouteProto, error) {
	accepted := "vxlan|geneve"
	if allowNone {
		accepted += "|none"
	}
	switch s {
	case "vxlan":
		return RouteProtoVXLAN, nil
	case "geneve":
		return RouteProtoGeneve, nil
	case "none":
		if allowNone {
			return RouteProtoNone, nil
		}
	}
	return 0, Invalid(flag, s, "unknown protocol", accepted)
}

// TunnelMAC is the rule that gives a tunnel device its MAC address from the
// underlay address its peers reach it by, so that they can address inner
// frames to it without asking: 02:a:b:c:d:ff for IPv4 a.b.c.d, and for
// IPv6 02, the last four bytes of the address, ff.
func TunnelMAC(a netip.Addr) net.HardwareAddr {
	b := a.As16()
	return net.HardwareAddr{0x02, b[12], b[13], b[14], b[15], 0xff}
}

// Nexthop is one way a route's packets go.
type Nexthop struct {
	Remote netip.Addr // underlay address of the peer
	VNI    uint32     // tunnelled protocols
	Weight uint16     // 1..65535
	Proto  RouteProto
	Dev    string // the device packets are redirected to
	// Ifindex of Dev, set by the dataplane.
	Ifindex uint32
	// MAC is the inner destination MAC: given, or TunnelMAC(Remote).
	MAC net.HardwareAddr
	// SrcMAC is the inner source MAC: Dev's own address.
	SrcMAC net.HardwareAddr
}

// ID returns the nexthop's identity for the choice of flows (package hrw).
func (n Nexthop) ID() uint32 { return hrw.NexthopID(n.Remote, n.VNI, uint8(n.Proto)) }

// Same reports whether two nexthops are the same way out (same identity).
func (n Nexthop) Same(o Nexthop) bool {
	return n.Remote == o.Remote && n.VNI == o.VNI && n.Proto == o.Proto
}

// String gives the nexthop in --nexthop form.
func (n Nexthop) String() string {
	var b strings.Builder
	b.WriteString(n.Remote.String())
	if n.Proto.Tunnelled() {
		fmt.Fprintf(&b, ",vni=%d", n.VNI)
	}
	fmt.Fprintf(&b, ",weight=%d,proto=%s", n.Weight, n.Proto)
	if n.Dev != "" {
		fmt.Fprintf(&b, ",dev=%s", n.Dev)
	}
	if n.Proto.Tunnelled() && n.MAC != nil {
		fmt.Fprintf(&b, ",mac=%s", n.MAC)
	}
	return b.String()
}

// NexthopJSON is the stable JSON form of a nexthop.
type NexthopJSON struct {
	Remote  string  `json:"remote"`
	VNI     *uint32 `json:"vni"`
	Weight  uint16  `json:"weight"`
	Proto   string  `json:"proto"`
	Dev     string  `json:"dev"`
	Ifindex uint32  `json:"ifindex"`
	MAC     *string `json:"mac"`
	Healthy bool    `json:"healthy"`
}

// JSON returns the nexthop's JSON form; healthy is the peer's health.
func (n Nexthop) JSON(healthy bool) NexthopJSON {
	j := NexthopJSON{Remote: n.Remote.String(), Weight: n.Weight, Proto: n.Proto.String(), Dev: n.Dev, Ifindex: n.Ifindex, Healthy: healthy}
	if n.Proto.Tunnelled() {
		vni, mac := n.VNI, n.MAC.String()
		j.VNI, j.MAC = &vni, &mac
	}
	return j
}

// NexthopSpec is a --nexthop as given, parsed: what the dataplane still
// resolves (the device) is left as text.
type NexthopSpec struct {
	Remote netip.Addr
	VNI    uint32
	HasVNI bool
	Weight uint16
	Proto  RouteProto
	Dev    string // "" for the protocol's tunnel device
	MAC    net.HardwareAddr
}

const nexthopForm = "REMOTE[,vni=N][,weight=W][,dev=IFACE][,proto=vxlan|geneve|none][,mac=MAC]"

// ParseNexthop parses one --nexthop value given to flag.
func ParseNexthop(flag, s string) (NexthopSpec, error) {
	fields := strings.Split(s, ",")
	spec := NexthopSpec{Weight: 1, Proto: RouteProtoVXLAN}
	remote, err := netip.ParseAddr(strings.TrimSpace(fields[0]))
	if err != nil || remote.Zone() != "" {
		return spec, Invalid(flag, s, "does not start with the remote's underlay address", nexthopForm)
	}
	remote = remote.Unmap()
	if remote.IsUnspecified() || remote.IsMulticast() || remote == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return spec, Invalid(flag, s, "the remote is not a unicast address", nexthopForm)
	}
	spec.Remote = remote
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok || v == "" {
			return spec, Invalid(flag, s, fmt.Sprintf("%q is not key=value", f), nexthopForm)
		}
		if seen[k] {
			return spec, Invalid(flag, s, k+"= is given twice", nexthopForm)
		}
		seen[k] = true
		switch k {
		case "vni":
			n, ierr := ParseUint(flag+" vni", v, 0, 1<<24-1)
			if ierr != nil {
				return spec, ierr
			}
			spec.VNI, spec.HasVNI = uint32(n), true
		case "weight":
			n, ierr := ParseUint(flag+" weight", v, 1, 65535)
			if ierr != nil {
				return spec, ierr
			}
			spec.Weight = uint16(n)
		case "dev":
			if err := ValidateIfaceName(flag+" dev", v); err != nil {
				return spec, err
			}
			spec.Dev = v
		case "proto":
			p, err := ParseRouteProto(flag+" proto", v, true)
			if err != nil {
				return spec, err
			}
			spec.Proto = p
		case "mac":
			mac, err := parseMAC(flag+" mac", v, true)
			if err != nil {
				return spec, err
			}
			spec.MAC = mac
		default:
			return spec, Invalid(flag, s, fmt.Sprintf("unknown key %q", k), nexthopForm)
		}
	}
	if spec.Proto.Tunnelled() && !spec.HasVNI {
		return spec, Invalid(flag, s, "vni= is required for proto "+spec.Proto.String(), "vni=0..16777215")
	}
	if !spec.Proto.Tunnelled() {
		switch {
		case spec.HasVNI:
			return spec, Invalid(flag, s, "vni= does not apply to proto none", "leave it out")
		case spec.MAC != nil:
			return spec, Invalid(flag, s, "mac= does not apply to proto none (the remote's MAC is resolved as a neighbour)", "leave it out")
		case spec.Dev == "":
			return spec, Invalid(flag, s, "dev= is required for proto none", "dev=IFACE, the interface the remote is reached on")
		}
	}
	return spec, nil
}

// ParseNexthops parses every --nexthop of one route: 1 to 8, no two the
// same way out.
func ParseNexthops(flag string, values []string) ([]NexthopSpec, error) {
	if len(values) == 0 {
		return nil, Invalid(flag, "", "is required", nexthopForm+", up to 8 times")
	}
	if len(values) > MaxNexthops {
		return nil, Invalid(flag, "", "is given "+strconv.Itoa(len(values))+" times; a route holds at most 8 nexthops", "1 to 8 --nexthop flags")
	}
	var errs []error
	var out []NexthopSpec
	for _, v := range values {
		spec, err := ParseNexthop(flag, v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, o := range out {
			if o.Remote == spec.Remote && o.VNI == spec.VNI && o.Proto == spec.Proto {
				errs = append(errs, Invalid(flag, v, "repeats a nexthop (same remote, vni and proto)", "each nexthop once"))
			}
		}
		out = append(out, spec)
	}
	return out, errors.Join(errs...)
}

// ParsePrefix parses an IPv4 or IPv6 CIDR given to flag; host bits must be 0.
func ParsePrefix(flag, s string) (netip.Prefix, error) {
	const form = "an IPv4 or IPv6 CIDR like 10.20.0.0/16 or fd00:20::/48"
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" {
		return netip.Prefix{}, Invalid(flag, s, "is not a CIDR prefix", form)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, Invalid(flag, s, "is an IPv4-mapped IPv6 prefix", "the IPv4 prefix itself")
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, Invalid(flag, s, "has bits set past the prefix length", m.String())
	}
	return p, nil
}

// ParsePrefixOrAddr parses a CIDR or a bare address (a lookup) given to flag.
func ParsePrefixOrAddr(flag, s string) (p netip.Prefix, isAddr bool, err error) {
	if !strings.Contains(s, "/") {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil || a.Zone() != "" {
			return netip.Prefix{}, false, Invalid(flag, s, "is neither an address nor a CIDR prefix", "an address like 10.20.1.5, or a CIDR like 10.20.0.0/16")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true, nil
	}
	p, err = ParsePrefix(flag, s)
	return p, false, err
}

// Route is an overlay prefix and the nexthops its flows are spread over.
type Route struct {
	Prefix   netip.Prefix
	Nexthops []Nexthop
}

// RouteJSON is the stable JSON form of a route.
type RouteJSON struct {
	Prefix   string        `json:"prefix"`
	Nexthops []NexthopJSON `json:"nexthops"`
}

// familyByte is the first byte of a route or peer key.
func familyByte(a netip.Addr) uint8 {
	if a.Is4() {
		return 4
	}
	return 6
}

// routeKey is the LPM key of a prefix: the family byte is part of the
// matched bits, so IPv4 and IPv6 never match each other.
func routeKey(p netip.Prefix) route.RouteRouteKey {
	k := route.RouteRouteKey{Prefixlen: uint32(8 + p.Bits()), Family: familyByte(p.Addr())}
	copy(k.Addr[:], p.Addr().AsSlice())
	return k
}

func addrOf(family uint8, b [16]uint8) netip.Addr {
	if family == 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

func encodeRoute(r Route) route.RouteRoute {
	v := route.RouteRoute{Count: uint8(len(r.Nexthops)), Family: familyByte(r.Prefix.Addr()), Prefixlen: uint8(r.Prefix.Bits())}
	copy(v.Addr[:], r.Prefix.Addr().AsSlice())
	for i, n := range r.Nexthops {
		h := &v.Nh[i]
		copy(h.Remote[:], n.Remote.AsSlice())
		h.Vni, h.Ifindex, h.Id, h.Weight, h.Proto = n.VNI, n.Ifindex, n.ID(), n.Weight, uint8(n.Proto)
		if n.Remote.Is6() {
			h.Flags |= nhFlagIPv6
		}
		copy(h.DstMac[:], n.MAC)
		copy(h.SrcMac[:], n.SrcMAC)
	}
	return v
}

const nhFlagIPv6 = 0x01

func decodeRoute(v route.RouteRoute) Route {
	r := Route{Prefix: netip.PrefixFrom(addrOf(v.Family, v.Addr), int(v.Prefixlen))}
	for i := 0; i < int(v.Count) && i < MaxNexthops; i++ {
		h := v.Nh[i]
		family := uint8(4)
		if h.Flags&nhFlagIPv6 != 0 {
			family = 6
		}
		n := Nexthop{Remote: addrOf(family, h.Remote), VNI: h.Vni, Weight: h.Weight, Proto: RouteProto(h.Proto), Ifindex: h.Ifindex}
		if n.Proto.Tunnelled() {
			n.MAC = append(net.HardwareAddr{}, h.DstMac[:]...)
			n.SrcMAC = append(net.HardwareAddr{}, h.SrcMac[:]...)
		}
		r.Nexthops = append(r.Nexthops, n)
	}
	return r
}

// Peer is the health of a peer, by underlay address.
type Peer struct {
	Remote    netip.Addr
	Down      bool
	ProbePort uint16 // UDP port of health probes, 0 for none
}

// PeerJSON is the stable JSON form of a peer.
type PeerJSON struct {
	Remote    string  `json:"remote"`
	Health    string  `json:"health"`
	ProbePort *uint16 `json:"probe_port"`
	// Set means an entry exists; a peer without one is up.
	Set bool `json:"set"`
	// Routes is how many routes have a nexthop to the peer.
	Routes int `json:"routes"`
}

// Health is "up" or "down".
func (p Peer) Health() string {
	if p.Down {
		return "down"
	}
	return "up"
}

// ParseHealth parses --health.
func ParseHealth(s string) (down bool, err error) {
	switch s {
	case "up":
		return false, nil
	case "down":
		return true, nil
	}
	return false, Invalid("--health", s, "unknown health", "up|down")
}

// ParsePeerAddr parses a peer's underlay address given to flag.
func ParsePeerAddr(flag, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, Invalid(flag, s, "is not an IP address", "the peer's underlay address, IPv4 or IPv6")
	}
	return a.Unmap(), nil
}

func peerKey(a netip.Addr) route.RoutePeerKey {
	k := route.RoutePeerKey{Family: familyByte(a)}
	copy(k.Addr[:], a.AsSlice())
	return k
}

// TunnelDev is a flow-based tunnel device that `route dev create` made: the
// default device of its protocol's nexthops.
type TunnelDev struct {
	Name    string           `json:"name"`
	Proto   RouteProto       `json:"proto"`
	Ifindex uint32           `json:"ifindex"`
	Netns   uint64           `json:"netns"`
	MAC     net.HardwareAddr `json:"-"`
	// Local is the underlay address its MAC was derived from (TunnelMAC),
	// if one was given.
	Local netip.Addr `json:"-"`
}

// RouteState is the pinned state of the route dataplane.
type RouteState struct {
	routes, peers, devs, config *ebpf.Map
}

// NewRouteState wraps the route dataplane's open maps, by name.
func NewRouteState(ms map[string]*ebpf.Map) (*RouteState, error) {
	s := &RouteState{routes: ms["routes"], peers: ms["peers"], devs: ms["tunnel_devs"], config: ms["config"]}
	if s.routes == nil || s.peers == nil || s.devs == nil || s.config == nil {
		return nil, fmt.Errorf("route state: missing maps: %w", ErrNotLoaded)
	}
	return s, nil
}

// Lookup returns the route the datapath would use for addr: the longest
// prefix that contains it.
func (s *RouteState) Lookup(addr netip.Addr) (Route, error) {
	var v route.RouteRoute
	if err := lookupFound(s.routes, routeKey(netip.PrefixFrom(addr, addr.BitLen())), &v, fmt.Errorf("no route for %s: %w", addr, ErrNotFound), addr.String()); err != nil {
		return Route{}, err
	}
	return decodeRoute(v), nil
}

// Get returns the route of exactly prefix p.
func (s *RouteState) Get(p netip.Prefix) (Route, error) {
	var v route.RouteRoute
	err := s.routes.Lookup(routeKey(p), &v)
	if err == nil {
		if r := decodeRoute(v); r.Prefix == p {
			return r, nil
		}
	} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return Route{}, fmt.Errorf("look up %s: %w", p, err)
	}
	return Route{}, fmt.Errorf("route %s: %w", p, ErrNotFound)
}

// Routes returns every route, IPv4 first, by address then length.
func (s *RouteState) Routes() ([]Route, error) {
	out, err := listMap(s.routes, "routes", func(_ route.RouteRouteKey, v route.RouteRoute) Route { return decodeRoute(v) })
	if err != nil {
		return nil, err
	}
	SortRoutes(out)
	return out, nil
}

// SortRoutes orders routes IPv4 first, then by address, then by length.
func SortRoutes(rs []Route) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i].Prefix, rs[j].Prefix
		if a.Addr().Is4() != b.Addr().Is4() {
			return a.Addr().Is4()
		}
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c < 0
		}
		return a.Bits() < b.Bits()
	})
}

// PutRoute writes a route whole (the datapath sees the old one or the new
// one, never a mix). mode says whether it may or must exist already.
func (s *RouteState) PutRoute(_ *Lock, r Route, mode PutMode) error {
	if mode != Upsert {
		_, err := s.Get(r.Prefix)
		switch {
		case err == nil && mode == Add:
			return fmt.Errorf("route %s: %w (use route update, or --replace)", r.Prefix, ErrExists)
		case errors.Is(err, ErrNotFound) && mode == Update:
			return fmt.Errorf("route %s: %w (use route add)", r.Prefix, ErrNotFound)
		case err != nil && !errors.Is(err, ErrNotFound):
			return err
		}
	}
	v := encodeRoute(r)
	if err := s.routes.Put(routeKey(r.Prefix), &v); err != nil {
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("route %s: the route table is full (load route --max-entries sets its size): %w", r.Prefix, err)
		}
		return fmt.Errorf("write route %s: %w", r.Prefix, err)
	}
	return nil
}

// DeleteRoute removes the route of exactly prefix p.
func (s *RouteState) DeleteRoute(_ *Lock, p netip.Prefix) error {
	if err := s.routes.Delete(routeKey(p)); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("route %s: %w", p, ErrNotFound)
		}
		return fmt.Errorf("delete route %s: %w", p, err)
	}
	return nil
}

// Peer returns the health entry of the peer at a, or ErrNotFound (a peer
// without one is up).
func (s *RouteState) Peer(a netip.Addr) (Peer, error) {
	var v route.RoutePeer
	if err := s.peers.Lookup(peerKey(a), &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return Peer{Remote: a}, fmt.Errorf("peer %s has no health entry (it counts as up): %w", a, ErrNotFound)
		}
		return Peer{}, fmt.Errorf("read peer %s: %w", a, err)
	}
	return Peer{Remote: a, Down: v.Down != 0, ProbePort: v.ProbePort}, nil
}

// Peers returns every peer health entry, by address.
func (s *RouteState) Peers() ([]Peer, error) {
	out, err := listMap(s.peers, "peers", func(k route.RoutePeerKey, v route.RoutePeer) Peer {
		return Peer{Remote: addrOf(k.Family, k.Addr), Down: v.Down != 0, ProbePort: v.ProbePort}
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Remote.Less(out[j].Remote) })
	return out, nil
}

// SetPeer writes a peer's health: every nexthop to it follows at once.
// The count of peers marked down, which lets the program skip peer lookups
// while it is 0, is raised before a peer goes down and lowered after one
// comes up, so it is never below the truth.
func (s *RouteState) SetPeer(_ *Lock, p Peer) error {
	old, err := s.Peer(p.Remote)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	wasDown := err == nil && old.Down
	if p.Down && !wasDown {
		if err := s.addPeersDown(1); err != nil {
			return err
		}
	}
	v := route.RoutePeer{ProbePort: p.ProbePort}
	if p.Down {
		v.Down = 1
	}
	if err := s.peers.Put(peerKey(p.Remote), &v); err != nil {
		if p.Down && !wasDown {
			_ = s.addPeersDown(-1)
		}
		if errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("peer %s: the peer table is full (%d entries): %w", p.Remote, s.peers.MaxEntries(), err)
		}
		return fmt.Errorf("set peer %s: %w", p.Remote, err)
	}
	if wasDown && !p.Down {
		return s.addPeersDown(-1)
	}
	return nil
}

// DeletePeer removes a peer's health entry: it counts as up again.
func (s *RouteState) DeletePeer(_ *Lock, a netip.Addr) error {
	old, err := s.Peer(a)
	if err != nil {
		return err
	}
	if err := s.peers.Delete(peerKey(a)); err != nil {
		return fmt.Errorf("delete peer %s: %w", a, err)
	}
	if old.Down {
		return s.addPeersDown(-1)
	}
	return nil
}

// PeersDown returns the program's count of peers marked down.
func (s *RouteState) PeersDown() (uint32, error) {
	var c route.RouteRouteConfig
	if err := s.config.Lookup(uint32(0), &c); err != nil {
		return 0, fmt.Errorf("read route config: %w", err)
	}
	return c.PeersDown, nil
}

func (s *RouteState) addPeersDown(delta int) error {
	var c route.RouteRouteConfig
	if err := s.config.Lookup(uint32(0), &c); err != nil {
		return fmt.Errorf("read route config: %w", err)
	}
	n := int(c.PeersDown) + delta
	c.PeersDown = uint32(max(n, 0))
	if err := s.config.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("write route config: %w", err)
	}
	return nil
}

// TunnelDevs returns the registered tunnel devices, by protocol.
func (s *RouteState) TunnelDevs() ([]TunnelDev, error) {
	var out []TunnelDev
	for _, p := range []RouteProto{RouteProtoVXLAN, RouteProtoGeneve} {
		d, ok, err := s.TunnelDev(p)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// TunnelDev returns the registered tunnel device of protocol p.
func (s *RouteState) TunnelDev(p RouteProto) (TunnelDev, bool, error) {
	var v route.RouteTunnelDev
	if err := s.devs.Lookup(uint32(p), &v); err != nil {
		return TunnelDev{}, false, fmt.Errorf("read %s device: %w", p, err)
	}
	if v.Ifindex == 0 {
		return TunnelDev{}, false, nil
	}
	d := TunnelDev{Name: cString(v.Name[:]), Proto: RouteProto(v.Proto), Ifindex: v.Ifindex, Netns: v.Netns,
		MAC: append(net.HardwareAddr{}, v.Mac[:]...)}
	if v.LocalFamily != 0 {
		d.Local = addrOf(v.LocalFamily, v.Local)
	}
	return d, true, nil
}

// SetTunnelDev registers d as the device of its protocol.
func (s *RouteState) SetTunnelDev(_ *Lock, d TunnelDev) error {
	v := route.RouteTunnelDev{Netns: d.Netns, Ifindex: d.Ifindex, Proto: uint8(d.Proto)}
	copy(v.Mac[:], d.MAC)
	if d.Local.IsValid() {
		v.LocalFamily, v.MacRule = familyByte(d.Local), 1
		copy(v.Local[:], d.Local.AsSlice())
	}
	putCString(v.Name[:], d.Name)
	if err := s.devs.Put(uint32(d.Proto), &v); err != nil {
		return fmt.Errorf("register %s device %s: %w", d.Proto, d.Name, err)
	}
	return nil
}

// ForgetTunnelDev unregisters the device of protocol p.
func (s *RouteState) ForgetTunnelDev(_ *Lock, p RouteProto) error {
	var none route.RouteTunnelDev
	if err := s.devs.Put(uint32(p), &none); err != nil {
		return fmt.Errorf("forget %s device: %w", p, err)
	}
	return nil
}

// JSON returns the route's stable JSON form; down reports a peer's health.
func (r Route) JSON(down func(netip.Addr) bool) RouteJSON {
	j := RouteJSON{Prefix: r.Prefix.String(), Nexthops: []NexthopJSON{}}
	for _, n := range r.Nexthops {
		j.Nexthops = append(j.Nexthops, n.JSON(!down(n.Remote)))
	}
	return j
}
