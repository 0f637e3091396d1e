package dataplane

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/progs/encap"
	"github.com/tunmux/tunmux/progs/l2tp"
	"github.com/tunmux/tunmux/progs/mux"
	"github.com/tunmux/tunmux/progs/route"
	"github.com/tunmux/tunmux/progs/xconnect"
)

// Program is one BPF program of a dataplane.
type Program struct {
	Name string    // pin name (prog_<Name>) and, if Attachable, the attach verb
	Func string    // its function in the BPF object, when that differs from Name
	Hook maps.Hook // where it attaches
	// Attachable programs are attached by `tunmux attach <Name> IFACE`;
	// others are used by tunmux itself.
	Attachable bool
	// Role explains, for --help, what arrives on the interface it is attached to.
	Role string
	// RedirectsIngress: frames arriving on its interface are XDP-redirected
	// whole, so they lose checksum offload; attach warns when the sender
	// (a veth peer) offloads transmit checksums.
	RedirectsIngress bool
	// L3Variant names the program attached instead, under this program's
	// name, on an interface without an Ethernet header (a TUN device).
	L3Variant string
	// TCVariant names the program `attach --hook tc` attaches instead: the
	// same job at TC ingress.
	TCVariant string
}

// object returns the program's name in the BPF object.
func (p Program) object() string {
	if p.Func != "" {
		return p.Func
	}
	return p.Name
}

// Migration moves a dataplane's pinned state from schema From to the
// current one, in place, in two steps around the replacement of its
// programs: Before fills the new layout while the old programs still read
// the old one, After removes what only the old programs read. Each step is
// safe to run again (a load cut short is finished by the next).
type Migration struct {
	From   uint32
	Before func(ms map[string]*ebpf.Map) error
	After  func(ms map[string]*ebpf.Map) error
}

// migrationFrom returns the migration from schema from, if there is one.
func (d *Dataplane) migrationFrom(from uint32) (Migration, bool) {
	for _, m := range d.Migrations {
		if m.From == from {
			return m, true
		}
	}
	return Migration{}, false
}

// Dataplane describes one dataplane: its programs, its maps and its schema.
type Dataplane struct {
	Name    string
	Summary string
	// Schema is the layout version of its maps, kept in map_meta.
	Schema uint32
	// MainMap is the map that --max-entries sizes; SizedMaps are sized with
	// it (one entry per main-map entry, such as counters and names).
	MainMap           string
	SizedMaps         []string
	DefaultMaxEntries uint32
	// FixedSize: the capacity is part of the design (--max-entries is refused).
	FixedSize bool
	Programs  []Program
	// Migrations move pinned state of an older schema to this one.
	Migrations []Migration
	loadSpec   func() (*ebpf.CollectionSpec, error)
	// loadObserved reads the observed build of the same source: the
	// programs capture and monitor swap in (progs/include/observe.h).
	loadObserved func() (*ebpf.CollectionSpec, error)
	// objects returns the embedded plain and observed objects' bytes.
	objects func() (plain, observed []byte)
	// mapShapes and counterNames are generated from the object (shapegen)
	// so that opening pins and naming counters parse nothing.
	mapShapes    func() map[string]*ebpf.MapSpec
	counterNames []string
	parse        sync.Once
	parsed       *ebpf.CollectionSpec
	parseErr     error
}

// sizeMaps sets the capacity of the main map and the maps sized with it.
func (d *Dataplane) sizeMaps(specs map[string]*ebpf.MapSpec, n uint32) {
	for _, name := range append([]string{d.MainMap}, d.SizedMaps...) {
		if ms := specs[name]; ms != nil {
			ms.MaxEntries = n
		}
	}
}

// codeVariant, when a build sets it (-ldflags "-X
// github.com/tunmux/tunmux/dataplane.codeVariant=N"), makes every program
// other code that does the same: it starts with r0 = N, which the program
// overwrites before it reads r0. Tests build such a binary to stand for a
// newer build whose programs changed (an upgrade in place).
var codeVariant string

// withVariant prepends r0 = N to every program of spec, moving the first
// instruction's metadata (its symbol, BTF function and line) to it.
func withVariant(spec *ebpf.CollectionSpec, variant string) error {
	n, err := strconv.ParseInt(variant, 10, 32)
	if err != nil {
		return fmt.Errorf("code variant %q: %w", variant, err)
	}
	for _, p := range spec.Programs {
		if len(p.Instructions) == 0 {
			continue
		}
		first := p.Instructions[0]
		mark := asm.Mov.Imm(asm.R0, int32(n)).WithMetadata(first.Metadata)
		p.Instructions = append(asm.Instructions{mark, first.WithMetadata(asm.Metadata{})}, p.Instructions[1:]...)
	}
	return nil
}

