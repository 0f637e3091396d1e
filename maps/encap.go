package maps

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/progs/encap"
)

// L2TPSchema is the layout version of the l2tp dataplane's maps.
const L2TPSchema = 1

// EncapSchema is the layout version of the encap dataplane's maps. Raise it
// when a map's meaning changes in a way the sizes do not show.
// 2: IPv6 inner pairs and underlays, GENEVE options, per-tunnel counters.
// 3: tunnels of IPv4 inner pairs move to tunnels4 (8-byte keys); tunnels
// keeps the IPv6 ones. `load` migrates a schema 2 root in place.
const EncapSchema = 3

// PutMode says whether a write may create, replace, or both.
type PutMode int

// Put modes.
const (
	Add    PutMode = iota // fail with ErrExists if the key is present
	Update                // fail with ErrNotFound if the key is absent
	Upsert                // either
)

func (m PutMode) flags() ebpf.MapUpdateFlags {
	switch m {
	case Add:
		return ebpf.UpdateNoExist
	case Update:
		return ebpf.UpdateExist
	}
	return ebpf.UpdateAny
}

// EncapState is the pinned state of the encap dataplane: its tunnels and its
// redirect slots (the devmap, and what userspace knows about each slot).
type EncapState struct {
	tunnels  *ebpf.Map // tunnels of IPv6 inner pairs
	tunnels4 *ebpf.Map // tunnels of IPv4 inner pairs
	stats    *ebpf.Map
	devmap   *ebpf.Map
	slots    *ebpf.Map
	// held is the counter index of every stored tunnel, by key, once read:
	// kept up to date by this state's own writes (the lock keeps others
	// out) and dropped when a write fails, so that many one-entry writes
	// under one lock walk the map once.
	held map[encap.EncapTunnelKey]heldTunnel
	used map[uint32]bool // the counter indexes in held
	free uint32          // no index below it is free
	// users counts, by ifindex, the tunnels held whose underlay or overlay
	// it is: whether a redirect slot is still needed, without a walk.
	users map[uint32]int
}

// heldTunnel is what the state keeps of a stored tunnel.
type heldTunnel struct {
	counter, underlay, overlay uint32
}

// hold records tunnel k as stored with counter index idx and interfaces
// underlay and overlay, replacing what was held of it.
func (s *EncapState) hold(k encap.EncapTunnelKey, idx, underlay, overlay uint32) {
	if old, ok := s.held[k]; ok {
		s.users[old.underlay]--
		s.users[old.overlay]--
	}
	s.held[k] = heldTunnel{idx, underlay, overlay}
	s.used[idx] = true
	s.users[underlay]++
	s.users[overlay]++
}

// NewEncapState wraps the encap dataplane's open maps, by name.
func NewEncapState(ms map[string]*ebpf.Map) (*EncapState, error) {
	s := &EncapState{tunnels: ms["tunnels"], tunnels4: ms["tunnels4"], stats: ms["tunnel_stats"], devmap: ms["devmap"], slots: ms["slots"]}
	if s.tunnels == nil || s.tunnels4 == nil || s.stats == nil || s.devmap == nil || s.slots == nil {
		return nil, fmt.Errorf("encap state: tunnels, tunnels4, tunnel_stats, devmap and slots maps are required: %w", ErrNotLoaded)
	}
	return s, nil
}

// key4 returns the tunnels4 key of an IPv4 tunnel key.
func key4(k encap.EncapTunnelKey) encap.EncapTunnelKey4 {
	return encap.EncapTunnelKey4{InnerSrc: [4]uint8(k.InnerSrc[:4]), InnerDst: [4]uint8(k.InnerDst[:4])}
}

// keyFrom4 returns the tunnel key of a tunnels4 key.
func keyFrom4(k encap.EncapTunnelKey4) encap.EncapTunnelKey {
	kk := encap.EncapTunnelKey{Family: 4}
	copy(kk.InnerSrc[:], k.InnerSrc[:])
	copy(kk.InnerDst[:], k.InnerDst[:])
	return kk
}

// mapOf returns the map holding the tunnel of key k, and the key as that
// map takes it.
func (s *EncapState) mapOf(k encap.EncapTunnelKey) (*ebpf.Map, any) {
	if k.Family == 4 {
		k4 := key4(k)
		return s.tunnels4, &k4
	}
	return s.tunnels, &k
}

