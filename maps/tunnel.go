package maps

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tunmux/tunmux/progs/encap"
)

// Proto is a tunnel protocol of the encap dataplane.
type Proto uint8

// Tunnel protocols; the values are those of enum tunnel_proto in encap.c.
const (
	ProtoVLAN   Proto = 1
	ProtoVXLAN  Proto = 2
	ProtoGENEVE Proto = 3
)

// protoNames lists the protocols in the order help texts show them.
var protoNames = []struct {
	name  string
	proto Proto
}{{"geneve", ProtoGENEVE}, {"vxlan", ProtoVXLAN}, {"vlan", ProtoVLAN}}

func (p Proto) String() string {
	for _, n := range protoNames {
		if n.proto == p {
			return n.name
		}
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// ParseProto parses "geneve", "vxlan" or "vlan".
func ParseProto(s string) (Proto, error) {
	for _, n := range protoNames {
		if n.name == strings.ToLower(s) {
			return n.proto, nil
		}
	}
	return 0, Invalid("--proto", s, "unknown protocol", "geneve|vxlan|vlan")
}

// UsesUDP reports whether the protocol has outer Ethernet, IPv4 and UDP headers.
func (p Proto) UsesUDP() bool { return p == ProtoGENEVE || p == ProtoVXLAN }

// Tunnel flag bits (enum tunnel_flags in encap.c).
const (
	tunnelFlagInnerDstMAC = 1
	tunnelFlagOuterV6     = 2
	tunnelFlagPeerNetns   = 4
)

// Limits of tunnel fields.
const (
	MaxVNI    = 1<<24 - 1
	MinVlanID = 1
	MaxVlanID = 4094
)

// TunnelKey is the inner pair (IPv4 or IPv6), as the local workload sends it.
type TunnelKey struct {
	InnerSrc netip.Addr
	InnerDst netip.Addr
}

func (k TunnelKey) String() string { return k.InnerSrc.String() + "->" + k.InnerDst.String() }

// Tunnel is one entry of the encap dataplane. It encapsulates frames from
// InnerSrc to InnerDst and decapsulates frames from InnerDst to InnerSrc.
type Tunnel struct {
	TunnelKey
	Proto       Proto
	VNI         uint32           // GENEVE, VXLAN
	VlanID      uint16           // VLAN
	OuterSrc    netip.Addr       // GENEVE, VXLAN: local underlay address
	OuterDst    netip.Addr       // GENEVE, VXLAN: remote underlay address
	SrcMAC      net.HardwareAddr // GENEVE, VXLAN: outer source (default: the underlay's MAC)
	DstMAC      net.HardwareAddr // GENEVE, VXLAN: outer destination
	InnerDstMAC net.HardwareAddr // optional rewrite of the inner destination on encap
	SrcPort     uint16           // 0: derived per inner flow
	GeneveOpts  []GeneveOpt      // GENEVE: options sent on encap
	Underlay    string           // where encapsulated frames leave
	Overlay     string           // where decapsulated frames go
	// Interface indexes, as stored in the kernel; set by the dataplane.
	UnderlayIndex uint32
	OverlayIndex  uint32
	// OverlayPeerNetns: the overlay is a veth whose peer is in another
	// namespace (TC decap delivers there directly); set by the dataplane.
	OverlayPeerNetns bool
	// Counters are read with the tunnel, never written from here.
	Counters TunnelCounters
	// CounterIndex is where the tunnel's counters live in the counter map;
	// EncapState gives it out (a tunnel keeps its index while it exists).
	CounterIndex uint32
}

// TunnelCounters are a tunnel's frames and bytes each way (inner frames),
// and frames dropped as too big for the underlay, summed over CPUs.
type TunnelCounters struct {
	TxPackets  uint64 `json:"tx_packets"`
	TxBytes    uint64 `json:"tx_bytes"`
	RxPackets  uint64 `json:"rx_packets"`
	RxBytes    uint64 `json:"rx_bytes"`
	DropTooBig uint64 `json:"drop_too_big"`
}

// GeneveOpt is one GENEVE option (RFC 8926 3.5): class, type (bit 7: the
// receiver must understand it) and data, a multiple of 4 bytes.
type GeneveOpt struct {
	Class uint16
	Type  uint8
	Data  []byte
}

// MaxGeneveOptBytes is how many bytes of options a tunnel sends, headers
// included (the program's room).
const MaxGeneveOptBytes = 64

// Critical reports whether the receiver must understand the option.
func (o GeneveOpt) Critical() bool { return o.Type&0x80 != 0 }

func (o GeneveOpt) String() string {
	return fmt.Sprintf("%04x:%02x:%s", o.Class, o.Type, hex.EncodeToString(o.Data))
}

const geneveOptForm = "CLASS:TYPE:HEXDATA in hex, like 0102:80:deadbeef (data a multiple of 4 bytes; a tunnel's options take at most 64 bytes, 4 of header each)"

// ParseGeneveOpt parses a --geneve-opt value.
func ParseGeneveOpt(s string) (GeneveOpt, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return GeneveOpt{}, Invalid("--geneve-opt", s, "is not CLASS:TYPE:HEXDATA", geneveOptForm)
	}
	class, err1 := strconv.ParseUint(strings.TrimPrefix(parts[0], "0x"), 16, 16)
	typ, err2 := strconv.ParseUint(strings.TrimPrefix(parts[1], "0x"), 16, 8)
	data, err3 := hex.DecodeString(strings.TrimPrefix(parts[2], "0x"))
	switch {
	case err1 != nil:
		return GeneveOpt{}, Invalid("--geneve-opt", s, "has a class that is not 1 to 4 hex digits", geneveOptForm)
	case err2 != nil:
		return GeneveOpt{}, Invalid("--geneve-opt", s, "has a type that is not 1 or 2 hex digits", geneveOptForm)
	case err3 != nil:
		return GeneveOpt{}, Invalid("--geneve-opt", s, "has data that is not hex", geneveOptForm)
	case len(data)%4 != 0 || len(data) > 124:
		return GeneveOpt{}, Invalid("--geneve-opt", s, fmt.Sprintf("has %d bytes of data, not a multiple of 4 up to 124", len(data)), geneveOptForm)
	}
	return GeneveOpt{Class: uint16(class), Type: uint8(typ), Data: data}, nil
}

// encodeGeneveOpts lays options out as they go on the wire.
func encodeGeneveOpts(opts []GeneveOpt) []byte {
	var b []byte
	for _, o := range opts {
		b = append(b, byte(o.Class>>8), byte(o.Class), o.Type, byte(len(o.Data)/4))
		b = append(b, o.Data...)
	}
	return b
}

// decodeGeneveOpts reads options laid out as on the wire.
func decodeGeneveOpts(b []byte) []GeneveOpt {
	var out []GeneveOpt
	for len(b) >= 4 {
		n := 4 + int(b[3]&0x1f)*4
		if n > len(b) {
			break
		}
		out = append(out, GeneveOpt{Class: uint16(b[0])<<8 | uint16(b[1]), Type: b[2], Data: append([]byte(nil), b[4:n]...)})
		b = b[n:]
	}
	return out
}

// TunnelArgs are the tunnel flags as given; "" means the flag was not given.
type TunnelArgs struct {
	InnerSrc, InnerDst          string
	Proto, VNI, VlanID          string
	OuterSrc, OuterDst          string
	SrcMAC, DstMAC, InnerDstMAC string
	SrcPort                     string
	Underlay, Overlay           string
	// GeneveOpts are the --geneve-opt values; nil: not given.
	GeneveOpts []string
}

// ParseTunnelKey parses --inner-src and --inner-dst: two IPv4 or two IPv6
// addresses.
func ParseTunnelKey(src, dst string) (TunnelKey, error) {
	var k TunnelKey
	var errs []error
	var err error
	if k.InnerSrc, err = parseUnicast("--inner-src", src); err != nil {
		errs = append(errs, err)
	}
	if k.InnerDst, err = parseUnicast("--inner-dst", dst); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 && k.InnerSrc.Is4() != k.InnerDst.Is4() {
		errs = append(errs, Invalid("--inner-dst", dst, "is not of --inner-src's family", "two IPv4 or two IPv6 addresses"))
	}
	if len(errs) == 0 && k.InnerSrc == k.InnerDst {
		errs = append(errs, Invalid("--inner-dst", dst, "equals --inner-src", "a different address"))
	}
	return k, errors.Join(errs...)
}

// parseUnicast parses an IPv4 or IPv6 unicast address given to flag.
func parseUnicast(flag, s string) (netip.Addr, error) {
	const form = "an IPv4 or IPv6 address like 10.0.0.1 or fd00::1"
	if s == "" {
		return netip.Addr{}, Invalid(flag, "", "is required", form)
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, Invalid(flag, s, "is not an IP address", form)
	}
	ip = ip.Unmap()
	if ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}, Invalid(flag, s, "is not a unicast address", "a unicast "+form)
	}
	return ip, nil
}

