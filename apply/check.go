package apply

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// checker validates a document's entries and resolves their interfaces in
// the calling thread's namespace. It keeps every problem twice: by line,
// for a file, and as the error the matching command reports, for a
// command's one-entry document.
type checker struct {
	root     *maps.Root
	mode     Mode
	names    map[string]string
	where    string
	ino      uint64
	problems []Problem
	errs     []error
	ifaces   map[string]netdev.Iface
	// created names the interfaces the file itself creates (route devices,
	// mux members with create): they are not looked up.
	created map[string]bool
	open    map[*dataplane.Dataplane]*dataplane.Loaded
	// conflicts are what the machine has that stands in the way of the
	// document (not problems of the document itself): exit 1, found before
	// anything is written.
	conflicts []error
	prune     bool
	attach    *AttachSection // the document's, if it has one
}

// attachListed reports whether the document keeps program attached to
// iface: it lists it, or has no attach section (which leaves attachments
// alone, even with prune).
func (c *checker) attachListed(program, iface string) bool {
	if c.attach == nil {
		return true
	}
	for _, e := range c.attach.Entries {
		if e.Args.Program == program && e.Args.Iface == iface {
			return true
		}
	}
	return false
}

// xdpOwner records a conflict when the XDP slot of ifc is held by another
// program than dp's program, unless with prune the document detaches that
// program (one of this root's attachable ones it does not list).
func (c *checker) xdpOwner(what string, ifc netdev.Iface, dp *dataplane.Dataplane, program string, listed func(program, iface string) bool) {
	if ifc.XDPProgID == 0 {
		return
	}
	o := dataplane.DescribeXDPOwner(c.root, ifc.XDPProgID)
	if o.Dataplane == dp.Name && o.Program == program {
		return // attached already
	}
	if c.prune && o.Dataplane != "" && listed != nil && !listed(o.Program, ifc.Name) {
		if _, attachable := dataplane.Attachable()[o.Program]; attachable {
			return // detached first, by the prune
		}
	}
	c.conflicts = append(c.conflicts, fmt.Errorf("%s: the XDP slot of %s is owned by %s: %w; detach that first", what, ifc.Name, o, maps.ErrInUse))
}

// flag is what errors call field: its command's argument, or its flag.
func (c *checker) flag(field string) string {
	if n, ok := c.names[field]; ok {
		return n
	}
	return "--" + field
}

// fail records err against entry e; it reports whether there was one.
func fail[T any](c *checker, e Entry[T], err error) bool {
	if err == nil {
		return false
	}
	c.problems = append(c.problems, problemsOf(e, err)...)
	c.errs = append(c.errs, err)
	return true
}

// clash records a problem between entries of one file.
func (c *checker) clash(line int, path, format string, args ...any) {
	err := fmt.Errorf(format, args...)
	c.problems = append(c.problems, Problem{Line: line, Path: path, Msg: err.Error()})
	c.errs = append(c.errs, err)
}

// lookup resolves the interface an entry's field names; a missing one is
// invalid input.
func lookup[T any](c *checker, e Entry[T], field, name string) (netdev.Iface, bool) {
	flag := c.flag(field)
	if name == "" {
		fail(c, e, maps.Invalid(flag, "", "is required", "an interface name"))
		return netdev.Iface{}, false
	}
	if err := maps.ValidateIfaceName(flag, name); fail(c, e, err) {
		return netdev.Iface{}, false
	}
	if ifc, ok := c.ifaces[name]; ok {
		return ifc, true
	}
	ifc, err := netdev.Lookup(name)
	if errors.Is(err, netdev.ErrNoInterface) {
		fail(c, e, maps.Invalid(flag, name, "no such interface in "+c.where, "an existing interface (see ip link)"))
		return ifc, false
	}
	if fail(c, e, err) {
		return ifc, false
	}
	c.ifaces[name] = ifc
	return ifc, true
}

// lookupGiven reports, for an entry whose values are bad, which of the
// interfaces it names (field, name) are missing too.
func lookupGiven[T any](c *checker, e Entry[T], given [][2]string) {
	for _, f := range given {
		if f[1] != "" && maps.ValidateIfaceName("--"+f[0], f[1]) == nil {
			lookup(c, e, f[0], f[1])
		}
	}
}

// current opens a loaded dataplane for a command's preconditions (every
// mode but Sync); a dataplane that is not loaded is an error.
func (c *checker) current(dp *dataplane.Dataplane) (*dataplane.Loaded, error) {
	if l, ok := c.open[dp]; ok {
		return l, nil
	}
	l, err := dataplane.Open(c.root, dp)
	if err != nil {
		return nil, err
	}
	c.open[dp] = l
	return l, nil
}