// FillCounters reads the counters of each tunnel.
func (s *EncapState) FillCounters(ts []Tunnel) {
	for i := range ts {
		ts[i].Counters = s.counters(ts[i].CounterIndex)
	}
}

func (s *EncapState) counters(index uint32) TunnelCounters {
	return sumPerCPU[encap.EncapTunnelCounters, TunnelCounters](s.stats, index)
}

// counterIndexes returns what is held of every stored tunnel, by key,
// walking the tunnel map the first time.
func (s *EncapState) counterIndexes() (map[encap.EncapTunnelKey]heldTunnel, error) {
	if s.held != nil {
		return s.held, nil
	}
	s.held, s.used, s.users, s.free = map[encap.EncapTunnelKey]heldTunnel{}, map[uint32]bool{}, map[uint32]int{}, 0
	err := s.eachTunnel(func(k encap.EncapTunnelKey, v encap.EncapTunnel) {
		s.hold(k, v.Counters, v.UnderlayIfindex, v.OverlayIfindex)
	})
	if err != nil {
		s.held = nil
		return nil, fmt.Errorf("read counter indexes: %w", err)
	}
	return s.held, nil
}

// forget drops key k from what is held, freeing its counter index.
func (s *EncapState) forget(k encap.EncapTunnelKey) {
	if old, ok := s.held[k]; ok {
		delete(s.held, k)
		delete(s.used, old.counter)
		s.users[old.underlay]--
		s.users[old.overlay]--
		s.free = min(s.free, old.counter)
	}
}

// InterfaceInUse reports whether any stored tunnel has ifindex as its
// underlay or overlay (read once per state, then kept by its own writes).
func (s *EncapState) InterfaceInUse(ifindex uint32) (bool, error) {
	if _, err := s.counterIndexes(); err != nil {
		return false, err
	}
	return s.users[ifindex] > 0, nil
}

// eachTunnel calls fn with every stored tunnel, IPv6 inner pairs first.
func (s *EncapState) eachTunnel(fn func(encap.EncapTunnelKey, encap.EncapTunnel)) error {
	if err := eachEntry(s.tunnels, fn); err != nil {
		return err
	}
	return eachEntry(s.tunnels4, func(k encap.EncapTunnelKey4, v encap.EncapTunnel) { fn(keyFrom4(k), v) })
}

