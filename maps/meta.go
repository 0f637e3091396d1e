package maps

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
)

// Meta is the record a loaded dataplane keeps in its map_meta: the schema
// version of its maps and the parameters it was loaded with.
type Meta struct {
	Schema     uint32    `json:"schema"`
	MaxEntries uint32    `json:"max_entries"`
	LoadedAt   time.Time `json:"loaded_at"`
	Version    string    `json:"version"`
}

// metaValue mirrors struct dataplane_meta in progs/include/tunmux.h.
type metaValue struct {
	Schema     uint32
	MaxEntries uint32
	LoadedAt   uint64
	Version    [32]byte
}

// ReadMeta reads the meta record; a zero Schema means it was never written.
func ReadMeta(m *ebpf.Map) (Meta, error) {
	var v metaValue
	if err := checkValueSize(m, v); err != nil {
		return Meta{}, err
	}
	if err := m.Lookup(uint32(0), &v); err != nil {
		return Meta{}, fmt.Errorf("read meta: %w", err)
	}
	meta := Meta{Schema: v.Schema, MaxEntries: v.MaxEntries, Version: cString(v.Version[:])}
	if v.LoadedAt != 0 {
		meta.LoadedAt = time.Unix(int64(v.LoadedAt), 0).UTC()
	}
	return meta, nil
}

// WriteMeta writes the meta record. The caller holds the lock.
func WriteMeta(_ *Lock, m *ebpf.Map, meta Meta) error {
	v := metaValue{Schema: meta.Schema, MaxEntries: meta.MaxEntries, LoadedAt: uint64(meta.LoadedAt.Unix())}
	putCString(v.Version[:], meta.Version)
	if err := checkValueSize(m, v); err != nil {
		return err
	}
	if err := m.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("write meta: %w", err)
	}
	return nil
}

// checkValueSize guards the Go mirrors of C structs against layout drift.
func checkValueSize(m *ebpf.Map, v any) error {
	if want := binary.Size(v); int(m.ValueSize()) != want {
		return fmt.Errorf("map value is %d bytes, this tunmux expects %d: %w", m.ValueSize(), want, ErrIncompatible)
	}
	return nil
}

// cString returns the string before the first NUL of b.
func cString[T ~int8 | ~uint8](b []T) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// putCString copies s into b, truncated so that a NUL terminates it.
func putCString[T ~int8 | ~uint8](b []T, s string) {
	clear(b)
	for i := 0; i < len(b)-1 && i < len(s); i++ {
		b[i] = T(s[i])
	}
}
