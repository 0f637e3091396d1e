package dataplane

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Change is one difference between a desired state and the pinned one.
type Change struct {
	Action string `json:"action"` // add, change, remove, load
	Kind   string `json:"kind"`   // dataplane, tunnel, slot, pair, session
	Key    string `json:"key"`
	Detail string `json:"detail"`
	Line   int    `json:"line,omitempty"` // where the desired entry stands in its file
}

// DesiredTunnel is a tunnel as a desired-state file gives it, its interfaces
// resolved (indexes set, src MAC defaulted).
type DesiredTunnel struct {
	Tunnel maps.Tunnel
	// The interfaces, shared by the tunnels over them (a file of 100,000
	// tunnels over two interfaces holds two, not 200,000).
	Underlay *netdev.Iface
	Overlay  *netdev.Iface
	Line     int
}

// DesiredSlot is a plain redirect slot as a desired-state file gives it.
type DesiredSlot struct {
	In, Out netdev.Iface
	Line    int
}

// EncapPlan is what reconciling the encap dataplane with a desired state
// will do.
type EncapPlan struct {
	Changes  []Change
	warnings []string
	// What the entries it writes were before, for the undo of a write that
	// fails halfway: tunnels changed or removed, slots by key.
	oldTunnels  map[maps.TunnelKey]maps.Tunnel
	oldSlots    map[uint32]maps.Slot
	removeFirst bool // the map has no room for the additions until the removals are done
	prune       bool
	putTunnels  []maps.Tunnel
	delTunnels  []maps.TunnelKey
	putSlots    map[uint32]slotWant
	delSlots    []uint32
}

type slotWant struct {
	in, out  netdev.Iface
	explicit bool
}

// EncapRemovals are the encap entries a command deletes: tunnels by key,
// plain slots by the index of their interface.
type EncapRemovals struct {
	Tunnels []maps.TunnelKey
	Slots   []uint32
}