// Spec returns a fresh copy of the dataplane's collection spec.
func (d *Dataplane) Spec() (*ebpf.CollectionSpec, error) {
	d.parse.Do(func() {
		d.parsed, d.parseErr = d.loadSpec()
		if d.parseErr == nil && codeVariant != "" {
			d.parseErr = withVariant(d.parsed, codeVariant)
		}
	})
	if d.parseErr != nil {
		return nil, fmt.Errorf("%s: read embedded BPF object: %w", d.Name, d.parseErr)
	}
	// The object is parsed once a process; each caller gets its own copy
	// to size.
	return d.parsed.Copy(), nil
}

// Objects returns the compiled objects embedded in this binary: the plain
// build and the observed one.
func (d *Dataplane) Objects() (plain, observed []byte) { return d.objects() }

// ObservedSpec returns the collection spec of the dataplane's observed
// build: the same programs, with the maps observe_config, observe_events
// and observe_scratch, reporting frames and outcomes as observe.h says.
func (d *Dataplane) ObservedSpec() (*ebpf.CollectionSpec, error) {
	spec, err := d.loadObserved()
	if err != nil {
		return nil, fmt.Errorf("%s: read embedded observed BPF object: %w", d.Name, err)
	}
	return spec, nil
}

// Program returns the program called name.
func (d *Dataplane) Program(name string) (Program, bool) {
	for _, p := range d.Programs {
		if p.Name == name {
			return p, true
		}
	}
	return Program{}, false
}

// EncapDataplane is the encap dataplane: per-flow GENEVE, VXLAN and VLAN
// push and pop at XDP with devmap redirect.
var EncapDataplane = &Dataplane{
	Name:      "encap",
	Summary:   "per-flow GENEVE, VXLAN and 802.1Q push/pop at XDP (devmap redirect) or TC (GSO kept), IPv4 and IPv6",
	Schema:    maps.EncapSchema,
	MainMap:   "tunnels",
	SizedMaps: []string{"tunnels4", "tunnel_stats"},
	Migrations: []Migration{
		{From: 2, Before: maps.CopyIPv4Tunnels, After: maps.DropIPv4FromTunnels},
	},
	DefaultMaxEntries: 1024,
	Programs: []Program{
		{Name: "encap", Hook: maps.HookXDP, Attachable: true, RedirectsIngress: true, TCVariant: "encap-tc", Role: "frames from workloads arrive here and are encapsulated"},
		{Name: "decap", Hook: maps.HookXDP, Attachable: true, TCVariant: "decap-tc", Role: "tunnelled frames arrive here and are decapsulated"},
		// Attached by `attach encap|decap IFACE --hook tc`.
		{Name: "encap-tc", Func: "encap_tc", Hook: maps.HookTCIngress, Role: "encap at TC ingress: GSO kept"},
		{Name: "decap-tc", Func: "decap_tc", Hook: maps.HookTCIngress, Role: "decap at TC ingress: delivered into the workload namespace"},
		{Name: "redirect", Hook: maps.HookXDP, Attachable: true, RedirectsIngress: true, Role: "frames arriving here leave through the interface's devmap slot (devmap add IN OUT)"},
		{Name: "pass", Hook: maps.HookXDP, Attachable: true, Role: "passes every frame: readies a veth peer for redirected frames with XDP instead of GRO"},
	},
	loadSpec:     encap.LoadEncap,
	loadObserved: encap.LoadEncapObserve,
	objects:      func() ([]byte, []byte) { return encap.Object(), encap.ObservedObject() },
	mapShapes:    encap.EncapMapShapes,
	counterNames: encap.EncapCounterNames,
}

// L2TPDataplane is the l2tp dataplane: L2TPv3 Ethernet pseudowires at TC
// ingress, over IP or UDP, on an IPv4 or IPv6 underlay.
var L2TPDataplane = &Dataplane{
	Name:              "l2tp",
	Summary:           "L2TPv3 Ethernet pseudowires in TC, over IP or UDP, IPv4 or IPv6 underlay",
	Schema:            maps.L2TPSchema,
	MainMap:           "sessions",
	SizedMaps:         []string{"by_eth", "session_stats", "neigh", "names"},
	DefaultMaxEntries: 1024,
	Programs: []Program{
		{Name: "l2tp-encap", Func: "l2tp_encap", Hook: maps.HookTCIngress, Attachable: true, Role: "the Ethernet side: frames from the local segment are carried in its session"},
		{Name: "l2tp-decap", Func: "l2tp_decap", Hook: maps.HookTCIngress, Attachable: true, Role: "the tunnel side: L2TPv3 data messages are decapsulated to the Ethernet side"},
	},
	loadSpec:     l2tp.LoadL2tp,
	loadObserved: l2tp.LoadL2tpObserve,
	objects:      func() ([]byte, []byte) { return l2tp.Object(), l2tp.ObservedObject() },
	mapShapes:    l2tp.L2tpMapShapes,
	counterNames: l2tp.L2tpCounterNames,
}