// eachEntry calls fn with every entry of m, read in batches: 100,000
// entries take a few dozen system calls instead of two per entry.
func eachEntry[K, V any](m *ebpf.Map, fn func(K, V)) error {
	keys := make([]K, 4096)
	vals := make([]V, 4096)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(keys[i], vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// assignCounters returns each tunnel's counter index: the one it holds if
// it is stored already, else the lowest index no tunnel holds, whose
// counters are zeroed before the tunnel is written (so its first frame
// counts from zero). Indexes stay below the map's capacity, which equals
// the tunnel map's.
func (s *EncapState) assignCounters(ts []Tunnel) ([]uint32, error) {
	if len(ts) == 0 {
		return nil, nil // no walk of the map for nothing
	}
	held, err := s.counterIndexes()
	if err != nil {
		return nil, err
	}
	out := make([]uint32, len(ts))
	used := s.used
	var fresh []uint32 // indexes newly taken, zeroed in batches below
	next := s.free
	defer func() { s.free = next }()
	for i := range ts {
		if h, ok := held[ts[i].kernelKey()]; ok {
			out[i] = h.counter
			s.hold(ts[i].kernelKey(), h.counter, ts[i].UnderlayIndex, ts[i].OverlayIndex)
			continue
		}
		for next < s.stats.MaxEntries() && used[next] {
			next++
		}
		if next >= s.stats.MaxEntries() {
			return nil, fmt.Errorf("tunnel %s: all %d tunnel counters are taken; load encap with a larger --max-entries: %w", ts[i].TunnelKey, s.stats.MaxEntries(), unix.E2BIG)
		}
		fresh = append(fresh, next)
		out[i] = next
		s.hold(ts[i].kernelKey(), next, ts[i].UnderlayIndex, ts[i].OverlayIndex)
	}
	if err := s.zeroCounters(fresh); err != nil {
		s.held = nil // taken, not zeroed: read again
		return nil, err
	}
	return out, nil
}

// zeroCounters zeroes the counters at indexes, in batches (one update a
// tunnel is a system call a tunnel).
func (s *EncapState) zeroCounters(indexes []uint32) error {
	cpus := ebpf.MustPossibleCPU()
	const chunk = 4096
	zero := make([]encap.EncapTunnelCounters, min(len(indexes), chunk)*cpus)
	for start := 0; start < len(indexes); start += chunk {
		keys := indexes[start:min(start+chunk, len(indexes))]
		if _, err := s.stats.BatchUpdate(keys, zero[:len(keys)*cpus], nil); err != nil {
			return fmt.Errorf("zero the counters of %d new tunnels: %w", len(keys), err)
		}
	}
	return nil
}

// TunnelCapacity is the number of tunnels the map holds.
func (s *EncapState) TunnelCapacity() uint32 { return s.tunnels.MaxEntries() }

// GetTunnel returns the tunnel with key k, or an error wrapping ErrNotFound.
func (s *EncapState) GetTunnel(k TunnelKey) (Tunnel, error) {
	var v encap.EncapTunnel
	kk := k.kernelKey()
	m, mk := s.mapOf(kk)
	if err := lookupFound(m, mk, &v, fmt.Errorf("tunnel %s: %w", k, ErrNotFound), "tunnel "+k.String()); err != nil {
		return Tunnel{}, err
	}
	t := tunnelFromKernel(kk, v)
	s.nameInterfaces(&t)
	t.Counters = s.counters(t.CounterIndex)
	return t, nil
}

// ListTunnels returns every tunnel, sorted by inner source then destination.
func (s *EncapState) ListTunnels() ([]Tunnel, error) { return s.ListTunnelsExpecting(0) }

// ListTunnelsExpecting is ListTunnels for a caller that expects about n
// tunnels (such as the number it is about to compare them with): room for
// n is made once the first tunnel is read, instead of growing the list a
// doubling at a time (a fifth of the time re-applying 100,000 tunnels).
func (s *EncapState) ListTunnelsExpecting(n int) ([]Tunnel, error) {
	var out []Tunnel
	if s.held != nil {
		n = len(s.held) // the count is known
	}
	slab := &macSlab{}
	err := s.eachTunnel(func(k encap.EncapTunnelKey, v encap.EncapTunnel) {
		if out == nil && n > 0 {
			out = make([]Tunnel, 0, n)
		}
		if len(out) == cap(out) {
			// Double: append grows a large list by a quarter, copying
			// 100,000 tunnels some twenty times over.
			out = slices.Grow(out, max(len(out), 256))
		}
		out = append(out, tunnelFromKernelIn(k, v, slab))
	})
	if err != nil {
		return nil, fmt.Errorf("list tunnels: %w", err)
	}
	names := s.slotNames()
	for i := range out {
		out[i].Underlay, out[i].Overlay = names(out[i].UnderlayIndex), names(out[i].OverlayIndex)
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].InnerSrc.Compare(out[j].InnerSrc); c != 0 {
			return c < 0
		}
		return out[i].InnerDst.Less(out[j].InnerDst)
	})
	return out, nil
}

// TunnelsUsing returns the tunnels whose underlay or overlay is ifindex.
func (s *EncapState) TunnelsUsing(ifindex uint32) ([]Tunnel, error) {
	all, err := s.ListTunnels()
	if err != nil {
		return nil, err
	}
	var out []Tunnel
	for _, t := range all {
		if t.UnderlayIndex == ifindex || t.OverlayIndex == ifindex {
			out = append(out, t)
		}
	}
	return out, nil
}

