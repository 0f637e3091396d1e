package apply

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Options are the parameters of an apply.
type Options struct {
	Netns   string    // network namespace of the file's interfaces ("" the caller's)
	DryRun  bool      // compute and report the changes, write nothing
	Prune   bool      // remove entries of the file's sections that the file lacks
	Chunk   int       // entries per batch map operation (0: 4096)
	Version string    // recorded when apply loads a dataplane
	Built   time.Time // this build's commit time: a load refuses to downgrade programs
	// Upgrade loads the file's dataplanes that are loaded already too, so
	// that programs of another build are replaced by this build's in place
	// (their links updated, maps and entries kept), as a new agent does
	// when it starts. Programs of a newer build are left, with a warning,
	// unless AllowDowngrade. A dry run does not upgrade.
	Upgrade, AllowDowngrade bool
	// Mode says how the document's entries meet the pinned ones: Sync for
	// a file; a command's write is a one-entry document in another mode.
	Mode Mode
	// Names are what errors call the document's fields, where a command
	// takes them as arguments rather than flags ("in" -> "IN"); other
	// fields are named as their flags (--vni).
	Names map[string]string
}

// Mode says how a document's entries meet the pinned ones.
type Mode int

const (
	// Sync makes each entry equal the document's (added or changed); with
	// Prune, the entries of its sections that it lacks are removed; the
	// dataplanes it needs are loaded. Problems come back by line.
	Sync Mode = iota
	// Create adds entries that must be new (tunmux ... add).
	Create
	// Modify changes entries that must exist: the fields given replace
	// theirs (tunmux ... update).
	Modify
	// Replace writes entries whole, new or not (add --replace, set).
	Replace
	// Remove deletes entries that must exist; the document gives their keys
	// (tunmux ... del).
	Remove
)

// Result is what an apply found and did.
type Result struct {
	File     string             `json:"file"`
	DryRun   bool               `json:"dry_run"`
	Applied  bool               `json:"applied"` // false: dry run, or nothing to change
	Changes  []dataplane.Change `json:"changes"`
	Summary  map[string]int     `json:"summary"` // add, change, remove, load
	Warnings []string           `json:"warnings"`
	// Fleet is the node whose view of a fleet file was applied (absent:
	// the file has no nodes: or defaults:).
	Fleet *FleetView `json:"fleet,omitempty"`
	// UpgradeError says why an upgrade (Options.Upgrade) of the file's
	// dataplanes failed; the entries were applied all the same.
	UpgradeError string `json:"upgrade_error,omitempty"`
	// Done holds what the writes that report on themselves returned, for a
	// command to print: attachments and detachments, devices created and
	// deleted.
	Done Outcomes `json:"-"`
}

// Outcomes are what the writes of an apply that report on themselves
// returned.
type Outcomes struct {
	Attach  dataplane.AttachOutcome
	Devices dataplane.DeviceOutcome
}

// desired is a document checked and resolved against the machine.
type desired struct {
	ino         uint64
	loads       map[string]uint32 // dataplane -> capacity asked for (0: default)
	attachments []dataplane.DesiredAttachment
	tunnels     []dataplane.DesiredTunnel
	slots       []dataplane.DesiredSlot
	pairs       []dataplane.DesiredPair
	sessions    []dataplane.DesiredSession
	carrier     *dataplane.DesiredCarrier
	members     []dataplane.DesiredMember
	devices     []dataplane.DesiredDevice
	routes      []routeSpec
	peers       []dataplane.DesiredPeer
	// created names the interfaces the file creates (route devices, mux
	// members with create).
	created map[string]bool
	// What a command deletes.
	removeEncap    dataplane.EncapRemovals
	removePairs    []maps.Pair
	removeSessions []uint32
	removeMembers  []string
	removeRoutes   []netip.Prefix
	removePeers    []netip.Addr
	removeDevices  []string
	detach         []dataplane.DesiredAttachment
}

// routeSpec is a checked route whose nexthops are resolved when it is
// planned (after the devices the file creates exist).
type routeSpec struct {
	prefix netip.Prefix
	specs  []maps.NexthopSpec
	line   int
	path   string
}

// DefaultMaxFileSize is the largest desired-state file read by default.
const DefaultMaxFileSize = 256 << 20

// MaxFileSize is the largest desired-state file apply reads (apply
// --max-file-size): a larger one is refused before it is read.
var MaxFileSize int64 = DefaultMaxFileSize

