package dataplane

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Status describes everything pinned under a root.
type Status struct {
	Root       string            `json:"root"`
	Dataplanes []DataplaneStatus `json:"dataplanes"`
}

// DataplaneStatus describes one dataplane folder.
type DataplaneStatus struct {
	Name string `json:"name"`
	Path string `json:"path"`
	// State is "loaded", or "incomplete"/"incompatible"/"split"/"unknown"
	// with Error saying why ("split": a pin is not what the programs or
	// links use; 'tunmux load' mends it).
	State string     `json:"state"`
	Error string     `json:"error,omitempty"`
	Meta  *maps.Meta `json:"meta"`
	// Provenance says which tunmux wrote the pinned programs, and whose
	// it replaced (absent: pinned by a tunmux that kept no record).
	Provenance *maps.Provenance `json:"provenance,omitempty"`
	Programs   []ProgramStatus  `json:"programs"`
	Maps       []MapStatus      `json:"maps"`
	Links      []LinkStatus     `json:"links"`
	// Slots are the encap dataplane's redirect slots, with how each target
	// accepts redirected frames.
	Slots []maps.Slot `json:"slots,omitempty"`
}

// ProgramStatus describes a pinned program.
type ProgramStatus struct {
	Name string `json:"name"`
	ID   uint32 `json:"id"`
	Tag  string `json:"tag"`
	Type string `json:"type"`
	Pin  string `json:"pin"`
}

// MapStatus describes a pinned map.
type MapStatus struct {
	Name     string `json:"name"`
	ID       uint32 `json:"id"`
	Type     string `json:"type"`
	Entries  int    `json:"entries"`
	Capacity uint32 `json:"capacity"`
	Pin      string `json:"pin"`
}

// LinkStatus describes a pinned link: one program on one interface.
type LinkStatus struct {
	Program    string `json:"program"`
	Interface  string `json:"interface"`
	Ifindex    uint32 `json:"ifindex"`
	Netns      string `json:"netns"`
	NetnsInode uint64 `json:"netns_inode"`
	Hook       string `json:"hook"`
	Mode       string `json:"mode"`
	LinkID     uint32 `json:"link_id"`
	ProgID     uint32 `json:"prog_id"`
	// State is "attached", "observed" while a capture or monitor runs the
	// observed build of its program, or "defunct" when its interface went
	// away.
	State string `json:"state"`
	Pin   string `json:"pin"`
}

// ReadStatus describes every dataplane folder under root. It changes nothing.
func ReadStatus(root *maps.Root) (Status, error) {
	st := Status{Root: root.Path, Dataplanes: []DataplaneStatus{}}
	names, err := root.Dataplanes()
	if err != nil {
		return st, err
	}
	for _, name := range names {
		st.Dataplanes = append(st.Dataplanes, readDataplaneStatus(root, name))
	}
	return st, nil
}

