package apply

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
)

// checker collects the problems of meaning of a document's entries.
type checker struct {
	problems []Problem
	// created names the interfaces the file itself creates (route devices,
	// mux members with create): they are resolved when they exist.
	created map[string]bool
}

func (c *checker) bad(line int, path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// invalid records err's problems at the lines of the fields they name.
func invalid[T any](c *checker, e Entry[T], err error) bool {
	if err == nil {
		return false
	}
	c.problems = append(c.problems, problemsOf(e, err)...)
	return true
}

// parseBool reads a yes/no value of field.
func parseBool(field, s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, maps.Invalid("--"+field, s, "is not a boolean", "true|false")
	}
	return b, nil
}

// checkLoad validates the load section: known dataplanes, capacities.
func (c *checker) checkLoad(sec *LoadSection, d *desired) {
	seen := map[string]int{}
	for _, e := range sec.Dataplanes {
		dp, err := dataplane.Lookup(e.Args.Dataplane)
		if err != nil {
			c.bad(e.Line, "load", "unknown dataplane %q (accepted: %s)", e.Args.Dataplane, dataplaneNames())
			continue
		}
		if first, dup := seen[dp.Name]; dup {
			c.bad(e.Line, e.Path, "%s repeats the one on line %d", dp.Name, first)
			continue
		}
		seen[dp.Name] = e.Line
		n := uint64(0)
		if e.Args.MaxEntries != "" {
			v, ierr := maps.ParseUint("--max-entries", e.Args.MaxEntries, 1, dataplane.MaxMaxEntries)
			if ierr != nil {
				invalid(c, e, ierr)
				continue
			}
			if dp.FixedSize && uint32(v) != dp.DefaultMaxEntries {
				invalid(c, e, maps.Invalid("--max-entries", e.Args.MaxEntries, dp.Name+" has a fixed capacity", fmt.Sprintf("omit it (%s holds %d)", dp.Name, dp.DefaultMaxEntries)))
				continue
			}
			n = v
		}
		d.loads[dp.Name] = uint32(n)
	}
}