// sizeProblem refuses a file of size bytes when it is over MaxFileSize.
func sizeProblem(path string, size int64) error {
	if size <= MaxFileSize {
		return nil
	}
	return maps.Invalid("-f", path, fmt.Sprintf("holds more than %d bytes (--max-file-size)", MaxFileSize),
		"a desired-state file up to --max-file-size bytes (default 256 MiB); raise it for a larger one")
}

// checkReadable refuses, before opening it, what apply must not read: a
// folder, a device (/dev/zero), a FIFO or a socket (which never end, or
// block), and a file over MaxFileSize.
func checkReadable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return maps.Invalid("-f", path, "no such file", "a YAML or JSON desired-state file")
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	switch {
	case st.IsDir():
		return maps.Invalid("-f", path, "is a folder", "a YAML or JSON desired-state file")
	case !st.Mode().IsRegular():
		return maps.Invalid("-f", path, "is not a regular file (a device, FIFO or socket)", "a YAML or JSON desired-state file, or - for standard input")
	}
	return sizeProblem(path, st.Size())
}

// ReadFile reads and parses a desired-state file, the view of it that sel
// picks; "-" reads standard input.
func ReadFile(path string, sel Selector) (*Document, error) {
	if path == "-" {
		return ReadFrom("standard input", os.Stdin, sel)
	}
	if err := checkReadable(path); err != nil {
		return nil, err
	}
	data, err := readWhole(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, maps.Invalid("-f", path, "no such file", "a YAML or JSON desired-state file")
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return ParseFor(path, data, sel)
}

// ReadFrom parses a desired-state document read from r to its end (name
// names it in messages), the view of it that sel picks.
func ReadFrom(name string, r io.Reader, sel Selector) (*Document, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if err := sizeProblem(name, int64(len(data))); err != nil {
		return nil, err
	}
	return ParseFor(name, data, sel)
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
	res := Result{File: file, DryRun: opts.DryRun, Changes: []dataplane.Change{}, Summary: map[string]int{}, Warnings: []string{}, Fleet: doc.Fleet}
	if f := doc.Fleet; f != nil && !f.Listed && opts.Mode == Sync {
		res.Warnings = append(res.Warnings, fmt.Sprintf("node %s is not among the file's nodes (%s): it gets the defaults alone", f.Node, strings.Join(f.Nodes, ", ")))
	}
	defer dataplane.Reuse(root)() // each pinned map opened and checked once
	var d desired
	err := netdev.Do(opts.Netns, func() error {
		var err error
		d, err = check(root, file, doc, opts)
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

// Check checks doc as Apply does before it writes (every value, every
// interface, the conflicts with what is pinned) and writes nothing: the
// apply command runs it first on a root that does not exist yet, so that a
// file that fails its checks creates no root.
func Check(root *maps.Root, file string, doc *Document, opts Options) error {
	defer dataplane.Reuse(root)()
	return netdev.Do(opts.Netns, func() error {
		_, err := check(root, file, doc, opts)
		return err
	})
}

// createsProto reports whether the file creates a tunnel device of proto.
func createsProto(devs []dataplane.DesiredDevice, proto maps.RouteProto) bool {
	for _, d := range devs {
		if !d.Routes && d.Tunnel.Proto == proto.String() {
			return true
		}
	}
	return false
}

// need is one dataplane the file needs loaded, and how many entries of its
// main map.
type need struct {
	dp      *dataplane.Dataplane
	entries int
}

// needs lists the dataplanes the file needs, in load order.
func needs(doc *Document, d desired) []need {
	count := map[*dataplane.Dataplane]int{}
	want := map[*dataplane.Dataplane]bool{}
	for name := range d.loads {
		dp, _ := dataplane.Lookup(name)
		want[dp] = true
	}
	for _, a := range d.attachments {
		want[dataplane.Attachable()[a.Program]] = true
	}
	if doc.Encap != nil {
		want[dataplane.EncapDataplane], count[dataplane.EncapDataplane] = true, len(d.tunnels)
	}
	if doc.Xconnect != nil {
		want[dataplane.XconnectDataplane], count[dataplane.XconnectDataplane] = true, 2*len(d.pairs)
	}
	if doc.L2TP != nil {
		want[dataplane.L2TPDataplane], count[dataplane.L2TPDataplane] = true, len(d.sessions)
	}
	if doc.Mux != nil {
		want[dataplane.MuxDataplane] = true
	}
	if doc.Route != nil {
		want[dataplane.RouteDataplane], count[dataplane.RouteDataplane] = true, len(d.routes)
	}
	var out []need
	for _, dp := range dataplane.All() {
		if want[dp] {
			out = append(out, need{dp, count[dp]})
		}
	}
	return out
}

// loadNeeded loads the dataplanes the file needs that are not loaded, and
// checks the capacity of those that are. It returns those loaded (or, in a
// dry run, those that would be).
func loadNeeded(root *maps.Root, lock *maps.Lock, doc *Document, d desired, opts Options, res *Result) (map[string]bool, error) {
	loaded := map[string]bool{}
	for _, n := range needs(doc, d) {
		asked := d.loads[n.dp.Name]
		l, err := dataplane.Open(root, n.dp)
		switch {
		case err == nil:
			capacity := l.Maps[n.dp.MainMap].MaxEntries()
			l.Close()
			if uint32(n.entries) > capacity {
				return loaded, fmt.Errorf("%s holds %d entries and the file needs %d: %w; unload %s and load it with --max-entries %d or more",
					n.dp.Name, capacity, n.entries, maps.ErrInUse, n.dp.Name, n.entries)
			}
			if asked != 0 && asked != capacity && !n.dp.FixedSize {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s is loaded with capacity %d and the file asks for %d: the capacity changes only when it is loaded anew ('tunmux unload %s' deletes its entries)",
					n.dp.Name, capacity, asked, n.dp.Name))
			}
			if opts.Upgrade && !opts.DryRun {
				if err := upgrade(lock, n.dp, opts, res); err != nil {
					return loaded, err
				}
			}
			loaded[n.dp.Name] = true
		case errors.Is(err, maps.ErrNotLoaded) && opts.Mode == Sync:
			capacity := max(uint32(n.entries), n.dp.DefaultMaxEntries)
			if asked != 0 {
				if asked < uint32(n.entries) {
					return loaded, maps.Invalid("load."+n.dp.Name+".max-entries", fmt.Sprint(asked), fmt.Sprintf("is below the %d entries the file has", n.entries), fmt.Sprintf("%d or more", n.entries))
				}
				capacity = asked
			}
			res.Changes = append(res.Changes, dataplane.Change{Action: "load", Kind: "dataplane", Key: n.dp.Name, Detail: fmt.Sprintf("capacity %d", capacity)})
			if opts.DryRun {
				continue
			}
			if _, err := dataplane.Load(lock, n.dp, dataplane.LoadOptions{MaxEntries: capacity, Version: opts.Version, Built: opts.Built}); err != nil {
				return loaded, err
			}
			loaded[n.dp.Name] = true
		default:
			return loaded, err
		}
	}
	return loaded, nil
}

// upgrade loads a loaded dataplane again: programs of another build are
// replaced by this build's, their links moved over, its maps kept. What it
// replaced is a change ("upgrade"); a refused downgrade is a warning.
func upgrade(lock *maps.Lock, dp *dataplane.Dataplane, opts Options, res *Result) error {
	lr, err := dataplane.Load(lock, dp, dataplane.LoadOptions{Version: opts.Version, Built: opts.Built, AllowDowngrade: opts.AllowDowngrade})
	if errors.Is(err, maps.ErrDowngrade) {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%v; its programs are left as they are", err))
		return nil
	}
	if err != nil {
		// The programs running go on; so do the entries of the file. The
		// failure is the result's, for a watch to retry it and to say it
		// is not ready.
		msg := fmt.Sprintf("upgrade %s to this build's programs: %v; its running programs are left as they are", dp.Name, err)
		res.Warnings = append(res.Warnings, msg)
		res.UpgradeError = msg
		return nil
	}
	if len(lr.Upgraded) > 0 || len(lr.Repaired) > 0 || lr.MigratedFrom != 0 {
		detail := fmt.Sprintf("programs %s replaced in place", strings.Join(lr.Upgraded, ", "))
		if p := lr.Provenance; p != nil && p.Replaced != "" {
			detail += fmt.Sprintf(" (tunmux %s's)", p.Replaced)
		}
		if len(lr.Upgraded) == 0 {
			detail = fmt.Sprintf("%d pin(s) mended", len(lr.Repaired))
		}
		if lr.MigratedFrom != 0 {
			detail += fmt.Sprintf(", migrated from schema %d", lr.MigratedFrom)
		}
		res.Changes = append(res.Changes, dataplane.Change{Action: "upgrade", Kind: "dataplane", Key: dp.Name, Detail: detail})
	}
	return nil
}

// step is one section's part of an apply: plan computes its changes (and
// finds its conflicts) without writing; exec writes them.
type step struct {
	plan func() ([]dataplane.Change, error)
	exec func() error
}

// planned is a plan that lists its changes.
type planned interface{ ChangeList() []dataplane.Change }

// changesOf returns a plan's changes, none when planning failed.
func changesOf[P planned](plan P, err error) []dataplane.Change {
	if err != nil {
		return nil
	}
	return plan.ChangeList()
}

// sectionStep makes the step of a dataplane's section: open the dataplane,
// plan, execute. When it is not loaded (a dry run that would load it),
// unloaded says what would be added.
func sectionStep[H interface{ Close() }, P any](root *maps.Root, loaded bool, open func(*maps.Root) (H, error), opened func(interface{ Close() }),
	unloaded func() []dataplane.Change, plan func(H) (P, []dataplane.Change, error), exec func(H, P) ([]string, error), warn func([]string)) step {
	var h H
	var p P
	return step{
		plan: func() ([]dataplane.Change, error) {
			if !loaded {
				return unloaded(), nil
			}
			var err error
			if h, err = open(root); err != nil {
				return nil, err
			}
			opened(h)
			var cs []dataplane.Change
			p, cs, err = plan(h)
			return cs, err
		},
		exec: func() error {
			w, err := exec(h, p)
			warn(w)
			return err
		},
	}
}

// reconcile loads what the file needs, then plans every section, so that
// conflicts are found before anything is written (a dry run reports them
// too), then writes the sections in dependency order: devices the file
// creates, the mux, attachments, the entries of each dataplane; devices
// pruned go last. Routes through devices the file creates are planned once
// those exist.
func reconcile(root *maps.Root, lock *maps.Lock, doc *Document, d desired, opts Options, res *Result) error {
	loaded, err := loadNeeded(root, lock, doc, d, opts, res)
	if err != nil {
		return err
	}
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	opened := func(l interface{ Close() }) { closers = append(closers, l.Close) }
	warn := func(ws []string) { res.Warnings = append(res.Warnings, ws...) }
	adds := func(kind string, keys ...string) []dataplane.Change {
		var cs []dataplane.Change
		for _, k := range keys {
			cs = append(cs, dataplane.Change{Action: "add", Kind: kind, Key: k})
		}
		return cs
	}
	var steps []step

	var route *dataplane.Route
	var devPlan *dataplane.DevicePlan
	if doc.Route != nil && loaded["route"] {
		if route, err = dataplane.OpenRoute(root); err != nil {
			return err
		}
		opened(route)
	}
	if doc.Route != nil && doc.Route.Devices != nil {
		steps = append(steps, step{
			plan: func() ([]dataplane.Change, error) {
				if route == nil {
					var names []string
					for _, dev := range d.devices {
						names = append(names, dev.Name)
					}
					return adds("device", names...), nil
				}
				var err error
				devPlan, err = route.PlanDevices(d.devices, d.removeDevices, opts.Prune, opts.Mode == Create, d.ino)
				if err != nil {
					return nil, err
				}
				return devPlan.Changes, nil
			},
			exec: func() error {
				var err error
				res.Done.Devices, err = route.ExecuteDevices(lock, devPlan, opts.Netns)
				return err
			},
		})
	}

	if doc.Mux != nil {
		steps = append(steps, sectionStep(root, loaded["mux"], dataplane.OpenMux, opened, func() []dataplane.Change {
			var cs []dataplane.Change
			if d.carrier != nil {
				cs = adds("carrier", d.carrier.Iface)
			}
			for _, mem := range d.members {
				cs = append(cs, adds("member", mem.Name)...)
			}
			return cs
		}, func(m *dataplane.Mux) (*dataplane.MuxPlan, []dataplane.Change, error) {
			plan, err := m.PlanMux(d.carrier, d.members, d.removeMembers, opts.Prune, d.ino)
			return plan, changesOf(plan, err), err
		}, func(m *dataplane.Mux, plan *dataplane.MuxPlan) ([]string, error) {
			return nil, m.ExecuteMux(lock, plan, opts.Netns)
		}, warn))
	}

	if doc.Attach != nil {
		var plan *dataplane.AttachPlan
		steps = append(steps, step{
			plan: func() ([]dataplane.Change, error) {
				var err error
				if plan, err = dataplane.PlanAttach(root, d.attachments, d.detach, opts.Prune, opts.Mode == Create, d.ino); err != nil {
					return nil, err
				}
				return plan.Changes, nil
			},
			exec: func() error {
				out, err := dataplane.ExecuteAttach(lock, plan, opts.Netns)
				res.Done.Attach = out
				warn(out.Warnings)
				return err
			},
		})
	}

	if doc.Encap != nil {
		steps = append(steps, sectionStep(root, loaded["encap"], dataplane.OpenEncap, opened, func() []dataplane.Change { return addAll(d) },
			func(e *dataplane.Encap) (*dataplane.EncapPlan, []dataplane.Change, error) {
				plan, err := e.PlanEncap(d.tunnels, d.slots, d.removeEncap, opts.Prune, d.ino, opts.Netns)
				return plan, changesOf(plan, err), err
			}, func(e *dataplane.Encap, plan *dataplane.EncapPlan) ([]string, error) {
				return e.ExecuteEncap(lock, plan, opts.Netns, d.ino, opts.Chunk)
			}, warn))
	}

	if doc.Xconnect != nil {
		steps = append(steps, sectionStep(root, loaded["xconnect"], dataplane.OpenXconnect, opened, func() []dataplane.Change {
			var keys []string
			for _, p := range d.pairs {
				keys = append(keys, p.A.Name+"<->"+p.B.Name)
			}
			return adds("pair", keys...)
		}, func(x *dataplane.Xconnect) (*dataplane.XconnectPlan, []dataplane.Change, error) {
			plan, err := x.PlanXconnect(d.pairs, d.removePairs, opts.Prune, d.ino)
			return plan, changesOf(plan, err), err
		}, func(x *dataplane.Xconnect, plan *dataplane.XconnectPlan) ([]string, error) {
			return x.ExecuteXconnect(lock, plan, opts.Netns, d.ino)
		}, warn))
	}

	if doc.L2TP != nil {
		steps = append(steps, sectionStep(root, loaded["l2tp"], dataplane.OpenL2TP, opened, func() []dataplane.Change {
			var keys []string
			for _, s := range d.sessions {
				keys = append(keys, maps.IDString(s.Session.ID))
			}
			return adds("session", keys...)
		}, func(l *dataplane.L2TP) (*dataplane.L2TPPlan, []dataplane.Change, error) {
			if err := sessionConflicts(l, d.sessions, opts.Mode); err != nil {
				return nil, nil, err
			}
			plan, err := l.PlanL2TP(d.sessions, d.removeSessions, opts.Prune)
			return plan, changesOf(plan, err), err
		}, func(l *dataplane.L2TP, plan *dataplane.L2TPPlan) ([]string, error) {
			return l.ExecuteL2TP(lock, plan, opts.Netns)
		}, warn))
	}

	if doc.Route != nil {
		var plan *dataplane.RoutePlan
		planRoutes := func() ([]dataplane.Change, error) {
			routes, pending, err := resolveRoutes(route, d)
			if err != nil {
				return nil, err
			}
			if plan, err = route.PlanRoute(routes, d.peers, d.removeRoutes, d.removePeers, opts.Prune); err != nil {
				return nil, err
			}
			cs := plan.Changes
			for _, rt := range pending { // a dry run: through devices not made yet
				cs = append(cs, dataplane.Change{Action: "add", Kind: "route", Key: rt.prefix.String(), Detail: "through a device the file creates", Line: rt.line})
			}
			return cs, nil
		}
		// Routes through devices this apply creates are planned once they exist.
		late := false
		steps = append(steps, step{
			plan: func() ([]dataplane.Change, error) {
				if route == nil {
					var cs []dataplane.Change
					for _, rt := range d.routes {
						cs = append(cs, adds("route", rt.prefix.String())...)
					}
					for _, p := range d.peers {
						cs = append(cs, adds("peer", p.Peer.Remote.String())...)
					}
					return cs, nil
				}
				if late = !opts.DryRun && devPlan.Creates(); late {
					return nil, nil
				}
				return planRoutes()
			},
			exec: func() error {
				if route == nil {
					return nil
				}
				if late {
					cs, err := planRoutes()
					res.Changes = append(res.Changes, cs...)
					if err != nil {
						return err
					}
				}
				if err := route.ExecuteRoute(lock, plan); err != nil {
					return err
				}
				if devPlan != nil {
					return route.ExecuteDeviceRemovals(lock, devPlan, opts.Netns)
				}
				return nil
			},
		})
	}

	for _, s := range steps {
		cs, err := s.plan()
		if err != nil {
			return err
		}
		res.Changes = append(res.Changes, cs...)
	}
	if opts.DryRun {
		return nil
	}
	for _, s := range steps {
		if s.exec == nil {
			continue
		}
		if err := s.exec(); err != nil {
			return err
		}
	}
	return nil
}

// resolveRoutes resolves the routes' nexthops against the devices that
// exist now. Routes through a device the file creates that does not exist
// yet (a dry run) are returned apart, as pending.
func resolveRoutes(r *dataplane.Route, d desired) ([]dataplane.DesiredRoute, []routeSpec, error) {
	devs, err := r.State.TunnelDevs()
	if err != nil {
		return nil, nil, err
	}
	var out []dataplane.DesiredRoute
	var pending []routeSpec
	for _, rt := range d.routes {
		nhs, err := dataplane.ResolveNexthops(rt.specs, devs, d.ino)
		if err != nil {
			if throughCreated(rt, d) {
				pending = append(pending, rt)
				continue
			}
			return nil, nil, fmt.Errorf("route %s (line %d): %w", rt.prefix, rt.line, err)
		}
		out = append(out, dataplane.DesiredRoute{Route: maps.Route{Prefix: rt.prefix, Nexthops: nhs}, Line: rt.line})
	}
	return out, pending, nil
}

// throughCreated reports whether a route has a nexthop through a device
// the file creates.
func throughCreated(rt routeSpec, d desired) bool {
	for _, sp := range rt.specs {
		if d.created[sp.Dev] || sp.Dev == "" && createsProto(d.devices, sp.Proto) {
			return true
		}
	}
	return false
}

// addAll lists the encap entries of a dry run against a dataplane not loaded.
func addAll(d desired) []dataplane.Change {
	var out []dataplane.Change
	seen := map[string]bool{}
	for _, t := range d.tunnels {
		for _, ifc := range []netdev.Iface{*t.Underlay, *t.Overlay} {
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
func sessionConflicts(l *dataplane.L2TP, sessions []dataplane.DesiredSession, mode Mode) error {
	inFile := map[uint32]bool{}
	for _, s := range sessions {
		inFile[s.Session.ID] = true
	}
	var errs []error
	for _, s := range sessions {
		other, ok := l.State.SessionOnEth(s.Session.EthIndex)
		switch {
		case !ok || other == s.Session.ID || inFile[other]:
		case mode != Sync:
			errs = append(errs, fmt.Errorf("--eth-iface %s already carries session %d (one session per Ethernet interface): %w", s.Session.EthIface, other, maps.ErrInUse))
		default:
			errs = append(errs, fmt.Errorf("session %d: %s already carries session %d, which the file does not have (one session per Ethernet interface; --prune removes it): %w",
				s.Session.ID, s.Session.EthIface, other, maps.ErrInUse))
		}
	}
	return errors.Join(errs...)
}

// mapAtLeast is the size from which ReadFile reads a file into memory
// mapped for it rather than into the Go heap.
const mapAtLeast = 4 << 20

// readWhole returns a copy of the bytes of the file at path. A large file
// is read into anonymous memory mapped with its pages populated up front
// (MAP_POPULATE): on a VM a page fault per 4 KB of a fresh heap buffer
// costs more than parsing the bytes (about 2.8 ms a MB here, 25 times the
// populated mapping's cost; re-applying 100,000 tunnels from JSON took 18%
// less). It is a copy, as os.ReadFile's is: the file may change or shrink
// meanwhile without the document changing. The mapping is never unmapped:
// the parsed document's strings point into it, and apply -f is a one-shot
// command (apply --watch reads through the heap).
func readWhole(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if !st.Mode().IsRegular() || size < mapAtLeast || size != int64(int(size)) {
		return io.ReadAll(f)
	}
	// One byte more than the file: a file that grew meanwhile shows as
	// such instead of being cut short.
	buf, err := unix.Mmap(-1, 0, int(size)+1, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return io.ReadAll(f)
	}
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	if n > int(size) {
		// It grew while being read: read it the ordinary way, whole.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		return io.ReadAll(f)
	}
	return buf[:n:n], nil
}