// PlanEncap compares desired tunnels and plain slots with the pinned ones.
// Entries the desired state does not have are removed with prune, or when
// remove names them. A slot the kernel dropped (its interface went away and
// came back) is repaired. A tunnel whose interface has a slot it cannot
// take (a plain slot sending elsewhere that stays, a slot of another
// namespace) is an error wrapping maps.ErrInUse, found before anything is
// written.
func (e *Encap) PlanEncap(tunnels []DesiredTunnel, slots []DesiredSlot, remove EncapRemovals, prune bool, ino uint64, netnsName string) (*EncapPlan, error) {
	plan := &EncapPlan{putSlots: map[uint32]slotWant{}, prune: prune}
	current, count, err := e.currentTunnels(tunnels, remove.Tunnels, prune)
	if err != nil {
		return nil, err
	}
	currentSlots, err := e.State.SlotRecords()
	if err != nil {
		return nil, err
	}
	slotByIn := map[uint32]maps.Slot{}
	for _, s := range currentSlots {
		slotByIn[s.In] = s
	}
	ready := map[uint32]bool{} // each target observed once a plan
	live := map[uint32]bool{}  // each slot's devmap entry read once a plan
	slotLive := func(in uint32) bool {
		l, seen := live[in]
		if !seen {
			l = e.State.SlotLive(in)
			live[in] = l
		}
		return l
	}
	slotOK := func(ifc netdev.Iface, out uint32) bool {
		s, ok := slotByIn[uint32(ifc.Index)]
		if !ok || s.Out != out || s.Netns != ino || s.InName != ifc.Name || !slotLive(s.In) {
			return false
		}
		r, seen := ready[out]
		if !seen {
			r = readyNow(out)
			ready[out] = r
		}
		return r
	}
	// Warnings depend on the interfaces and the headers a tunnel adds: each
	// combination is looked at once, each warning said once.
	type warnKey struct {
		under, over, overhead int
		proto                 maps.Proto
		opts                  string
	}
	looked := map[warnKey]bool{}
	warned := map[string]bool{}
	warnOnce := func(t maps.Tunnel, under, over netdev.Iface) {
		k := warnKey{under: under.Index, over: over.Index, overhead: t.Overhead(), proto: t.Proto}
		if len(t.GeneveOpts) > 0 {
			k.opts = fmt.Sprint(t.GeneveOpts)
		}
		if looked[k] {
			return
		}
		looked[k] = true
		for _, w := range tunnelWarnings(t, under, over, netnsName) {
			if !warned[w] {
				warned[w] = true
				plan.warnings = append(plan.warnings, w)
			}
		}
	}
	// Plain slots the file keeps or writes: a tunnel may not take their
	// interface (without prune, every current one is kept).
	plain := map[uint32]bool{}
	for _, d := range slots {
		plain[uint32(d.In.Index)] = d.In.Index != d.Out.Index
	}
	var conflicts []error
	tunnelIfaces := map[uint32]netdev.Iface{}
	cleared := map[[2]int]bool{} // (ifindex, role) found without a conflict, slot planned
	for _, d := range tunnels {
		t := d.Tunnel
		for i, ifc := range [2]*netdev.Iface{d.Underlay, d.Overlay} {
			if cleared[[2]int{ifc.Index, i}] {
				continue // as for the tunnels before over it
			}
			tunnelIfaces[uint32(ifc.Index)] = *ifc
			if s, ok := slotByIn[uint32(ifc.Index)]; ok && slotLive(s.In) {
				keep, inFile := plain[s.In]
				if err := identitySlotConflict(*ifc, s, ino); err != nil && (s.Netns != ino || inFile && keep || !inFile && !prune) {
					if d.Line > 0 {
						err = fmt.Errorf("tunnel %s (line %d): %w", t.TunnelKey, d.Line, err)
					} else {
						err = fmt.Errorf("%s %w", [2]string{"--underlay", "--overlay"}[i], err)
					}
					conflicts = append(conflicts, err)
					continue
				}
			}
			if !slotOK(*ifc, uint32(ifc.Index)) {
				if _, planned := plan.putSlots[uint32(ifc.Index)]; !planned {
					plan.putSlots[uint32(ifc.Index)] = slotWant{in: *ifc, out: *ifc, explicit: slotByIn[uint32(ifc.Index)].Explicit}
					plan.Changes = append(plan.Changes, slotChange(slotByIn, *ifc, *ifc, d.Line))
				}
			}
			cleared[[2]int{ifc.Index, i}] = true
		}
	}
	if len(conflicts) > 0 {
		return nil, errors.Join(conflicts...)
	}
	keyC := func(t maps.Tunnel) maps.TunnelKey { return t.TunnelKey }
	key := func(d DesiredTunnel) maps.TunnelKey { return d.Tunnel.TunnelKey }
	td := diffBy(current, tunnels, keyC, key, func(a maps.Tunnel, b DesiredTunnel) bool { return maps.SameTunnel(a, b.Tunnel) }, removeRule(prune, keyC, remove.Tunnels))
	plan.putTunnels = make([]maps.Tunnel, 0, len(td.add)+len(td.change))
	plan.Changes = slices.Grow(plan.Changes, len(td.add)+len(td.change)+len(td.remove))
	// Tunnels written (new or changed) are looked at for warnings.
	for _, d := range td.add {
		warnOnce(d.Tunnel, *d.Underlay, *d.Overlay)
	}
	for _, c := range td.change {
		warnOnce(c.new.Tunnel, *c.new.Underlay, *c.new.Overlay)
	}
	for _, d := range td.add {
		plan.putTunnels = append(plan.putTunnels, d.Tunnel)
		plan.Changes = append(plan.Changes, Change{Action: "add", Kind: "tunnel", Key: d.Tunnel.TunnelKey.String(), Detail: describeTunnel(d.Tunnel), Line: d.Line})
	}
	for _, c := range td.change {
		plan.putTunnels = append(plan.putTunnels, c.new.Tunnel)
		plan.Changes = append(plan.Changes, Change{Action: "change", Kind: "tunnel", Key: c.new.Tunnel.TunnelKey.String(), Detail: tunnelDiff(c.old, c.new.Tunnel), Line: c.new.Line})
	}
	for _, t := range td.remove {
		plan.delTunnels = append(plan.delTunnels, t.TunnelKey)
		plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "tunnel", Key: t.TunnelKey.String(), Detail: describeTunnel(t)})
	}
	plan.oldTunnels, plan.oldSlots = map[maps.TunnelKey]maps.Tunnel{}, slotByIn
	for _, c := range td.change {
		plan.oldTunnels[c.old.TunnelKey] = c.old
	}
	for _, t := range td.remove {
		plan.oldTunnels[t.TunnelKey] = t
	}
	// Room: the additions must fit once the removals are done; when they
	// fit only then, the removals go first.
	capacity := int(e.State.TunnelCapacity())
	if after := count - len(td.remove) + len(td.add); after > capacity {
		return nil, fmt.Errorf("the tunnel map would hold %d tunnels and has room for %d: %w; unload encap and load it with --max-entries %d or more (or apply with --prune, if the file replaces tunnels)",
			after, capacity, maps.ErrInUse, after)
	}
	plan.removeFirst = count+len(td.add) > capacity
	wantedSlots := map[uint32]bool{}
	for _, d := range slots {
		wantedSlots[uint32(d.In.Index)] = true
		if !slotOK(d.In, uint32(d.Out.Index)) || !slotByIn[uint32(d.In.Index)].Explicit {
			plan.putSlots[uint32(d.In.Index)] = slotWant{in: d.In, out: d.Out, explicit: true}
			plan.Changes = append(plan.Changes, slotChange(slotByIn, d.In, d.Out, d.Line))
		}
	}
	dropSlot := removeRule(prune, func(s maps.Slot) uint32 { return s.In }, remove.Slots)
	for _, s := range currentSlots {
		if !s.Explicit || wantedSlots[s.In] || dropSlot == nil || !dropSlot(s) {
			continue
		}
		if ifc, taken := tunnelIfaces[s.In]; taken {
			// A tunnel keeps it, as its own slot.
			plan.putSlots[s.In] = slotWant{in: ifc, out: ifc}
			continue
		}
		plan.delSlots = append(plan.delSlots, s.In)
		plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "slot", Key: s.InName, Detail: fmt.Sprintf("%s -> %s", s.InName, s.OutName)})
	}
	return plan, nil
}

