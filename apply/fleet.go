package apply

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tunmux/tunmux/maps"
)

// A fleet file holds, instead of the sections themselves, defaults: (the
// sections of every node) and nodes: {NAME: sections} (one node's, merged
// over the defaults entry by entry: an entry of a node replaces, whole, the
// default entry of the same key, and adds the others). One file serves
// every node; each agent applies its own node's view.

// Selector picks which node's view of a fleet file to apply, and where the
// values of ${VAR} come from.
type Selector struct {
	// Node is the node whose sections apply (apply --node); a file without
	// nodes: ignores it.
	Node string
	// Lookup reads a variable (nil: the process's environment). NODE_NAME
	// is Node when Node is set, whatever the environment says.
	Lookup func(name string) (string, bool)
}

// lookup reads one variable as the selector says.
func (s Selector) lookup(name string) (string, bool) {
	if name == "NODE_NAME" && s.Node != "" {
		return s.Node, true
	}
	if s.Lookup != nil {
		return s.Lookup(name)
	}
	return os.LookupEnv(name)
}

// NodeName is the node an agent applies by default: $NODE_NAME (which a
// Kubernetes DaemonSet sets from spec.nodeName), else the host name.
func NodeName() string {
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}

// FleetView says which view of a fleet file a document is.
type FleetView struct {
	Node string `json:"node"`
	// Listed is false when the node is not among the file's nodes: it gets
	// the defaults alone.
	Listed bool     `json:"listed"`
	Nodes  []string `json:"nodes"` // the nodes the file names
}

// fleetKeys are the top-level keys of a fleet file.
var fleetKeys = map[string]bool{"defaults": true, "nodes": true}

// nodeView is what selectNode makes of a document: the sections to apply,
// which view of a fleet file they are, and the other nodes' own sections
// (to be checked for form).
type nodeView struct {
	top    *node
	fleet  *FleetView
	others []otherNode
}

// otherNode is another node's own sections in a fleet file.
type otherNode struct {
	name     string
	sections *node
}

// selectNode returns the sections of sel.Node's view when top is a fleet
// file (a mapping with defaults: or nodes:), and top itself otherwise.
// expand (nil: none) expands the variables of the view.
// Problems of form go to p; an unknown node in a file without defaults is
// an error naming --node, unless the file has problems of form already.
func selectNode(p *parser, top *node, sel Selector, expand func(*node)) (nodeView, error) {
	fleet := false
	for i := 0; i+1 < len(top.Content); i += 2 {
		if fleetKeys[top.Content[i].Value] {
			fleet = true
		}
	}
	if !fleet {
		if expand != nil {
			expand(top)
		}
		return nodeView{top: top}, nil
	}
	var defaults, nodes *node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "defaults":
			if defaults != nil {
				p.bad(k.Line, "", "key %q repeats the one on line %d", k.Value, defaults.Line)
				continue
			}
			defaults = v
		case "nodes":
			if nodes != nil {
				p.bad(k.Line, "", "key %q repeats the one on line %d", k.Value, nodes.Line)
				continue
			}
			nodes = v
		default:
			p.bad(k.Line, "", "unknown key %q: with defaults: and nodes:, the sections go under defaults: (every node's) or nodes.NAME: (one node's)", k.Value)
		}
	}
	view := nodeView{fleet: &FleetView{Node: sel.Node, Nodes: []string{}}}
	var mine *node
	mineLine := 0
	if nodes != nil && !isNull(nodes) {
		if nodes.Kind != yaml.MappingNode {
			p.bad(nodes.Line, "nodes", "must be a mapping of node names to their sections, like {node1: {route: ...}}")
		} else {
			seen := map[string]int{}
			for i := 0; i+1 < len(nodes.Content); i += 2 {
				k, v := nodes.Content[i], nodes.Content[i+1]
				if first, dup := seen[k.Value]; dup {
					p.bad(k.Line, "nodes", "node %q repeats the one on line %d", k.Value, first)
					continue
				}
				seen[k.Value] = k.Line
				view.fleet.Nodes = append(view.fleet.Nodes, k.Value)
				if !isNull(v) && v.Kind != yaml.MappingNode {
					p.bad(v.Line, "nodes."+k.Value, "must be a mapping of sections (load, attach, encap, l2tp, xconnect, mux, route)")
					continue
				}
				if k.Value == sel.Node {
					mine, mineLine, view.fleet.Listed = v, k.Line, true
				} else if !isNull(v) {
					view.others = append(view.others, otherNode{name: k.Value, sections: v})
				}
			}
		}
	}
	sort.Strings(view.fleet.Nodes)
	hasDefaults := defaults != nil
	if defaults != nil && !isNull(defaults) && defaults.Kind != yaml.MappingNode {
		p.bad(defaults.Line, "defaults", "must be a mapping of sections (load, attach, encap, l2tp, xconnect, mux, route)")
		defaults = nil
	}
	if !view.fleet.Listed && !hasDefaults && len(p.problems) == 0 {
		accepted := "one of " + strings.Join(view.fleet.Nodes, ", ")
		if len(view.fleet.Nodes) == 0 {
			accepted = "a file with defaults: or nodes.NAME:"
		}
		what := "is not among the file's nodes"
		if sel.Node == "" {
			what = "is needed: the file has nodes: and no defaults:"
		}
		return view, maps.Invalid("--node", sel.Node, what+" (and the file has no defaults: for other nodes)", accepted)
	}
	line := top.Line
	if mineLine != 0 {
		line = mineLine
	}
	// Keys compare with their variables expanded, as they will be applied;
	// the view is expanded once merged (an entry a node replaces needs
	// none of its variables).
	keyOf := func(k string) string { return k }
	if expand != nil {
		keyOf = func(k string) string { return expandString(&parser{}, 0, k, sel) }
	}
	view.top = mergeSections(materialize(defaults), materialize(mine), line, keyOf)
	if expand != nil {
		expand(view.top)
	}
	return view, nil
}