// precondition checks a command's write of one key: Create needs it absent,
// Modify and Remove present. form reports the malformed values given, which
// come first; exists and missing are the errors to report otherwise.
func precondition(mode Mode, found bool, form, exists, missing error) error {
	switch {
	case mode == Create && found, (mode == Modify || mode == Remove) && !found:
		if form != nil {
			return form
		}
		if found {
			return exists
		}
		return missing
	}
	return nil
}

// command applies a command's precondition to an entry keyed by what key
// parses: Create needs the key absent, Modify and Remove present (get
// reads it; exists says what is wrong with a key present). It returns the
// key and the current value (the base a Modify merges the given fields
// over; for Remove, non-nil when the entry goes); next says the entry is
// done with (it failed, or it is a removal). A file (Sync) has no
// precondition.
func command[T any, K any, V any](c *checker, e Entry[T], key func() (K, error), get func(K) (V, error), form func() error, exists func(K) error) (K, *V, bool, error) {
	var k K
	if c.mode == Sync {
		return k, nil, false, nil
	}
	k, err := key()
	if err != nil {
		// A bad key: Parse says so (a removal, which parses nothing else,
		// says so here).
		return k, nil, c.mode == Remove && fail(c, e, err), nil
	}
	old, gerr := get(k)
	if gerr != nil && !errors.Is(gerr, maps.ErrNotFound) {
		return k, nil, true, gerr
	}
	var formErr error
	if c.mode != Remove {
		formErr = form()
	}
	if fail(c, e, precondition(c.mode, gerr == nil, formErr, exists(k), gerr)) {
		return k, nil, true, nil
	}
	switch c.mode {
	case Remove:
		return k, &old, true, nil
	case Modify:
		return k, &old, false, nil
	}
	return k, nil, false, nil
}

// check validates the document and resolves its interfaces. A file's
// problems come back together as an *InvalidFileError; a command's as the
// errors it reports.
func check(root *maps.Root, file string, doc *Document, opts Options) (desired, error) {
	d := desired{loads: map[string]uint32{}, created: map[string]bool{}}
	ino, err := netdev.CurrentInode()
	if err != nil {
		return d, err
	}
	d.ino = ino
	c := &checker{root: root, mode: opts.Mode, names: opts.Names, ino: ino, where: "this network namespace", prune: opts.Prune, attach: doc.Attach,
		ifaces: map[string]netdev.Iface{}, created: d.created, open: map[*dataplane.Dataplane]*dataplane.Loaded{}}
	defer func() {
		for _, l := range c.open {
			l.Close()
		}
	}()
	if opts.Netns != "" {
		c.where = "network namespace " + opts.Netns
	}
	c.problems = append(c.problems, doc.problems...)
	steps := []func() error{
		func() error { return c.checkLoad(doc.Load, &d) },
		func() error { return c.checkDevices(doc.Route, &d) },
		func() error { return c.checkMux(doc.Mux, &d) },
		func() error { return c.checkAttach(doc.Attach, &d) },
		func() error { return c.checkEncap(doc.Encap, &d) },
		func() error { return c.checkXconnect(doc.Xconnect, &d) },
		func() error { return c.checkL2TP(doc.L2TP, &d) },
		func() error { return c.checkRoute(doc.Route, &d) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return d, err
		}
	}
	if opts.Mode != Sync {
		var all []error
		for _, err := range append(c.errs, c.conflicts...) {
			all = append(all, maps.Flatten(err)...)
		}
		return d, errors.Join(all...)
	}
	if len(c.problems) > 0 {
		sortProblems(c.problems)
		return d, &InvalidFileError{File: file, Problems: c.problems}
	}
	return d, errors.Join(c.conflicts...)
}

// parseBool reads a yes/no value given to flag.
func parseBool(flag, s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, maps.Invalid(flag, s, "is not a boolean", "true|false")
	}
	return b, nil
}

// deviceConfig parses the addresses and kernel routes of a device the
// document creates.
func deviceConfig[T any](c *checker, e Entry[T], addresses, routes []string) (dataplane.DeviceConfig, bool) {
	var cfg dataplane.DeviceConfig
	ok := true
	for _, a := range addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ok = !fail(c, e, maps.Invalid("--address", a, "is not an address with its prefix length", "a CIDR like 10.0.0.1/24 or fd00::1/64")) && ok
			continue
		}
		cfg.Addresses = append(cfg.Addresses, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()))
	}
	for _, r := range routes {
		kr, err := netdev.ParseKernelRoute(r)
		if err != nil {
			ok = !fail(c, e, maps.Invalid("--kernel-route", r, err.Error(), "PREFIX [via GATEWAY] [src ADDRESS]")) && ok
			continue
		}
		cfg.Routes = append(cfg.Routes, kr)
	}
	return cfg, ok
}