// Parse validates the arguments into a Tunnel. With base nil every required
// flag must be given (add); otherwise the given flags replace base's fields
// (update), and fields that the final protocol does not use are cleared. All
// problems are reported at once, each an *InvalidError.
func (a TunnelArgs) Parse(base *Tunnel) (Tunnel, error) {
	t := fromBase(base)
	var errs []error
	bad := func(err error) { errs = append(errs, err) }

	key, err := ParseTunnelKey(a.InnerSrc, a.InnerDst)
	if err != nil {
		bad(err)
	}
	t.TunnelKey = key

	if a.Proto != "" {
		if p, err := ParseProto(a.Proto); err != nil {
			bad(err)
		} else {
			t.Proto = p
		}
	} else if base == nil {
		bad(Invalid("--proto", "", "is required", "geneve|vxlan|vlan"))
	}
	protoKnown := t.Proto != 0

	if a.VNI != "" {
		if n, err := ParseUint("--vni", a.VNI, 0, MaxVNI); err != nil {
			bad(err)
		} else {
			t.VNI = uint32(n)
		}
	}
	if a.VlanID != "" {
		if n, err := ParseUint("--vlan-id", a.VlanID, MinVlanID, MaxVlanID); err != nil {
			bad(err)
		} else {
			t.VlanID = uint16(n)
		}
	}
	if a.OuterSrc != "" {
		if ip, err := parseUnicast("--outer-src", a.OuterSrc); err != nil {
			bad(err)
		} else {
			t.OuterSrc = ip
		}
	}
	if a.OuterDst != "" {
		if ip, err := parseUnicast("--outer-dst", a.OuterDst); err != nil {
			bad(err)
		} else {
			t.OuterDst = ip
		}
	}
	if a.GeneveOpts != nil {
		t.GeneveOpts = nil
		for _, o := range a.GeneveOpts {
			if o == "" || o == "none" {
				continue // --geneve-opt none clears them
			}
			opt, err := ParseGeneveOpt(o)
			if err != nil {
				bad(err)
				continue
			}
			t.GeneveOpts = append(t.GeneveOpts, opt)
		}
		if n := len(encodeGeneveOpts(t.GeneveOpts)); n > MaxGeneveOptBytes {
			bad(Invalid("--geneve-opt", strings.Join(a.GeneveOpts, " "), fmt.Sprintf("adds up to %d bytes of options", n),
				fmt.Sprintf("up to %d bytes in all, 4 of header per option", MaxGeneveOptBytes)))
		}
	}
	t.SrcMAC = macFlag(bad, "--src-mac", a.SrcMAC, t.SrcMAC)
	t.DstMAC = macFlag(bad, "--dst-mac", a.DstMAC, t.DstMAC)
	t.InnerDstMAC = macFlag(bad, "--inner-dst-mac", a.InnerDstMAC, t.InnerDstMAC)
	if a.SrcPort != "" {
		if a.SrcPort == "flow" {
			t.SrcPort = 0
		} else if n, err := ParseUint("--src-port", a.SrcPort, 0, 65535); err != nil {
			err.Accepted = "1..65535, or 0 or flow for a port derived per inner flow"
			bad(err)
		} else {
			t.SrcPort = uint16(n)
		}
	}
	t.Underlay = ifaceName(bad, "--underlay", a.Underlay, t.Underlay)
	t.Overlay = ifaceName(bad, "--overlay", a.Overlay, t.Overlay)

	if protoKnown {
		errs = append(errs, t.checkProtoFields(a, base != nil && base.Proto.UsesUDP())...)
	}
	return t, errors.Join(errs...)
}