func isNull(n *node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// materialize returns n with every lazy list read into nodes of its own
// (a fleet file's lists are merged item by item, so they are kept).
func materialize(n *node) *node {
	if n == nil {
		return nil
	}
	out := *n
	out.lazy = nil
	if n.lazy != nil {
		out.Content = make([]*node, 0, n.lazy.count)
		n.each(func(_ int, item *node) { out.Content = append(out.Content, materialize(item)) })
		return &out
	}
	if len(n.Content) > 0 {
		out.Content = make([]*node, len(n.Content))
		for i, c := range n.Content {
			out.Content[i] = materialize(c)
		}
	}
	return &out
}

// mergeSections merges a node's sections over the defaults: sections
// present in one only are taken as they are; in both, their lists are
// merged entry by entry (entryKey) and their other keys replaced.
func mergeSections(defaults, mine *node, line int, keyOf func(string) string) *node {
	out := &node{Kind: yaml.MappingNode, Tag: "!!map", Line: line}
	base, over := mappingOf(defaults), mappingOf(mine)
	merged := mergeMapping(base, over, func(section string, b, o *node) *node {
		switch {
		case b.Kind == yaml.MappingNode && o.Kind == yaml.MappingNode:
			return &node{Kind: yaml.MappingNode, Tag: "!!map", Line: o.Line, Content: mergeMapping(b.Content, o.Content, func(key string, b, o *node) *node {
				return mergeValue(section+"."+key, b, o, keyOf)
			})}
		default:
			return mergeValue(section, b, o, keyOf)
		}
	})
	out.Content = merged
	return out
}

// mappingOf returns a mapping's key-value list, or none.
func mappingOf(n *node) []*node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	return n.Content
}

// mergeMapping merges two key-value lists: base's keys in order, over's
// value merged into each it also has, then over's other keys.
func mergeMapping(base, over []*node, merge func(key string, b, o *node) *node) []*node {
	at := map[string]int{}
	for i := 0; i+1 < len(over); i += 2 {
		if _, dup := at[over[i].Value]; !dup {
			at[over[i].Value] = i
		}
	}
	used := map[int]bool{}
	var out []*node
	for i := 0; i+1 < len(base); i += 2 {
		k, v := base[i], base[i+1]
		if j, ok := at[k.Value]; ok && !used[j] {
			used[j] = true
			out = append(out, over[j], merge(k.Value, v, over[j+1]))
			continue
		}
		out = append(out, k, v)
	}
	for i := 0; i+1 < len(over); i += 2 {
		if !used[i] {
			out = append(out, over[i], over[i+1])
		}
	}
	return out
}

// mergeValue merges a node's value over the default one of a section key
// (encap.tunnels) or of a section that is a list (attach): two lists entry
// by entry; otherwise the node's value replaces the default whole.
func mergeValue(path string, b, o *node, keyOf func(string) string) *node {
	switch {
	case b.Kind == yaml.SequenceNode && o.Kind == yaml.SequenceNode:
		return &node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: o.Line, Content: mergeList(path, b.Content, o.Content, keyOf)}
	case isNull(o) && (b.Kind == yaml.SequenceNode || b.Kind == yaml.MappingNode):
		return b // an empty list or section of a node adds nothing
	}
	return o
}

