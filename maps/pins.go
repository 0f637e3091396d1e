package maps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
)

// MapPin is the pin path of map name in folder dir.
func MapPin(dir, name string) string { return filepath.Join(dir, MapPrefix+name) }

// ProgPin is the pin path of program name in folder dir.
func ProgPin(dir, name string) string { return filepath.Join(dir, ProgPrefix+name) }

// OpenMaps opens the maps of shapes (by name) that are pinned in dir and
// checks each against its shape. It returns the open maps by name and the names of maps
// that have no pin. If any pinned map differs from its spec (type, key or
// value size, capacity, flags), it closes everything and returns an error
// wrapping ErrIncompatible that names every map and difference.
func OpenMaps(dir string, shapes map[string]*ebpf.MapSpec) (map[string]*ebpf.Map, []string, error) {
	return OpenMapsUsing(dir, shapes, nil)
}

// OpenMapsUsing is OpenMaps, but for the names in use it takes the map
// given instead of the pin (a map to be pinned there, checked against its
// spec all the same). It takes ownership of the maps in use: they are
// returned among the open maps, or closed on error.
func OpenMapsUsing(dir string, shapes map[string]*ebpf.MapSpec, use map[string]*ebpf.Map) (map[string]*ebpf.Map, []string, error) {
	open := make(map[string]*ebpf.Map)
	pending := make(map[string]*ebpf.Map, len(use)) // not yet taken into open
	for name, m := range use {
		pending[name] = m
	}
	var missing, diffs []string
	names := make([]string, 0, len(shapes))
	for name := range shapes {
		if strings.HasPrefix(name, ".") {
			continue // .rodata and friends are per program load, never pinned
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ms := shapes[name]
		path := MapPin(dir, name)
		m, err := pending[name], error(nil)
		if m != nil {
			delete(pending, name)
			path = fmt.Sprintf("map id %d, which the pinned programs use", mapID(m))
		} else if err = refuseSymlink(path); err == nil {
			m, err = ebpf.LoadPinnedMap(path, nil)
		}
		if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			closeMaps(open)
			closeMaps(pending)
			return nil, nil, fmt.Errorf("open pinned map: %w", NoPermission(path, err))
		}
		if err := ms.Compatible(m); err != nil {
			m.Close()
			diffs = append(diffs, fmt.Sprintf("%s (%s): %s", name, path, describeIncompatible(err)))
			continue
		}
		open[name] = m
	}
	closeMaps(pending) // any not in the spec
	if len(diffs) > 0 {
		closeMaps(open)
		return nil, nil, fmt.Errorf("%w: %s", ErrIncompatible, strings.Join(diffs, "; "))
	}
	return open, missing, nil
}

// describeIncompatible turns cilium/ebpf's "A changed to B" wording into
// "pinned A, this tunmux expects B".
func describeIncompatible(err error) string {
	msg := strings.TrimSuffix(err.Error(), ": "+ebpf.ErrMapIncompatible.Error())
	parts := strings.Split(msg, ", ")
	for i, p := range parts {
		if field, rest, ok := strings.Cut(p, ": "); ok {
			if from, to, ok := strings.Cut(rest, " changed to "); ok {
				parts[i] = fmt.Sprintf("%s is %s pinned, %s expected", field, from, to)
			}
		}
	}
	return strings.Join(parts, ", ")
}

func closeMaps(ms map[string]*ebpf.Map) {
	for _, m := range ms {
		m.Close()
	}
}

// mapID returns the kernel's id of m, 0 if it cannot be read.
func mapID(m *ebpf.Map) ebpf.MapID {
	info, err := m.Info()
	if err != nil {
		return 0
	}
	id, _ := info.ID()
	return id
}

// ErrSymlink: a pin or folder inside the root is a symbolic link, which
// could lead a write into another root's maps.
var ErrSymlink = errors.New("is a symbolic link: tunmux refuses links inside its root (they can lead to another root's pins); remove it")

// refuseSymlink fails when path is a symbolic link (a missing path passes:
// the caller reports it).
func refuseSymlink(path string) error {
	st, err := os.Lstat(path)
	if err == nil && st.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%s %w", path, ErrSymlink)
	}
	return nil
}

// RefuseSymlink is refuseSymlink for the folders of a root.
func RefuseSymlink(path string) error { return refuseSymlink(path) }