// currentTunnels returns the pinned tunnels a plan compares with, and how
// many the map holds: with prune, every one (a walk of the map); otherwise
// for a few keys, those it writes or removes, looked up one by one, so that
// a command's one-entry write costs the same whatever the map holds (the
// map is counted only when the plan adds).
func (e *Encap) currentTunnels(desired []DesiredTunnel, removed []maps.TunnelKey, prune bool) ([]maps.Tunnel, int, error) {
	// Past a few keys one batched walk is cheaper than a lookup each.
	const fewKeys = 64
	if prune || len(desired)+len(removed) > fewKeys {
		all, err := e.State.ListTunnelsExpecting(len(desired))
		return all, len(all), err
	}
	var out []maps.Tunnel
	seen := map[maps.TunnelKey]bool{}
	keys := append([]maps.TunnelKey(nil), removed...)
	for _, d := range desired {
		keys = append(keys, d.Tunnel.TunnelKey)
	}
	adds := false
	for i, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		t, err := e.State.GetTunnel(k)
		if errors.Is(err, maps.ErrNotFound) {
			adds = adds || i >= len(removed)
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		out = append(out, t)
	}
	if !adds {
		return out, len(out), nil // nothing added: the map's room does not matter
	}
	n, err := e.State.CountTunnels()
	return out, n, err
}

func slotChange(current map[uint32]maps.Slot, in, out netdev.Iface, line int) Change {
	c := Change{Action: "add", Kind: "slot", Key: in.Name, Detail: fmt.Sprintf("%s -> %s", in.Name, out.Name), Line: line}
	if old, ok := current[uint32(in.Index)]; ok {
		c.Action = "change"
		c.Detail = fmt.Sprintf("%s -> %s (was %s -> %s, dropped by the kernel, or its target not ready)", in.Name, out.Name, old.InName, old.OutName)
	}
	return c
}