// entryKeys are the fields that name an entry of each list: a node's entry
// with the same values replaces the default entry.
var entryKeys = map[string][]string{
	"attach":         {"program", "iface"},
	"encap.tunnels":  {"inner-src", "inner-dst"},
	"encap.devmap":   {"in"},
	"l2tp.sessions":  {"session-id"},
	"xconnect.pairs": {"a"},
	"mux.members":    {"name"},
	"route.devices":  {"name"},
	"route.routes":   {"prefix"},
	"route.peers":    {"remote"},
}

// entryKey is the key of a list item, "" when it has none (it is kept as
// another entry, and the checks say what is wrong with it).
func entryKey(path string, item *node, keyOf func(string) string) string {
	fields := entryKeys[path]
	if len(fields) == 0 {
		return ""
	}
	if path == "xconnect.pairs" && item.Kind == yaml.SequenceNode && len(item.Content) > 0 {
		return keyOf(item.Content[0].Value)
	}
	if item.Kind != yaml.MappingNode {
		return ""
	}
	vals := make([]string, len(fields))
	found := false
	for i := 0; i+1 < len(item.Content); i += 2 {
		for f, name := range fields {
			if item.Content[i].Value == name && item.Content[i+1].Kind == yaml.ScalarNode {
				vals[f], found = keyOf(item.Content[i+1].Value), true
			}
		}
	}
	if !found {
		return ""
	}
	return strings.Join(vals, "\x00")
}

// mergeList merges a node's list over the default one: an item whose key
// a default item has replaces it, in its place; the others are added after.
func mergeList(path string, base, over []*node, keyOf func(string) string) []*node {
	at := map[string]int{}
	for i, item := range over {
		if k := entryKey(path, item, keyOf); k != "" {
			if _, dup := at[k]; !dup {
				at[k] = i
			}
		}
	}
	used := map[int]bool{}
	out := make([]*node, 0, len(base)+len(over))
	for _, item := range base {
		if j, ok := at[entryKey(path, item, keyOf)]; ok && !used[j] {
			used[j] = true
			out = append(out, over[j])
			continue
		}
		out = append(out, item)
	}
	for i, item := range over {
		if !used[i] {
			out = append(out, item)
		}
	}
	return out
}

// expandVars replaces ${NAME} and ${NAME:-DEFAULT} in every scalar of the
// tree (keys too) with the variable's value; an unset variable without a
// default, or a ${ left open, is a problem at its line. Lazy lists expand
// their items as they are walked.
func expandVars(p *parser, n *node, sel Selector) {
	if n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode {
		if strings.Contains(n.Value, "${") {
			n.Value = expandString(p, n.Line, n.Value, sel)
		}
		return
	}
	if n.lazy != nil {
		walk, reported := n.lazy.walk, map[int]bool{}
		n.lazy = &lazyList{count: n.lazy.count, walk: func(fn func(int, *node)) {
			walk(func(i int, item *node) {
				// A list walked again reports its problems once.
				q := &parser{}
				expandVars(q, item, sel)
				if !reported[i] {
					reported[i] = true
					p.problems = append(p.problems, q.problems...)
				}
				fn(i, item)
			})
		}}
		return
	}
	for _, c := range n.Content {
		expandVars(p, c, sel)
	}
}

// expandString expands the variables of one value.
func expandString(p *parser, line int, s string, sel Selector) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			p.bad(line, "", "%q opens a variable with ${ and does not close it (accepted: ${NAME} or ${NAME:-DEFAULT})", s)
			b.WriteString(s[i:])
			return b.String()
		}
		ref := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(ref, ":-")
		v, set := sel.lookup(name)
		switch {
		case !validVarName(name):
			p.bad(line, "", "${%s} is not a variable (accepted: ${NAME} or ${NAME:-DEFAULT}, NAME of letters, digits and _)", ref)
		case strings.Contains(def, "${") || strings.Contains(def, "$"):
			p.bad(line, "", "${%s}: a default holds no variable (accepted: ${NAME:-DEFAULT}, DEFAULT written out)", ref)
		case v != "":
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		case set:
			p.bad(line, "", "${%s} is empty in tunmux's environment (give %s a value, or write ${%s:-DEFAULT})", name, name, name)
		default:
			p.bad(line, "", "${%s} is not set in tunmux's environment (set %s, or write ${%s:-DEFAULT})", name, name, name)
		}
		s = s[i+end+1:]
	}
}

// validVarName reports whether s is a variable name: a letter or _, then
// letters, digits and _.
func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// String says which view a document is, for apply's report.
func (v *FleetView) String() string {
	if v.Listed {
		return fmt.Sprintf("node %s (nodes.%s over defaults)", v.Node, v.Node)
	}
	return fmt.Sprintf("node %s (not among the file's nodes: defaults only)", v.Node)
}
