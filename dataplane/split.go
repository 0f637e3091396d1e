package dataplane

// The pins and the datapath never disagree. Commands write entries through
// the map pins, while the datapath reads the maps its programs were loaded
// with, and an interface runs whatever program its link runs. A map pin
// removed or replaced by hand, or a link moved to another program, splits
// the two: entries would go where no program reads them. checkPins finds
// such splits from the kernel's own ids (the maps each pinned program uses,
// the program each pinned link runs); Open refuses a split dataplane and
// Load mends it.
//
// Maps no program uses (records such as meta, attachments, slots, names)
// cannot be checked this way: nothing in the kernel says which one is right.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// objNameLen is how much of a name the kernel keeps for a map or program
// (BPF_OBJ_NAME_LEN less the NUL).
const objNameLen = 15

// kernelName is the name the kernel gives a map or program called name.
func kernelName(name string) string {
	if len(name) > objNameLen {
		return name[:objNameLen]
	}
	return name
}

// pinnedMap is what the check needs of a map pin: the map's id and its
// kernel name.
type pinnedMap struct {
	ID   ebpf.MapID
	Name string
}

// describeMap returns the id and kernel name of m.
func describeMap(m *ebpf.Map) (pinnedMap, error) {
	id, name, err := mapIdentOf(m.FD())
	if err != nil {
		return pinnedMap{}, fmt.Errorf("inspect map: %w", err)
	}
	return pinnedMap{ID: id, Name: name}, nil
}

