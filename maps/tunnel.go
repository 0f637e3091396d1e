package maps

import (
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
const tunnelFlagInnerDstMAC = 1

// Limits of tunnel fields.
const (
	MaxVNI    = 1<<24 - 1
	MinVlanID = 1
	MaxVlanID = 4094
)

// TunnelKey is the inner IPv4 pair, as the local workload sends it.
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
	Underlay    string           // where encapsulated frames leave
	Overlay     string           // where decapsulated frames go
	// Interface indexes, as stored in the kernel; set by the dataplane.
	UnderlayIndex uint32
	OverlayIndex  uint32
}

// TunnelArgs are the tunnel flags as given; "" means the flag was not given.
type TunnelArgs struct {
	InnerSrc, InnerDst          string
	Proto, VNI, VlanID          string
	OuterSrc, OuterDst          string
	SrcMAC, DstMAC, InnerDstMAC string
	SrcPort                     string
	Underlay, Overlay           string
}

// ParseTunnelKey parses --inner-src and --inner-dst.
func ParseTunnelKey(src, dst string) (TunnelKey, error) {
	var k TunnelKey
	var errs []error
	var err error
	if k.InnerSrc, err = parseIPv4("--inner-src", src, true); err != nil {
		errs = append(errs, err)
	}
	if k.InnerDst, err = parseIPv4("--inner-dst", dst, true); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 && k.InnerSrc == k.InnerDst {
		errs = append(errs, Invalid("--inner-dst", dst, "equals --inner-src", "a different IPv4 address"))
	}
	return k, errors.Join(errs...)
}

// Parse validates the arguments into a Tunnel. With base nil every required
// flag must be given (add); otherwise the given flags replace base's fields
// (update), and fields that the final protocol does not use are cleared. All
// problems are reported at once, each an *InvalidError.
func (a TunnelArgs) Parse(base *Tunnel) (Tunnel, error) {
	var t Tunnel
	if base != nil {
		t = *base
	}
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
		if ip, err := parseIPv4("--outer-src", a.OuterSrc, true); err != nil {
			bad(err)
		} else {
			t.OuterSrc = ip
		}
	}
	if a.OuterDst != "" {
		if ip, err := parseIPv4("--outer-dst", a.OuterDst, true); err != nil {
			bad(err)
		} else {
			t.OuterDst = ip
		}
	}
	for _, m := range []struct {
		flag, value string
		dst         *net.HardwareAddr
	}{{"--src-mac", a.SrcMAC, &t.SrcMAC}, {"--dst-mac", a.DstMAC, &t.DstMAC}, {"--inner-dst-mac", a.InnerDstMAC, &t.InnerDstMAC}} {
		if m.value == "" {
			continue
		}
		mac, err := parseMAC(m.flag, m.value, m.flag != "--dst-mac")
		if err != nil {
			bad(err)
			continue
		}
		*m.dst = mac
	}
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
	for _, f := range []struct {
		flag, value string
		dst         *string
	}{{"--underlay", a.Underlay, &t.Underlay}, {"--overlay", a.Overlay, &t.Overlay}} {
		if f.value == "" {
			if *f.dst == "" {
				bad(Invalid(f.flag, "", "is required", "an interface name"))
			}
			continue
		}
		if err := ValidateIfaceName(f.flag, f.value); err != nil {
			bad(err)
			continue
		}
		*f.dst = f.value
	}

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
		t.VNI, t.OuterSrc, t.OuterDst, t.SrcMAC, t.DstMAC, t.SrcPort = 0, netip.Addr{}, netip.Addr{}, nil, nil, 0
		if t.VlanID == 0 && a.VlanID == "" {
			errs = append(errs, Invalid("--vlan-id", "", "is required with --proto vlan", "1..4094"))
		}
		return errs
	}
	if a.VlanID != "" {
		errs = append(errs, Invalid("--vlan-id", a.VlanID, "is only valid with --proto vlan", "omit it, or use --vni"))
	}
	t.VlanID = 0
	if a.VNI == "" && !hadUDP {
		// A new GENEVE/VXLAN tunnel, or a switch from VLAN: nothing to inherit.
		errs = append(errs, Invalid("--vni", "", "is required with --proto "+t.Proto.String(), "0..16777215"))
	}
	if !t.OuterSrc.IsValid() && a.OuterSrc == "" {
		errs = append(errs, Invalid("--outer-src", "", "is required with --proto "+t.Proto.String(), "the local underlay IPv4 address"))
	}
	if !t.OuterDst.IsValid() && a.OuterDst == "" {
		errs = append(errs, Invalid("--outer-dst", "", "is required with --proto "+t.Proto.String(), "the remote underlay IPv4 address"))
	}
	if t.OuterSrc.IsValid() && t.OuterSrc == t.OuterDst {
		errs = append(errs, Invalid("--outer-dst", t.OuterDst.String(), "equals --outer-src", "the remote underlay IPv4 address"))
	}
	if t.DstMAC == nil && a.DstMAC == "" {
		errs = append(errs, Invalid("--dst-mac", "", "is required with --proto "+t.Proto.String(), "the MAC address of the next hop towards --outer-dst, like 02:00:00:00:00:02"))
	}
	return errs
}