// ExecuteEncap carries a plan out, in dependency order: slots (made ready),
// then tunnels in batches of chunk, then removals, then slots no longer
// held. Call it inside the namespace of the interfaces (netdev.Do).
func (e *Encap) ExecuteEncap(lock *maps.Lock, plan *EncapPlan, netnsName string, ino uint64, chunk int) (warnings []string, err error) {
	// A write that fails halfway is undone, in reverse: the datapath is left
	// with the entries it had, not with half of a change.
	var undo []func() error
	defer func() {
		if err == nil {
			return
		}
		var failed []error
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](); uerr != nil {
				failed = append(failed, uerr)
			}
		}
		if len(failed) > 0 {
			err = fmt.Errorf("%w; undoing what this apply wrote failed too: %w", err, errors.Join(failed...))
		} else {
			err = fmt.Errorf("%w; what this apply had written is undone", err)
		}
	}()
	ins := make([]uint32, 0, len(plan.putSlots))
	for in := range plan.putSlots {
		ins = append(ins, in)
	}
	sort.Slice(ins, func(i, j int) bool { return ins[i] < ins[j] })
	for _, in := range ins {
		w := plan.putSlots[in]
		slot := maps.Slot{In: uint32(w.in.Index), InName: w.in.Name, Out: uint32(w.out.Index), OutName: w.out.Name, Netns: ino, Explicit: w.explicit}
		var warn string
		slot.Readiness, slot.Peer, warn = makeReady(w.out, netnsName)
		if warn != "" {
			warnings = append(warnings, warn)
		}
		undo = append(undo, e.restoreSlot(lock, slot.In, plan.oldSlots))
		if err := e.State.PutSlot(lock, slot); err != nil {
			return warnings, err
		}
	}
	warnings = append(warnings, plan.warnings...)
	put := func() error {
		undo = append(undo, func() error { return e.restoreTunnels(lock, plan.putTunnels, plan.oldTunnels, chunk) })
		return e.State.PutTunnels(lock, plan.putTunnels, chunk)
	}
	del := func() error {
		undo = append(undo, func() error { return e.restoreTunnels(lock, nil, plan.oldTunnels, chunk) })
		return e.State.DeleteTunnels(lock, plan.delTunnels, chunk)
	}
	order := []func() error{put, del}
	if plan.removeFirst {
		order = []func() error{del, put}
	}
	for _, write := range order {
		if err := write(); err != nil {
			return warnings, err
		}
	}
	for _, in := range plan.delSlots {
		undo = append(undo, e.restoreSlot(lock, in, plan.oldSlots))
		if err := e.State.DeleteSlot(lock, in); err != nil {
			return warnings, err
		}
	}
	// Identity slots that no tunnel holds any more (an underlay that changed,
	// a tunnel removed) go last.
	return warnings, e.releaseSlots(lock, plan)
}

// releaseSlots deletes the identity slots that the tunnels a plan changed
// or removed held and that no tunnel holds now.
func (e *Encap) releaseSlots(lock *maps.Lock, plan *EncapPlan) error {
	maybe := map[uint32]bool{}
	for _, old := range plan.oldTunnels {
		maybe[old.UnderlayIndex], maybe[old.OverlayIndex] = true, true
	}
	if plan.prune {
		// A whole file: every identity slot is a candidate (one a run cut
		// short left behind too).
		records, err := e.State.SlotRecords()
		if err != nil {
			return err
		}
		for _, s := range records {
			if !s.Explicit {
				maybe[s.In] = true
			}
		}
	}
	for _, t := range plan.putTunnels {
		delete(maybe, t.UnderlayIndex)
		delete(maybe, t.OverlayIndex)
	}
	if len(maybe) == 0 {
		return nil
	}
	for in := range maybe {
		if inUse, err := e.State.InterfaceInUse(in); err != nil || inUse {
			if err != nil {
				return err
			}
			continue
		}
		if s, err := e.State.GetSlot(in); err == nil && !s.Explicit {
			if err := e.State.DeleteSlot(lock, in); err != nil {
				return err
			}
		}
	}
	return nil
}

