package dataplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tunmux/tunmux/maps"
)

// MaxMaxEntries bounds --max-entries.
const MaxMaxEntries = 1 << 24

// LoadOptions are the parameters of Load.
type LoadOptions struct {
	// MaxEntries sizes the main map; 0 keeps the pinned size, or uses the
	// dataplane's default on a first load.
	MaxEntries uint32
	// Version is recorded in map_meta on a first load, and in
	// map_provenance whenever this load writes programs.
	Version string
	// Built is this build's commit time (zero: unknown). A load that would
	// replace programs written by a build with a later time is refused
	// (maps.ErrDowngrade) unless AllowDowngrade.
	Built          time.Time
	AllowDowngrade bool
}

// LoadResult says what Load did.
type LoadResult struct {
	Dataplane  string   `json:"dataplane"`
	Path       string   `json:"path"`
	Created    []string `json:"created"`  // pins created by this load
	Upgraded   []string `json:"upgraded"` // programs replaced by this build's code, links moved over
	Repaired   []Repair `json:"repaired"` // pins that disagreed with the datapath, mended
	MaxEntries uint32   `json:"max_entries"`
	Schema     uint32   `json:"schema"`
	// MigratedFrom is the schema this load migrated the pinned state
	// from, in place (0: none).
	MigratedFrom uint32 `json:"migrated_from,omitempty"`
	// Resized says how a load with another --max-entries grew (or shrank)
	// the maps of a loaded dataplane, entries and links kept.
	Resized *Resize `json:"resized,omitempty"`
	// Provenance is the record this load wrote when it wrote programs:
	// this build, and the build whose programs it replaced.
	Provenance *maps.Provenance `json:"provenance,omitempty"`
}

// Changed reports whether the load created, replaced or repaired anything.
func (r LoadResult) Changed() bool {
	return len(r.Created) > 0 || len(r.Upgraded) > 0 || len(r.Repaired) > 0 || r.MigratedFrom != 0
}