// FormErrors reports only the malformed flags among those given: what Parse
// reports, less the flags that are missing.
func (a TunnelArgs) FormErrors() error {
	_, err := a.Parse(nil)
	return withoutMissing(err)
}

// checkProtoFields applies the rules that depend on the protocol: flags the
// protocol does not use are errors when given and cleared when inherited.
func (t *Tunnel) checkProtoFields(a TunnelArgs, hadUDP bool) []error {
	var errs []error
	if t.Proto == ProtoVLAN {
		for _, f := range []struct{ flag, value string }{
			{"--vni", a.VNI}, {"--outer-src", a.OuterSrc}, {"--outer-dst", a.OuterDst},
			{"--src-mac", a.SrcMAC}, {"--dst-mac", a.DstMAC}, {"--src-port", a.SrcPort},
		} {
			if f.value != "" {
				errs = append(errs, Invalid(f.flag, f.value, "is invalid with --proto vlan (a VLAN tag has no outer IP, UDP or MAC header)", "omit it"))
			}
		}
		if len(a.GeneveOpts) > 0 {
			errs = append(errs, Invalid("--geneve-opt", strings.Join(a.GeneveOpts, " "), "is only valid with --proto geneve", "omit it"))
		}
		t.VNI, t.OuterSrc, t.OuterDst, t.SrcMAC, t.DstMAC, t.SrcPort, t.GeneveOpts = 0, netip.Addr{}, netip.Addr{}, nil, nil, 0, nil
		if t.VlanID == 0 && a.VlanID == "" {
			errs = append(errs, Invalid("--vlan-id", "", "is required with --proto vlan", "1..4094"))
		}
		return errs
	}
	if a.VlanID != "" {
		errs = append(errs, Invalid("--vlan-id", a.VlanID, "is only valid with --proto vlan", "omit it, or use --vni"))
	}
	t.VlanID = 0
	if t.Proto != ProtoGENEVE {
		if len(a.GeneveOpts) > 0 && len(t.GeneveOpts) > 0 {
			errs = append(errs, Invalid("--geneve-opt", strings.Join(a.GeneveOpts, " "), "is only valid with --proto geneve", "omit it"))
		}
		t.GeneveOpts = nil
	}
	if a.VNI == "" && !hadUDP {
		// A new GENEVE/VXLAN tunnel, or a switch from VLAN: nothing to inherit.
		errs = append(errs, Invalid("--vni", "", "is required with --proto "+t.Proto.String(), "0..16777215"))
	}
	if !t.OuterSrc.IsValid() && a.OuterSrc == "" {
		errs = append(errs, Invalid("--outer-src", "", "is required with --proto "+t.Proto.String(), "the local underlay address, IPv4 or IPv6"))
	}
	if !t.OuterDst.IsValid() && a.OuterDst == "" {
		errs = append(errs, Invalid("--outer-dst", "", "is required with --proto "+t.Proto.String(), "the remote underlay address, IPv4 or IPv6"))
	}
	if t.OuterSrc.IsValid() && t.OuterSrc == t.OuterDst {
		errs = append(errs, Invalid("--outer-dst", t.OuterDst.String(), "equals --outer-src", "the remote underlay address"))
	}
	if t.OuterSrc.IsValid() && t.OuterDst.IsValid() && t.OuterSrc.Is4() != t.OuterDst.Is4() {
		errs = append(errs, Invalid("--outer-dst", t.OuterDst.String(), "is not of --outer-src's family", "two IPv4 or two IPv6 underlay addresses"))
	}
	if t.DstMAC == nil && a.DstMAC == "" {
		errs = append(errs, Invalid("--dst-mac", "", "is required with --proto "+t.Proto.String(), "the MAC address of the next hop towards --outer-dst, like 02:00:00:00:00:02"))
	}
	return errs
}