// restoreSlot returns the undo of a write of slot in: the slot as it was,
// or none.
func (e *Encap) restoreSlot(lock *maps.Lock, in uint32, old map[uint32]maps.Slot) func() error {
	return func() error {
		if s, ok := old[in]; ok {
			return e.State.PutSlot(lock, s)
		}
		err := e.State.DeleteSlot(lock, in)
		if errors.Is(err, maps.ErrNotFound) {
			return nil
		}
		return err
	}
}

// restoreTunnels undoes tunnel writes: tunnels written that did not exist
// are deleted, and those that did (changed or removed) get their old value.
func (e *Encap) restoreTunnels(lock *maps.Lock, written []maps.Tunnel, old map[maps.TunnelKey]maps.Tunnel, chunk int) error {
	var added []maps.TunnelKey
	for _, t := range written {
		if _, had := old[t.TunnelKey]; !had {
			added = append(added, t.TunnelKey)
		}
	}
	if err := e.State.DeleteTunnels(lock, added, chunk); err != nil {
		return err
	}
	back := make([]maps.Tunnel, 0, len(old))
	for _, t := range old {
		back = append(back, t)
	}
	return e.State.PutTunnels(lock, back, chunk)
}

func describeTunnel(t maps.Tunnel) string {
	if t.Proto.UsesUDP() {
		return fmt.Sprintf("%s %s %s -> %s via %s, overlay %s", t.Proto, t.ID(), t.OuterSrc, t.OuterDst, t.Underlay, t.Overlay)
	}
	return fmt.Sprintf("%s via %s, overlay %s", t.ID(), t.Underlay, t.Overlay) // "vlan 300", once
}

// tunnelDiff names what differs between two tunnels of one key.
func tunnelDiff(old, t maps.Tunnel) string {
	a, b := old.JSON(), t.JSON()
	var diffs []string
	str := func(p any) string {
		switch v := p.(type) {
		case *string:
			if v == nil {
				return "-"
			}
			return *v
		case *uint32:
			if v == nil {
				return "-"
			}
			return fmt.Sprint(*v)
		case *uint16:
			if v == nil {
				return "-"
			}
			return fmt.Sprint(*v)
		}
		return fmt.Sprint(p)
	}
	for _, f := range []struct {
		name string
		x, y any
	}{
		{"proto", a.Proto, b.Proto}, {"vni", a.VNI, b.VNI}, {"vlan-id", a.VlanID, b.VlanID},
		{"outer-src", a.OuterSrc, b.OuterSrc}, {"outer-dst", a.OuterDst, b.OuterDst},
		{"src-mac", a.SrcMAC, b.SrcMAC}, {"dst-mac", a.DstMAC, b.DstMAC}, {"inner-dst-mac", a.InnerDstMAC, b.InnerDstMAC},
		{"src-port", a.SrcPort, b.SrcPort}, {"underlay", a.Underlay, b.Underlay}, {"overlay", a.Overlay, b.Overlay},
		{"underlay ifindex", a.UnderlayIndex, b.UnderlayIndex}, {"overlay ifindex", a.OverlayIndex, b.OverlayIndex},
		{"geneve-opt", a.GeneveOpts, b.GeneveOpts}, {"overlay peer in another namespace", old.OverlayPeerNetns, t.OverlayPeerNetns},
	} {
		if x, y := str(f.x), str(f.y); x != y {
			diffs = append(diffs, fmt.Sprintf("%s %s -> %s", f.name, x, y))
		}
	}
	return strings.Join(diffs, "; ")
}

// DesiredPair is an xconnect pair as a desired-state file gives it.
type DesiredPair struct {
	A, B netdev.Iface
	Mode string // XDP attach mode of both ends: "" (native), native or generic
	Line int
}

// XconnectPlan is what reconciling the xconnect dataplane will do.
type XconnectPlan struct {
	Changes []Change
	add     []DesiredPair
	remove  []maps.Pair
}

