package maps

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/cilium/ebpf"
)

// Helpers shared by the dataplanes' states: reading per-CPU counters,
// listing a map, finding one entry, naming enum values.

// sumPerCPU reads key of a per-CPU map whose values are structs V of
// uint64 counters and returns them summed over CPUs into a C, field by
// field of the same name (every field of C must be in V). A key that
// cannot be read gives zero counters.
func sumPerCPU[V, C any](m *ebpf.Map, key uint32) C {
	var (
		per []V
		sum C
	)
	if m.Lookup(&key, &per) != nil {
		return sum
	}
	dst := reflect.ValueOf(&sum).Elem()
	for _, v := range per {
		src := reflect.ValueOf(v)
		for i := 0; i < dst.NumField(); i++ {
			f := dst.Field(i)
			f.SetUint(f.Uint() + src.FieldByName(dst.Type().Field(i).Name).Uint())
		}
	}
	return sum
}

// listMap iterates over m and returns conv of every key and value, in the
// map's order; what names the list in an error.
func listMap[K, V, T any](m *ebpf.Map, what string, conv func(K, V) T) ([]T, error) {
	var (
		k   K
		v   V
		out []T
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		out = append(out, conv(k, v))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	return out, nil
}

// lookupFound reads key of m into v. A missing key gives notFound (which
// wraps ErrNotFound); any other failure is said as looking up what.
func lookupFound(m *ebpf.Map, key, v any, notFound error, what string) error {
	if err := m.Lookup(key, v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return notFound
		}
		return fmt.Errorf("look up %s: %w", what, err)
	}
	return nil
}

// findOne returns the first of the entries list returns that match
// accepts, or notFound (which wraps ErrNotFound) if none does.
func findOne[T any](list func() ([]T, error), match func(T) bool, notFound func() error) (T, error) {
	var zero T
	all, err := list()
	if err != nil {
		return zero, err
	}
	for _, x := range all {
		if match(x) {
			return x, nil
		}
	}
	return zero, notFound()
}

// enumName returns the name of v in names, or prefix-N for a value without
// one.
func enumName[T ~uint8 | ~uint32](v T, names map[T]string, prefix string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return fmt.Sprintf("%s-%d", prefix, uint64(v))
}
