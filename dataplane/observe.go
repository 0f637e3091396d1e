package dataplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tunmux/tunmux/maps"
)

// ObserveConfig is what an observation asks the observed programs for (the
// C struct observe_config in progs/include/observe.h).
type ObserveConfig struct {
	Flags        uint32 // ObserveEntry | ObserveExit | ObserveEvents
	Ifindex      uint32 // only frames arriving on this interface; 0: all
	Snaplen      uint32 // bytes kept of a captured frame
	EventSnaplen uint32 // bytes kept with an event
	Outcomes     [2]uint64
	Rate         uint64 // events per second per CPU
	Burst        uint64 // events at once per CPU
	Owner        uint32 // pid of the observing process
	Reserved     uint32
}

// What an observation reports (ObserveConfig.Flags, and a record's Where).
const (
	ObserveEntry  = 1 << 0
	ObserveExit   = 1 << 1
	ObserveEvents = 1 << 2
)

// Observed-build names, from observe.h.
const (
	observeConfigMap = "observe_config"
	// ObserveEventsMap is the perf event array the observed programs write to.
	ObserveEventsMap = "observe_events"
)

// ErrObserved: the links asked for are observed by another running capture
// or monitor.
var ErrObserved = errors.New("already observed")

// ObservedLink is one link whose program an Observation replaced.
type ObservedLink struct {
	Pin      string    // link pin name
	Program  string    // the program's name (its function: "encap", "route_egress_l3")
	Hook     maps.Hook // where it is attached
	Netns    uint64    // inode of the interface's namespace
	Ifindex  uint32
	link     link.Link
	original *ebpf.Program // what it ran, and runs again when the observation ends
	observed *ebpf.Program
	swapped  bool
}

// Observation is a dataplane whose chosen links run its observed build
// until Close: the same maps, plus a perf event array (Events) to read.
type Observation struct {
	DP     *Dataplane
	Links  []*ObservedLink
	Events *ebpf.Map
	coll   *ebpf.Collection
}

// LinkChoice says which links to observe: given a link's program (its
// function name), hook, namespace inode and ifindex.
type LinkChoice func(program string, hook maps.Hook, netns uint64, ifindex uint32) bool

// Observe prepares the observed build of the programs running on the links
// choose picks, writing cfg (with this process as the owner) for them. The
// links keep running what they run until Start; a link observed by another
// live process refuses with ErrObserved, one left by a process that died is
// taken over. No link chosen: ErrNotFound.
func (l *Loaded) Observe(choose LinkChoice, cfg ObserveConfig) (*Observation, error) {
	pins, err := linkPins(l.Dir)
	if err != nil {
		return nil, err
	}
	sort.Strings(pins)
	o := &Observation{DP: l.DP}
	ok := false
	defer func() {
		if !ok {
			o.Close()
		}
	}()
	funcs := map[string]bool{}
	for _, pin := range pins {
		ol, err := l.observedLink(pin, choose)
		if err != nil {
			return nil, err
		}
		if ol != nil {
			o.Links = append(o.Links, ol)
			funcs[ol.Program] = true
		}
	}
	if len(o.Links) == 0 {
		return nil, fmt.Errorf("no %s program is attached there: %w", l.DP.Name, maps.ErrNotFound)
	}
	spec, err := l.DP.ObservedSpec()
	if err != nil {
		return nil, err
	}
	for name := range spec.Programs {
		if !funcs[name] {
			delete(spec.Programs, name)
		}
	}
	replace := map[string]*ebpf.Map{}
	for name, ms := range spec.Maps {
		if m, ok := l.Maps[name]; ok {
			ms.MaxEntries = m.MaxEntries() // sized at load
			replace[name] = m
		}
	}
	o.coll, err = ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: replace})
	if err != nil {
		return nil, fmt.Errorf("load the observed build of %s: %w", l.DP.Name, err)
	}
	cfg.Owner = uint32(os.Getpid())
	if err := o.coll.Maps[observeConfigMap].Put(uint32(0), cfg); err != nil {
		return nil, fmt.Errorf("write %s: %w", observeConfigMap, err)
	}
	o.Events = o.coll.Maps[ObserveEventsMap]
	for _, ol := range o.Links {
		ol.observed = o.coll.Programs[ol.Program]
	}
	ok = true
	return o, nil
}

