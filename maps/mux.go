package maps

import (
	"errors"
	"fmt"
	"net"
	"sort"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/progs/mux"
)

// MuxSchema is the layout version of the mux dataplane's maps.
const MuxSchema = 1

// Labels of the mux dataplane: 1..63 (the 6-bit DSCP field); DSCP 0 is the
// carrier's own traffic.
const (
	MinLabel = 1
	MaxLabel = 63
)

// ParseLabel parses a label given to flag.
func ParseLabel(flag, s string) (uint8, error) {
	if s == "" {
		return 0, Invalid(flag, "", "is required", "1..63 (0 is the carrier's own traffic)")
	}
	n, err := ParseUint(flag, s, MinLabel, MaxLabel)
	if err != nil {
		err.Accepted = "1..63 (0 is the carrier's own traffic)"
		return 0, err
	}
	return uint8(n), nil
}

// OnMiss is what the carrier does with a label no member owns.
type OnMiss uint8

// On-miss actions; the values are those of enum on_miss in mux.c.
const (
	OnMissDrop OnMiss = 0
	OnMissPass OnMiss = 1
)

func (o OnMiss) String() string {
	if o == OnMissPass {
		return "pass"
	}
	return "drop"
}

// MarshalText gives the JSON form: drop or pass.
func (o OnMiss) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// ParseOnMiss parses --on-miss.
func ParseOnMiss(s string) (OnMiss, error) {
	switch s {
	case "", "drop":
		return OnMissDrop, nil
	case "pass":
		return OnMissPass, nil
	}
	return 0, Invalid("--on-miss", s, "unknown action", "drop|pass")
}

// Carrier is the one interface that carries every member's traffic.
type Carrier struct {
	Name    string           `json:"name"`
	Ifindex uint32           `json:"ifindex"`
	L2      bool             `json:"ethernet"`
	OnMiss  OnMiss           `json:"on_miss"`
	SrcMAC  net.HardwareAddr `json:"-"`
	DstMAC  net.HardwareAddr `json:"-"`
	Netns   uint64           `json:"netns"`
}

// PeerMAC is the far end's MAC address of an Ethernet carrier, or "".
func (c Carrier) PeerMAC() string {
	if !c.L2 {
		return ""
	}
	return c.DstMAC.String()
}

// MemberCounters are a member's packets and bytes through the carrier.
type MemberCounters struct {
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
}

// Member is an interface multiplexed through the carrier under a label.
type Member struct {
	Name     string           `json:"name"`
	Label    uint8            `json:"label"`
	Ifindex  uint32           `json:"ifindex"`
	L2       bool             `json:"ethernet"`
	MAC      net.HardwareAddr `json:"-"`
	Created  bool             `json:"created"` // tunmux created it (and deletes it with the member)
	Netns    uint64           `json:"netns"`
	Counters MemberCounters   `json:"counters"`
}

// MuxState is the pinned state of the mux dataplane.
type MuxState struct {
	carriers, members, labels, stats, names *ebpf.Map
}

// NewMuxState wraps the mux dataplane's open maps, by name.
func NewMuxState(ms map[string]*ebpf.Map) (*MuxState, error) {
	s := &MuxState{carriers: ms["carriers"], members: ms["members"], labels: ms["labels"], stats: ms["member_stats"], names: ms["member_names"]}
	if s.carriers == nil || s.members == nil || s.labels == nil || s.stats == nil || s.names == nil {
		return nil, fmt.Errorf("mux state: missing maps: %w", ErrNotLoaded)
	}
	return s, nil
}

// carrierLabel keys the carrier's record in member_names.
const carrierLabel = 0

// Carrier returns the carrier; ok is false when none is set.
func (s *MuxState) Carrier() (Carrier, bool, error) {
	var v mux.MuxCarrier
	if err := s.carriers.Lookup(uint32(0), &v); err != nil {
		return Carrier{}, false, fmt.Errorf("read carrier: %w", err)
	}
	if v.Ifindex == 0 {
		return Carrier{}, false, nil
	}
	c := Carrier{Ifindex: v.Ifindex, L2: v.L2 != 0, OnMiss: OnMiss(v.OnMiss),
		SrcMAC: append(net.HardwareAddr{}, v.SrcMac[:]...), DstMAC: append(net.HardwareAddr{}, v.DstMac[:]...)}
	var info mux.MuxMemberInfo
	if s.names.Lookup(uint32(carrierLabel), &info) == nil {
		c.Name, c.Netns = cString(info.Name[:]), info.Netns
	}
	return c, true, nil
}

