package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Resize says what a load with another --max-entries did to a loaded
// dataplane's sized maps.
type Resize struct {
	From  uint32   `json:"from"`
	To    uint32   `json:"to"`
	Maps  []string `json:"maps"`  // the maps made anew at the new capacity
	Moved int      `json:"moved"` // entries copied into them (arrays' slots not counted)
}

// resize gives a loaded dataplane's main map, and the maps sized with it, the
// capacity n, entries, counters and links kept: each map is made anew at n
// and its entries copied, the programs are loaded again with the new maps,
// the new maps are pinned over the old, and every link is moved to the new
// programs in place (the datapath switches over at once, as in an upgrade).
// Counters the datapath adds to the old maps while the links move are
// carried over after. It changes nothing when it refuses: a dataplane that
// is not whole (split, older schema), programs of another build (load
// without --max-entries first), n below the entries a map holds, or a
// shrink of an array that entries index (encap's tunnel_stats).
func resize(lock *maps.Lock, dp *Dataplane, n uint32, res LoadResult) (LoadResult, error) {
	l, err := Open(lock.Root(), dp)
	if err != nil {
		return res, fmt.Errorf("to change the capacity of %s, it must be whole first: %w", dp.Name, err)
	}
	defer l.Close()
	if busy := observedLinks(l.Dir); len(busy) > 0 {
		return res, fmt.Errorf("a capture or monitor runs on %s's links %v: stop it, then change --max-entries: %w", dp.Name, busy, maps.ErrInUse)
	}
	sized := append([]string{dp.MainMap}, dp.SizedMaps...)
	from := l.Maps[dp.MainMap].MaxEntries()
	for _, name := range sized {
		c, err := countEntries(l.Maps[name])
		if err != nil {
			return res, fmt.Errorf("count the entries of %s: %w", name, err)
		}
		if isArray(l.Maps[name]) && n < from {
			return res, maps.Invalid("--max-entries", fmt.Sprint(n), fmt.Sprintf("would shrink %s's map %s, an array its entries index (it can grow, not shrink)", dp.Name, name),
				fmt.Sprintf("%d..%d; to shrink, 'tunmux export > state.yaml', 'tunmux unload %s', 'tunmux load %s --max-entries %d', 'tunmux apply -f state.yaml'", from, MaxMaxEntries, dp.Name, dp.Name, n))
		}
		if c > int(n) && !isArray(l.Maps[name]) {
			return res, maps.Invalid("--max-entries", fmt.Sprint(n), fmt.Sprintf("is below the %d entries of %s's map %s", c, dp.Name, name),
				fmt.Sprintf("%d..%d", c, MaxMaxEntries))
		}
	}
	spec, err := dp.Spec()
	if err != nil {
		return res, err
	}
	dp.sizeMaps(spec.Maps, n)
	all := map[string]*ebpf.Map{}
	for name, m := range l.Maps {
		all[name] = m
	}
	fresh := map[string]*ebpf.Map{}
	defer closeAll(fresh)
	snapshot := map[string]map[string][][]byte{} // per-CPU maps: key -> values copied
	rz := Resize{From: from, To: n, Maps: []string{}}
	for _, name := range sized {
		old := l.Maps[name]
		if old == nil {
			continue
		}
		m, err := ebpf.NewMap(spec.Maps[name])
		if err != nil {
			return res, fmt.Errorf("create map %s with %d entries: %w", name, n, err)
		}
		fresh[name], all[name] = m, m
		var moved int
		var snap map[string][][]byte
		copyAll := func() (err error) { moved, snap, err = copyEntries(old, m); return err }
		if isDevmap(old) {
			err = inNetnsOfLinks(l, copyAll)
		} else {
			err = copyAll()
		}
		if err != nil {
			return res, fmt.Errorf("copy the entries of %s: %w", name, err)
		}
		if snap != nil {
			snapshot[name] = snap
		}
		if !isArray(old) {
			rz.Moved += moved // an array's every slot is copied: count entries
		}
		rz.Maps = append(rz.Maps, name)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: all})
	if err != nil {
		return res, fmt.Errorf("load %s programs with the new maps: %w", dp.Name, err)
	}
	defer coll.Close()
	if other := programsToReplace(l.Dir, dp, coll); len(other) > 0 {
		return res, fmt.Errorf("%s's pinned programs (%v) are another build's code: run 'tunmux load %s' first, then change --max-entries: %w",
			dp.Name, other, dp.Name, maps.ErrIncompatible)
	}

	// Everything is ready: swap. The map pins first (a load cut short here
	// is mended by the next load, which pins back the maps the programs
	// use), then the programs, moving their links.
	for _, name := range rz.Maps {
		if err := pinOver(maps.MapPin(l.Dir, name), fresh[name].Pin); err != nil {
			return res, fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	for _, p := range dp.Programs {
		prog := coll.Programs[p.object()]
		if prog == nil {
			return res, fmt.Errorf("program %s is missing from the %s object", p.object(), dp.Name)
		}
		if _, _, err := replaceProgram(l.Dir, dp, p.Name, prog, true); err != nil {
			return res, err
		}
	}
	// The old maps are no longer written: carry over what the datapath
	// counted in them since the copy.
	for name, snap := range snapshot {
		if err := addSince(l.Maps[name], fresh[name], snap); err != nil {
			return res, fmt.Errorf("carry over the counters of %s: %w", name, err)
		}
	}
	meta := l.Meta
	meta.MaxEntries = n
	if err := maps.WriteMeta(lock, l.Maps["meta"], meta); err != nil {
		return res, err
	}
	res.MaxEntries, res.Resized = n, &rz
	return res, nil
}

// observedLinks lists the link pins in dir that run the observed build of
// their program (a capture or monitor at work): a resize would leave them
// on the old maps.
func observedLinks(dir string) []string {
	pins, _ := linkPins(dir)
	pinned := pinnedProgramIDs(dir)
	var out []string
	for _, pin := range pins {
		lk, err := link.LoadPinnedLink(filepath.Join(dir, pin), nil)
		if err != nil {
			continue
		}
		info, err := lk.Info()
		lk.Close()
		if err == nil && !pinned[info.Program] && isObserved(info.Program) {
			out = append(out, pin)
		}
	}
	return out
}

// isArray reports whether m is an array (whose entries are its capacity).
func isArray(m *ebpf.Map) bool {
	switch m.Type() {
	case ebpf.Array, ebpf.PerCPUArray:
		return true
	}
	return false
}

// isDevmap reports whether m holds interfaces (by ifindex, which the
// kernel resolves in the writer's network namespace).
func isDevmap(m *ebpf.Map) bool { return m.Type() == ebpf.DevMap || m.Type() == ebpf.DevMapHash }

// inNetnsOfLinks runs fn in the network namespace of l's attachments, so
// that the ifindexes fn writes into a devmap name the same interfaces: all
// of a dataplane's redirect targets are in that one namespace.
func inNetnsOfLinks(l *Loaded, fn func() error) error {
	atts, err := maps.ListAttachments(l.Maps["attachments"])
	if err != nil {
		return err
	}
	inos := map[uint64]bool{}
	for _, a := range atts {
		inos[a.Netns] = true
	}
	switch len(inos) {
	case 0:
		return fn()
	case 1:
		for ino := range inos {
			ns, err := netdev.FindByInode(ino)
			if err != nil {
				return fmt.Errorf("the interfaces of %s's redirect map: %w", l.DP.Name, err)
			}
			return netdev.DoHandle(ns.Handle, fn)
		}
	}
	return fmt.Errorf("%s is attached in %d network namespaces; its redirect map names interfaces of one", l.DP.Name, len(inos))
}

// isPerCPU reports whether m holds a value per CPU.
func isPerCPU(m *ebpf.Map) bool {
	switch m.Type() {
	case ebpf.PerCPUHash, ebpf.PerCPUArray, ebpf.LRUCPUHash:
		return true
	}
	return false
}

// copyEntries copies every entry of from into to; for a per-CPU map it
// returns what it copied, by key, to carry over later increments.
func copyEntries(from, to *ebpf.Map) (int, map[string][][]byte, error) {
	n := 0
	var snap map[string][][]byte
	if isPerCPU(from) {
		snap = map[string][][]byte{}
	}
	var key []byte
	for next, err := from.NextKeyBytes(nil); next != nil; next, err = from.NextKeyBytes(key) {
		if err != nil {
			return n, nil, err
		}
		key = next
		var found bool
		if snap != nil {
			var vals [][]byte
			if found, err = copyOne(from, to, key, &vals); found {
				snap[string(key)] = vals
			}
		} else {
			found, err = copyOne(from, to, key, new([]byte))
		}
		if err != nil {
			return n, nil, err
		}
		if found {
			n++
		}
	}
	return n, snap, nil
}

// copyOne copies the entry of key from one map to the other through val
// (a *[]byte, or a *[][]byte for a per-CPU map); found is false when the
// key went away meanwhile.
func copyOne[V []byte | [][]byte](from, to *ebpf.Map, key []byte, val *V) (found bool, err error) {
	if err := from.Lookup(key, val); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, to.Put(key, *val)
}

// addSince adds to each per-CPU value of to what from gained since snap:
// the counts the datapath made in the old map between the copy and the
// move of the links. Values are read as 64-bit counters.
func addSince(from, to *ebpf.Map, snap map[string][][]byte) error {
	for key, before := range snap {
		var now, cur [][]byte
		if err := from.Lookup([]byte(key), &now); err != nil {
			continue // deleted meanwhile
		}
		if err := to.Lookup([]byte(key), &cur); err != nil {
			continue
		}
		changed := false
		for cpu := range now {
			if cpu >= len(before) || cpu >= len(cur) || len(now[cpu])%8 != 0 {
				continue
			}
			for off := 0; off+8 <= len(now[cpu]); off += 8 {
				d := binary.NativeEndian.Uint64(now[cpu][off:]) - binary.NativeEndian.Uint64(before[cpu][off:])
				if d != 0 {
					binary.NativeEndian.PutUint64(cur[cpu][off:], binary.NativeEndian.Uint64(cur[cpu][off:])+d)
					changed = true
				}
			}
		}
		if changed {
			if err := to.Put([]byte(key), cur); err != nil {
				return err
			}
		}
	}
	return nil
}