// kernelKey returns the map key of k.
func (k TunnelKey) kernelKey() encap.EncapTunnelKey {
	kk := encap.EncapTunnelKey{Family: 4}
	if k.InnerSrc.Is6() {
		kk.Family = 6
	}
	copy(kk.InnerSrc[:], k.InnerSrc.AsSlice())
	copy(kk.InnerDst[:], k.InnerDst.AsSlice())
	return kk
}

func addrFromKernel(family uint8, b [16]uint8) netip.Addr {
	if family == 6 {
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte(b[:4]))
}

// kernelValue returns the map value of t. Interface indexes must be set.
func (t Tunnel) kernelValue() encap.EncapTunnel {
	v := encap.EncapTunnel{
		Proto:           uint8(t.Proto),
		VlanId:          t.VlanID,
		Vni:             t.VNI,
		UnderlayIfindex: t.UnderlayIndex,
		OverlayIfindex:  t.OverlayIndex,
		Counters:        t.CounterIndex,
	}
	if t.Proto.UsesUDP() {
		copy(v.OuterSrc[:], t.OuterSrc.AsSlice())
		copy(v.OuterDst[:], t.OuterDst.AsSlice())
		if t.OuterSrc.Is6() {
			v.Flags |= tunnelFlagOuterV6
		}
		copy(v.SrcMac[:], t.SrcMAC)
		copy(v.DstMac[:], t.DstMAC)
		v.SrcPort = htons(t.SrcPort)
	}
	if t.Proto == ProtoGENEVE {
		opts := encodeGeneveOpts(t.GeneveOpts)
		v.OptLen = uint8(copy(v.Opts[:], opts))
		for _, o := range t.GeneveOpts {
			if o.Critical() {
				v.GeneveFlags = 0x40 // the C bit
			}
		}
	}
	if t.InnerDstMAC != nil {
		v.Flags |= tunnelFlagInnerDstMAC
		copy(v.InnerDstMac[:], t.InnerDstMAC)
	}
	if t.OverlayPeerNetns {
		v.Flags |= tunnelFlagPeerNetns
	}
	return v
}

