package dataplane

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
)

// Counter is one outcome counter of a program, summed over CPUs.
type Counter struct {
	Dataplane string `json:"dataplane"`
	Program   string `json:"program"`
	Outcome   string `json:"outcome"`
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
}

// counterValue mirrors struct counter in progs/include/tunmux.h.
type counterValue struct {
	Packets uint64
	Bytes   uint64
}

// CounterNames returns the names of the dataplane's counters by index,
// from its enum stat (generated from the object's BTF by shapegen):
// S_<PROGRAM>__<OUTCOME> becomes program "program" (underscores as
// hyphens), outcome "outcome".
func (d *Dataplane) CounterNames() ([][2]string, error) {
	names := make([][2]string, len(d.counterNames))
	for i, n := range d.counterNames {
		prog, outcome, ok := strings.Cut(strings.TrimPrefix(n, "S_"), "__")
		if !ok {
			return nil, fmt.Errorf("%s: counter %s is not named S_<PROGRAM>__<OUTCOME>", d.Name, n)
		}
		// Programs are named as the attach verbs name them (l2tp-encap).
		names[i] = [2]string{strings.ReplaceAll(strings.ToLower(prog), "_", "-"), strings.ToLower(outcome)}
	}
	return names, nil
}

// Stats returns every outcome counter of the dataplane, summed over CPUs,
// in the order of the dataplane's enum stat.
func (l *Loaded) Stats() ([]Counter, error) {
	names, err := l.DP.CounterNames()
	if err != nil {
		return nil, err
	}
	m := l.Maps["stats"]
	out := make([]Counter, 0, len(names))
	for i, n := range names {
		var perCPU []counterValue
		if err := m.Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("read counter %s/%s: %w", n[0], n[1], err)
		}
		c := Counter{Dataplane: l.DP.Name, Program: n[0], Outcome: n[1]}
		for _, v := range perCPU {
			c.Packets += v.Packets
			c.Bytes += v.Bytes
		}
		out = append(out, c)
	}
	return out, nil
}

// countEntries counts a map's entries: every slot for arrays, the keys
// present for hashes.
func countEntries(m *ebpf.Map) (int, error) {
	switch m.Type() {
	case ebpf.Array, ebpf.PerCPUArray, ebpf.DevMap, ebpf.ProgramArray:
		return int(m.MaxEntries()), nil
	}
	n := 0
	key := make([]byte, m.KeySize())
	var prev any
	for {
		err := m.NextKey(prev, &key)
		if err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return n, nil
			}
			return n, err
		}
		n++
		k := append([]byte(nil), key...)
		prev = k
	}
}
