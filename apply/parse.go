package apply

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/tunmux/tunmux/maps"
)

// Problem is one thing wrong with a file, at a line.
type Problem struct {
	Line int    `json:"line"`
	Path string `json:"path"` // e.g. encap.tunnels[3]
	Msg  string `json:"problem"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return fmt.Sprintf("%d: %s", p.Line, p.Msg)
	}
	return fmt.Sprintf("%d: %s: %s", p.Line, p.Path, p.Msg)
}

// InvalidFileError lists every problem of a file; it matches
// maps.ErrInvalid, so commands exit 2 on it.
type InvalidFileError struct {
	File     string
	Problems []Problem
}

// maxShown is how many problems the message lists.
const maxShown = 50

func (e *InvalidFileError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problem(s), nothing changed", e.File, len(e.Problems))
	for i, p := range e.Problems {
		if i == maxShown {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Problems)-maxShown)
			break
		}
		fmt.Fprintf(&b, "\n  %s:%s", e.File, p)
	}
	return b.String()
}

// Is makes errors.Is(err, maps.ErrInvalid) true.
func (e *InvalidFileError) Is(target error) bool { return target == maps.ErrInvalid }

// Entry is one entry of a section, with where it stands in the file.
type Entry[T any] struct {
	Line  int
	Path  string
	Args  T
	lines fieldLines
}

// fieldLines are the lines of an entry's fields: one number a field, in
// the order of an index of the keys shared by the entries of a list (a
// map, or a list of names, each entry costs a file of 100,000 entries
// more than reading it).
type fieldLines struct {
	index map[string]int // key -> slot
	lines []int32        // 0: not given
}

func newFieldLines(index map[string]int) fieldLines {
	return fieldLines{index: index, lines: make([]int32, len(index))}
}

func (l fieldLines) get(name string) (int, bool) {
	i, ok := l.index[name]
	if !ok || l.lines[i] == 0 {
		return 0, false
	}
	return int(l.lines[i]), true
}

// line is the line of field name, 0 if it is not given.
func (l fieldLines) line(name string) int {
	n, _ := l.get(name)
	return n
}

// set records the line of a field the index knows.
func (l fieldLines) set(name string, line int) {
	if i, ok := l.index[name]; ok {
		l.lines[i] = int32(line)
	}
}

// fieldLine is the line of a field, or of the entry.
func (e Entry[T]) fieldLine(field string) int {
	if l, ok := e.lines.get(field); ok {
		return l
	}
	return e.Line
}

// SlotArgs is a plain redirect slot: frames arriving on In leave on Out.
type SlotArgs struct{ In, Out string }

// PairArgs is a cross-connected pair: its ends, and the XDP mode of both
// (tunmux xconnect add A B [--mode M]).
type PairArgs struct{ A, B, Mode string }

// Document is a parsed desired-state file. A nil section is absent from the
// file: apply leaves that dataplane alone, even with --prune.
type Document struct {
	Load     *LoadSection
	Attach   *AttachSection
	Encap    *EncapSection
	L2TP     *L2TPSection
	Xconnect *XconnectSection
	Mux      *MuxSection
	Route    *RouteSection
	// Fleet says which node's view of a fleet file this is (nil: the file
	// has no nodes: or defaults:).
	Fleet *FleetView
	// problems of form found while parsing; Apply reports them with the
	// problems of meaning, all at once.
	problems []Problem
}

// EncapSection is the encap dataplane's desired state.
type EncapSection struct {
	Line    int
	Tunnels []Entry[maps.TunnelArgs]
	Devmap  []Entry[SlotArgs]
}

// L2TPSection is the l2tp dataplane's desired state.
type L2TPSection struct {
	Line     int
	Sessions []Entry[maps.SessionArgs]
}

// XconnectSection is the xconnect dataplane's desired state.
type XconnectSection struct {
	Line  int
	Pairs []Entry[PairArgs]
}

// RouteSection is the route dataplane's desired state: its devices (as
// 'route dev create' makes them), routes and peer health.
type RouteSection struct {
	Line    int
	Devices []Entry[DeviceArgs]
	Routes  []Entry[RouteArgs]
	Peers   []Entry[PeerArgs]
}

// DeviceArgs is a route dataplane device as given: a flow-based tunnel
// device (Proto, Local, Port) or, with Routes "true", the TUN device
// overlay routes point at.
type DeviceArgs struct {
	Name, Proto, Local, Port, MTU, Routes string
	// Address and KernelRoute are what tunmux gives the device it creates:
	// addresses (CIDR) and kernel routes through it (PREFIX [via GW] [src A]).
	Address, KernelRoute []string
}

// LoadSection says which dataplanes to load, and with what capacity.
type LoadSection struct {
	Line       int
	Dataplanes []Entry[LoadArgs]
}

// LoadArgs are one dataplane's load options as given.
type LoadArgs struct{ Dataplane, MaxEntries string }

// AttachSection lists the attachable programs' attachments.
type AttachSection struct {
	Line    int
	Entries []Entry[AttachArgs]
}

// AttachArgs is one attachment as given: tunmux attach PROGRAM IFACE
// [--hook HOOK] [--mode MODE].
type AttachArgs struct{ Program, Iface, Hook, Mode string }

// MuxSection is the mux dataplane's desired state: its carrier and members.
type MuxSection struct {
	Line    int
	Carrier *Entry[CarrierArgs] // nil: not given (a carrier set stays)
	Members []Entry[MemberArgs]
}

// CarrierArgs is the mux carrier as given: tunmux mux carrier set IFACE.
type CarrierArgs struct{ Iface, OnMiss, PeerMAC string }

// MemberArgs is a mux member as given: tunmux mux member add NAME --label N
// [--create [--mtu M]]; Create is "true" or "false".
type MemberArgs struct {
	Name, Label, Create, MTU string
	// With Create: the addresses and kernel routes of the device.
	Address, KernelRoute []string
}

// RouteArgs is a route as given: a prefix and its nexthops in --nexthop form.
type RouteArgs struct {
	Prefix   string
	Nexthops []string
}

// PeerArgs is a peer's health as given.
type PeerArgs struct{ Remote, Health, ProbePort string }

// fields names the keys an entry accepts and where each goes: a *string
// takes one value, a *[]string one value or a list of them.
type fields map[string]any

func (f fields) names() string {
	var out []string
	for k := range f {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func tunnelFields(a *maps.TunnelArgs) fields {
	return fields{
		"inner-src": &a.InnerSrc, "inner-dst": &a.InnerDst, "proto": &a.Proto, "vni": &a.VNI, "vlan-id": &a.VlanID,
		"outer-src": &a.OuterSrc, "outer-dst": &a.OuterDst, "src-mac": &a.SrcMAC, "dst-mac": &a.DstMAC,
		"inner-dst-mac": &a.InnerDstMAC, "src-port": &a.SrcPort, "underlay": &a.Underlay, "overlay": &a.Overlay,
		"geneve-opt": &a.GeneveOpts,
	}
}

func sessionFields(a *maps.SessionArgs) fields {
	return fields{
		"session-id": &a.SessionID, "peer-session-id": &a.PeerSessionID, "encap": &a.Encap, "local": &a.Local,
		"peer": &a.Peer, "cookie": &a.Cookie, "peer-cookie": &a.PeerCookie, "l2spec": &a.L2Spec,
		"eth-iface": &a.EthIface, "tunnel-iface": &a.TunnelIface, "peer-mac": &a.PeerMAC,
	}
}

// parser collects problems while it walks the YAML tree.
type parser struct {
	problems []Problem
}

func (p *parser) bad(line int, path, format string, args ...any) {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = excerpt(s)
		}
	}
	p.problems = append(p.problems, Problem{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// excerptLen is the most of a value a problem quotes: enough to find it,
// not the whole of a line of a file that was never meant for apply.
const excerptLen = 40

// excerpt shortens a value quoted in a problem to excerptLen bytes.
func excerpt(s string) string {
	if len(s) <= excerptLen {
		return s
	}
	cut := excerptLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Parse reads a YAML (or JSON) desired-state document. A file that is not
// YAML, or not a mapping, is an *InvalidFileError; other problems of form
// (unknown keys, a list where a value belongs) are kept in the document and
// reported by Apply together with the problems of meaning (values,
// interfaces), every one with its line. The document's strings may share
// data's bytes (a JSON file is not copied string by string): data must not
// change afterwards.
func Parse(name string, data []byte) (*Document, error) {
	return ParseFor(name, data, Selector{})
}

// ParseFor is Parse for one node (sel.Node) of a fleet file (defaults:
// and nodes:, see Selector), with ${VAR} expanded from sel.Lookup. A
// file without nodes: or defaults: is the same for every node.
func ParseFor(name string, data []byte, sel Selector) (*Document, error) {
	p := &parser{}
	doc := &Document{}
	top, empty, err := parseTree(data)
	if err != nil {
		line := 0
		var te *yaml.TypeError
		if errors.As(err, &te) {
			line = 1
		}
		msg := err.Error()
		if n, rest, ok := parseYAMLLine(msg); ok {
			line, msg = n, rest
		}
		return nil, &InvalidFileError{File: name, Problems: []Problem{{Line: line, Msg: msg}}}
	}
	if empty {
		return nil, &InvalidFileError{File: name, Problems: []Problem{{Line: 1, Msg: "the file is empty (accepted: a mapping with load, attach, encap, l2tp, xconnect, mux and route sections, or xdp-xconnect's links)"}}}
	}
	if top.Kind != yaml.MappingNode {
		p.bad(top.Line, "", "the document must be a mapping of sections (load, attach, encap, l2tp, xconnect, mux, route)")
		return nil, &InvalidFileError{File: name, Problems: p.problems}
	}
	var expand func(*node)
	if bytes.Contains(data, []byte("${")) {
		// Only the node's own view is expanded: another node's variables
		// need not be set here.
		expand = func(n *node) { expandVars(p, n, sel) }
	}
	view, err := selectNode(p, top, sel, expand)
	if err != nil {
		return nil, err
	}
	doc.Fleet = view.fleet
	parseSections(p, view.top, doc)
	// The other nodes' own sections are checked for form too, so that a
	// file every agent reads is well formed for all of them or for none.
	for _, o := range view.others {
		q := &parser{}
		parseSections(q, o.sections, &Document{})
		for _, pr := range q.problems {
			pr.Path = strings.TrimSuffix("nodes."+o.name+"."+pr.Path, ".")
			p.problems = append(p.problems, pr)
		}
	}
	doc.problems = p.problems
	return doc, nil
}

// parseSections reads a mapping of sections into doc.
func parseSections(p *parser, top *node, doc *Document) {
	p.mapping(top, "", map[string]func(*node, string){
		"load": func(n *node, path string) {
			doc.Load = &LoadSection{Line: n.Line, Dataplanes: loadEntries(p, n, path)}
		},
		"attach": func(n *node, path string) {
			doc.Attach = &AttachSection{Line: n.Line, Entries: entries(p, n, path, func(a *AttachArgs) fields {
				return fields{"program": &a.Program, "iface": &a.Iface, "hook": &a.Hook, "mode": &a.Mode}
			})}
		},
		"mux": func(n *node, path string) {
			doc.Mux = &MuxSection{Line: n.Line}
			p.mapping(n, path, map[string]func(*node, string){
				"carrier": func(n *node, path string) { doc.Mux.Carrier = carrierEntry(p, n, path) },
				"members": func(n *node, path string) {
					doc.Mux.Members = entries(p, n, path, func(a *MemberArgs) fields {
						return fields{"name": &a.Name, "label": &a.Label, "create": &a.Create, "mtu": &a.MTU,
							"address": &a.Address, "kernel-route": &a.KernelRoute}
					})
				},
			})
		},
		"encap": func(n *node, path string) {
			doc.Encap = &EncapSection{Line: n.Line}
			p.mapping(n, path, map[string]func(*node, string){
				"tunnels": func(n *node, path string) {
					doc.Encap.Tunnels = entries(p, n, path, func(a *maps.TunnelArgs) fields { return tunnelFields(a) })
				},
				"devmap": func(n *node, path string) {
					doc.Encap.Devmap = entries(p, n, path, func(a *SlotArgs) fields { return fields{"in": &a.In, "out": &a.Out} })
				},
			})
		},
		"l2tp": func(n *node, path string) {
			doc.L2TP = &L2TPSection{Line: n.Line}
			p.mapping(n, path, map[string]func(*node, string){
				"sessions": func(n *node, path string) {
					doc.L2TP.Sessions = entries(p, n, path, func(a *maps.SessionArgs) fields { return sessionFields(a) })
				},
			})
		},
		"route": func(n *node, path string) {
			doc.Route = &RouteSection{Line: n.Line}
			p.mapping(n, path, map[string]func(*node, string){
				"devices": func(n *node, path string) {
					doc.Route.Devices = entries(p, n, path, func(a *DeviceArgs) fields {
						return fields{"name": &a.Name, "proto": &a.Proto, "local": &a.Local, "port": &a.Port, "mtu": &a.MTU, "routes": &a.Routes,
							"address": &a.Address, "kernel-route": &a.KernelRoute}
					})
				},
				"routes": func(n *node, path string) { doc.Route.Routes = routeEntries(p, n, path) },
				"peers": func(n *node, path string) {
					doc.Route.Peers = entries(p, n, path, func(a *PeerArgs) fields {
						return fields{"remote": &a.Remote, "health": &a.Health, "probe-port": &a.ProbePort}
					})
				},
			})
		},
		"xconnect": func(n *node, path string) {
			if doc.Xconnect != nil {
				p.bad(n.Line, path, "links (xdp-xconnect's form) on line %d already gives the cross-connects; keep one of the two", doc.Xconnect.Line)
				return
			}
			doc.Xconnect = &XconnectSection{Line: n.Line}
			p.mapping(n, path, map[string]func(*node, string){
				"pairs": func(n *node, path string) { doc.Xconnect.Pairs = pairs(p, n, path) },
			})
		},
		"links": func(n *node, path string) {
			if doc.Xconnect != nil {
				p.bad(n.Line, path, "the xconnect section on line %d already gives the cross-connects; keep one of the two", doc.Xconnect.Line)
				return
			}
			doc.Xconnect = &XconnectSection{Line: n.Line, Pairs: links(p, n, path)}
		},
	})
}

// loadEntries reads the load section: a mapping of dataplane names to their
// options ({} or null for the defaults).
func loadEntries(p *parser, n *node, path string) []Entry[LoadArgs] {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return []Entry[LoadArgs]{}
	}
	if n.Kind != yaml.MappingNode {
		p.bad(n.Line, path, "must be a mapping of dataplane names to their options, like {encap: {max-entries: 4096}}")
		return nil
	}
	var out []Entry[LoadArgs]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		e := Entry[LoadArgs]{Line: k.Line, Path: path + "." + k.Value, Args: LoadArgs{Dataplane: k.Value}}
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			out = append(out, e)
			continue
		}
		opts := entries(p, &node{Kind: yaml.SequenceNode, Content: []*node{v}}, e.Path, func(a *LoadArgs) fields {
			return fields{"max-entries": &a.MaxEntries}
		})
		if len(opts) == 1 {
			e.Args.MaxEntries, e.lines = opts[0].Args.MaxEntries, opts[0].lines
		}
		out = append(out, e)
	}
	return out
}

// carrierEntry reads the mux carrier: an interface name, or a mapping of
// iface, on-miss and peer-mac.
func carrierEntry(p *parser, n *node, path string) *Entry[CarrierArgs] {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return &Entry[CarrierArgs]{Line: n.Line, Path: path, Args: CarrierArgs{Iface: n.Value}}
	}
	es := entries(p, &node{Kind: yaml.SequenceNode, Content: []*node{n}}, path, func(a *CarrierArgs) fields {
		return fields{"iface": &a.Iface, "on-miss": &a.OnMiss, "peer-mac": &a.PeerMAC}
	})
	if len(es) != 1 {
		return nil
	}
	es[0].Path = path
	return &es[0]
}

// parseYAMLLine splits "yaml: line N: msg".
func parseYAMLLine(msg string) (int, string, bool) {
	rest, ok := strings.CutPrefix(msg, "yaml: line ")
	if !ok {
		return 0, msg, false
	}
	num, rest, ok := strings.Cut(rest, ": ")
	if !ok {
		return 0, msg, false
	}
	n, err := strconv.Atoi(num)
	return n, rest, err == nil
}

// mapping walks a mapping node whose keys must be among handlers. A null
// value (an empty section) is an empty mapping.
func (p *parser) mapping(n *node, path string, handlers map[string]func(*node, string)) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.bad(n.Line, path, "must be a mapping (accepted keys: %s)", keys(handlers))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		sub := k.Value
		if path != "" {
			sub = path + "." + k.Value
		}
		h, ok := handlers[k.Value]
		if !ok {
			p.bad(k.Line, path, "unknown key %q (accepted: %s)", k.Value, keys(handlers))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.bad(k.Line, path, "key %q repeats the one on line %d", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		h(v, sub)
	}
}

func keys[V any](m map[string]V) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// entries reads a sequence of flat mappings of scalars into T.
func entries[T any](p *parser, n *node, path string, fieldsOf func(*T) fields) []Entry[T] {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return []Entry[T]{}
	}
	if n.Kind != yaml.SequenceNode {
		p.bad(n.Line, path, "must be a list")
		return nil
	}
	// Where each key goes, found once: the field of T its pointer names.
	var tmpl T
	f := fieldsOf(&tmpl)
	index := fieldIndexes(&tmpl, f)
	slots := make(map[string]int, len(f)) // key -> its line's slot
	for name := range f {
		slots[name] = len(slots)
	}
	out := make([]Entry[T], 0, n.length())
	n.each(func(i int, item *node) {
		path := path + "[" + strconv.Itoa(i) + "]"
		if item.Kind != yaml.MappingNode {
			p.bad(item.Line, path, "must be a mapping (accepted keys: %s)", f.names())
			return
		}
		out = append(out, Entry[T]{Line: item.Line, Path: path, lines: newFieldLines(slots)})
		e := &out[len(out)-1]
		args := reflect.ValueOf(&e.Args).Elem()
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], item.Content[j+1]
			idx, ok := index[k.Value]
			var dst reflect.Value
			if ok {
				dst = args.Field(idx)
			}
			isList := ok && dst.Kind() == reflect.Slice
			switch {
			case !ok:
				p.bad(k.Line, e.Path, "unknown key %q (accepted: %s)", k.Value, f.names())
			case e.lines.line(k.Value) != 0:
				p.bad(k.Line, e.Path, "%s repeats the one on line %d", k.Value, e.lines.line(k.Value))
			case isList && v.Kind == yaml.SequenceNode:
				list := []string{}
				for _, item := range v.Content {
					if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
						p.bad(item.Line, e.Path, "%s must be a list of single values", k.Value)
						continue
					}
					list = append(list, item.Value)
				}
				dst.Set(reflect.ValueOf(list))
				e.lines.set(k.Value, k.Line)
			case v.Kind != yaml.ScalarNode || v.Tag == "!!null":
				p.bad(v.Line, e.Path, "%s must be a single value", k.Value)
			case isList:
				dst.Set(reflect.ValueOf([]string{v.Value}))
				e.lines.set(k.Value, k.Line)
			default:
				dst.SetString(v.Value)
				e.lines.set(k.Value, k.Line)
			}
		}
	})
	return out
}

// fieldIndexes maps each key of f to the field of *tmpl its pointer names:
// entries then fill each entry's fields without building f anew (a map an
// entry, which costs a file of 100,000 entries more than reading it).
func fieldIndexes[T any](tmpl *T, f fields) map[string]int {
	rv := reflect.ValueOf(tmpl).Elem()
	at := map[uintptr]int{}
	for i := 0; i < rv.NumField(); i++ {
		at[rv.Field(i).Addr().Pointer()] = i
	}
	out := make(map[string]int, len(f))
	for name, ptr := range f {
		i, ok := at[reflect.ValueOf(ptr).Pointer()]
		if !ok {
			panic(fmt.Sprintf("apply: key %s does not name a field of %T", name, *tmpl))
		}
		out[name] = i
	}
	return out
}

// nexthopKeys are the keys of a nexthop written as a mapping, in the order
// of the --nexthop form.
var nexthopKeys = []string{"remote", "vni", "weight", "dev", "proto", "mac"}

// routeKeys are the keys of a route, with their slots in fieldLines.
var routeKeys = map[string]int{"prefix": 0, "nexthops": 1}

// routeEntries reads routes: {prefix: CIDR, nexthops: [...]}, each nexthop
// a --nexthop string or a mapping of its keys.
func routeEntries(p *parser, n *node, path string) []Entry[RouteArgs] {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return []Entry[RouteArgs]{}
	}
	if n.Kind != yaml.SequenceNode {
		p.bad(n.Line, path, "must be a list")
		return nil
	}
	out := make([]Entry[RouteArgs], 0, n.length())
	n.each(func(i int, item *node) {
		e := Entry[RouteArgs]{Line: item.Line, Path: path + "[" + strconv.Itoa(i) + "]", lines: newFieldLines(routeKeys)}
		if item.Kind != yaml.MappingNode {
			p.bad(item.Line, e.Path, "must be a mapping (accepted keys: nexthops, prefix)")
			return
		}
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], item.Content[j+1]
			if e.lines.line(k.Value) != 0 {
				p.bad(k.Line, e.Path, "%s repeats the one on line %d", k.Value, e.lines.line(k.Value))
				continue
			}
			switch k.Value {
			case "prefix":
				if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
					p.bad(v.Line, e.Path, "prefix must be a single value")
					continue
				}
				e.Args.Prefix = v.Value
			case "nexthops":
				if v.Kind != yaml.SequenceNode {
					p.bad(v.Line, e.Path, "nexthops must be a list of nexthops (REMOTE,vni=N,... or a mapping of %s)", strings.Join(nexthopKeys, ", "))
					continue
				}
				for _, nh := range v.Content {
					if s, ok := nexthopString(p, nh, e.Path); ok {
						e.Args.Nexthops = append(e.Args.Nexthops, s)
					}
				}
			default:
				p.bad(k.Line, e.Path, "unknown key %q (accepted: nexthops, prefix)", k.Value)
				continue
			}
			e.lines.set(k.Value, k.Line)
		}
		out = append(out, e)
	})
	return out
}

// nexthopString turns a nexthop node into its --nexthop form.
func nexthopString(p *parser, n *node, path string) (string, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return n.Value, true
	}
	if n.Kind != yaml.MappingNode {
		p.bad(n.Line, path, "a nexthop must be REMOTE,vni=N,... or a mapping of %s", strings.Join(nexthopKeys, ", "))
		return "", false
	}
	vals := map[string]string{}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		if !slices.Contains(nexthopKeys, k.Value) {
			p.bad(k.Line, path, "unknown nexthop key %q (accepted: %s)", k.Value, strings.Join(nexthopKeys, ", "))
			return "", false
		}
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			p.bad(v.Line, path, "nexthop %s must be a single value", k.Value)
			return "", false
		}
		vals[k.Value] = v.Value
	}
	if vals["remote"] == "" {
		p.bad(n.Line, path, "a nexthop needs its remote")
		return "", false
	}
	parts := []string{vals["remote"]}
	for _, k := range nexthopKeys[1:] {
		if v, ok := vals[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, ","), true
}

// links reads xdp-xconnect's own configuration, a mapping of one end of
// each cross-connect to the other ({eth0: tap0, veth2: veth3}), as the
// xconnect section's pairs (in the default XDP mode, native).
func links(p *parser, n *node, path string) []Entry[PairArgs] {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return []Entry[PairArgs]{}
	}
	if n.Kind != yaml.MappingNode {
		p.bad(n.Line, path, "must be a mapping of one end of each cross-connect to the other, like {eth0: tap0} (xdp-xconnect's form)")
		return nil
	}
	out := make([]Entry[PairArgs], 0, len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		e := Entry[PairArgs]{Line: k.Line, Path: path + "." + k.Value}
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" || v.Value == "" {
			p.bad(v.Line, e.Path, "must name the other end's interface, like %s: tap0", k.Value)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.bad(k.Line, path, "key %q repeats the one on line %d", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		e.Args = PairArgs{A: k.Value, B: v.Value}
		out = append(out, e)
	}
	return out
}

// pairs reads xconnect pairs: [a, b] or {a: x, b: y}.
func pairs(p *parser, n *node, path string) []Entry[PairArgs] {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return []Entry[PairArgs]{}
	}
	if n.Kind != yaml.SequenceNode {
		p.bad(n.Line, path, "must be a list of pairs, like [veth1, veth2]")
		return nil
	}
	out := make([]Entry[PairArgs], 0, n.length())
	n.each(func(i int, item *node) {
		e := Entry[PairArgs]{Line: item.Line, Path: path + "[" + strconv.Itoa(i) + "]"}
		switch {
		case item.Kind == yaml.SequenceNode && len(item.Content) == 2 &&
			item.Content[0].Kind == yaml.ScalarNode && item.Content[1].Kind == yaml.ScalarNode:
			e.Args = PairArgs{A: item.Content[0].Value, B: item.Content[1].Value}
		case item.Kind == yaml.MappingNode:
			f := fields{"a": &e.Args.A, "b": &e.Args.B, "mode": &e.Args.Mode}
			seen := map[string]int{}
			for j := 0; j+1 < len(item.Content); j += 2 {
				k, v := item.Content[j], item.Content[j+1]
				dst, ok := f[k.Value]
				switch {
				case ok && seen[k.Value] != 0:
					p.bad(k.Line, e.Path, "%s repeats the one on line %d", k.Value, seen[k.Value])
				case ok && v.Kind == yaml.ScalarNode:
					*dst.(*string) = v.Value
					seen[k.Value] = k.Line
				default:
					p.bad(k.Line, e.Path, "unknown key %q (accepted: a, b, mode)", k.Value)
				}
			}
		default:
			p.bad(item.Line, e.Path, "must be a pair of interface names, like [veth1, veth2] or {a: veth1, b: veth2}")
			return
		}
		out = append(out, e)
	})
	return out
}

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
}

// problemsOf turns a validation error of an entry into problems at the
// lines of the fields it names (an *maps.InvalidError names "--vni").
func problemsOf[T any](e Entry[T], err error) []Problem {
	var out []Problem
	for _, one := range maps.Flatten(err) {
		var inv *maps.InvalidError
		if errors.As(one, &inv) {
			field := strings.TrimPrefix(inv.Flag, "--")
			// The file's keys are the flags' names without dashes (a list's
			// key is the repeated flag's, plural: --nexthop, nexthops).
			msg := strings.ReplaceAll(strings.TrimPrefix(inv.Error(), inv.Flag), " --", " ")
			key, _, _ := strings.Cut(field, " ")
			line := e.fieldLine(key)
			if _, ok := e.lines.get(key); !ok {
				line = e.fieldLine(key + "s")
			}
			out = append(out, Problem{Line: line, Path: e.Path, Msg: field + msg})
			continue
		}
		out = append(out, Problem{Line: e.Line, Path: e.Path, Msg: one.Error()})
	}
	return out
}
