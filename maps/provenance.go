package maps

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
)

// ProvenanceMap is the name of the map, pinned beside map_meta as
// map_provenance, that records which tunmux build wrote a dataplane's pinned
// programs, and which one they replaced. It is made by tunmux, not by the
// BPF object (no program reads it), so that adding it changed no schema.
const ProvenanceMap = "provenance"

// ErrDowngrade: a load would replace programs written by a newer tunmux.
var ErrDowngrade = errors.New("the pinned programs are of a newer tunmux")

// Provenance says which tunmux build wrote a dataplane's pinned programs.
type Provenance struct {
	WrittenAt time.Time `json:"written_at"`
	Version   string    `json:"version"`
	// Built is the commit time of that build (zero: unknown); builds are
	// ordered by it.
	Built time.Time `json:"built,omitzero"`
	// Replaced is the build whose programs these replaced ("" when the
	// programs were pinned afresh).
	Replaced      string    `json:"replaced,omitempty"`
	ReplacedBuilt time.Time `json:"replaced_built,omitzero"`
	// Downgrade says that the replaced build was newer (a load with
	// --allow-downgrade).
	Downgrade bool `json:"downgrade,omitempty"`
}

// provenanceValue is the map's one value.
type provenanceValue struct {
	WrittenAt     uint64
	Built         uint64
	ReplacedBuilt uint64
	Flags         uint32
	_             uint32
	Version       [32]byte
	Replaced      [32]byte
}

const provenanceDowngrade = 1

// provenanceSpec is the map's shape: an array of one record.
func provenanceSpec() *ebpf.MapSpec {
	return &ebpf.MapSpec{Name: "provenance", Type: ebpf.Array, KeySize: 4, ValueSize: 96, MaxEntries: 1}
}

// ReadProvenance reads the record pinned in dir; found is false when there
// is none (programs pinned by a tunmux before the record existed).
func ReadProvenance(dir string) (p Provenance, found bool, err error) {
	m, err := ebpf.LoadPinnedMap(MapPin(dir, ProvenanceMap), &ebpf.LoadPinOptions{ReadOnly: true})
	if errors.Is(err, os.ErrNotExist) {
		return Provenance{}, false, nil
	}
	if err != nil {
		return Provenance{}, false, fmt.Errorf("open %s: %w", MapPin(dir, ProvenanceMap), NoPermission(dir, err))
	}
	defer m.Close()
	var v provenanceValue
	if err := checkValueSize(m, v); err != nil {
		return Provenance{}, false, err
	}
	if err := m.Lookup(uint32(0), &v); err != nil {
		return Provenance{}, false, fmt.Errorf("read provenance: %w", err)
	}
	if v.WrittenAt == 0 {
		return Provenance{}, false, nil
	}
	p = Provenance{WrittenAt: unixTime(v.WrittenAt), Version: cString(v.Version[:]), Built: unixTime(v.Built),
		Replaced: cString(v.Replaced[:]), ReplacedBuilt: unixTime(v.ReplacedBuilt), Downgrade: v.Flags&provenanceDowngrade != 0}
	return p, true, nil
}

// WriteProvenance records p in dir, creating and pinning the map when it is
// missing. The caller holds the lock.
func WriteProvenance(_ *Lock, dir string, p Provenance) error {
	path := MapPin(dir, ProvenanceMap)
	m, err := ebpf.LoadPinnedMap(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		if m, err = ebpf.NewMap(provenanceSpec()); err == nil {
			if err = m.Pin(path); err != nil {
				m.Close()
			}
		}
	}
	if err != nil {
		return fmt.Errorf("provenance map %s: %w", path, err)
	}
	defer m.Close()
	v := provenanceValue{WrittenAt: unixSeconds(p.WrittenAt), Built: unixSeconds(p.Built), ReplacedBuilt: unixSeconds(p.ReplacedBuilt)}
	if p.Downgrade {
		v.Flags |= provenanceDowngrade
	}
	putCString(v.Version[:], p.Version)
	putCString(v.Replaced[:], p.Replaced)
	if err := checkValueSize(m, v); err != nil {
		return err
	}
	if err := m.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("write provenance: %w", err)
	}
	return nil
}

func unixTime(s uint64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0).UTC()
}

func unixSeconds(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.Unix())
}