// SetCarrier records the carrier (its name first, then what the programs read).
func (s *MuxState) SetCarrier(_ *Lock, c Carrier) error {
	var info mux.MuxMemberInfo
	info.Netns = c.Netns
	putCString(info.Name[:], c.Name)
	if err := s.names.Put(uint32(carrierLabel), &info); err != nil {
		return fmt.Errorf("record carrier %s: %w", c.Name, err)
	}
	v := mux.MuxCarrier{Ifindex: c.Ifindex, OnMiss: uint8(c.OnMiss)}
	if c.L2 {
		v.L2 = 1
		copy(v.SrcMac[:], c.SrcMAC)
		copy(v.DstMac[:], c.DstMAC)
	}
	if err := s.carriers.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("set carrier %s: %w", c.Name, err)
	}
	return nil
}

// Members returns every member, by label, with its counters.
func (s *MuxState) Members() ([]Member, error) {
	out, err := listMap(s.members, "members", func(_ uint32, v mux.MuxMember) Member {
		m := Member{Ifindex: v.Ifindex, Label: v.Label, L2: v.L2 != 0, MAC: append(net.HardwareAddr{}, v.Mac[:]...)}
		var info mux.MuxMemberInfo
		if s.names.Lookup(uint32(v.Label), &info) == nil {
			m.Name, m.Created, m.Netns = cString(info.Name[:]), info.Created != 0, info.Netns
		}
		m.Counters = s.counters(uint32(v.Label))
		return m
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out, nil
}

// Member returns the member named name (as recorded), or ErrNotFound.
func (s *MuxState) Member(name string) (Member, error) {
	return findOne(s.Members, func(m Member) bool { return m.Name == name },
		func() error { return fmt.Errorf("member %s: %w", name, ErrNotFound) })
}

func (s *MuxState) counters(label uint32) MemberCounters {
	return sumPerCPU[mux.MuxMemberCounters, MemberCounters](s.stats, label)
}

// PutMember records a member: zeroed counters and its name, then its entry
// by ifindex (egress), then by label (ingress).
func (s *MuxState) PutMember(_ *Lock, m Member) error {
	label := uint32(m.Label)
	zero := make([]mux.MuxMemberCounters, ebpf.MustPossibleCPU())
	if err := s.stats.Put(&label, zero); err != nil {
		return fmt.Errorf("reset counters of label %d: %w", label, err)
	}
	var info mux.MuxMemberInfo
	info.Netns = m.Netns
	putCString(info.Name[:], m.Name)
	if m.Created {
		info.Created = 1
	}
	if err := s.names.Put(&label, &info); err != nil {
		return fmt.Errorf("record member %s: %w", m.Name, err)
	}
	v := mux.MuxMember{Ifindex: m.Ifindex, Label: m.Label}
	if m.L2 {
		v.L2 = 1
		copy(v.Mac[:], m.MAC)
	}
	if err := s.members.Put(&m.Ifindex, &v); err != nil {
		if errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("member %s: all 63 labels are taken: %w", m.Name, err)
		}
		return fmt.Errorf("add member %s: %w", m.Name, err)
	}
	if err := s.labels.Put(&label, &v); err != nil {
		return fmt.Errorf("give label %d to %s: %w", label, m.Name, err)
	}
	return nil
}

// DeleteMember forgets a member: its label first (ingress stops), then its
// entry by ifindex, its name and counters.
func (s *MuxState) DeleteMember(_ *Lock, m Member) error {
	label := uint32(m.Label)
	var none mux.MuxMember
	if err := s.labels.Put(&label, &none); err != nil {
		return fmt.Errorf("free label %d: %w", label, err)
	}
	if err := s.members.Delete(&m.Ifindex); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("remove member %s: %w", m.Name, err)
	}
	_ = s.names.Delete(&label)
	zero := make([]mux.MuxMemberCounters, ebpf.MustPossibleCPU())
	_ = s.stats.Put(&label, zero)
	return nil
}

// String names a member for messages.
func (m Member) String() string {
	return fmt.Sprintf("%s (label %d, ifindex %d)", m.Name, m.Label, m.Ifindex)
}