// PlanXconnect compares desired pairs with the pinned ones; a pair whose
// interfaces changed index (recreated), or whose entries the kernel dropped,
// is connected again. The pairs in remove go, and with prune every pair the
// desired state lacks.
func (x *Xconnect) PlanXconnect(desired []DesiredPair, remove []maps.Pair, prune bool, ino uint64) (*XconnectPlan, error) {
	plan := &XconnectPlan{}
	current, err := x.State.ListPairs()
	if err != nil {
		return nil, err
	}
	byName := map[[2]string]maps.Pair{}
	for _, p := range current {
		byName[[2]string{p.A.Name, p.B.Name}] = p
		byName[[2]string{p.B.Name, p.A.Name}] = p
	}
	kept := map[string]bool{}
	for _, d := range desired {
		key := d.A.Name + "<->" + d.B.Name
		old, ok := byName[[2]string{d.A.Name, d.B.Name}]
		same := ok && old.Netns == ino && x.State.Live(old) && readyNow(old.A.Ifindex) && readyNow(old.B.Ifindex) &&
			((old.A.Ifindex == uint32(d.A.Index) && old.B.Ifindex == uint32(d.B.Index)) ||
				(old.A.Ifindex == uint32(d.B.Index) && old.B.Ifindex == uint32(d.A.Index))) &&
			modeName(d.Mode) == modeName(x.PairMode(old))
		if ok {
			kept[old.Key()] = true
		}
		switch {
		case same:
		case ok:
			plan.remove = append(plan.remove, old)
			plan.add = append(plan.add, d)
			plan.Changes = append(plan.Changes, Change{Action: "change", Kind: "pair", Key: key, Detail: "interfaces recreated, entries dropped, an end not ready or mode changed: connect again", Line: d.Line})
		default:
			plan.add = append(plan.add, d)
			plan.Changes = append(plan.Changes, Change{Action: "add", Kind: "pair", Key: key, Detail: fmt.Sprintf("%s (%d) <-> %s (%d)", d.A.Name, d.A.Index, d.B.Name, d.B.Index), Line: d.Line})
		}
	}
	// Pairs the file breaks up (an end now paired elsewhere) must go, even
	// without prune; with prune, every pair not in the file goes.
	inFile := map[uint32]bool{}
	for _, d := range desired {
		inFile[uint32(d.A.Index)], inFile[uint32(d.B.Index)] = true, true
	}
	dropped := map[string]bool{}
	for _, p := range remove {
		dropped[p.Key()] = true
	}
	for _, p := range current {
		if kept[p.Key()] {
			continue
		}
		if prune || dropped[p.Key()] || inFile[p.A.Ifindex] || inFile[p.B.Ifindex] {
			plan.remove = append(plan.remove, p)
			plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "pair", Key: p.Key()})
		}
	}
	return plan, nil
}

// PairMode returns the XDP mode a pair's ends were attached in: "generic",
// or "" (native).
func (x *Xconnect) PairMode(p maps.Pair) string {
	prog, _ := x.DP.Program("xconnect")
	if rec, err := maps.GetAttachment(x.Maps["attachments"], p.Netns, p.A.Ifindex, prog.Hook); err == nil && rec.Mode == maps.ModeGeneric {
		return "generic"
	}
	return ""
}

// ExecuteXconnect carries a plan out: removals first, then new pairs. An
// end that moves to another pair keeps its program and has its redirect
// entry overwritten in place, so its frames never pass to the stack in
// between. Call it inside the namespace.
func (x *Xconnect) ExecuteXconnect(lock *maps.Lock, plan *XconnectPlan, netnsName string, ino uint64) ([]string, error) {
	var warnings []string
	// Ends that go on in a pair keep their program (their entries are
	// overwritten in place), unless its XDP mode changes.
	modeOf := map[uint32]string{}
	for _, p := range plan.remove {
		modeOf[p.A.Ifindex], modeOf[p.B.Ifindex] = x.PairMode(p), x.PairMode(p)
	}
	staying := map[uint32]bool{}
	for _, d := range plan.add {
		for _, end := range []uint32{uint32(d.A.Index), uint32(d.B.Index)} {
			if m, was := modeOf[end]; !was || modeName(m) == modeName(d.Mode) {
				staying[end] = true
			}
		}
	}
	for _, p := range plan.remove {
		if err := x.disconnectExcept(lock, p, netnsName, staying); err != nil {
			return warnings, err
		}
	}
	for _, d := range plan.add {
		a, b := d.A, d.B
		if b.Index < a.Index {
			a, b = b, a
		}
		p := maps.Pair{A: maps.PairEnd{Name: a.Name, Ifindex: uint32(a.Index)}, B: maps.PairEnd{Name: b.Name, Ifindex: uint32(b.Index)}, Netns: ino}
		w, err := x.connect(lock, &p, a, b, netnsName, d.Mode)
		warnings = append(warnings, w...)
		if err != nil {
			return warnings, err
		}
	}
	return warnings, nil
}