// PutTunnel writes t (its interface indexes set). The slots it points to must
// exist already: the datapath never sees a tunnel without its slots.
func (s *EncapState) PutTunnel(_ *Lock, t Tunnel, mode PutMode) error {
	idx, err := s.assignCounters([]Tunnel{t})
	if err != nil {
		return err
	}
	t.CounterIndex = idx[0]
	m, k := s.mapOf(t.kernelKey())
	v := t.kernelValue()
	if err := m.Update(k, &v, mode.flags()); err != nil {
		s.held = nil
		switch {
		case errors.Is(err, ebpf.ErrKeyExist):
			return fmt.Errorf("tunnel %s: %w (use tunnel update, or add --replace)", t.TunnelKey, ErrExists)
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return fmt.Errorf("tunnel %s: %w", t.TunnelKey, ErrNotFound)
		case errors.Is(err, unix.E2BIG):
			return fmt.Errorf("tunnel %s: the tunnel map is full (%d entries); load encap with a larger --max-entries: %w", t.TunnelKey, m.MaxEntries(), err)
		}
		return fmt.Errorf("write tunnel %s: %w", t.TunnelKey, err)
	}
	return nil
}

// DeleteTunnel removes the tunnel with key k (ErrNotFound if absent).
func (s *EncapState) DeleteTunnel(_ *Lock, k TunnelKey) error {
	kk := k.kernelKey()
	s.forget(kk)
	m, mk := s.mapOf(kk)
	if err := m.Delete(mk); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("tunnel %s: %w", k, ErrNotFound)
		}
		return fmt.Errorf("delete tunnel %s: %w", k, err)
	}
	return nil
}

// Readiness says how a redirect target accepts XDP-redirected frames.
type Readiness uint8

// Readiness values, as stored in struct slot_info.
const (
	ReadyUnknown Readiness = iota
	ReadyNotVeth           // not a veth: its driver receives redirected frames itself
	ReadyGRO               // a veth whose peer has GRO on (tunmux turns it on)
	ReadyPeerXDP           // a veth whose peer runs an XDP program
	NotReady               // a veth whose peer could not be reached
	// NotReadyNoGRO: a veth whose peer has neither GRO nor an XDP program:
	// frames redirected to it are dropped (seen when it is observed).
	NotReadyNoGRO
)

func (r Readiness) String() string {
	switch r {
	case ReadyNotVeth:
		return "ready (not a veth)"
	case ReadyGRO:
		return "ready (gro on veth peer)"
	case ReadyPeerXDP:
		return "ready (xdp on veth peer)"
	case NotReady:
		return "NOT READY (veth peer unreachable)"
	case NotReadyNoGRO:
		return "NOT READY (veth peer has neither gro nor xdp)"
	}
	return "unknown"
}

// MarshalText gives the stable JSON form: not-veth, gro, peer-xdp, not-ready, unknown.
func (r Readiness) MarshalText() ([]byte, error) {
	switch r {
	case ReadyNotVeth:
		return []byte("not-veth"), nil
	case ReadyGRO:
		return []byte("gro"), nil
	case ReadyPeerXDP:
		return []byte("peer-xdp"), nil
	case NotReady:
		return []byte("not-ready"), nil
	case NotReadyNoGRO:
		return []byte("not-ready-no-gro"), nil
	}
	return []byte("unknown"), nil
}

// UnmarshalText reads the JSON form back.
func (r *Readiness) UnmarshalText(b []byte) error {
	for _, v := range []Readiness{ReadyUnknown, ReadyNotVeth, ReadyGRO, ReadyPeerXDP, NotReady, NotReadyNoGRO} {
		if text, _ := v.MarshalText(); string(text) == string(b) {
			*r = v
			return nil
		}
	}
	return fmt.Errorf("unknown readiness %q", b)
}

// Slot is one redirect slot: frames redirected through key In leave on Out.
// Tunnels hold identity slots (In == Out) for their interfaces; `devmap add
// IN OUT` holds plain ones.
type Slot struct {
	In        uint32    `json:"in_ifindex"`
	InName    string    `json:"in"`
	Out       uint32    `json:"out_ifindex"`
	OutName   string    `json:"out"`
	Netns     uint64    `json:"netns"`
	Explicit  bool      `json:"explicit"`
	Readiness Readiness `json:"readiness"`
	Peer      string    `json:"peer"`
	// Tunnels lists the tunnels holding this slot (filled by ListSlots).
	Tunnels []string `json:"tunnels"`
}

// slotValue mirrors struct slot_info in encap.c.
type slotValue struct {
	Netns      uint64
	InName     [16]byte
	OutName    [16]byte
	OutIfindex uint32
	Explicit   uint8
	Readiness  uint8
	_          [2]byte
	Peer       [64]byte
}