// Load loads dp under the locked root, idempotently: compatible pins are
// reused, missing ones created, programs whose code changed are replaced and
// their links moved to the new code. If a pinned map is incompatible (type,
// key or value size, capacity, flags, schema), it returns an error wrapping
// maps.ErrIncompatible that names each difference, and changes nothing.
//
// It also mends splits between the pins and the datapath (see checkPins):
// a map pin that is missing or holds another map than the one the pinned
// programs use gets the map they use, entries and all; a link that runs
// another program than the pinned one of its name is moved to it. A split
// it cannot mend (the programs use different maps of one name) is an error
// wrapping maps.ErrSplit, and nothing changes.
func Load(lock *maps.Lock, dp *Dataplane, opts LoadOptions) (LoadResult, error) {
	if opts.MaxEntries > MaxMaxEntries {
		return LoadResult{}, maps.Invalid("--max-entries", fmt.Sprint(opts.MaxEntries), "is too large", fmt.Sprintf("1..%d", MaxMaxEntries))
	}
	if dp.FixedSize && opts.MaxEntries != 0 && opts.MaxEntries != dp.DefaultMaxEntries {
		return LoadResult{}, maps.Invalid("--max-entries", fmt.Sprint(opts.MaxEntries), fmt.Sprintf("%s has a fixed capacity", dp.Name), fmt.Sprintf("omit it (%s holds %d)", dp.Name, dp.DefaultMaxEntries))
	}
	root := lock.Root()
	dir := root.Dir(dp.Name)
	res := LoadResult{Dataplane: dp.Name, Path: dir, Schema: dp.Schema, Created: []string{}, Upgraded: []string{}, Repaired: []Repair{}}

	spec, err := dp.Spec()
	if err != nil {
		return res, err
	}
	// Where the pins and the datapath disagree, the datapath's maps win:
	// they hold the entries that take effect.
	pinned, err := pinnedMaps(dir, spec.Maps)
	if err != nil {
		return res, err
	}
	split, err := checkPins(dir, dp, spec.Maps, pinned)
	if err != nil {
		return res, err
	}
	use, repairs, err := planMapRepairs(dir, dp, root.Path, split)
	if err != nil {
		return res, err
	}
	if opts.MaxEntries != 0 && !dp.FixedSize {
		if m, err := ebpf.LoadPinnedMap(maps.MapPin(dir, dp.MainMap), nil); err == nil {
			pinnedCap := m.MaxEntries()
			m.Close()
			if pinnedCap != opts.MaxEntries && split.ok() {
				return resize(lock, dp, opts.MaxEntries, res)
			}
		}
	}
	capacity := opts.MaxEntries
	if capacity == 0 {
		capacity = dp.DefaultMaxEntries
		if m := use[dp.MainMap]; m != nil {
			capacity = m.MaxEntries()
		} else if m, err := ebpf.LoadPinnedMap(maps.MapPin(dir, dp.MainMap), nil); err == nil {
			capacity = m.MaxEntries()
			m.Close()
		}
	}
	dp.sizeMaps(spec.Maps, capacity)
	res.MaxEntries = capacity

	existing, missing, err := maps.OpenMapsUsing(dir, spec.Maps, use)
	if err != nil {
		return res, fmt.Errorf("load %s: %w; to start over run 'tunmux unload %s' (this deletes its entries)%s",
			dp.Name, err, dp.Name, capacityHint(err, dp))
	}
	defer closeAll(existing)
	var migration *Migration
	if m, ok := existing["meta"]; ok {
		meta, err := maps.ReadMeta(m)
		if err != nil {
			return res, err
		}
		if meta.Schema != 0 && meta.Schema != dp.Schema {
			mig, ok := dp.migrationFrom(meta.Schema)
			if !ok {
				return res, fmt.Errorf("load %s: pinned state has schema %d, this tunmux uses schema %d: %w; run 'tunmux unload %s' with the tunmux that loaded it, then load again",
					dp.Name, meta.Schema, dp.Schema, maps.ErrIncompatible, dp.Name)
			}
			migration = &mig
		}
	}

	// Everything is checked; now build what is missing, unpinned.
	all := map[string]*ebpf.Map{}
	for name, m := range existing {
		all[name] = m
	}
	created := map[string]*ebpf.Map{}
	defer closeAll(created)
	for _, name := range missing {
		m, err := ebpf.NewMap(spec.Maps[name])
		if err != nil {
			return res, fmt.Errorf("create map %s: %w", name, err)
		}
		created[name] = m
		all[name] = m
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: all})
	if err != nil {
		return res, fmt.Errorf("load %s programs: %w", dp.Name, err)
	}
	defer coll.Close()
	ids, err := describeMaps(all)
	if err != nil {
		return res, err
	}
	if err := checkKept(dp, root.Path, split, coll, ids); err != nil {
		return res, err
	}
	if migration != nil {
		// The old programs keep reading the old layout until theirs are
		// replaced below; the new layout is filled first.
		if err := migration.Before(all); err != nil {
			return res, fmt.Errorf("load %s: migrate from schema %d: %w", dp.Name, migration.From, err)
		}
	}

	prov, err := checkDowngrade(dir, dp, coll, opts)
	if err != nil {
		return res, err
	}

	// Pin: maps first, then programs, then the meta record (last, so that a
	// load cut short is completed by the next one).
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, fmt.Errorf("create %s: %w", dir, err)
	}
	for _, name := range sortedKeys(created) {
		if err := created[name].Pin(maps.MapPin(dir, name)); err != nil {
			return res, fmt.Errorf("pin map %s: %w", name, err)
		}
		res.Created = append(res.Created, maps.MapPrefix+name)
	}
	for _, r := range repairs {
		name := strings.TrimPrefix(r.Pin, maps.MapPrefix)
		if err := pinOver(maps.MapPin(dir, name), existing[name].Pin); err != nil {
			return res, fmt.Errorf("pin map %s: %w", name, err)
		}
		res.Repaired = append(res.Repaired, r)
	}
	wroteProgs := false
	for _, p := range dp.Programs {
		prog := coll.Programs[p.object()]
		if prog == nil {
			return res, fmt.Errorf("program %s is missing from the %s object", p.object(), dp.Name)
		}
		upgraded, createdPin, err := pinProgram(dir, dp, p.Name, prog)
		if err != nil {
			return res, err
		}
		if createdPin {
			res.Created = append(res.Created, maps.ProgPrefix+p.Name)
		}
		if upgraded {
			res.Upgraded = append(res.Upgraded, p.Name)
		}
		wroteProgs = wroteProgs || createdPin || upgraded
	}
	if wroteProgs {
		if err := maps.WriteProvenance(lock, dir, prov); err != nil {
			return res, err
		}
		res.Provenance = &prov
	}
	// Links last, once every program is pinned; then all must agree.
	if split, err = checkPins(dir, dp, spec.Maps, ids); err != nil {
		return res, err
	}
	moved, err := repairLinks(dir, split)
	res.Repaired = append(res.Repaired, moved...)
	if err != nil {
		return res, err
	}
	if len(split.Maps) > 0 {
		return res, splitError(dp, root.Path, pinReport{Maps: split.Maps}.problems())
	}
	meta, err := maps.ReadMeta(all["meta"])
	if err != nil {
		return res, err
	}
	if migration != nil {
		if err := migration.After(all); err != nil {
			return res, fmt.Errorf("load %s: migrate from schema %d: %w", dp.Name, migration.From, err)
		}
		res.MigratedFrom = migration.From
	}
	if meta.Schema != dp.Schema {
		meta = maps.Meta{Schema: dp.Schema, MaxEntries: res.MaxEntries, LoadedAt: time.Now(), Version: opts.Version}
		if err := maps.WriteMeta(lock, all["meta"], meta); err != nil {
			return res, err
		}
	}
	return res, nil
}