// DesiredSession is an l2tp session as a desired-state file gives it, its
// interfaces resolved.
type DesiredSession struct {
	Session maps.Session
	Tunnel  netdev.Iface
	Line    int
}

// L2TPPlan is what reconciling the l2tp dataplane will do.
type L2TPPlan struct {
	Changes []Change
	put     []DesiredSession
	remove  []uint32
}

// PlanL2TP compares desired sessions with the pinned ones.
func (l *L2TP) PlanL2TP(desired []DesiredSession, remove []uint32, prune bool) (*L2TPPlan, error) {
	plan := &L2TPPlan{}
	current, err := l.State.ListSessions()
	if err != nil {
		return nil, err
	}
	cur := make([]DesiredSession, len(current))
	for i, s := range current {
		cur[i] = DesiredSession{Session: s}
	}
	id := func(d DesiredSession) uint32 { return d.Session.ID }
	d := diff(cur, desired, id, func(a, b DesiredSession) bool { return sameSession(a.Session, b.Session) }, removeRule(prune, id, remove))
	for _, s := range d.add {
		plan.put = append(plan.put, s)
		plan.Changes = append(plan.Changes, Change{Action: "add", Kind: "session", Key: maps.IDString(s.Session.ID), Detail: describeSession(s.Session), Line: s.Line})
	}
	for _, c := range d.change {
		plan.put = append(plan.put, c.new)
		plan.Changes = append(plan.Changes, Change{Action: "change", Kind: "session", Key: maps.IDString(c.new.Session.ID),
			Detail: describeSession(c.old.Session) + " -> " + describeSession(c.new.Session), Line: c.new.Line})
	}
	for _, s := range d.remove {
		plan.remove = append(plan.remove, s.Session.ID)
		plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "session", Key: maps.IDString(s.Session.ID), Detail: describeSession(s.Session)})
	}
	return plan, nil
}

func describeSession(s maps.Session) string {
	return fmt.Sprintf("%s %s -> %s, peer session %d, cookies %s/%s, l2spec %s, %s (%d) via %s (%d)",
		s.Encap, s.Endpoint(s.Local), s.Endpoint(s.Peer), s.PeerID, maps.CookieString(s.Cookie), maps.CookieString(s.PeerCookie),
		s.L2SpecString(), s.EthIface, s.EthIndex, s.TunnelIface, s.TunnelIndex)
}

func sameSession(a, b maps.Session) bool {
	return describeSession(a) == describeSession(b) && a.PeerMAC.String() == b.PeerMAC.String()
}

// ExecuteL2TP carries a plan out: removals, then sessions written (the next
// hop learnt for each, and the hosts' MTU checked). Call it inside the
// namespace netnsName.
func (l *L2TP) ExecuteL2TP(lock *maps.Lock, plan *L2TPPlan, netnsName string) ([]string, error) {
	var warnings []string
	for _, id := range plan.remove {
		if _, err := l.State.DeleteSession(lock, id); err != nil {
			return warnings, err
		}
	}
	for _, d := range plan.put {
		if err := l.State.PutSession(lock, d.Session, maps.Upsert); err != nil {
			return warnings, err
		}
		if d.Session.PeerMAC == nil {
			if w := l.learnNextHop(lock, d.Session, d.Tunnel); w != "" {
				warnings = append(warnings, w)
			}
		}
		if eth, err := netdev.ByIndex(int(d.Session.EthIndex)); err == nil {
			if w := sessionMTUWarning(d.Session, eth, d.Tunnel, netnsName); w != "" {
				warnings = append(warnings, w)
			}
		}
	}
	return warnings, nil
}
