package apply

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Options are the parameters of an apply.
type Options struct {
	Netns   string // network namespace of the file's interfaces ("" the caller's)
	DryRun  bool   // compute and report the changes, write nothing
	Prune   bool   // remove entries of the file's sections that the file lacks
	Chunk   int    // entries per batch map operation (0: 4096)
	Version string // recorded when apply loads a dataplane
}

// Result is what an apply found and did.
type Result struct {
	File     string             `json:"file"`
	DryRun   bool               `json:"dry_run"`
	Applied  bool               `json:"applied"` // false: dry run, or nothing to change
	Changes  []dataplane.Change `json:"changes"`
	Summary  map[string]int     `json:"summary"` // add, change, remove, load
	Warnings []string           `json:"warnings"`
}

// desired is a document checked and resolved against the machine.
type desired struct {
	ino      uint64
	tunnels  []dataplane.DesiredTunnel
	slots    []dataplane.DesiredSlot
	pairs    []dataplane.DesiredPair
	sessions []dataplane.DesiredSession
	routes   []dataplane.DesiredRoute
	peers    []dataplane.DesiredPeer
}

// ReadFile reads and parses a desired-state file.
func ReadFile(path string) (*Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, maps.Invalid("-f", path, "no such file", "a YAML or JSON desired-state file")
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return Parse(path, data)
}

// Apply makes the pinned state equal the document, under the lock: every
// entry is validated and every interface resolved first (a bad file changes
// nothing: *InvalidFileError, every problem by line); the dataplanes the
// file has sections for are loaded if they are not; then each section is
// compared with what is pinned and the differences written in dependency
// order. Applying the same file again changes nothing. A dry run reads
// only and may be given a nil lock.
func Apply(root *maps.Root, lock *maps.Lock, file string, doc *Document, opts Options) (Result, error) {
	if lock == nil && !opts.DryRun {
		return Result{}, errors.New("apply: writing needs the lock")
	}
	res := Result{File: file, DryRun: opts.DryRun, Changes: []dataplane.Change{}, Summary: map[string]int{}, Warnings: []string{}}
	var d desired
	err := netdev.Do(opts.Netns, func() error {
		var err error
		d, err = check(root, file, doc, opts.Netns)
		if err != nil {
			return err
		}
		return reconcile(root, lock, doc, d, opts, &res)
	})
	for _, c := range res.Changes {
		res.Summary[c.Action]++
	}
	res.Applied = err == nil && !opts.DryRun && len(res.Changes) > 0
	return res, err
}