func readDataplaneStatus(root *maps.Root, name string) DataplaneStatus {
	dir := root.Dir(name)
	ds := DataplaneStatus{Name: name, Path: dir, State: "loaded", Programs: []ProgramStatus{}, Maps: []MapStatus{}, Links: []LinkStatus{}}
	dp, err := Lookup(name)
	if err != nil {
		ds.State, ds.Error = "unknown", "not a dataplane this tunmux knows"
	}
	var open map[string]*ebpf.Map // the dataplane's maps, when they opened
	if dp != nil {
		l, err := Open(root, dp)
		split := errors.Is(err, maps.ErrSplit)
		if split {
			// Say so, and show the rest all the same.
			ds.State, ds.Error = "split", err.Error()
			l, err = openLoaded(root, dp, false)
		}
		switch {
		case err != nil && split: // a missing map pin: the split says it
		case err != nil:
			ds.State, ds.Error = "incomplete", err.Error()
			if strings.Contains(err.Error(), maps.ErrIncompatible.Error()) {
				ds.State = "incompatible"
			}
			if errors.Is(err, maps.ErrPermission) {
				ds.State = "unreadable" // not read: nothing is claimed of it
			}
		default:
			meta := l.Meta
			ds.Meta = &meta
			if dp == EncapDataplane {
				if st, err := maps.NewEncapState(l.Maps); err == nil {
					ds.Slots, _ = st.ListSlots()
					ObserveSlots(ds.Slots) // as the kernel has it now, not as written
				}
			}
			// The maps stay open for the listing below.
			open = l.Maps
			defer l.Close()
		}
	}
	if p, found, err := maps.ReadProvenance(dir); err == nil && found {
		ds.Provenance = &p
	}
	progPins, _ := root.Pins(name, maps.ProgPrefix)
	for _, pin := range progPins {
		ps := ProgramStatus{Name: strings.TrimPrefix(pin, maps.ProgPrefix), Pin: filepath.Join(dir, pin)}
		if info, err := pinnedProgIdent(ps.Pin); err == nil {
			ps.ID, ps.Tag, ps.Type = uint32(info.ID), info.Tag, info.Type.String()
		}
		ds.Programs = append(ds.Programs, ps)
	}
	mapPins, _ := root.Pins(name, maps.MapPrefix)
	for _, pin := range mapPins {
		ms := MapStatus{Name: strings.TrimPrefix(pin, maps.MapPrefix), Pin: filepath.Join(dir, pin)}
		m, err := open[ms.Name], error(nil)
		if m == nil {
			if m, err = ebpf.LoadPinnedMap(ms.Pin, nil); err == nil {
				defer m.Close()
			}
		}
		if err == nil {
			ms.Type, ms.Capacity = m.Type().String(), m.MaxEntries()
			if id, _, err := mapIdentOf(m.FD()); err == nil {
				ms.ID = uint32(id)
			}
			ms.Entries, _ = countEntries(m)
		}
		ds.Maps = append(ds.Maps, ms)
	}
	ds.Links = readLinks(root, name)
	pinned := map[uint32]bool{}
	for _, p := range ds.Programs {
		pinned[p.ID] = true
	}
	for i, ls := range ds.Links {
		// A link running no pinned program: a capture's or monitor's.
		if ls.State == "attached" && !pinned[ls.ProgID] && isObserved(ebpf.ProgramID(ls.ProgID)) {
			ds.Links[i].State = "observed"
		}
	}
	return ds
}

// readLinks describes the link pins of a dataplane, joined with their
// attachment records.
func readLinks(root *maps.Root, name string) []LinkStatus {
	dir := root.Dir(name)
	records := map[[2]uint64]maps.Attachment{}
	if m, err := ebpf.LoadPinnedMap(maps.MapPin(dir, "attachments"), nil); err == nil {
		if atts, err := maps.ListAttachments(m); err == nil {
			for _, a := range atts {
				records[[2]uint64{a.Netns, uint64(a.Ifindex)}] = a
			}
		}
		m.Close()
	}
	out := []LinkStatus{}
	pins, _ := root.Pins(name, maps.LinkPrefix)
	for _, pin := range pins {
		ls := LinkStatus{Pin: filepath.Join(dir, pin), State: "defunct"}
		ls.Program, ls.NetnsInode, ls.Ifindex = parseLinkPin(pin)
		if rec, ok := records[[2]uint64{ls.NetnsInode, uint64(ls.Ifindex)}]; ok {
			ls.Interface, ls.Netns, ls.Hook, ls.Mode = rec.Ifname, rec.NetnsName, rec.Hook.String(), maps.ModeName(rec.Mode)
		}
		if l, err := link.LoadPinnedLink(ls.Pin, nil); err == nil {
			if info, err := l.Info(); err == nil {
				ls.LinkID, ls.ProgID = uint32(info.ID), uint32(info.Program)
				if linkIfindex(info) != 0 {
					ls.State = "attached"
				}
			}
			l.Close()
		}
		out = append(out, ls)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pin < out[j].Pin })
	return out
}

// parseLinkPin splits link_<prog>_<netns>_<ifindex>.
func parseLinkPin(pin string) (prog string, netns uint64, ifindex uint32) {
	parts := strings.Split(strings.TrimPrefix(pin, maps.LinkPrefix), "_")
	if len(parts) < 3 {
		return pin, 0, 0
	}
	n := len(parts)
	ns, _ := strconv.ParseUint(parts[n-2], 10, 64)
	idx, _ := strconv.ParseUint(parts[n-1], 10, 32)
	return strings.Join(parts[:n-2], "_"), ns, uint32(idx)
}

// Where formats an attachment place for tables: "netns/ifname".
func (ls LinkStatus) Where() string {
	name := ls.Interface
	if name == "" {
		name = fmt.Sprintf("if%d", ls.Ifindex)
	}
	return netdev.Describe(ls.Netns, name)
}