// XconnectDataplane is the xconnect dataplane: interface pairs
// cross-connected by XDP devmap redirect.
var XconnectDataplane = &Dataplane{
	Name:              "xconnect",
	Summary:           "interface pairs cross-connected by XDP devmap redirect",
	Schema:            maps.XconnectSchema,
	MainMap:           "ports",
	SizedMaps:         []string{"port_stats", "port_names"},
	DefaultMaxEntries: 1024,
	Programs: []Program{
		// Attached and detached by `tunmux xconnect add|del`.
		{Name: "xconnect", Hook: maps.HookXDP, Attachable: false, RedirectsIngress: true, Role: "frames arriving here leave on the other end of its pair"},
	},
	loadSpec:     xconnect.LoadXconnect,
	loadObserved: xconnect.LoadXconnectObserve,
	objects:      func() ([]byte, []byte) { return xconnect.Object(), xconnect.ObservedObject() },
	mapShapes:    xconnect.XconnectMapShapes,
	counterNames: xconnect.XconnectCounterNames,
}

// MuxDataplane is the mux dataplane: up to 63 L3 interfaces multiplexed
// through one carrier by a DSCP label.
var MuxDataplane = &Dataplane{
	Name:              "mux",
	Summary:           "up to 63 L3 interfaces through one carrier by a DSCP label, zero bytes of overhead",
	Schema:            maps.MuxSchema,
	MainMap:           "members",
	DefaultMaxEntries: maps.MaxLabel,
	FixedSize:         true,
	Programs: []Program{
		// Attached and detached by `tunmux mux carrier set` and `mux member add|del`.
		{Name: "mux-egress", Func: "mux_egress", Hook: maps.HookTCEgress, Role: "a member: its packets are labelled and leave through the carrier"},
		{Name: "mux-ingress", Func: "mux_ingress", Hook: maps.HookTCIngress, Role: "the carrier: labelled packets are delivered to their member"},
	},
	loadSpec:     mux.LoadMux,
	loadObserved: mux.LoadMuxObserve,
	objects:      func() ([]byte, []byte) { return mux.Object(), mux.ObservedObject() },
	mapShapes:    mux.MuxMapShapes,
	counterNames: mux.MuxCounterNames,
}

// RouteDataplane is the route dataplane: LPM overlay routes to weighted,
// health-aware tunnel nexthops through a flow-based tunnel device.
var RouteDataplane = &Dataplane{
	Name:              "route",
	Summary:           "LPM overlay routes to weighted, health-aware tunnel nexthops via a flow-based vxlan/geneve device",
	Schema:            maps.RouteSchema,
	MainMap:           "routes",
	DefaultMaxEntries: 16384,
	Programs: []Program{
		{Name: "route", Func: "route_egress", Hook: maps.HookTCEgress, Attachable: true, L3Variant: "route-l3",
			Role: "the device overlay routes point at (a TUN device), or the underlay's egress: packets to routed prefixes are tunnelled to a nexthop"},
		// Attached as "route" on interfaces without an Ethernet header.
		{Name: "route-l3", Func: "route_egress_l3", Hook: maps.HookTCEgress},
	},
	loadSpec:     route.LoadRoute,
	loadObserved: route.LoadRouteObserve,
	objects:      func() ([]byte, []byte) { return route.Object(), route.ObservedObject() },
	mapShapes:    route.RouteMapShapes,
	counterNames: route.RouteCounterNames,
}

var registry = []*Dataplane{EncapDataplane, L2TPDataplane, XconnectDataplane, MuxDataplane, RouteDataplane}

// All returns every dataplane tunmux knows.
func All() []*Dataplane { return registry }

// Names returns the names of every dataplane, sorted.
func Names() []string {
	var names []string
	for _, d := range registry {
		names = append(names, d.Name)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the dataplane called name, or an *maps.InvalidError.
func Lookup(name string) (*Dataplane, error) {
	for _, d := range registry {
		if d.Name == name {
			return d, nil
		}
	}
	return nil, maps.Invalid("DATAPLANE", name, "unknown dataplane", strings.Join(Names(), "|"))
}

// Attachable returns the attachable programs of every dataplane, by name.
func Attachable() map[string]*Dataplane {
	out := map[string]*Dataplane{}
	for _, d := range registry {
		for _, p := range d.Programs {
			if p.Attachable {
				out[p.Name] = d
			}
		}
	}
	return out
}