// checkDowngrade refuses (maps.ErrDowngrade) a load that would replace
// pinned programs written by a newer build than this one, unless
// opts.AllowDowngrade, and changes nothing. It returns the provenance
// record to write if the load writes programs: this build, and the one
// whose programs it replaces. Builds whose time is unknown are not ordered.
func checkDowngrade(dir string, dp *Dataplane, coll *ebpf.Collection, opts LoadOptions) (maps.Provenance, error) {
	next := maps.Provenance{WrittenAt: time.Now().UTC(), Version: opts.Version, Built: opts.Built}
	replacing := programsToReplace(dir, dp, coll)
	if len(replacing) == 0 {
		return next, nil
	}
	prev, found, err := maps.ReadProvenance(dir)
	if err != nil || !found {
		return next, err
	}
	next.Replaced, next.ReplacedBuilt = prev.Version, prev.Built
	next.Downgrade = !prev.Built.IsZero() && !opts.Built.IsZero() && prev.Built.After(opts.Built)
	if next.Downgrade && !opts.AllowDowngrade {
		return next, fmt.Errorf("%s under %s runs programs (%s) of tunmux %s, built %s, newer than this tunmux %s, built %s; loading would replace them with older code: %w (run the newer tunmux, or load again with --allow-downgrade)",
			dp.Name, filepath.Dir(dir), strings.Join(replacing, ", "), prev.Version, prev.Built.Format(time.DateOnly+" 15:04Z"),
			opts.Version, opts.Built.Format(time.DateOnly+" 15:04Z"), maps.ErrDowngrade)
	}
	return next, nil
}