// observedLink opens the link pinned as pin if choose picks it: nil if not.
func (l *Loaded) observedLink(pin string, choose LinkChoice) (*ObservedLink, error) {
	name, netns, ifindex := parseLinkPin(pin)
	if _, known := l.DP.Program(name); !known {
		return nil, nil
	}
	lk, err := link.LoadPinnedLink(filepath.Join(l.Dir, pin), nil)
	if err != nil {
		return nil, nil // defunct: it runs nothing
	}
	info, err := lk.Info()
	if err != nil || linkIfindex(info) == 0 {
		lk.Close()
		return nil, nil
	}
	running, err := ebpf.NewProgramFromID(info.Program)
	if err != nil {
		lk.Close()
		return nil, fmt.Errorf("open the program link %s runs: %w", pin, err)
	}
	pinfo, err := running.Info()
	if err != nil {
		lk.Close()
		running.Close()
		return nil, fmt.Errorf("program of link %s: %w", pin, err)
	}
	fn := pinfo.Name // the kernel keeps the function's name (15 bytes)
	hook := maps.HookXDP
	if x := info.TCX(); x != nil {
		hook = maps.HookTCIngress
		if ebpf.AttachType(x.AttachType) == ebpf.AttachTCXEgress {
			hook = maps.HookTCEgress
		}
	}
	if !choose(fn, hook, netns, ifindex) {
		lk.Close()
		running.Close()
		return nil, nil
	}
	ol := &ObservedLink{Pin: pin, Program: fn, Hook: hook, Netns: netns, Ifindex: ifindex, link: lk, original: running}
	if owner, observed := observer(pinfo); observed {
		if owner != 0 && processAlive(owner) {
			lk.Close()
			running.Close()
			return nil, fmt.Errorf("%s on if%d is observed by process %d (a tunmux capture or monitor): %w; stop that one first",
				fn, ifindex, owner, ErrObserved)
		}
		// Left by an observer that died: run the pinned program again when done.
		running.Close()
		ol.original, err = ebpf.LoadPinnedProgram(maps.ProgPin(l.Dir, pinnedNameOf(l.DP, fn)), nil)
		if err != nil {
			lk.Close()
			return nil, fmt.Errorf("pinned program for %s: %w", fn, err)
		}
	}
	return ol, nil
}

// PinnedProgramName returns the name tunmux gives (in pins, attach, status)
// the program whose function in the object is fn, in any dataplane: fn
// itself when none differs.
func PinnedProgramName(fn string) string {
	for _, dp := range All() {
		if n := pinnedNameOf(dp, fn); n != fn {
			return n
		}
	}
	return fn
}

// IsL3Variant reports whether fn (a program's function) is the build of a
// program for devices without an Ethernet header (route's route_egress_l3).
func (d *Dataplane) IsL3Variant(fn string) bool {
	for _, p := range d.Programs {
		if q, ok := d.Program(p.L3Variant); ok && p.L3Variant != "" && q.object() == fn {
			return true
		}
	}
	return false
}

// pinnedNameOf returns the pin name of the program whose function is fn.
func pinnedNameOf(dp *Dataplane, fn string) string {
	for _, p := range dp.Programs {
		if kernelName(p.object()) == fn {
			return p.Name
		}
	}
	return fn
}

// observer reports whether a program is an observed build (it uses a map
// called observe_config) and the owner that map records.
func observer(info *ebpf.ProgramInfo) (owner uint32, observed bool) {
	ids, _ := info.MapIDs()
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue
		}
		mi, err := m.Info()
		if err == nil && mi.Name == observeConfigMap {
			var cfg ObserveConfig
			if m.Lookup(uint32(0), &cfg) == nil {
				owner = cfg.Owner
			}
			m.Close()
			return owner, true
		}
		m.Close()
	}
	return 0, false
}

// isObserved reports whether the program with id is an observed build.
func isObserved(id ebpf.ProgramID) bool {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return false
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return false
	}
	_, observed := observer(info)
	return observed
}

// processAlive reports whether process pid exists.
func processAlive(pid uint32) bool {
	_, err := os.Stat("/proc/" + strconv.FormatUint(uint64(pid), 10))
	return err == nil
}

// Start moves every chosen link to its observed program. A link that
// fails is reported after the ones moved are moved back.
func (o *Observation) Start() error {
	for _, ol := range o.Links {
		if err := ol.link.Update(ol.observed); err != nil {
			o.restore()
			return fmt.Errorf("observe %s (link %s): %w", ol.Program, ol.Pin, err)
		}
		ol.swapped = true
	}
	return nil
}

// restore moves the links back to the programs they ran; it returns the
// first failure.
func (o *Observation) restore() error {
	var errs []string
	for _, ol := range o.Links {
		if !ol.swapped {
			continue
		}
		if err := ol.link.Update(ol.original); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", ol.Pin, err))
			continue
		}
		ol.swapped = false
	}
	if len(errs) > 0 {
		return fmt.Errorf("restore observed links: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Close moves the links back to the programs they ran and releases the
// observed build.
func (o *Observation) Close() error {
	err := o.restore()
	for _, ol := range o.Links {
		ol.link.Close()
		if ol.original != nil {
			ol.original.Close()
		}
	}
	if o.coll != nil {
		o.coll.Close()
	}
	return err
}

// PinnedMeta reads a dataplane's meta record from its pin alone, whatever
// its schema: what doctor and an upgrade look at before opening the rest.
func PinnedMeta(root *maps.Root, dp *Dataplane) (maps.Meta, error) {
	m, err := ebpf.LoadPinnedMap(maps.MapPin(root.Dir(dp.Name), "meta"), nil)
	if err != nil {
		return maps.Meta{}, fmt.Errorf("open the meta pin of %s: %w", dp.Name, err)
	}
	defer m.Close()
	return maps.ReadMeta(m)
}