func dataplaneNames() string {
	s := ""
	for i, n := range dataplane.Names() {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

// checkAttach validates the attach section: attachable programs, hooks,
// modes, interfaces.
func (c *checker) checkAttach(sec *AttachSection, d *desired, iface func(line int, path, field, name string) bool) {
	seen := map[[2]string]int{}
	attachable := dataplane.Attachable()
	for _, e := range sec.Entries {
		a := e.Args
		dp := attachable[a.Program]
		bad := false
		if a.Program == "" || dp == nil {
			bad = invalid(c, e, maps.Invalid("--program", a.Program, "is not an attachable program", attachableNames()))
		}
		if a.Iface == "" {
			bad = invalid(c, e, maps.Invalid("--iface", "", "is required", "an interface name")) || bad
		} else if !c.created[a.Iface] && !iface(e.fieldLine("iface"), e.Path, "iface", a.Iface) {
			bad = true
		}
		if a.Hook != "" && a.Hook != "xdp" && a.Hook != "tc" {
			bad = invalid(c, e, maps.Invalid("--hook", a.Hook, "unknown hook", "xdp|tc")) || bad
		} else if dp != nil {
			p, _ := dp.Program(a.Program)
			switch {
			case a.Hook == "tc" && p.Hook == maps.HookXDP && p.TCVariant == "":
				bad = invalid(c, e, maps.Invalid("--hook", a.Hook, a.Program+" has no TC variant", "xdp")) || bad
			case a.Hook == "xdp" && p.Hook != maps.HookXDP:
				bad = invalid(c, e, maps.Invalid("--hook", a.Hook, a.Program+" attaches at "+p.Hook.String(), "omit it")) || bad
			case a.Mode != "" && (p.Hook != maps.HookXDP || a.Hook == "tc"):
				bad = invalid(c, e, maps.Invalid("--mode", a.Mode, "applies to XDP only", "omit it")) || bad
			}
		}
		if a.Mode != "" {
			if _, err := dataplane.ParseMode(a.Mode); err != nil {
				bad = invalid(c, e, err) || bad
			}
		}
		if bad {
			continue
		}
		k := [2]string{a.Program, a.Iface}
		if first, dup := seen[k]; dup {
			c.bad(e.Line, e.Path, "%s on %s repeats the one on line %d", a.Program, a.Iface, first)
			continue
		}
		seen[k] = e.Line
		d.attachments = append(d.attachments, dataplane.DesiredAttachment{Program: a.Program, Iface: a.Iface, Hook: a.Hook, Mode: a.Mode, Line: e.Line})
	}
}

func attachableNames() string {
	s := ""
	for i, n := range sortedAttachable() {
		if i > 0 {
			s += "|"
		}
		s += n
	}
	return s
}

// checkMux validates the mux section: the carrier and each member.
func (c *checker) checkMux(sec *MuxSection, d *desired, iface func(line int, path, field, name string) bool) {
	if e := sec.Carrier; e != nil {
		ok := iface(e.fieldLine("iface"), e.Path, "iface", e.Args.Iface)
		if _, err := maps.ParseOnMiss(e.Args.OnMiss); invalid(c, *e, err) {
			ok = false
		}
		if e.Args.PeerMAC != "" {
			if _, err := maps.ParseMAC("--peer-mac", e.Args.PeerMAC); invalid(c, *e, err) {
				ok = false
			}
		}
		if ok {
			d.carrier = &dataplane.DesiredCarrier{Iface: e.Args.Iface, OnMiss: e.Args.OnMiss, PeerMAC: e.Args.PeerMAC, Line: e.Line}
		}
	}
	labels, names := map[uint8]int{}, map[string]int{}
	for _, e := range sec.Members {
		a := e.Args
		label, err := maps.ParseLabel("--label", a.Label)
		bad := invalid(c, e, err)
		create, err := parseBool("create", a.Create)
		bad = invalid(c, e, err) || bad
		if a.MTU != "" {
			if !create {
				bad = invalid(c, e, maps.Invalid("--mtu", a.MTU, "is only valid with create: true", "omit it, or add create: true")) || bad
			} else if _, err := maps.ParseUint("--mtu", a.MTU, 68, 65535); err != nil {
				bad = invalid(c, e, err) || bad
			}
		}
		if err := maps.ValidateIfaceName("--name", a.Name); invalid(c, e, err) {
			continue
		}
		if !create && !iface(e.fieldLine("name"), e.Path, "name", a.Name) {
			bad = true
		}
		if bad {
			continue
		}
		if first, dup := labels[label]; dup {
			c.bad(e.Line, e.Path, "label %d repeats the one on line %d", label, first)
			continue
		}
		if first, dup := names[a.Name]; dup {
			c.bad(e.Line, e.Path, "member %s repeats the one on line %d", a.Name, first)
			continue
		}
		labels[label], names[a.Name] = e.Line, e.Line
		d.members = append(d.members, dataplane.DesiredMember{Name: a.Name, Label: strconv.Itoa(int(label)), Create: create, MTU: a.MTU, Line: e.Line})
	}
}

// checkDevices validates the route section's devices.
func (c *checker) checkDevices(sec *RouteSection, d *desired) {
	names, protos := map[string]int{}, map[string]int{}
	for _, e := range sec.Devices {
		a := e.Args
		routes, err := parseBool("routes", a.Routes)
		bad := invalid(c, e, err)
		bad = invalid(c, e, maps.ValidateIfaceName("--name", a.Name)) || bad
		proto := maps.RouteProto(0)
		switch {
		case routes && (a.Proto != "" || a.Local != "" || a.Port != ""):
			bad = invalid(c, e, maps.Invalid("--routes", a.Routes, "takes no proto, local or port (they are tunnel device settings)", "routes: true [mtu: M]")) || bad
		case !routes:
			p, err := maps.ParseRouteProto("--proto", a.Proto, false)
			if a.Proto == "" {
				err = maps.Invalid("--proto", "", "is required (or routes: true)", "vxlan|geneve")
			}
			bad = invalid(c, e, err) || bad
			proto = p
			if a.Local != "" {
				if _, err := maps.ParsePeerAddr("--local", a.Local); err != nil {
					bad = invalid(c, e, err) || bad
				}
			}
			if a.Port != "" {
				if _, err := maps.ParseUint("--port", a.Port, 1, 65535); err != nil {
					bad = invalid(c, e, err) || bad
				}
			}
		}
		if a.MTU != "" {
			if _, err := maps.ParseUint("--mtu", a.MTU, 68, 65535); err != nil {
				bad = invalid(c, e, err) || bad
			}
		}
		if bad {
			continue
		}
		if first, dup := names[a.Name]; dup {
			c.bad(e.Line, e.Path, "device %s repeats the one on line %d", a.Name, first)
			continue
		}
		names[a.Name] = e.Line
		if !routes {
			if first, dup := protos[proto.String()]; dup {
				c.bad(e.Line, e.Path, "a %s device stands on line %d already (one tunnel device per protocol)", proto, first)
				continue
			}
			protos[proto.String()] = e.Line
		}
		local := a.Local
		if ad, err := maps.ParsePeerAddr("--local", a.Local); err == nil {
			local = ad.String()
		}
		d.devices = append(d.devices, dataplane.DesiredDevice{Name: a.Name, Routes: routes, Line: e.Line,
			Tunnel: dataplane.TunnelDevOptions{Proto: a.Proto, Local: local, Port: a.Port, MTU: a.MTU}})
		c.created[a.Name] = true
	}
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