// programsToReplace lists the programs of dp pinned in dir whose code
// differs from coll's.
func programsToReplace(dir string, dp *Dataplane, coll *ebpf.Collection) []string {
	var out []string
	for _, p := range dp.Programs {
		prog := coll.Programs[p.object()]
		old, err := ebpf.LoadPinnedProgram(maps.ProgPin(dir, p.Name), nil)
		if err != nil || prog == nil {
			continue
		}
		oldInfo, err1 := old.Info()
		newInfo, err2 := prog.Info()
		old.Close()
		if err1 == nil && err2 == nil && oldInfo.Tag != newInfo.Tag {
			out = append(out, p.Name)
		}
	}
	return out
}

// pinProgram pins prog as prog_<name>. If a program is pinned there already
// with the same code, nothing changes; with other code, the pin is replaced
// and every link of that program is updated to the new code.
func pinProgram(dir string, dp *Dataplane, name string, prog *ebpf.Program) (upgraded, created bool, err error) {
	return replaceProgram(dir, dp, name, prog, false)
}

// replaceProgram is pinProgram; with force, a pinned program of the same
// code is replaced too (by one that uses other maps: a resize).
func replaceProgram(dir string, dp *Dataplane, name string, prog *ebpf.Program, force bool) (upgraded, created bool, err error) {
	path := maps.ProgPin(dir, name)
	old, err := ebpf.LoadPinnedProgram(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		if err := prog.Pin(path); err != nil {
			return false, false, fmt.Errorf("pin program %s: %w", name, err)
		}
		return false, true, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("open pinned program %s: %w", path, err)
	}
	defer old.Close()
	oldInfo, err1 := old.Info()
	newInfo, err2 := prog.Info()
	if err1 != nil || err2 != nil {
		return false, false, fmt.Errorf("inspect program %s: %w", name, errors.Join(err1, err2))
	}
	if oldInfo.Tag == newInfo.Tag && !force {
		return false, false, nil
	}
	// Links move to the new code: every link running the old program
	// (whatever name it is pinned under: an L3 variant runs under its
	// program's name), and links pinned under this name that run no pinned
	// program at all (left over from an earlier build).
	links, err := linkPins(dir)
	if err != nil {
		return false, false, err
	}
	oldID, _ := oldInfo.ID()
	pinned := pinnedProgramIDs(dir)
	for _, lp := range links {
		l, err := link.LoadPinnedLink(filepath.Join(dir, lp), nil)
		if err != nil {
			continue // a defunct link has nothing to upgrade
		}
		info, ierr := l.Info()
		mine := ierr == nil && (info.Program == oldID || (strings.HasPrefix(lp, maps.LinkPrefix+name+"_") && !pinned[info.Program]))
		if !mine {
			l.Close()
			continue
		}
		err = l.Update(prog)
		l.Close()
		if err != nil {
			return false, false, fmt.Errorf("move link %s to the new %s program: %w", lp, name, err)
		}
	}
	if err := pinOver(path, prog.Pin); err != nil {
		return false, false, fmt.Errorf("replace pinned program %s: %w", name, err)
	}
	return true, false, nil
}

// pinOver pins an object at path with pin, replacing whatever is pinned
// there in one step: bpffs refuses names with a dot, so it is pinned beside
// under a temporary name, then renamed over path.
func pinOver(path string, pin func(string) error) error {
	tmp := filepath.Join(filepath.Dir(path), "tmp_"+filepath.Base(path))
	_ = os.Remove(tmp)
	if err := pin(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// pinnedProgramIDs returns the ids of the programs pinned in dir.
func pinnedProgramIDs(dir string) map[ebpf.ProgramID]bool {
	ids := map[ebpf.ProgramID]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), maps.ProgPrefix) {
			continue
		}
		p, err := ebpf.LoadPinnedProgram(filepath.Join(dir, e.Name()), nil)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				ids[id] = true
			}
		}
		p.Close()
	}
	return ids
}