// devmapValue mirrors struct bpf_devmap_val (no devmap program).
type devmapValue struct {
	Ifindex uint32
	ProgFD  int32
}

// GetSlot returns the slot keyed by ifindex in, or an error wrapping ErrNotFound.
func (s *EncapState) GetSlot(in uint32) (Slot, error) {
	var v slotValue
	if err := checkValueSize(s.slots, v); err != nil {
		return Slot{}, err
	}
	if err := lookupFound(s.slots, &in, &v, fmt.Errorf("redirect slot for ifindex %d: %w", in, ErrNotFound), fmt.Sprintf("slot %d", in)); err != nil {
		return Slot{}, err
	}
	return slotFromValue(in, v), nil
}

func slotFromValue(in uint32, v slotValue) Slot {
	return Slot{
		In: in, InName: cString(v.InName[:]), Out: v.OutIfindex, OutName: cString(v.OutName[:]),
		Netns: v.Netns, Explicit: v.Explicit != 0, Readiness: Readiness(v.Readiness), Peer: cString(v.Peer[:]),
	}
}

// ListSlots returns every slot, sorted by key, with the tunnels holding it.
func (s *EncapState) ListSlots() ([]Slot, error) {
	out, err := s.SlotRecords()
	if err != nil {
		return nil, err
	}
	tunnels, err := s.ListTunnels()
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Tunnels = []string{}
		for _, t := range tunnels {
			if t.UnderlayIndex == out[i].In || t.OverlayIndex == out[i].In {
				out[i].Tunnels = append(out[i].Tunnels, t.TunnelKey.String())
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].In < out[j].In })
	return out, nil
}

// SlotRecords returns every slot as recorded, without the tunnels holding
// it (which takes a walk over every tunnel): what a write that only needs
// the records reads.
func (s *EncapState) SlotRecords() ([]Slot, error) {
	if err := checkValueSize(s.slots, slotValue{}); err != nil {
		return nil, err
	}
	return listMap(s.slots, "slots", slotFromValue)
}

// CountTunnels returns how many tunnels the map holds.
func (s *EncapState) CountTunnels() (int, error) {
	held, err := s.counterIndexes()
	return len(held), err
}

// PutSlot writes a slot: its record first, then the devmap entry the
// datapath reads. The calling thread must be in the namespace of its
// interfaces, as the kernel resolves the devmap's ifindex there.
func (s *EncapState) PutSlot(_ *Lock, slot Slot) error {
	var v slotValue
	if err := checkValueSize(s.slots, v); err != nil {
		return err
	}
	v.Netns, v.OutIfindex, v.Readiness = slot.Netns, slot.Out, uint8(slot.Readiness)
	if slot.Explicit {
		v.Explicit = 1
	}
	putCString(v.InName[:], slot.InName)
	putCString(v.OutName[:], slot.OutName)
	putCString(v.Peer[:], slot.Peer)
	if err := s.slots.Put(&slot.In, &v); err != nil {
		return fmt.Errorf("record slot %s: %w", slot.InName, err)
	}
	dv := devmapValue{Ifindex: slot.Out}
	if err := s.devmap.Put(&slot.In, &dv); err != nil {
		return fmt.Errorf("write devmap slot %s -> %s: %w", slot.InName, slot.OutName, err)
	}
	return nil
}

// DeleteSlot removes a slot: the devmap entry first, then its record. A
// missing slot is not an error.
func (s *EncapState) DeleteSlot(_ *Lock, in uint32) error {
	if err := s.devmap.Delete(&in); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete devmap slot %d: %w", in, err)
	}
	if err := s.slots.Delete(&in); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete slot record %d: %w", in, err)
	}
	return nil
}

// SlotLive reports whether the devmap still holds the slot (the kernel drops
// the slots of an interface that goes away).
func (s *EncapState) SlotLive(in uint32) bool {
	var dv devmapValue
	return s.devmap.Lookup(&in, &dv) == nil
}