// checkLoad validates the load section: known dataplanes, capacities.
func (c *checker) checkLoad(sec *LoadSection, d *desired) error {
	if sec == nil {
		return nil
	}
	seen := map[string]int{}
	for _, e := range sec.Dataplanes {
		dp, err := dataplane.Lookup(e.Args.Dataplane)
		if err != nil {
			c.clash(e.Line, "load", "unknown dataplane %q (accepted: %s)", e.Args.Dataplane, strings.Join(dataplane.Names(), ", "))
			continue
		}
		if first, dup := seen[dp.Name]; dup {
			c.clash(e.Line, e.Path, "%s repeats the one on line %d", dp.Name, first)
			continue
		}
		seen[dp.Name] = e.Line
		n := uint64(0)
		if e.Args.MaxEntries != "" {
			v, ierr := maps.ParseUint("--max-entries", e.Args.MaxEntries, 1, dataplane.MaxMaxEntries)
			if ierr != nil {
				fail(c, e, ierr)
				continue
			}
			if dp.FixedSize && uint32(v) != dp.DefaultMaxEntries {
				fail(c, e, maps.Invalid("--max-entries", e.Args.MaxEntries, dp.Name+" has a fixed capacity", fmt.Sprintf("omit it (%s holds %d)", dp.Name, dp.DefaultMaxEntries)))
				continue
			}
			n = v
		}
		d.loads[dp.Name] = uint32(n)
	}
	return nil
}

// checkAttach validates the attach section: attachable programs, hooks,
// modes, interfaces.
func (c *checker) checkAttach(sec *AttachSection, d *desired) error {
	if sec == nil {
		return nil
	}
	seen := map[[2]string]int{}
	attachable := dataplane.Attachable()
	for _, e := range sec.Entries {
		a := e.Args
		dp := attachable[a.Program]
		if dp == nil {
			fail(c, e, maps.Invalid(c.flag("program"), a.Program, "is not an attachable program", strings.Join(sortedAttachable(), "|")))
			continue
		}
		if c.mode == Remove {
			if !fail(c, e, maps.ValidateIfaceName(c.flag("iface"), a.Iface)) {
				d.detach = append(d.detach, dataplane.DesiredAttachment{Program: a.Program, Iface: a.Iface, Line: e.Line})
			}
			continue
		}
		bad := false
		p, _ := dp.Program(a.Program)
		if a.Mode != "" {
			if _, err := dataplane.ParseMode(a.Mode); err != nil {
				bad = fail(c, e, err)
			}
		}
		switch {
		case a.Hook != "" && a.Hook != "xdp" && a.Hook != "tc":
			bad = fail(c, e, maps.Invalid("--hook", a.Hook, "unknown hook", "xdp|tc"))
		case a.Hook == "tc" && p.Hook == maps.HookXDP && p.TCVariant == "":
			bad = fail(c, e, maps.Invalid("--hook", a.Hook, a.Program+" has no TC variant", "xdp"))
		case a.Hook == "xdp" && p.Hook != maps.HookXDP:
			bad = fail(c, e, maps.Invalid("--hook", a.Hook, a.Program+" attaches at "+p.Hook.String(), "omit it"))
		case a.Mode != "" && !bad && p.Hook != maps.HookXDP:
			bad = fail(c, e, maps.Invalid("--mode", a.Mode, "applies to XDP programs only; "+a.Program+" attaches at "+p.Hook.String(), "omit it"))
		case a.Mode != "" && !bad && a.Hook == "tc":
			bad = fail(c, e, maps.Invalid("--mode", a.Mode, "applies to XDP only", "omit it with --hook tc"))
		}
		if c.created[a.Iface] {
			bad = fail(c, e, maps.ValidateIfaceName(c.flag("iface"), a.Iface)) || bad
		} else if ifc, ok := lookup(c, e, "iface", a.Iface); !ok {
			bad = true
		} else if p.Hook == maps.HookXDP && a.Hook != "tc" && c.mode == Sync {
			// (A command's attach says so itself, naming the owner.)
			c.xdpOwner(a.Program+"@"+a.Iface, ifc, dp, a.Program, c.attachListed)
		}
		if bad {
			continue
		}
		k := [2]string{a.Program, a.Iface}
		if first, dup := seen[k]; dup {
			c.clash(e.Line, e.Path, "%s on %s repeats the one on line %d", a.Program, a.Iface, first)
			continue
		}
		seen[k] = e.Line
		d.attachments = append(d.attachments, dataplane.DesiredAttachment{Program: a.Program, Iface: a.Iface, Hook: a.Hook, Mode: a.Mode, Line: e.Line})
	}
	return nil
}