// tunnelFromKernel rebuilds a Tunnel from its map entry. Interface names are
// left empty; the caller fills them from the slots.
func tunnelFromKernel(k encap.EncapTunnelKey, v encap.EncapTunnel) Tunnel {
	return tunnelFromKernelIn(k, v, nil)
}

// macSlab hands out MAC addresses carved from one shared block: listing
// 100,000 tunnels makes one allocation per few hundred instead of two or
// three a tunnel.
type macSlab struct{ block []byte }

func (s *macSlab) mac(m [6]uint8) net.HardwareAddr {
	if s == nil {
		return append(net.HardwareAddr(nil), m[:]...)
	}
	if len(s.block)+6 > cap(s.block) {
		s.block = make([]byte, 0, 6*512)
	}
	s.block = append(s.block, m[:]...)
	n := len(s.block)
	return net.HardwareAddr(s.block[n-6 : n : n])
}

// tunnelFromKernelIn is tunnelFromKernel with its MACs taken from slab
// (nil: allocated one by one).
func tunnelFromKernelIn(k encap.EncapTunnelKey, v encap.EncapTunnel, slab *macSlab) Tunnel {
	t := Tunnel{
		TunnelKey:        TunnelKey{InnerSrc: addrFromKernel(k.Family, k.InnerSrc), InnerDst: addrFromKernel(k.Family, k.InnerDst)},
		Proto:            Proto(v.Proto),
		VNI:              v.Vni,
		VlanID:           v.VlanId,
		UnderlayIndex:    v.UnderlayIfindex,
		OverlayIndex:     v.OverlayIfindex,
		OverlayPeerNetns: v.Flags&tunnelFlagPeerNetns != 0,
		CounterIndex:     v.Counters,
	}
	if t.Proto.UsesUDP() {
		family := uint8(4)
		if v.Flags&tunnelFlagOuterV6 != 0 {
			family = 6
		}
		t.OuterSrc, t.OuterDst = addrFromKernel(family, v.OuterSrc), addrFromKernel(family, v.OuterDst)
		t.SrcMAC = slab.mac(v.SrcMac)
		t.DstMAC = slab.mac(v.DstMac)
		t.SrcPort = htons(v.SrcPort)
	}
	if t.Proto == ProtoGENEVE && v.OptLen > 0 {
		t.GeneveOpts = decodeGeneveOpts(v.Opts[:min(int(v.OptLen), len(v.Opts))])
	}
	if v.Flags&tunnelFlagInnerDstMAC != 0 {
		t.InnerDstMAC = slab.mac(v.InnerDstMac)
	}
	return t
}