// UnloadResult says what Unload did.
type UnloadResult struct {
	Dataplane string   `json:"dataplane"`
	Path      string   `json:"path"`
	Detached  []string `json:"detached"` // link pins removed (their attachments end)
	Removed   []string `json:"removed"`  // other pins removed
	// Left lists what the folder held that tunmux's layout does not name
	// (pins or folders someone else put there): left alone, and with them
	// the folder.
	Left    []string `json:"left"`
	Devices []Device `json:"devices"` // devices its commands created: deleted, kept or left behind
	// DevicesUnknown says why its records of devices could not be read.
	DevicesUnknown string `json:"devices_unknown,omitempty"`
}

// Unload detaches every link of dp and removes its pins and folder, then
// deletes (opts.DeleteDevices) or lists as kept the devices its commands
// created. It is idempotent: a dataplane that is not loaded is not an error.
func Unload(lock *maps.Lock, dp *Dataplane, opts UnloadOptions) (UnloadResult, error) {
	dir := lock.Root().Dir(dp.Name)
	res := UnloadResult{Dataplane: dp.Name, Path: dir, Detached: []string{}, Removed: []string{}, Left: []string{}, Devices: []Device{}}
	if err := maps.RefuseSymlink(dir); err != nil {
		return res, err // never remove another root's pins through a link
	}
	var devs []Device
	if l, err := openLoaded(lock.Root(), dp, false); err == nil {
		devs, err = createdDevices(l)
		l.Close()
		if err != nil {
			res.DevicesUnknown = err.Error()
		}
	} else if !errors.Is(err, maps.ErrNotLoaded) {
		res.DevicesUnknown = err.Error()
	}
	if err := unloadPins(dir, dp, &res); err != nil {
		return res, err
	}
	res.Devices = settleDevices(devs, opts.Netns, !opts.DeleteDevices)
	return res, nil
}