// sortedAttachable names the attachable programs, sorted.
func sortedAttachable() []string {
	var out []string
	for n := range dataplane.Attachable() {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// checkMux validates the mux section: the carrier and each member.
func (c *checker) checkMux(sec *MuxSection, d *desired) error {
	if sec == nil {
		return nil
	}
	if e := sec.Carrier; e != nil {
		_, err := maps.ParseOnMiss(e.Args.OnMiss)
		bad := fail(c, *e, err)
		if e.Args.PeerMAC != "" {
			if _, err := maps.ParseMAC("--peer-mac", e.Args.PeerMAC); err != nil {
				bad = fail(c, *e, maps.Invalid("--peer-mac", e.Args.PeerMAC, "is not a unicast MAC address", "six hex bytes like 02:00:00:00:00:02"))
			}
		}
		if _, ok := lookup(c, *e, "iface", e.Args.Iface); ok && !bad {
			d.carrier = &dataplane.DesiredCarrier{Iface: e.Args.Iface, OnMiss: e.Args.OnMiss, PeerMAC: e.Args.PeerMAC, Line: e.Line}
		}
	}
	var members []maps.Member
	if c.mode != Sync && len(sec.Members) > 0 {
		l, err := c.current(dataplane.MuxDataplane)
		if err != nil {
			return err
		}
		st, err := maps.NewMuxState(l.Maps)
		if err != nil {
			return err
		}
		if members, err = st.Members(); err != nil {
			return err
		}
	}
	labels, names := map[uint8]int{}, map[string]int{}
	for _, e := range sec.Members {
		a := e.Args
		if fail(c, e, maps.ValidateIfaceName(c.flag("name"), a.Name)) {
			continue
		}
		if c.mode == Remove {
			found := false
			for _, m := range members {
				found = found || m.Name == a.Name
			}
			if !fail(c, e, precondition(c.mode, found, nil, nil, fmt.Errorf("member %s: %w", a.Name, maps.ErrNotFound))) {
				d.removeMembers = append(d.removeMembers, a.Name)
			}
			continue
		}
		label, err := maps.ParseLabel("--label", a.Label)
		bad := fail(c, e, err)
		create, err := parseBool("--create", a.Create)
		bad = fail(c, e, err) || bad
		if a.MTU != "" {
			if !create {
				bad = fail(c, e, maps.Invalid("--mtu", a.MTU, "is only valid with --create", "omit it, or add --create")) || bad
			} else if _, err := maps.ParseUint("--mtu", a.MTU, 68, 65535); err != nil {
				bad = fail(c, e, err) || bad
			}
		}
		if !create {
			if _, ok := lookup(c, e, "name", a.Name); !ok {
				bad = true
			}
			if len(a.Address)+len(a.KernelRoute) > 0 {
				bad = fail(c, e, maps.Invalid("--address", strings.Join(append(a.Address, a.KernelRoute...), " "), "is only valid with --create (an adopted interface is configured by its owner)", "omit it, or add --create"))
			}
		}
		cfg, ok := deviceConfig(c, e, a.Address, a.KernelRoute)
		bad = bad || !ok
		if bad {
			continue
		}
		for _, m := range members {
			if m.Name == a.Name && c.mode == Create {
				bad = fail(c, e, fmt.Errorf("%s is already member %s: %w", a.Name, m, maps.ErrInUse))
			}
		}
		if bad {
			continue
		}
		if first, dup := labels[label]; dup {
			c.clash(e.Line, e.Path, "label %d repeats the one on line %d", label, first)
			continue
		}
		if first, dup := names[a.Name]; dup {
			c.clash(e.Line, e.Path, "member %s repeats the one on line %d", a.Name, first)
			continue
		}
		labels[label], names[a.Name] = e.Line, e.Line
		d.members = append(d.members, dataplane.DesiredMember{Name: a.Name, Label: strconv.Itoa(int(label)), Create: create, MTU: a.MTU, Config: cfg, Line: e.Line})
	}
	return nil
}

// checkDevices validates the route section's devices.
func (c *checker) checkDevices(sec *RouteSection, d *desired) error {
	if sec == nil {
		return nil
	}
	names, protos := map[string]int{}, map[string]int{}
	for _, e := range sec.Devices {
		a := e.Args
		if fail(c, e, maps.ValidateIfaceName(c.flag("name"), a.Name)) {
			continue
		}
		if c.mode == Remove {
			d.removeDevices = append(d.removeDevices, a.Name)
			continue
		}
		routes, err := parseBool("--routes", a.Routes)
		bad := fail(c, e, err)
		proto := maps.RouteProto(0)
		switch {
		case routes && (a.Proto != "" || a.Local != "" || a.Port != ""):
			bad = fail(c, e, maps.Invalid("--routes", "", "takes no --local or --port (they are tunnel device settings)", "--routes [--mtu M]")) || bad
		case !routes:
			p, err := maps.ParseRouteProto("--proto", a.Proto, false)
			if a.Proto == "" {
				err = maps.Invalid("--proto", "", "give either --proto (a tunnel device) or --routes (the device routes point at)", "--proto vxlan|geneve, or --routes")
			}
			bad = fail(c, e, err) || bad
			proto = p
			if a.Local != "" {
				ad, err := maps.ParsePeerAddr("--local", a.Local)
				if err == nil && (ad.IsUnspecified() || ad.IsMulticast()) {
					err = maps.Invalid("--local", a.Local, "is not a unicast address", "this node's underlay address")
				}
				bad = fail(c, e, err) || bad
			}
			if a.Port != "" {
				if _, err := maps.ParseUint("--port", a.Port, 1, 65535); err != nil {
					bad = fail(c, e, err) || bad
				}
			}
		}
		if a.MTU != "" {
			if _, err := maps.ParseUint("--mtu", a.MTU, 68, 65535); err != nil {
				bad = fail(c, e, err) || bad
			}
		}
		cfg, ok := deviceConfig(c, e, a.Address, a.KernelRoute)
		if bad || !ok {
			continue
		}
		if first, dup := names[a.Name]; dup {
			c.clash(e.Line, e.Path, "device %s repeats the one on line %d", a.Name, first)
			continue
		}
		names[a.Name] = e.Line
		if !routes {
			if first, dup := protos[proto.String()]; dup {
				c.clash(e.Line, e.Path, "a %s device stands on line %d already (one tunnel device per protocol)", proto, first)
				continue
			}
			protos[proto.String()] = e.Line
		}
		local := a.Local
		if ad, err := maps.ParsePeerAddr("--local", a.Local); err == nil {
			local = ad.String()
		}
		d.devices = append(d.devices, dataplane.DesiredDevice{Name: a.Name, Routes: routes, Line: e.Line, Config: cfg,
			Tunnel: dataplane.TunnelDevOptions{Proto: a.Proto, Local: local, Port: a.Port, MTU: a.MTU}})
		if c.mode == Sync {
			c.created[a.Name] = true
		}
	}
	return nil
}

// checkEncap validates the encap section: tunnels (parsed as 'tunnel add'
// parses them, interfaces resolved, the source MAC defaulted) and plain
// slots.
func (c *checker) checkEncap(sec *EncapSection, d *desired) error {
	if sec == nil {
		return nil
	}
	var state *maps.EncapState
	if c.mode != Sync {
		l, err := c.current(dataplane.EncapDataplane)
		if err != nil {
			return err
		}
		if state, err = maps.NewEncapState(l.Maps); err != nil {
			return err
		}
	}
	seen := make(map[maps.TunnelKey]int, len(sec.Tunnels))
	identity := map[string]int{} // interfaces tunnels need identity slots for
	d.tunnels = slices.Grow(d.tunnels, len(sec.Tunnels))
	ifaces := map[int]*netdev.Iface{}
	shared := func(ifc netdev.Iface) *netdev.Iface {
		p, ok := ifaces[ifc.Index]
		if !ok { // a copy made only here, once per interface
			p = new(netdev.Iface)
			*p = ifc
			ifaces[ifc.Index] = p
		}
		return p
	}
	for _, e := range sec.Tunnels {
		key, base, next, err := command(c, e, func() (maps.TunnelKey, error) { return maps.ParseTunnelKey(e.Args.InnerSrc, e.Args.InnerDst) },
			state.GetTunnel, e.Args.FormErrors, func(k maps.TunnelKey) error {
				return fmt.Errorf("tunnel %s: %w (use tunnel update, or add --replace)", k, maps.ErrExists)
			})
		if err != nil {
			return err
		}
		if next {
			if c.mode == Remove && base != nil {
				d.removeEncap.Tunnels = append(d.removeEncap.Tunnels, key)
			}
			continue
		}
		t, err := e.Args.Parse(base)
		if fail(c, e, err) {
			lookupGiven(c, e, [][2]string{{"underlay", e.Args.Underlay}, {"overlay", e.Args.Overlay}})
			continue
		}
		if first, dup := seen[t.TunnelKey]; dup {
			c.clash(e.Line, e.Path, "tunnel %s repeats the one on line %d", t.TunnelKey, first)
			continue
		}
		seen[t.TunnelKey] = e.Line
		under, ok1 := lookup(c, e, "underlay", t.Underlay)
		over, ok2 := lookup(c, e, "overlay", t.Overlay)
		if !ok1 || !ok2 {
			continue
		}
		t.UnderlayIndex, t.OverlayIndex = uint32(under.Index), uint32(over.Index)
		t.OverlayPeerNetns = over.PeerElsewhere()
		if t.Proto.UsesUDP() && t.SrcMAC == nil {
			if len(under.MAC) != 6 {
				fail(c, e, maps.Invalid("--src-mac", "", fmt.Sprintf("is required: %s has no Ethernet address", under.Name), "a unicast MAC address"))
				continue
			}
			t.SrcMAC = under.MAC
		}
		identity[under.Name], identity[over.Name] = e.Line, e.Line
		d.tunnels = append(d.tunnels, dataplane.DesiredTunnel{Tunnel: t, Underlay: shared(under), Overlay: shared(over), Line: e.Line})
	}
	seenIn := map[string]int{}
	for _, e := range sec.Devmap {
		if c.mode == Remove {
			c.removeSlot(e, state, d)
			continue
		}
		in, ok1 := lookup(c, e, "in", e.Args.In)
		out, ok2 := lookup(c, e, "out", e.Args.Out)
		if !ok1 || !ok2 {
			continue
		}
		if c.mode == Create {
			if existing, err := state.GetSlot(uint32(in.Index)); err == nil {
				fail(c, e, fmt.Errorf("redirect slot %s -> %s: %w", existing.InName, existing.OutName, maps.ErrExists))
				continue
			}
		}
		if first, dup := seenIn[in.Name]; dup {
			c.clash(e.Line, e.Path, "a slot for %s stands on line %d already", in.Name, first)
			continue
		}
		seenIn[in.Name] = e.Line
		if line, ok := identity[in.Name]; ok && in.Index != out.Index {
			c.clash(e.Line, e.Path, "%s -> %s conflicts with the tunnel on line %d, which needs %s -> %s", in.Name, out.Name, line, in.Name, in.Name)
			continue
		}
		d.slots = append(d.slots, dataplane.DesiredSlot{In: in, Out: out, Line: e.Line})
	}
	return nil
}

// removeSlot resolves the plain slot a command deletes: by the interface's
// name, or, when it is gone, by the name recorded with the slot. A slot
// that tunnels hold is refused, naming them.
func (c *checker) removeSlot(e Entry[SlotArgs], state *maps.EncapState, d *desired) {
	name := e.Args.In
	if fail(c, e, maps.ValidateIfaceName(c.flag("in"), name)) {
		return
	}
	slots, err := state.ListSlots()
	if fail(c, e, err) {
		return
	}
	idx := uint32(0)
	if ifc, err := netdev.Lookup(name); err == nil {
		idx = uint32(ifc.Index)
	} else if !errors.Is(err, netdev.ErrNoInterface) {
		fail(c, e, err)
		return
	}
	for _, s := range slots {
		if idx != 0 && s.In != idx || idx == 0 && s.InName != name {
			continue
		}
		if len(s.Tunnels) > 0 {
			fail(c, e, fmt.Errorf("redirect slot %s is used by tunnel %s: %w; delete those tunnels first",
				s.InName, strings.Join(s.Tunnels, ", tunnel "), maps.ErrInUse))
			return
		}
		d.removeEncap.Slots = append(d.removeEncap.Slots, s.In)
		return
	}
	if idx == 0 {
		fail(c, e, fmt.Errorf("redirect slot for %s (no such interface, and no slot recorded under that name): %w", name, maps.ErrNotFound))
		return
	}
	fail(c, e, fmt.Errorf("redirect slot for %s: %w", name, maps.ErrNotFound))
}

// checkXconnect validates the xconnect section: each end resolved, no
// interface in two pairs.
func (c *checker) checkXconnect(sec *XconnectSection, d *desired) error {
	if sec == nil {
		return nil
	}
	var x *dataplane.Xconnect
	if c.mode != Sync {
		l, err := c.current(dataplane.XconnectDataplane)
		if err != nil {
			return err
		}
		st, err := maps.NewXconnectState(l.Maps)
		if err != nil {
			return err
		}
		x = &dataplane.Xconnect{Handle: dataplane.NewHandle(l, st)}
	}
	paired := map[string]int{}
	for _, e := range sec.Pairs {
		if c.mode == Remove {
			if fail(c, e, maps.ValidateIfaceName(c.flag("a"), e.Args.A)) {
				continue
			}
			p, err := x.PairOfName(e.Args.A, "") // in this namespace already
			if !fail(c, e, err) {
				d.removePairs = append(d.removePairs, p)
			}
			continue
		}
		a, ok1 := lookup(c, e, "a", e.Args.A)
		b, ok2 := lookup(c, e, "b", e.Args.B)
		var modeErr error
		if e.Args.Mode != "" {
			_, modeErr = dataplane.ParseMode(e.Args.Mode)
		}
		if bad := fail(c, e, modeErr); !ok1 || !ok2 || bad {
			continue
		}
		for _, end := range []netdev.Iface{a, b} {
			c.xdpOwner("pair "+a.Name+"<->"+b.Name, end, dataplane.XconnectDataplane, "xconnect", c.attachListed)
		}
		if c.mode == Create {
			inUse := false
			for _, end := range []netdev.Iface{a, b} {
				if other, err := x.State.PairOf(uint32(end.Index)); err == nil && !inUse {
					inUse = fail(c, e, fmt.Errorf("%s is already cross-connected in pair %s: %w; run 'tunmux xconnect del %s' first", end.Name, other.Key(), maps.ErrInUse, end.Name))
				}
			}
			if inUse {
				continue
			}
		}
		bad := false
		for _, n := range []string{a.Name, b.Name} {
			if first, dup := paired[n]; dup {
				c.clash(e.Line, e.Path, "%s is already in the pair on line %d", n, first)
				bad = true
			}
			if a.Name == b.Name {
				break
			}
		}
		if bad {
			continue
		}
		paired[a.Name], paired[b.Name] = e.Line, e.Line
		d.pairs = append(d.pairs, dataplane.DesiredPair{A: a, B: b, Mode: e.Args.Mode, Line: e.Line})
	}
	return nil
}

// checkL2TP validates the l2tp section: sessions parsed as 'l2tp session
// add' parses them, interfaces resolved, one session per Ethernet
// interface.
func (c *checker) checkL2TP(sec *L2TPSection, d *desired) error {
	if sec == nil {
		return nil
	}
	var state *maps.L2TPState
	if c.mode != Sync {
		l, err := c.current(dataplane.L2TPDataplane)
		if err != nil {
			return err
		}
		if state, err = maps.NewL2TPState(l.Maps); err != nil {
			return err
		}
	}
	ids, eths := map[uint32]int{}, map[string]int{}
	for _, e := range sec.Sessions {
		id, base, next, err := command(c, e, func() (uint32, error) { return maps.ParseSessionID("--session-id", e.Args.SessionID) },
			state.GetSession, e.Args.FormErrors, func(id uint32) error {
				return fmt.Errorf("session %d: %w (use l2tp session update)", id, maps.ErrExists)
			})
		if err != nil {
			return err
		}
		if next {
			if c.mode == Remove && base != nil {
				d.removeSessions = append(d.removeSessions, id)
			}
			continue
		}
		s, err := e.Args.Parse(base)
		if fail(c, e, err) {
			lookupGiven(c, e, [][2]string{{"eth-iface", e.Args.EthIface}, {"tunnel-iface", e.Args.TunnelIface}})
			continue
		}
		if first, dup := ids[s.ID]; dup {
			c.clash(e.Line, e.Path, "session %d repeats the one on line %d", s.ID, first)
			continue
		}
		ids[s.ID] = e.Line
		eth, ok1 := lookup(c, e, "eth-iface", s.EthIface)
		tun, ok2 := lookup(c, e, "tunnel-iface", s.TunnelIface)
		if !ok1 || !ok2 {
			continue
		}
		if first, dup := eths[eth.Name]; dup {
			c.clash(e.Line, e.Path, "eth-iface %s already carries the session on line %d (one session per Ethernet interface)", eth.Name, first)
			continue
		}
		eths[eth.Name] = e.Line
		s.EthIndex, s.TunnelIndex, s.EthIface, s.TunnelIface, s.Netns = uint32(eth.Index), uint32(tun.Index), eth.Name, tun.Name, c.ino
		if s.PeerMAC != nil {
			if len(tun.MAC) != 6 {
				fail(c, e, maps.Invalid("--tunnel-iface", tun.Name, "has no Ethernet address", "an Ethernet interface"))
				continue
			}
			s.LocalMAC = tun.MAC
		}
		d.sessions = append(d.sessions, dataplane.DesiredSession{Session: s, Tunnel: tun, Line: e.Line})
	}
	return nil
}

// checkRoute validates the route section's routes (nexthops resolved
// against the tunnel devices of the route dataplane, if it is loaded, and
// those the file creates) and peers.
func (c *checker) checkRoute(sec *RouteSection, d *desired) error {
	if sec == nil {
		return nil
	}
	var devs []maps.TunnelDev
	var state *maps.RouteState
	l, err := dataplane.Open(c.root, dataplane.RouteDataplane)
	switch {
	case err == nil:
		defer l.Close()
		if state, err = maps.NewRouteState(l.Maps); err != nil {
			return err
		}
		if devs, err = state.TunnelDevs(); err != nil {
			return err
		}
	case !errors.Is(err, maps.ErrNotLoaded):
		return err
	case c.mode != Sync && (len(sec.Routes) > 0 || len(sec.Peers) > 0):
		// A command's bad input is reported before the dataplane it needs.
		errs, notLoaded := len(c.errs), err
		defer func() {
			if len(c.errs) == errs {
				c.errs = append(c.errs, notLoaded)
			}
		}()
	}
	seen := map[netip.Prefix]int{}
	for _, e := range sec.Routes {
		p, err1 := maps.ParsePrefix(c.flag("prefix"), e.Args.Prefix)
		if e.Args.Prefix == "" {
			err1 = maps.Invalid(c.flag("prefix"), "", "is required", "an IPv4 or IPv6 CIDR")
		}
		if c.mode == Remove {
			if !fail(c, e, err1) && state != nil {
				_, gerr := state.Get(p)
				if !fail(c, e, precondition(c.mode, gerr == nil, nil, nil, fmt.Errorf("route %s: %w", p, maps.ErrNotFound))) {
					d.removeRoutes = append(d.removeRoutes, p)
				}
			}
			continue
		}
		specs, err2 := maps.ParseNexthops("--nexthop", e.Args.Nexthops)
		bad := fail(c, e, err1)
		if fail(c, e, err2) || bad {
			continue
		}
		if (c.mode == Create || c.mode == Modify) && state != nil {
			_, gerr := state.Get(p)
			if fail(c, e, precondition(c.mode, gerr == nil, nil,
				fmt.Errorf("route %s: %w (use route update, or --replace)", p, maps.ErrExists),
				fmt.Errorf("route %s: %w (use route add)", p, maps.ErrNotFound))) {
				continue
			}
		}
		if first, dup := seen[p]; dup {
			c.clash(e.Line, e.Path, "route %s repeats the one on line %d", p, first)
			continue
		}
		seen[p] = e.Line
		// Nexthops through a device the file creates are resolved when
		// the routes are planned, after it exists.
		var now []maps.NexthopSpec
		for _, sp := range specs {
			if !d.created[sp.Dev] && (sp.Dev != "" || !createsProto(d.devices, sp.Proto)) {
				now = append(now, sp)
			}
		}
		if _, err := dataplane.ResolveNexthops(now, devs, d.ino); fail(c, e, err) {
			continue
		}
		d.routes = append(d.routes, routeSpec{prefix: p, specs: specs, line: e.Line, path: e.Path})
	}
	peers := map[netip.Addr]int{}
	for _, e := range sec.Peers {
		a, err := maps.ParsePeerAddr(c.flag("remote"), e.Args.Remote)
		if fail(c, e, err) {
			continue
		}
		var old maps.Peer
		found := false
		if state != nil && c.mode != Sync {
			var gerr error
			old, gerr = state.Peer(a)
			found = gerr == nil
			if c.mode == Remove {
				if !fail(c, e, precondition(c.mode, found, nil, nil, gerr)) {
					d.removePeers = append(d.removePeers, a)
				}
				continue
			}
		}
		peer := maps.Peer{Remote: a}
		if c.mode != Sync {
			// peer set: the values not given stay as they are.
			peer = old
			peer.Remote = a
			if e.Args.Health == "" && e.Args.ProbePort == "" {
				fail(c, e, maps.Invalid("--health", "", "is required (or --probe-port)", "up|down"))
				continue
			}
		}
		bad := false
		if e.Args.Health != "" || c.mode == Sync {
			health := e.Args.Health
			if health == "" {
				health = "up"
			}
			down, err := maps.ParseHealth(health)
			bad = fail(c, e, err)
			peer.Down = down
		}
		if e.Args.ProbePort != "" {
			n, ierr := maps.ParseUint("--probe-port", e.Args.ProbePort, 0, 65535)
			if ierr != nil {
				ierr.Accepted = "1..65535, or 0 for none"
				bad = fail(c, e, ierr)
			}
			peer.ProbePort = uint16(n)
		}
		if bad {
			continue
		}
		if first, dup := peers[a]; dup {
			c.clash(e.Line, e.Path, "peer %s repeats the one on line %d", a, first)
			continue
		}
		peers[a] = e.Line
		d.peers = append(d.peers, dataplane.DesiredPeer{Peer: peer, Line: e.Line})
	}
	return nil
}
