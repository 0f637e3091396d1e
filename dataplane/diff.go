package dataplane

// delta is what comparing desired entries (V) with current ones (C) found.
type delta[C, V any] struct {
	add    []V
	change []changed[C, V]
	remove []C
}

// changed is an entry whose desired value differs from its current one.
type changed[C, V any] struct {
	old C
	new V
}

// diff compares desired values with current ones by key: a desired value
// whose key is new is added, one that differs from the current value of its
// key (same says whether two values are alike) is changed, and a current
// value whose key is not desired is removed when remove says so.
func diff[K comparable, V any](current, desired []V, key func(V) K, same func(old, new V) bool, remove func(V) bool) delta[V, V] {
	return diffBy(current, desired, key, key, same, remove)
}

// diffBy is diff where current values are of another type than desired
// ones (keyed by keyC): a large current state is compared as it was read,
// not copied into the desired type first.
func diffBy[K comparable, C, V any](current []C, desired []V, keyC func(C) K, key func(V) K, same func(old C, new V) bool, remove func(C) bool) delta[C, V] {
	var d delta[C, V]
	at := make(map[K]int, len(current)) // key -> index in current
	for i, v := range current {
		at[keyC(v)] = i
	}
	// The additions are counted first, so that a large desired state is
	// copied once into a list of the right size, not grown into one.
	adds := 0
	for _, v := range desired {
		if _, ok := at[key(v)]; !ok {
			adds++
		}
	}
	d.add = make([]V, 0, adds)
	var wanted map[K]bool // the desired keys, for removals
	if remove != nil {
		wanted = make(map[K]bool, len(desired))
	}
	for _, v := range desired {
		k := key(v)
		if wanted != nil {
			wanted[k] = true
		}
		i, ok := at[k]
		switch {
		case !ok:
			d.add = append(d.add, v)
		case !same(current[i], v):
			d.change = append(d.change, changed[C, V]{current[i], v})
		}
	}
	if remove != nil {
		for _, v := range current {
			if !wanted[keyC(v)] && remove(v) {
				d.remove = append(d.remove, v)
			}
		}
	}
	return d
}

// removeRule is the remove rule of a plan: with prune, every entry the
// desired state lacks goes; otherwise those whose key is among keys (the
// entries a command deletes).
func removeRule[K comparable, V any](prune bool, key func(V) K, keys []K) func(V) bool {
	if prune {
		return func(V) bool { return true }
	}
	if len(keys) == 0 {
		return nil
	}
	set := make(map[K]bool, len(keys))
	for _, k := range keys {
		set[k] = true
	}
	return func(v V) bool { return set[key(v)] }
}

// both returns what two reads return, or the first error.
func both[A, B any](a func() (A, error), b func() (B, error)) (A, B, error) {
	x, err := a()
	if err != nil {
		var y B
		return x, y, err
	}
	y, err := b()
	return x, y, err
}

// ChangeList returns the plan's changes (every plan type has one).
func (p *EncapPlan) ChangeList() []Change { return p.Changes }

// ChangeList returns the plan's changes.
func (p *XconnectPlan) ChangeList() []Change { return p.Changes }

// ChangeList returns the plan's changes.
func (p *L2TPPlan) ChangeList() []Change { return p.Changes }

// ChangeList returns the plan's changes.
func (p *MuxPlan) ChangeList() []Change { return p.Changes }