// unloadPins detaches every link pinned in dir, then removes the other
// pins and dir, noting each in res. Only the names dp's layout gives are
// removed; anything else is left, with the folder, and listed in res.Left.
func unloadPins(dir string, dp *Dataplane, res *UnloadResult) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read: %w", maps.NoPermission(dir, err))
	}
	layout := dp.layoutNames()
	var mine []os.DirEntry
	for _, e := range entries {
		if e.IsDir() || !layout.names(e.Name()) {
			res.Left = append(res.Left, e.Name())
			continue
		}
		mine = append(mine, e)
	}
	// Links first, so traffic stops being handled before the state goes.
	for _, e := range mine {
		if !strings.HasPrefix(e.Name(), maps.LinkPrefix) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if l, err := link.LoadPinnedLink(path, nil); err == nil {
			_ = l.Unpin()
			l.Close()
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		res.Detached = append(res.Detached, e.Name())
	}
	for _, e := range mine {
		if strings.HasPrefix(e.Name(), maps.LinkPrefix) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		res.Removed = append(res.Removed, e.Name())
	}
	if len(res.Left) > 0 {
		return nil
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// layout is the set of pin names a dataplane's folder may hold.
type layout struct {
	fixed map[string]bool // map_X and prog_X, and their tmp_ names mid-replace
	progs map[string]bool // the programs a link pin may name
}

// layoutNames returns the pin names of d's layout (docs/pin-layout.md).
func (d *Dataplane) layoutNames() layout {
	l := layout{fixed: map[string]bool{}, progs: map[string]bool{}}
	add := func(name string) { l.fixed[name], l.fixed["tmp_"+name] = true, true }
	add(maps.MapPrefix + maps.ProvenanceMap)
	for name := range d.mapShapes() {
		add(maps.MapPrefix + name)
	}
	for _, p := range d.Programs {
		add(maps.ProgPrefix + p.Name)
		l.progs[p.Name] = true
	}
	return l
}

// names reports whether name is a pin of the layout: a map or program pin,
// or link_<program>_<netns inode>_<ifindex>.
func (l layout) names(name string) bool {
	if l.fixed[name] {
		return true
	}
	rest, ok := strings.CutPrefix(name, maps.LinkPrefix)
	if !ok {
		return false
	}
	parts := strings.Split(rest, "_")
	if len(parts) < 3 {
		return false
	}
	for _, num := range parts[len(parts)-2:] {
		if _, err := strconv.ParseUint(num, 10, 64); err != nil {
			return false
		}
	}
	return l.progs[strings.Join(parts[:len(parts)-2], "_")]
}

// Loaded is an open handle on a loaded dataplane's pinned maps.
type Loaded struct {
	DP   *Dataplane
	Root *maps.Root
	Dir  string
	Maps map[string]*ebpf.Map
	Meta maps.Meta
	// shared: a handle of a Reuse scope, closed when the scope ends.
	shared bool
	// state is the typed state over Maps that openAs made (one per handle,
	// so that what it learns lasts the scope).
	state any
}

// reuse is the open Reuse scope, if any: one handle per dataplane.
var reuse struct {
	sync.Mutex
	root   string
	depth  int
	loaded map[*Dataplane]*Loaded
}

// Reuse makes Open under root hand out one shared handle per dataplane
// until the returned function is called, which closes them: a command that
// checks, plans, writes and reads back one entry opens (and checks) each
// pinned map once instead of at every step. Scopes nest; a scope for
// another root leaves Open as it is.
func Reuse(root *maps.Root) (end func()) {
	reuse.Lock()
	defer reuse.Unlock()
	if reuse.depth > 0 && reuse.root != root.Path {
		return func() {}
	}
	if reuse.depth == 0 {
		reuse.root, reuse.loaded = root.Path, map[*Dataplane]*Loaded{}
	}
	reuse.depth++
	return func() {
		reuse.Lock()
		defer reuse.Unlock()
		if reuse.depth--; reuse.depth == 0 {
			for _, l := range reuse.loaded {
				closeAll(l.Maps)
			}
			reuse.loaded = nil
		}
	}
}

// Open opens the pinned state of dp under root. It fails with an error
// wrapping maps.ErrNotLoaded when dp is not (completely) loaded, with
// maps.ErrIncompatible when the pins do not match this tunmux, and with
// maps.ErrSplit when a pin is not what the pinned programs and links use
// (see checkPins), so that no entry is written where the datapath does not
// read it.
func Open(root *maps.Root, dp *Dataplane) (*Loaded, error) {
	reuse.Lock()
	defer reuse.Unlock()
	if reuse.depth == 0 || reuse.root != root.Path {
		return open(root, dp)
	}
	if l, ok := reuse.loaded[dp]; ok {
		return l, nil
	}
	l, err := open(root, dp)
	if err == nil {
		l.shared = true
		reuse.loaded[dp] = l
	}
	return l, err
}

// open is Open without the Reuse scope.
func open(root *maps.Root, dp *Dataplane) (*Loaded, error) {
	return openLoaded(root, dp, true)
}

// openLoaded is Open; without check, it does not look for splits (for unload,
// which reads records only to remove everything).
func openLoaded(root *maps.Root, dp *Dataplane, check bool) (*Loaded, error) {
	dir := root.Dir(dp.Name)
	notLoaded := fmt.Errorf("%s under %s: %w (run 'tunmux load %s')", dp.Name, root.Path, maps.ErrNotLoaded, dp.Name)
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, notLoaded
		}
		return nil, maps.NoPermission(dir, err)
	}
	if err := maps.RefuseSymlink(dir); err != nil {
		return nil, err
	}
	// The maps' shapes, not the parsed object: opening pins parses nothing.
	shapes := dp.mapShapes()
	// Accept the pinned capacity of the main map.
	if m, err := ebpf.LoadPinnedMap(maps.MapPin(dir, dp.MainMap), nil); err == nil {
		dp.sizeMaps(shapes, m.MaxEntries())
		m.Close()
	}
	open, missing, err := maps.OpenMaps(dir, shapes)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dp.Name, err)
	}
	var meta maps.Meta
	if m := open["meta"]; m != nil {
		if meta, err = maps.ReadMeta(m); err != nil {
			closeAll(open)
			return nil, err
		}
	}
	// An older schema's layout may lack maps of this one: say so first.
	if _, ok := dp.migrationFrom(meta.Schema); ok {
		closeAll(open)
		return nil, fmt.Errorf("%s under %s has schema %d, this tunmux uses %d: %w (run 'tunmux load %s' to migrate it in place, entries and links kept)",
			dp.Name, root.Path, meta.Schema, dp.Schema, maps.ErrIncompatible, dp.Name)
	}
	if check {
		pinned, err := describeMaps(open)
		var split pinReport
		if err == nil {
			split, err = checkPins(dir, dp, shapes, pinned)
		}
		if err == nil && !split.ok() {
			err = splitError(dp, root.Path, split.problems())
		}
		if err != nil {
			closeAll(open)
			return nil, err
		}
	}
	if len(missing) > 0 {
		closeAll(open)
		return nil, fmt.Errorf("%s under %s is missing %s: %w (run 'tunmux load %s' to complete it)",
			dp.Name, root.Path, strings.Join(missing, ", "), maps.ErrNotLoaded, dp.Name)
	}
	if meta.Schema != dp.Schema {
		closeAll(open)
		if meta.Schema == 0 {
			return nil, fmt.Errorf("%s under %s: a load did not finish: %w (run 'tunmux load %s')", dp.Name, root.Path, maps.ErrNotLoaded, dp.Name)
		}
		return nil, fmt.Errorf("%s under %s has schema %d, this tunmux uses %d: %w", dp.Name, root.Path, meta.Schema, dp.Schema, maps.ErrIncompatible)
	}
	return &Loaded{DP: dp, Root: root, Dir: dir, Maps: open, Meta: meta}, nil
}