// kernelKey returns the map key of k.
func (k TunnelKey) kernelKey() encap.EncapTunnelKey {
	return encap.EncapTunnelKey{InnerSrc: be32(k.InnerSrc), InnerDst: be32(k.InnerDst)}
}

// kernelValue returns the map value of t. Interface indexes must be set.
func (t Tunnel) kernelValue() encap.EncapTunnel {
	v := encap.EncapTunnel{
		Proto:           uint8(t.Proto),
		VlanId:          t.VlanID,
		Vni:             t.VNI,
		UnderlayIfindex: t.UnderlayIndex,
		OverlayIfindex:  t.OverlayIndex,
	}
	if t.Proto.UsesUDP() {
		v.OuterSrc, v.OuterDst = be32(t.OuterSrc), be32(t.OuterDst)
		copy(v.SrcMac[:], t.SrcMAC)
		copy(v.DstMac[:], t.DstMAC)
		v.SrcPort = htons(t.SrcPort)
	}
	if t.InnerDstMAC != nil {
		v.Flags |= tunnelFlagInnerDstMAC
		copy(v.InnerDstMac[:], t.InnerDstMAC)
	}
	return v
}

// tunnelFromKernel rebuilds a Tunnel from its map entry. Interface names are
// left empty; the caller fills them from the slots.
func tunnelFromKernel(k encap.EncapTunnelKey, v encap.EncapTunnel) Tunnel {
	t := Tunnel{
		TunnelKey:     TunnelKey{InnerSrc: fromBE32(k.InnerSrc), InnerDst: fromBE32(k.InnerDst)},
		Proto:         Proto(v.Proto),
		VNI:           v.Vni,
		VlanID:        v.VlanId,
		UnderlayIndex: v.UnderlayIfindex,
		OverlayIndex:  v.OverlayIfindex,
	}
	if t.Proto.UsesUDP() {
		t.OuterSrc, t.OuterDst = fromBE32(v.OuterSrc), fromBE32(v.OuterDst)
		t.SrcMAC = append(net.HardwareAddr(nil), v.SrcMac[:]...)
		t.DstMAC = append(net.HardwareAddr(nil), v.DstMac[:]...)
		t.SrcPort = htons(v.SrcPort)
	}
	if v.Flags&tunnelFlagInnerDstMAC != 0 {
		t.InnerDstMAC = append(net.HardwareAddr(nil), v.InnerDstMac[:]...)
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
	if t.InnerDstMAC != nil {
		j.InnerDstMAC = str(t.InnerDstMAC.String())
	}
	return j
}

// MarshalJSON encodes t in its stable JSON form.
func (t Tunnel) MarshalJSON() ([]byte, error) { return json.Marshal(t.JSON()) }

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