// describeMaps describes open maps, by name.
func describeMaps(open map[string]*ebpf.Map) (map[string]pinnedMap, error) {
	out := make(map[string]pinnedMap, len(open))
	for name, m := range open {
		pm, err := describeMap(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = pm
	}
	return out, nil
}

// pinnedMaps describes the maps of shapes pinned in dir, whatever their
// shape (compatibility is checked elsewhere); a map with no pin is absent.
func pinnedMaps(dir string, shapes map[string]*ebpf.MapSpec) (map[string]pinnedMap, error) {
	out := map[string]pinnedMap{}
	for name := range shapes {
		if strings.HasPrefix(name, ".") {
			continue
		}
		m, err := ebpf.LoadPinnedMap(maps.MapPin(dir, name), nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open pinned map: %w", maps.NoPermission(maps.MapPin(dir, name), err))
		}
		pm, err := describeMap(m)
		m.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = pm
	}
	return out, nil
}

// pinnedProgram is a program pin: its name and id.
type pinnedProgram struct {
	Name string
	ID   ebpf.ProgramID
}

// pinnedPrograms returns the info of each program of dp pinned in dir, by
// name; a program with no pin is absent.
func pinnedPrograms(dir string, dp *Dataplane) (map[string]progIdent, error) {
	out := map[string]progIdent{}
	for _, p := range dp.Programs {
		info, err := pinnedProgIdent(maps.ProgPin(dir, p.Name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspect program %s: %w", p.Name, err)
		}
		out[p.Name] = info
	}
	return out, nil
}

// mapSplit is a map whose pin is not the map the pinned programs use.
type mapSplit struct {
	Name   string                  // its name in the spec
	Pinned ebpf.MapID              // the map pinned as map_<Name>; 0: none
	Used   map[ebpf.MapID][]string // the maps of that name the programs use, and by which
	users  func(ebpf.MapID) string // "programs encap, decap" for messages
}

func (s mapSplit) String() string {
	pin := maps.MapPrefix + s.Name
	ids := make([]ebpf.MapID, 0, len(s.Used))
	for id := range s.Used {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if len(ids) > 1 {
		parts := make([]string, 0, len(ids))
		for _, id := range ids {
			parts = append(parts, fmt.Sprintf("%s use id %d", s.users(id), id))
		}
		pinned := "no map is pinned"
		if s.Pinned != 0 {
			pinned = fmt.Sprintf("%s is id %d", pin, s.Pinned)
		}
		return fmt.Sprintf("the pinned programs use different maps %s: %s; %s", s.Name, strings.Join(parts, ", "), pinned)
	}
	if s.Pinned == 0 {
		return fmt.Sprintf("%s is missing, but %s use map %s (id %d)", pin, s.users(ids[0]), s.Name, ids[0])
	}
	return fmt.Sprintf("%s is map id %d, but %s use map %s id %d", pin, s.Pinned, s.users(ids[0]), s.Name, ids[0])
}

// linkSplit is a live link that runs a program other than the pinned
// program its pin names (or that program's L3 variant).
type linkSplit struct {
	Pin  string
	Runs ebpf.ProgramID
	Want []pinnedProgram // the pinned programs it may run; empty: none is pinned
	want []string        // their names, pinned or not, for messages
}

func (s linkSplit) String() string {
	runs := fmt.Sprintf("program id %d", s.Runs)
	if p, err := ebpf.NewProgramFromID(s.Runs); err == nil {
		if info, err := p.Info(); err == nil && info.Name != "" {
			runs += fmt.Sprintf(" (%s)", info.Name)
		}
		p.Close()
	}
	if len(s.Want) == 0 {
		return fmt.Sprintf("%s runs %s, but no %s%s is pinned", s.Pin, runs, maps.ProgPrefix, s.want[0])
	}
	var want []string
	for _, p := range s.Want {
		want = append(want, fmt.Sprintf("%s%s (id %d)", maps.ProgPrefix, p.Name, p.ID))
	}
	return fmt.Sprintf("%s runs %s, not %s", s.Pin, runs, strings.Join(want, " or "))
}

// pinReport is what checkPins found: every split, none when all agree.
type pinReport struct {
	Maps  []mapSplit
	Links []linkSplit
	// What was compared: the pinned programs, and the maps of the spec
	// each uses (program name -> map name -> id).
	progs map[string]progIdent
	uses  map[string]map[string]ebpf.MapID
}

func (r pinReport) ok() bool { return len(r.Maps) == 0 && len(r.Links) == 0 }

// problems describes each split.
func (r pinReport) problems() []string {
	var out []string
	for _, s := range r.Maps {
		out = append(out, s.String())
	}
	for _, s := range r.Links {
		out = append(out, s.String())
	}
	return out
}

// splitError is the error of a split dataplane: it wraps maps.ErrSplit,
// names every difference and says what to do.
func splitError(dp *Dataplane, root string, problems []string) error {
	return fmt.Errorf("%s under %s: %w: %s; run 'tunmux load %s' to re-pin what the datapath uses, or 'tunmux unload %s' to start over (this deletes its entries)",
		dp.Name, root, maps.ErrSplit, strings.Join(problems, "; "), dp.Name, dp.Name)
}

// checkPins compares dp's pins in dir with what its pinned programs and
// links use: each map of spec that a pinned program uses must be the map
// pinned under its name (pinned, by name), and each live link must run
// the pinned program its pin names. It changes nothing.
func checkPins(dir string, dp *Dataplane, shapes map[string]*ebpf.MapSpec, pinned map[string]pinnedMap) (pinReport, error) {
	progs, err := pinnedPrograms(dir, dp)
	if err != nil {
		return pinReport{}, err
	}
	rep := pinReport{progs: progs, uses: map[string]map[string]ebpf.MapID{}}
	specNames := map[string]string{} // kernel name -> spec name
	for name := range shapes {
		if !strings.HasPrefix(name, ".") {
			specNames[kernelName(name)] = name
		}
	}
	// Maps are told apart by their kernel name, which tunmux set from the
	// spec when it created them: a pin may hold any map.
	nameOf := map[ebpf.MapID]string{}
	for _, pm := range pinned {
		nameOf[pm.ID] = specNames[pm.Name]
	}
	used := map[string]map[ebpf.MapID][]string{}
	for _, p := range dp.Programs {
		info, ok := progs[p.Name]
		if !ok {
			continue
		}
		for _, id := range info.MapIDs {
			name, known := nameOf[id]
			if !known {
				name = specNames[mapNameOfID(id)] // "" for .rodata and friends
				nameOf[id] = name
			}
			if name == "" {
				continue
			}
			if rep.uses[p.Name] == nil {
				rep.uses[p.Name] = map[string]ebpf.MapID{}
			}
			rep.uses[p.Name][name] = id
			if used[name] == nil {
				used[name] = map[ebpf.MapID][]string{}
			}
			used[name][id] = append(used[name][id], p.Name)
		}
	}
	users := func(name string) func(ebpf.MapID) string {
		return func(id ebpf.MapID) string {
			list := used[name][id]
			if len(list) == 1 {
				return "program " + list[0]
			}
			return "programs " + strings.Join(list, ", ")
		}
	}
	for _, name := range sortedKeys(used) {
		u, pid := used[name], pinned[name].ID
		if len(u) == 1 && pid != 0 && len(u[pid]) > 0 {
			continue
		}
		rep.Maps = append(rep.Maps, mapSplit{Name: name, Pinned: pid, Used: u, users: users(name)})
	}

	pins, err := linkPins(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, err
	}
	sort.Strings(pins)
	for _, pin := range pins {
		name, _, _ := parseLinkPin(pin)
		p, ok := dp.Program(name)
		if !ok {
			continue
		}
		l, err := link.LoadPinnedLink(filepath.Join(dir, pin), nil)
		if err != nil {
			continue // defunct: it runs nothing
		}
		info, err := l.Info()
		l.Close()
		if err != nil || linkIfindex(info) == 0 {
			continue
		}
		s := linkSplit{Pin: pin, Runs: ebpf.ProgramID(info.Program)}
		for _, n := range []string{p.Name, p.L3Variant} {
			if n == "" {
				continue
			}
			s.want = append(s.want, n)
			if pi, ok := progs[n]; ok {
				s.Want = append(s.Want, pinnedProgram{Name: n, ID: pi.ID})
			}
		}
		// A link running the observed build of its program is a capture or
		// monitor at work (or left by one that died): not a split.
		if !slices.ContainsFunc(s.Want, func(w pinnedProgram) bool { return w.ID == s.Runs }) && !isObserved(s.Runs) {
			rep.Links = append(rep.Links, s)
		}
	}
	return rep, nil
}

// fromMap opens a map, says something of it and closes it: "" when either
// fails.
func fromMap(open func() (*ebpf.Map, error), say func(*ebpf.Map) (string, error)) string {
	m, err := open()
	if err != nil {
		return ""
	}
	defer m.Close()
	s, err := say(m)
	if err != nil {
		return ""
	}
	return s
}

// Repair is one split between the pins and the datapath that Load mended.
type Repair struct {
	Pin    string `json:"pin"`
	Action string `json:"action"`
}

// planMapRepairs opens, for each map split, the map the pinned programs
// use, to be pinned in place of what is pinned (or missing) there. A map
// the programs disagree on cannot be repaired: the error wraps
// maps.ErrSplit and names it. Nothing changes; the caller owns the maps.
func planMapRepairs(dir string, dp *Dataplane, root string, rep pinReport) (map[string]*ebpf.Map, []Repair, error) {
	use := map[string]*ebpf.Map{}
	var repairs []Repair
	var refused []string
	for _, s := range rep.Maps {
		if len(s.Used) > 1 {
			// Kept only if the programs using other maps are replaced by
			// this build's code (see checkKept).
			if len(s.Used[s.Pinned]) == 0 {
				refused = append(refused, s.String())
			}
			continue
		}
		for id := range s.Used {
			m, err := ebpf.NewMapFromID(id)
			if err != nil {
				closeAll(use)
				return nil, nil, fmt.Errorf("open map %s (id %d), which the pinned programs use: %w", s.Name, id, err)
			}
			use[s.Name] = m
			action := fmt.Sprintf("pinned map id %d, which %s use (the pin was missing)", id, s.users(id))
			if s.Pinned != 0 {
				action = fmt.Sprintf("pinned map id %d, which %s use, in place of map id %d%s", id, s.users(id), s.Pinned, entriesDropped(maps.MapPin(dir, s.Name)))
			}
			repairs = append(repairs, Repair{Pin: maps.MapPrefix + s.Name, Action: action})
		}
	}
	if len(refused) > 0 {
		closeAll(use)
		return nil, nil, refuseSplit(dp, root, refused)
	}
	return use, repairs, nil
}

// checkKept checks, before anything is pinned, that each pinned program
// that Load keeps (its code is coll's: the same tag) uses the maps coll's
// programs were loaded with (ids, by name): programs it replaces are free
// to have used others. A difference wraps maps.ErrSplit.
func checkKept(dp *Dataplane, root string, rep pinReport, coll *ebpf.Collection, ids map[string]pinnedMap) error {
	var problems []string
	for _, p := range dp.Programs {
		old, pinned := rep.progs[p.Name]
		prog := coll.Programs[p.object()]
		if !pinned || prog == nil {
			continue
		}
		info, err := prog.Info()
		if err != nil {
			return fmt.Errorf("inspect program %s: %w", p.Name, err)
		}
		if info.Tag != old.Tag {
			continue // replaced
		}
		for _, name := range sortedKeys(rep.uses[p.Name]) {
			if id, want := rep.uses[p.Name][name], ids[name].ID; id != want {
				problems = append(problems, fmt.Sprintf("program %s, which this build keeps, uses map %s id %d, not id %d", p.Name, name, id, want))
			}
		}
	}
	if len(problems) > 0 {
		return refuseSplit(dp, root, problems)
	}
	return nil
}

// refuseSplit is the error of a split Load cannot mend.
func refuseSplit(dp *Dataplane, root string, problems []string) error {
	return fmt.Errorf("load %s under %s: %w: %s; tunmux cannot tell which to keep: run 'tunmux unload %s' (this deletes its entries) and load it again",
		dp.Name, root, maps.ErrSplit, strings.Join(problems, "; "), dp.Name)
}

// entriesDropped says how many entries the map pinned at path holds (they
// are dropped with it).
func entriesDropped(path string) string {
	return fromMap(func() (*ebpf.Map, error) { return ebpf.LoadPinnedMap(path, nil) }, func(m *ebpf.Map) (string, error) {
		n, err := countEntries(m)
		return fmt.Sprintf(", which held %d entries no program read", n), err
	})
}

// repairLinks moves each live link that runs a program other than the
// pinned program its pin names to that program (on an interface without
// an Ethernet header, to its L3 variant).
func repairLinks(dir string, rep pinReport) ([]Repair, error) {
	var repairs []Repair
	for _, s := range rep.Links {
		if len(s.Want) == 0 {
			return repairs, fmt.Errorf("%s: %w", s, maps.ErrSplit)
		}
		target := s.Want[0]
		if len(s.Want) > 1 {
			l2, err := linkIsL2(s.Pin)
			if err != nil {
				return repairs, fmt.Errorf("%s: cannot tell which variant it should run: %w", s, err)
			}
			if !l2 {
				target = s.Want[1]
			}
		}
		prog, err := ebpf.LoadPinnedProgram(maps.ProgPin(dir, target.Name), nil)
		if err != nil {
			return repairs, fmt.Errorf("open pinned program %s: %w", target.Name, err)
		}
		l, err := link.LoadPinnedLink(filepath.Join(dir, s.Pin), nil)
		if err == nil {
			err = l.Update(prog)
			l.Close()
		}
		prog.Close()
		if err != nil {
			return repairs, fmt.Errorf("move link %s to %s%s: %w", s.Pin, maps.ProgPrefix, target.Name, err)
		}
		repairs = append(repairs, Repair{Pin: s.Pin, Action: fmt.Sprintf("moved from program id %d to %s%s (id %d)", s.Runs, maps.ProgPrefix, target.Name, target.ID)})
	}
	return repairs, nil
}

// linkIsL2 reports whether the interface a link pin names has an Ethernet
// header, looking it up in its namespace.
func linkIsL2(pin string) (bool, error) {
	_, ino, ifindex := parseLinkPin(pin)
	ns, err := netdev.FindByInode(ino)
	if err != nil {
		return false, err
	}
	var l2 bool
	err = netdev.DoHandle(ns.Handle, func() error {
		ifc, err := netdev.ByIndex(int(ifindex))
		l2 = ifc.L2
		return err
	})
	return l2, err
}