// Handle is a loaded dataplane with the typed state over its maps; each
// dataplane's manager (Encap, L2TP, ...) is one.
type Handle[S any] struct {
	*Loaded
	State S
}

// NewHandle makes a handle of a loaded dataplane and its state.
func NewHandle[S any](l *Loaded, state S) Handle[S] { return Handle[S]{Loaded: l, State: state} }

// openAs opens dp under root and wraps it with its typed state: what the
// OpenEncap, OpenL2TP, ... functions return.
func openAs[S, H any](root *maps.Root, dp *Dataplane, state func(map[string]*ebpf.Map) (S, error), wrap func(Handle[S]) H) (H, error) {
	var none H
	l, err := Open(root, dp)
	if err != nil {
		return none, err
	}
	st, ok := l.state.(S)
	if !ok {
		if st, err = state(l.Maps); err != nil {
			l.Close()
			return none, err
		}
		l.state = st
	}
	return wrap(Handle[S]{Loaded: l, State: st}), nil
}

// Close closes the handle's maps (the pins stay).
func (l *Loaded) Close() {
	if !l.shared {
		closeAll(l.Maps)
	}
}

// Program opens the pinned program called name.
func (l *Loaded) Program(name string) (*ebpf.Program, error) {
	p, err := ebpf.LoadPinnedProgram(maps.ProgPin(l.Dir, name), nil)
	if err != nil {
		return nil, fmt.Errorf("open pinned program %s of %s: %w (run 'tunmux load %s')", name, l.DP.Name, err, l.DP.Name)
	}
	return p, nil
}

func capacityHint(err error, dp *Dataplane) string {
	if strings.Contains(err.Error(), "MaxEntries") {
		return fmt.Sprintf(", or load with --max-entries equal to the pinned capacity of %s", dp.MainMap)
	}
	return ""
}

func closeAll(ms map[string]*ebpf.Map) {
	for _, m := range ms {
		m.Close()
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
