package dataplane

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// DesiredCarrier is the mux carrier as a desired-state file gives it
// (tunmux mux carrier set IFACE [--on-miss A] [--peer-mac MAC]).
type DesiredCarrier struct {
	Iface   string
	OnMiss  string
	PeerMAC string
	Line    int
}

// DesiredMember is a mux member as a desired-state file gives it (tunmux
// mux member add NAME --label N [--create [--mtu M]]).
type DesiredMember struct {
	Name   string
	Label  string
	Create bool
	MTU    string
	Config DeviceConfig // with Create: its addresses and kernel routes
	Line   int
}

// MuxPlan is what reconciling the mux dataplane will do.
type MuxPlan struct {
	Changes   []Change
	carrier   *DesiredCarrier
	remove    []maps.Member
	add       []DesiredMember
	configure map[string]DeviceConfig // members' addresses and routes to add
}

// linkAliveAt reports whether prog's pinned link on (ino, ifindex) is
// attached.
func (l *Loaded) linkAliveAt(prog string, ino uint64, ifindex uint32) bool {
	return linkAlive(filepath.Join(l.Dir, LinkPinName(prog, ino, int(ifindex))))
}

// liveIndex returns the index of the interface called name in the calling
// thread's namespace, 0 if there is none.
func liveIndex(name string) uint32 {
	ifc, err := netdev.Lookup(name)
	if err != nil {
		return 0
	}
	return uint32(ifc.Index)
}

// PlanMux compares the desired carrier and members with the pinned ones. A
// carrier or member whose interface was recreated, whose program link is
// defunct or whose settings differ is set again; members named in remove go,
// and with prune every member the desired state lacks. Call it inside the namespace of the interfaces.
func (m *Mux) PlanMux(carrier *DesiredCarrier, members []DesiredMember, remove []string, prune bool, ino uint64) (*MuxPlan, error) {
	plan := &MuxPlan{}
	if carrier != nil {
		c, ok, err := m.State.Carrier()
		if err != nil {
			return nil, err
		}
		onMiss, _ := maps.ParseOnMiss(carrier.OnMiss)
		var why string
		switch {
		case !ok:
		case c.Name != carrier.Iface:
			why = "carrier " + c.Name + " -> " + carrier.Iface
		case c.Netns != ino || c.Ifindex != liveIndex(c.Name) || !m.linkAliveAt("mux-ingress", ino, c.Ifindex):
			why = "interface recreated or its program detached: set again"
		case c.OnMiss != onMiss:
			why = fmt.Sprintf("on-miss %s -> %s", c.OnMiss, onMiss)
		case carrier.PeerMAC != "" && c.PeerMAC() != carrier.PeerMAC:
			why = fmt.Sprintf("peer-mac %s -> %s", c.PeerMAC(), carrier.PeerMAC)
		default:
			plan.carrier = nil
		}
		if !ok || why != "" {
			plan.carrier = carrier
			action := "change"
			if !ok {
				action, why = "add", "carrier "+carrier.Iface
			}
			plan.Changes = append(plan.Changes, Change{Action: action, Kind: "carrier", Key: carrier.Iface, Detail: why, Line: carrier.Line})
		}
	}
	current, err := m.State.Members()
	if err != nil {
		return nil, err
	}
	cur := make([]DesiredMember, len(current))
	byName := map[string]maps.Member{}
	for i, mem := range current {
		cur[i] = DesiredMember{Name: mem.Name, Label: fmt.Sprint(mem.Label), Create: mem.Created}
		byName[mem.Name] = mem
	}
	name := func(d DesiredMember) string { return d.Name }
	d := diff(cur, members, name, func(old, want DesiredMember) bool {
		mem := byName[old.Name]
		return old.Label == want.Label && old.Create == want.Create && mem.Netns == ino &&
			mem.Ifindex == liveIndex(mem.Name) && m.linkAliveAt("mux-egress", ino, mem.Ifindex)
	}, removeRule(prune, name, remove))
	for _, a := range d.add {
		plan.add = append(plan.add, a)
		plan.Changes = append(plan.Changes, Change{Action: "add", Kind: "member", Key: a.Name, Detail: describeMember(a), Line: a.Line})
	}
	for _, c := range d.change {
		plan.remove = append(plan.remove, byName[c.old.Name])
		plan.add = append(plan.add, c.new)
		detail := describeMember(c.old) + " -> " + describeMember(c.new)
		if describeMember(c.old) == describeMember(c.new) {
			detail = "interface recreated or its program detached: add again"
		}
		plan.Changes = append(plan.Changes, Change{Action: "change", Kind: "member", Key: c.new.Name, Detail: detail, Line: c.new.Line})
	}
	for _, r := range d.remove {
		plan.remove = append(plan.remove, byName[r.Name])
		plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "member", Key: r.Name, Detail: describeMember(r)})
	}
	plan.configure = map[string]DeviceConfig{}
	for _, a := range plan.add {
		plan.configure[a.Name] = a.Config
	}
	plan.Changes = append(plan.Changes, planConfig("member", members, plan.configure)...)
	return plan, nil
}

func describeMember(d DesiredMember) string {
	s := "label " + d.Label
	if d.Create {
		s += ", created by tunmux"
	}
	return s
}

// ExecuteMux carries a plan out with the code the mux commands run:
// members that go or change are removed (freeing their labels), the
// carrier is set, then members are added. Call it inside the namespace.
func (m *Mux) ExecuteMux(lock *maps.Lock, plan *MuxPlan, netnsName string) error {
	for _, mem := range plan.remove {
		if _, err := m.DeleteMember(lock, mem.Name, netnsName); err != nil && !errors.Is(err, netdev.ErrNoInterface) {
			return err
		}
	}
	if c := plan.carrier; c != nil {
		if _, err := m.SetCarrier(lock, c.Iface, CarrierOptions{OnMiss: c.OnMiss, PeerMAC: c.PeerMAC, Netns: netnsName}); err != nil {
			return err
		}
	}
	for _, a := range plan.add {
		if _, err := m.AddMember(lock, a.Name, MemberOptions{Label: a.Label, Create: a.Create, MTU: a.MTU, Netns: netnsName}); err != nil {
			return err
		}
	}
	return configureAll(plan.configure)
}
