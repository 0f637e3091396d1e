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

// OpenMaps opens the maps of spec that are pinned in dir and checks each
// against its spec. It returns the open maps by name and the names of maps
// that have no pin. If any pinned map differs from its spec (type, key or
// value size, capacity, flags), it closes everything and returns an error
// wrapping ErrIncompatible that names every map and difference.
func OpenMaps(dir string, spec *ebpf.CollectionSpec) (map[string]*ebpf.Map, []string, error) {
	open := make(map[string]*ebpf.Map)
	var missing, diffs []string
	names := make([]string, 0, len(spec.Maps))
	for name := range spec.Maps {
		if strings.HasPrefix(name, ".") {
			continue // .rodata and friends are per program load, never pinned
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ms := spec.Maps[name]
		path := MapPin(dir, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			closeMaps(open)
			return nil, nil, fmt.Errorf("open pinned map %s: %w", path, err)
		}
		if err := ms.Compatible(m); err != nil {
			m.Close()
			diffs = append(diffs, fmt.Sprintf("%s (%s): %s", name, path, describeIncompatible(err)))
			continue
		}
		open[name] = m
	}
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