// TunnelJSON is the stable JSON form of a tunnel (docs/json.md).
type TunnelJSON struct {
	InnerSrc      string  `json:"inner_src"`
	InnerDst      string  `json:"inner_dst"`
	Proto         string  `json:"proto"`
	VNI           *uint32 `json:"vni"`
	VlanID        *uint16 `json:"vlan_id"`
	OuterSrc      *string `json:"outer_src"`
	OuterDst      *string `json:"outer_dst"`
	SrcMAC        *string `json:"src_mac"`
	DstMAC        *string `json:"dst_mac"`
	InnerDstMAC   *string `json:"inner_dst_mac"`
	SrcPort       *uint16 `json:"src_port"`
	Underlay      string  `json:"underlay"`
	UnderlayIndex uint32  `json:"underlay_ifindex"`
	Overlay       string  `json:"overlay"`
	OverlayIndex  uint32  `json:"overlay_ifindex"`
	// GeneveOpts are CLASS:TYPE:HEXDATA strings; null for other protocols.
	GeneveOpts []string       `json:"geneve_opts"`
	Counters   TunnelCounters `json:"counters"`
}

// JSON returns the stable JSON form of t; fields the protocol does not use are null.
func (t Tunnel) JSON() TunnelJSON {
	j := TunnelJSON{
		InnerSrc: t.InnerSrc.String(), InnerDst: t.InnerDst.String(), Proto: t.Proto.String(),
		Underlay: t.Underlay, UnderlayIndex: t.UnderlayIndex, Overlay: t.Overlay, OverlayIndex: t.OverlayIndex,
	}
	str := func(s string) *string { return &s }
	if t.Proto == ProtoVLAN {
		j.VlanID = &t.VlanID
	} else {
		j.VNI = &t.VNI
		j.OuterSrc, j.OuterDst = str(t.OuterSrc.String()), str(t.OuterDst.String())
		j.SrcMAC, j.DstMAC = str(t.SrcMAC.String()), str(t.DstMAC.String())
		if t.SrcPort != 0 {
			j.SrcPort = &t.SrcPort
		}
	}
	if t.Proto == ProtoGENEVE {
		j.GeneveOpts = []string{}
		for _, o := range t.GeneveOpts {
			j.GeneveOpts = append(j.GeneveOpts, o.String())
		}
	}
	j.Counters = t.Counters
	if t.InnerDstMAC != nil {
		j.InnerDstMAC = str(t.InnerDstMAC.String())
	}
	return j
}

// MarshalJSON encodes t in its stable JSON form.
func (t Tunnel) MarshalJSON() ([]byte, error) { return json.Marshal(t.JSON()) }

// Overhead is how many bytes the tunnel puts in front of an inner IP
// packet: the inner Ethernet header and the outer IP, UDP and tunnel headers
// with options (0 for VLAN, whose tag Ethernet allows on top of the MTU).
// A workload's MTU of the underlay's MTU less this never drops a packet.
func (t Tunnel) Overhead() int {
	if !t.Proto.UsesUDP() {
		return 0
	}
	ip := 20
	if t.OuterSrc.Is6() {
		ip = 40
	}
	return 14 + ip + 8 + 8 + len(encodeGeneveOpts(t.GeneveOpts))
}

// ID returns the tunnel's VNI or VLAN id as text.
func (t Tunnel) ID() string {
	if t.Proto == ProtoVLAN {
		return "vlan " + strconv.Itoa(int(t.VlanID))
	}
	return "vni " + strconv.FormatUint(uint64(t.VNI), 10)
}

// SrcPortString returns the source port, or "flow" when it is derived per flow.
func (t Tunnel) SrcPortString() string {
	if !t.Proto.UsesUDP() {
		return "-"
	}
	if t.SrcPort == 0 {
		return "flow"
	}
	return strconv.Itoa(int(t.SrcPort))
}