// slotNames returns a function naming an ifindex from the slot records.
func (s *EncapState) slotNames() func(uint32) string {
	names := map[uint32]string{}
	var (
		k uint32
		v slotValue
	)
	if checkValueSize(s.slots, v) == nil {
		it := s.slots.Iterate()
		for it.Next(&k, &v) {
			names[k] = cString(v.InName[:])
			if v.OutIfindex != k {
				if _, ok := names[v.OutIfindex]; !ok {
					names[v.OutIfindex] = cString(v.OutName[:])
				}
			}
		}
	}
	return func(i uint32) string {
		if n, ok := names[i]; ok && n != "" {
			return n
		}
		return fmt.Sprintf("if%d", i)
	}
}

func (s *EncapState) nameInterfaces(t *Tunnel) {
	names := s.slotNames()
	t.Underlay, t.Overlay = names(t.UnderlayIndex), names(t.OverlayIndex)
}

// SameTunnel reports whether two tunnels would be stored identically
// (interface indexes included).
func SameTunnel(a, b Tunnel) bool {
	a.CounterIndex, b.CounterIndex = 0, 0 // where counters live is no difference
	return a.kernelKey() == b.kernelKey() && a.kernelValue() == b.kernelValue()
}

// PutTunnels writes many tunnels (interface indexes set, their slots
// present) with batch map updates, chunk entries at a time, creating or
// replacing each.
func (s *EncapState) PutTunnels(_ *Lock, ts []Tunnel, chunk int) error {
	if chunk <= 0 {
		chunk = 4096
	}
	idx, err := s.assignCounters(ts)
	if err != nil {
		return err
	}
	var b6 tunnelBatch[encap.EncapTunnelKey]
	var b4 tunnelBatch[encap.EncapTunnelKey4]
	for start := 0; start < len(ts); start += chunk {
		end := min(start+chunk, len(ts))
		b6.reset()
		b4.reset()
		for i := start; i < end; i++ {
			k, v := ts[i].kernelKey(), ts[i].kernelValue()
			v.Counters = idx[i]
			if k.Family == 4 {
				b4.add(key4(k), v)
			} else {
				b6.add(k, v)
			}
		}
		err := b4.put(s.tunnels4)
		if err == nil {
			err = b6.put(s.tunnels)
		}
		if err != nil {
			s.held = nil // some were written, some not: read again (used and free with it)
			if errors.Is(err, unix.E2BIG) {
				return fmt.Errorf("write tunnels: the tunnel map is full (%d entries); load encap with a larger --max-entries: %w", s.tunnels.MaxEntries(), err)
			}
			return fmt.Errorf("write tunnels %d..%d: %w", start, end-1, err)
		}
	}
	return nil
}

// tunnelBatch gathers the keys and values of one map's batch update.
type tunnelBatch[K any] struct {
	keys []K
	vals []encap.EncapTunnel
}

func (b *tunnelBatch[K]) reset() { b.keys, b.vals = b.keys[:0], b.vals[:0] }

func (b *tunnelBatch[K]) add(k K, v encap.EncapTunnel) {
	b.keys = append(b.keys, k)
	b.vals = append(b.vals, v)
}

// put writes the batch into m, if it holds anything.
func (b *tunnelBatch[K]) put(m *ebpf.Map) error {
	if len(b.keys) == 0 {
		return nil
	}
	_, err := m.BatchUpdate(b.keys, b.vals, nil)
	return err
}

// DeleteTunnels removes many tunnels with batch map deletes; absent ones
// are not an error.
func (s *EncapState) DeleteTunnels(lock *Lock, keys []TunnelKey, chunk int) error {
	if chunk <= 0 {
		chunk = 4096
	}
	for start := 0; start < len(keys); start += chunk {
		end := min(start+chunk, len(keys))
		var k6 []encap.EncapTunnelKey
		var k4 []encap.EncapTunnelKey4
		for _, k := range keys[start:end] {
			kk := k.kernelKey()
			s.forget(kk)
			if kk.Family == 4 {
				k4 = append(k4, key4(kk))
			} else {
				k6 = append(k6, kk)
			}
		}
		if batchDelete(s.tunnels4, k4) != nil || batchDelete(s.tunnels, k6) != nil {
			// A batch stops at the first absent key: finish one by one.
			for _, k := range keys[start:end] {
				if err := s.DeleteTunnel(lock, k); err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
			}
		}
	}
	return nil
}

// batchDelete deletes keys from m in one call, if there are any.
func batchDelete[K any](m *ebpf.Map, keys []K) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := m.BatchDelete(keys, nil)
	return err
}