// check validates the document's entries and resolves their interfaces in
// the current namespace.
func check(root *maps.Root, file string, doc *Document, netnsName string) (desired, error) {
	var d desired
	problems := append([]Problem(nil), doc.problems...)
	ino, err := netdev.CurrentInode()
	if err != nil {
		return d, err
	}
	d.ino = ino
	ifaces := map[string]netdev.Iface{}
	resolve := func(name string) (netdev.Iface, error) {
		if ifc, ok := ifaces[name]; ok {
			return ifc, nil
		}
		ifc, err := netdev.Lookup(name)
		if err == nil {
			ifaces[name] = ifc
		}
		return ifc, err
	}
	where := "this network namespace"
	if netnsName != "" {
		where = "network namespace " + netnsName
	}
	iface := func(line int, path, field, name string) (netdev.Iface, bool) {
		if err := maps.ValidateIfaceName("--"+field, name); err != nil {
			problems = append(problems, Problem{Line: line, Path: path, Msg: strings.TrimPrefix(err.Error(), "--")})
			return netdev.Iface{}, false
		}
		ifc, err := resolve(name)
		if errors.Is(err, netdev.ErrNoInterface) {
			problems = append(problems, Problem{Line: line, Path: path, Msg: fmt.Sprintf("%s %q: no such interface in %s", field, name, where)})
			return ifc, false
		}
		if err != nil {
			problems = append(problems, Problem{Line: line, Path: path, Msg: err.Error()})
			return ifc, false
		}
		return ifc, true
	}

	if doc.Encap != nil {
		seen := map[maps.TunnelKey]int{}
		identity := map[string]int{} // interfaces tunnels need identity slots for
		for _, e := range doc.Encap.Tunnels {
			t, err := e.Args.Parse(nil)
			if err != nil {
				problems = append(problems, problemsOf(e, err)...)
				// Still say which interfaces are missing.
				for _, f := range [][2]string{{"underlay", e.Args.Underlay}, {"overlay", e.Args.Overlay}} {
					if f[1] != "" && maps.ValidateIfaceName("--"+f[0], f[1]) == nil {
						iface(e.fieldLine(f[0]), e.Path, f[0], f[1])
					}
				}
				continue
			}
			if first, dup := seen[t.TunnelKey]; dup {
				problems = append(problems, Problem{Line: e.Line, Path: e.Path, Msg: fmt.Sprintf("tunnel %s repeats the one on line %d", t.TunnelKey, first)})
				continue
			}
			seen[t.TunnelKey] = e.Line
			under, ok1 := iface(e.fieldLine("underlay"), e.Path, "underlay", t.Underlay)
			over, ok2 := iface(e.fieldLine("overlay"), e.Path, "overlay", t.Overlay)
			if !ok1 || !ok2 {
				continue
			}
			t.UnderlayIndex, t.OverlayIndex = uint32(under.Index), uint32(over.Index)
			t.OverlayPeerNetns = over.PeerElsewhere()
			if t.Proto.UsesUDP() && t.SrcMAC == nil {
				if len(under.MAC) != 6 {
					problems = append(problems, Problem{Line: e.Line, Path: e.Path, Msg: fmt.Sprintf("src-mac is required: %s has no Ethernet address", under.Name)})
					continue
				}
				t.SrcMAC = under.MAC
			}
			identity[under.Name], identity[over.Name] = e.Line, e.Line
			d.tunnels = append(d.tunnels, dataplane.DesiredTunnel{Tunnel: t, Underlay: under, Overlay: over, Line: e.Line})
		}
		seenIn := map[string]int{}
		for _, e := range doc.Encap.Devmap {
			in, ok1 := iface(e.fieldLine("in"), e.Path, "in", e.Args.In)
			out, ok2 := iface(e.fieldLine("out"), e.Path, "out", e.Args.Out)
			if !ok1 || !ok2 {
				continue
			}
			if first, dup := seenIn[in.Name]; dup {
				problems = append(problems, Problem{Line: e.Line, Path: e.Path, Msg: fmt.Sprintf("a slot for %s stands on line %d already", in.Name, first)})
				continue
			}
			seenIn[in.Name] = e.Line
			if line, ok := identity[in.Name]; ok && in.Index != out.Index {
				problems = append(problems, Problem{Line: e.Line, Path: e.Path, Msg: fmt.Sprintf("%s -> %s conflicts with the tunnel on line %d, which needs %s -> %s", in.Name, out.Name, line, in.Name, in.Name)})
				continue
			}
			d.slots = append(d.slots, dataplane.DesiredSlot{In: in, Out: out, Line: e.Line})
		}
	}

	if doc.Xconnect != nil {
		paired := map[string]int{}
		for _, e := range doc.Xconnect.Pairs {
			a, ok1 := iface(e.Line, e.Path, "a", e.Args.A)
			b, ok2 := iface(e.Line, e.Path, "b", e.Args.B)
			if !ok1 || !ok2 {
				continue
			}
			bad := false
			for _, n := range []string{a.Name, b.Name} {
				if first, dup := paired[n]; dup {
					problems = append(problems, Problem{Line: e.Line, Path: e.Path, Msg: fmt.Sprintf("%s is already in the pair on line %d", n, first)})
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
			d.pairs = append(d.pairs, dataplane.DesiredPair{A: a, B: b, Line: e.Line})
		}
	}

	if doc.L2TP != nil {
		ids, eths := map[uint32]int{}, map[string]int{}
		for _, e := range doc.L2TP.Sessions {
			s, err := e.Args.Parse(nil)
			if err != nil {
				problems = append(problems, problemsOf(e, err)...)
				for _, f := range [][2]string{{"eth-iface", e.Args.EthIface}, {"tunnel-iface", e.Args.TunnelIface}} {
					if f[1] != "" && maps.ValidateIfaceName("--"+f[0], f[1]) == nil {
						iface(e.fieldLine(f[0]), e.Path, f[0], f[1])
					}
				}
				continue
			}
			if first, dup := ids[s.ID]; dup {
				problems = append(problems, Problem{Line: e.Line, Path: e.Path, Msg: fmt.Sprintf("session %d repeats the one on line %d", s.ID, first)})
				continue
			}
			ids[s.ID] = e.Line
			eth, ok1 := iface(e.fieldLine("eth-iface"), e.Path, "eth-iface", s.EthIface)
			tun, ok2 := iface(e.fieldLine("tunnel-iface"), e.Path, "tunnel-iface", s.TunnelIface)
			if !ok1 || !ok2 {
				continue
			}
			if first, dup := eths[eth.Name]; dup {
				problems = append(problems, Problem{Line: e.Line, Path: e.Path, Msg: fmt.Sprintf("eth-iface %s already carries the session on line %d (one session per Ethernet interface)", eth.Name, first)})
				continue
			}
			eths[eth.Name] = e.Line
			s.EthIndex, s.TunnelIndex, s.EthIface, s.TunnelIface, s.Netns = uint32(eth.Index), uint32(tun.Index), eth.Name, tun.Name, ino
			if s.PeerMAC != nil {
				s.LocalMAC = tun.MAC
			}
			d.sessions = append(d.sessions, dataplane.DesiredSession{Session: s, Tunnel: tun, Line: e.Line})
		}
	}
	if doc.Route != nil {
		ps, err := checkRoute(root, doc.Route, &d)
		if err != nil {
			return d, err
		}
		problems = append(problems, ps...)
	}
	if len(problems) > 0 {
		sortProblems(problems)
		return d, &InvalidFileError{File: file, Problems: problems}
	}
	return d, nil
}

// checkRoute validates the route section: prefixes, nexthops (their devices
// resolved against the tunnel devices of the loaded route dataplane, if it
// is loaded) and peers.
func checkRoute(root *maps.Root, sec *RouteSection, d *desired) ([]Problem, error) {
	var problems []Problem
	var devs []maps.TunnelDev
	r, err := dataplane.OpenRoute(root)
	switch {
	case err == nil:
		devs, err = r.State.TunnelDevs()
		r.Close()
		if err != nil {
			return nil, err
		}
	case !errors.Is(err, maps.ErrNotLoaded):
		return nil, err
	}
	bad := func(line int, path string, err error) {
		for _, one := range maps.Flatten(err) {
			problems = append(problems, Problem{Line: line, Path: path, Msg: one.Error()})
		}
	}
	seen := map[netip.Prefix]int{}
	for _, e := range sec.Routes {
		p, err1 := maps.ParsePrefix("prefix", e.Args.Prefix)
		if e.Args.Prefix == "" {
			err1 = maps.Invalid("prefix", "", "is required", "an IPv4 or IPv6 CIDR")
		}
		specs, err2 := maps.ParseNexthops("nexthop", e.Args.Nexthops)
		bad(e.fieldLine("prefix"), e.Path, err1)
		bad(e.fieldLine("nexthops"), e.Path, err2)
		if err1 != nil || err2 != nil {
			continue
		}
		if first, dup := seen[p]; dup {
			problems = append(problems, Problem{Line: e.Line, Path: e.Path, Msg: fmt.Sprintf("route %s repeats the one on line %d", p, first)})
			continue
		}
		seen[p] = e.Line
		nhs, err := dataplane.ResolveNexthops(specs, devs, d.ino)
		if err != nil {
			bad(e.fieldLine("nexthops"), e.Path, err)
			continue
		}
		d.routes = append(d.routes, dataplane.DesiredRoute{Route: maps.Route{Prefix: p, Nexthops: nhs}, Line: e.Line})
	}
	peers := map[netip.Addr]int{}
	for _, e := range sec.Peers {
		a, err := maps.ParsePeerAddr("remote", e.Args.Remote)
		bad(e.fieldLine("remote"), e.Path, err)
		peer := maps.Peer{Remote: a}
		health := e.Args.Health
		if health == "" {
			health = "up"
		}
		down, err := maps.ParseHealth(health)
		bad(e.fieldLine("health"), e.Path, err)
		peer.Down = down
		if e.Args.ProbePort != "" {
			n, ierr := maps.ParseUint("probe-port", e.Args.ProbePort, 0, 65535)
			if ierr != nil {
				bad(e.fieldLine("probe-port"), e.Path, ierr)
			}
			peer.ProbePort = uint16(n)
		}
		if !a.IsValid() {
			continue
		}
		if first, dup := peers[a]; dup {
			problems = append(problems, Problem{Line: e.Line, Path: e.Path, Msg: fmt.Sprintf("peer %s repeats the one on line %d", a, first)})
			continue
		}
		peers[a] = e.Line
		d.peers = append(d.peers, dataplane.DesiredPeer{Peer: peer, Line: e.Line})
	}
	return problems, nil
}

// reconcile loads what the file needs, then plans and writes each section.
func reconcile(root *maps.Root, lock *maps.Lock, doc *Document, d desired, opts Options, res *Result) error {
	type section struct {
		present bool
		dp      *dataplane.Dataplane
		need    int // entries of the main map
	}
	sections := []section{
		{doc.Encap != nil, dataplane.EncapDataplane, len(d.tunnels)},
		{doc.Xconnect != nil, dataplane.XconnectDataplane, 2 * len(d.pairs)},
		{doc.L2TP != nil, dataplane.L2TPDataplane, len(d.sessions)},
		{doc.Route != nil, dataplane.RouteDataplane, len(d.routes)},
	}
	loaded := map[string]bool{}
	for _, s := range sections {
		if !s.present {
			continue
		}
		l, err := dataplane.Open(root, s.dp)
		switch {
		case err == nil:
			capacity := l.Maps[s.dp.MainMap].MaxEntries()
			l.Close()
			if uint32(s.need) > capacity {
				return fmt.Errorf("%s holds %d entries and the file needs %d: %w; unload %s and load it with --max-entries %d or more",
					s.dp.Name, capacity, s.need, maps.ErrInUse, s.dp.Name, s.need)
			}
			loaded[s.dp.Name] = true
		case errors.Is(err, maps.ErrNotLoaded):
			res.Changes = append(res.Changes, dataplane.Change{Action: "load", Kind: "dataplane", Key: s.dp.Name,
				Detail: fmt.Sprintf("capacity %d", max(uint32(s.need), s.dp.DefaultMaxEntries))})
			if opts.DryRun {
				continue
			}
			if _, err := dataplane.Load(lock, s.dp, dataplane.LoadOptions{MaxEntries: max(uint32(s.need), s.dp.DefaultMaxEntries), Version: opts.Version}); err != nil {
				return err
			}
			loaded[s.dp.Name] = true
		default:
			return err
		}
	}

	if doc.Encap != nil && loaded["encap"] {
		e, err := dataplane.OpenEncap(root)
		if err != nil {
			return err
		}
		defer e.Close()
		plan, err := e.PlanEncap(d.tunnels, d.slots, opts.Prune, d.ino)
		if err != nil {
			return err
		}
		res.Changes = append(res.Changes, plan.Changes...)
		if !opts.DryRun {
			w, err := e.ExecuteEncap(lock, plan, opts.Netns, d.ino, opts.Chunk)
			res.Warnings = append(res.Warnings, w...)
			if err != nil {
				return err
			}
		}
	} else if doc.Encap != nil {
		res.Changes = append(res.Changes, addAll(d)...)
	}

	if doc.Xconnect != nil && loaded["xconnect"] {
		x, err := dataplane.OpenXconnect(root)
		if err != nil {
			return err
		}
		defer x.Close()
		plan, err := x.PlanXconnect(d.pairs, opts.Prune, d.ino)
		if err != nil {
			return err
		}
		res.Changes = append(res.Changes, plan.Changes...)
		if !opts.DryRun {
			w, err := x.ExecuteXconnect(lock, plan, opts.Netns, d.ino)
			res.Warnings = append(res.Warnings, w...)
			if err != nil {
				return err
			}
		}
	} else if doc.Xconnect != nil {
		for _, p := range d.pairs {
			res.Changes = append(res.Changes, dataplane.Change{Action: "add", Kind: "pair", Key: p.A.Name + "<->" + p.B.Name, Line: p.Line})
		}
	}

	if doc.L2TP != nil && loaded["l2tp"] {
		l, err := dataplane.OpenL2TP(root)
		if err != nil {
			return err
		}
		defer l.Close()
		if err := sessionConflicts(l, d.sessions); err != nil {
			return err
		}
		plan, err := l.PlanL2TP(d.sessions, opts.Prune)
		if err != nil {
			return err
		}
		res.Changes = append(res.Changes, plan.Changes...)
		if !opts.DryRun {
			w, err := l.ExecuteL2TP(lock, plan)
			res.Warnings = append(res.Warnings, w...)
			if err != nil {
				return err
			}
		}
	} else if doc.L2TP != nil {
		for _, s := range d.sessions {
			res.Changes = append(res.Changes, dataplane.Change{Action: "add", Kind: "session", Key: maps.IDString(s.Session.ID), Line: s.Line})
		}
	}
	if doc.Route != nil && loaded["route"] {
		r, err := dataplane.OpenRoute(root)
		if err != nil {
			return err
		}
		defer r.Close()
		plan, err := r.PlanRoute(d.routes, d.peers, opts.Prune)
		if err != nil {
			return err
		}
		res.Changes = append(res.Changes, plan.Changes...)
		if !opts.DryRun {
			if err := r.ExecuteRoute(lock, plan); err != nil {
				return err
			}
		}
	} else if doc.Route != nil {
		for _, rt := range d.routes {
			res.Changes = append(res.Changes, dataplane.Change{Action: "add", Kind: "route", Key: rt.Route.Prefix.String(), Line: rt.Line})
		}
		for _, p := range d.peers {
			res.Changes = append(res.Changes, dataplane.Change{Action: "add", Kind: "peer", Key: p.Peer.Remote.String(), Line: p.Line})
		}
	}
	return nil
}

// addAll lists the encap entries of a dry run against a dataplane not loaded.
func addAll(d desired) []dataplane.Change {
	var out []dataplane.Change
	seen := map[string]bool{}
	for _, t := range d.tunnels {
		for _, ifc := range []netdev.Iface{t.Underlay, t.Overlay} {
			if !seen[ifc.Name] {
				seen[ifc.Name] = true
				out = append(out, dataplane.Change{Action: "add", Kind: "slot", Key: ifc.Name, Detail: ifc.Name + " -> " + ifc.Name, Line: t.Line})
			}
		}
		out = append(out, dataplane.Change{Action: "add", Kind: "tunnel", Key: t.Tunnel.TunnelKey.String(), Line: t.Line})
	}
	for _, s := range d.slots {
		out = append(out, dataplane.Change{Action: "add", Kind: "slot", Key: s.In.Name, Detail: s.In.Name + " -> " + s.Out.Name, Line: s.Line})
	}
	return out
}

// sessionConflicts refuses a desired session on an Ethernet interface that a
// session the file does not mention already carries.
func sessionConflicts(l *dataplane.L2TP, sessions []dataplane.DesiredSession) error {
	inFile := map[uint32]bool{}
	for _, s := range sessions {
		inFile[s.Session.ID] = true
	}
	var errs []error
	for _, s := range sessions {
		if other, ok := l.State.SessionOnEth(s.Session.EthIndex); ok && other != s.Session.ID && !inFile[other] {
			errs = append(errs, fmt.Errorf("session %d: %s already carries session %d, which the file does not have (one session per Ethernet interface; --prune removes it): %w",
				s.Session.ID, s.Session.EthIface, other, maps.ErrInUse))
		}
	}
	return errors.Join(errs...)
}
