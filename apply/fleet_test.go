package apply

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tunmux/tunmux/maps"
)

const fleetFile = `defaults:
  load: {route: {}}
  route:
    devices:
      - {name: vxlan0, proto: vxlan, local: "${NODE_IP}"}
      - {name: rt0, routes: true}
    routes:
      - {prefix: 10.201.0.0/24, nexthops: ["192.168.61.1,vni=100"]}
      - {prefix: 10.202.0.0/24, nexthops: ["192.168.61.2,vni=100"]}
  attach:
    - {program: route, iface: rt0}
nodes:
  node1:
    route:
      routes:
        - {prefix: 10.202.0.0/24, nexthops: ["192.168.61.3,vni=100"]}
        - {prefix: 10.209.0.0/24, nexthops: ["192.168.61.9,vni=100"]}
  node2:
  node3:
    route:
      devices:
        - {name: vxlan0, proto: vxlan, local: "${NODE3_ONLY}", port: 4790}
    attach:
      - {program: route, iface: rt0, hook: tc}
`

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func parseFor(t *testing.T, data, node string, vars map[string]string) *Document {
	t.Helper()
	doc, err := ParseFor("fleet.yaml", []byte(data), Selector{Node: node, Lookup: env(vars)})
	if err != nil {
		t.Fatalf("node %s: %v", node, err)
	}
	return doc
}

func routesOf(doc *Document) map[string]string {
	out := map[string]string{}
	for _, e := range doc.Route.Routes {
		out[e.Args.Prefix] = strings.Join(e.Args.Nexthops, " ")
	}
	return out
}

// A node's entries replace the defaults' entries of the same key, whole,
// in their place; its other entries are added; the defaults' others stay.
func TestFleetMergesEntryByEntry(t *testing.T) {
	doc := parseFor(t, fleetFile, "node1", map[string]string{"NODE_IP": "192.168.61.1"})
	if len(doc.problems) != 0 {
		t.Fatalf("problems: %v", doc.problems)
	}
	if v := doc.Fleet; v == nil || v.Node != "node1" || !v.Listed || strings.Join(v.Nodes, ",") != "node1,node2,node3" {
		t.Errorf("fleet view: %+v", v)
	}
	got := routesOf(doc)
	want := map[string]string{
		"10.201.0.0/24": "192.168.61.1,vni=100",
		"10.202.0.0/24": "192.168.61.3,vni=100", // node1's
		"10.209.0.0/24": "192.168.61.9,vni=100", // node1's own
	}
	if len(got) != len(want) {
		t.Errorf("routes %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("route %s: %q, want %q", k, got[k], v)
		}
	}
	// Order: the defaults' places, then the node's additions; each entry
	// keeps the line it was written on.
	if r := doc.Route.Routes; r[1].Args.Prefix != "10.202.0.0/24" || r[1].Line != 16 || r[2].Line != 17 || r[0].Line != 8 {
		t.Errorf("routes' order and lines: %+v", r)
	}
	if d := doc.Route.Devices; len(d) != 2 || d[0].Args.Local != "192.168.61.1" {
		t.Errorf("devices: %+v", d)
	}
	if doc.Load == nil || len(doc.Load.Dataplanes) != 1 || doc.Attach == nil || len(doc.Attach.Entries) != 1 {
		t.Errorf("load and attach from the defaults: %+v %+v", doc.Load, doc.Attach)
	}

	// node2 (null) gets the defaults; node3 replaces a device and an
	// attachment (same keys), and needs its own variable.
	doc = parseFor(t, fleetFile, "node2", map[string]string{"NODE_IP": "192.168.61.2"})
	if len(doc.problems) != 0 || len(doc.Route.Routes) != 2 || doc.Route.Devices[0].Args.Local != "192.168.61.2" {
		t.Errorf("node2: %v %+v", doc.problems, doc.Route)
	}
	doc = parseFor(t, fleetFile, "node3", map[string]string{"NODE3_ONLY": "192.168.61.33"})
	if len(doc.problems) != 0 {
		t.Fatalf("node3 problems: %v", doc.problems)
	}
	if d := doc.Route.Devices; len(d) != 2 || d[0].Args.Local != "192.168.61.33" || d[0].Args.Port != "4790" || d[0].Line != 22 {
		t.Errorf("node3 devices: %+v", d)
	}
	if a := doc.Attach.Entries; len(a) != 1 || a[0].Args.Hook != "tc" {
		t.Errorf("node3 attach: %+v", a)
	}
}

// A node the file does not list gets the defaults; without defaults it is
// an error naming --node and the nodes there are.
func TestFleetUnknownNode(t *testing.T) {
	doc := parseFor(t, fleetFile, "node9", map[string]string{"NODE_IP": "192.168.61.9"})
	if doc.Fleet.Listed || len(doc.Route.Routes) != 2 {
		t.Errorf("an unlisted node: %+v %+v", doc.Fleet, doc.Route.Routes)
	}
	noDefaults := "nodes:\n  a: {xconnect: {pairs: [[v1, v2]]}}\n  b:\n"
	_, err := ParseFor("f.yaml", []byte(noDefaults), Selector{Node: "c"})
	if !errors.Is(err, maps.ErrInvalid) || !strings.Contains(err.Error(), "--node") || !strings.Contains(err.Error(), "one of a, b") {
		t.Errorf("an unknown node without defaults: %v", err)
	}
	if doc, err := ParseFor("f.yaml", []byte(noDefaults), Selector{Node: "a"}); err != nil || len(doc.Xconnect.Pairs) != 1 {
		t.Errorf("node a: %v", err)
	}
	if doc, err := ParseFor("f.yaml", []byte(noDefaults), Selector{Node: "b"}); err != nil || doc.Xconnect != nil {
		t.Errorf("node b (no sections): %v %+v", err, doc)
	}
}

// Variables expand from the environment (${NAME}, ${NAME:-DEFAULT}), in
// plain files too, in the node's view only; NODE_NAME is the node.
func TestFleetVariables(t *testing.T) {
	// The variable another node's section needs is not this node's concern.
	doc := parseFor(t, fleetFile, "node1", map[string]string{})
	if len(doc.problems) != 1 || doc.problems[0].Line != 5 || !strings.Contains(doc.problems[0].Msg, "${NODE_IP} is not set") {
		t.Errorf("an unset variable: %v", doc.problems)
	}
	plain := `route:
  routes:
    - {prefix: "${NET:-10.9.0.0}/24", nexthops: ["${PEER},vni=${VNI:-7}"]}
    - {prefix: 10.8.0.0/24, nexthops: ["${NODE_NAME}"]}
  devices:
    - {name: "tmx${BAD-NAME}", routes: true}
    - {name: "x${OPEN", routes: true}
`
	doc = parseFor(t, plain, "n7", map[string]string{"PEER": "192.0.2.1", "NODE_NAME": "ignored"})
	if doc.Fleet != nil {
		t.Errorf("a plain file has no fleet view: %+v", doc.Fleet)
	}
	if r := doc.Route.Routes; r[0].Args.Prefix != "10.9.0.0/24" || r[0].Args.Nexthops[0] != "192.0.2.1,vni=7" || r[1].Args.Nexthops[0] != "n7" {
		t.Errorf("expanded routes: %+v", r)
	}
	var msgs []string
	for _, p := range doc.problems {
		msgs = append(msgs, p.String())
	}
	all := strings.Join(msgs, "\n")
	if len(msgs) != 2 || !strings.Contains(all, "6: ${BAD-NAME} is not a variable") || !strings.Contains(all, "7: \"x${OPEN\" opens a variable") {
		t.Errorf("bad variables:\n%s", all)
	}
	// The same in JSON, whose lists are read lazily.
	js := `{"route": {"routes": [{"prefix": "10.7.0.0/24", "nexthops": ["${PEER},vni=1"]}, {"prefix": "10.6.0.0/24", "nexthops": ["${NOPE}"]}]}}`
	doc = parseFor(t, js, "", map[string]string{"PEER": "192.0.2.2"})
	if r := doc.Route.Routes; r[0].Args.Nexthops[0] != "192.0.2.2,vni=1" || len(doc.problems) != 1 {
		t.Errorf("JSON: %+v %v", r, doc.problems)
	}
}

// A fleet file keeps its sections under defaults: and nodes:; what else
// is at its top is a problem at its line.
func TestFleetForm(t *testing.T) {
	doc := parseFor(t, "defaults: {xconnect: {pairs: [[a, b]]}}\nxconnect: {pairs: [[c, d]]}\nnodes: [n1]\n", "n1", nil)
	var msgs []string
	for _, p := range doc.problems {
		msgs = append(msgs, p.String())
	}
	all := strings.Join(msgs, "\n")
	if !strings.Contains(all, "2: unknown key \"xconnect\": with defaults: and nodes:") || !strings.Contains(all, "3: nodes: must be a mapping") {
		t.Errorf("problems:\n%s", all)
	}
	doc = parseFor(t, "nodes:\n  n1: [x]\n  n1: {}\ndefaults:\n", "n1", nil)
	msgs = msgs[:0]
	for _, p := range doc.problems {
		msgs = append(msgs, p.String())
	}
	all = strings.Join(msgs, "\n")
	if !strings.Contains(all, "2: nodes.n1: must be a mapping of sections") || !strings.Contains(all, "3: nodes: node \"n1\" repeats the one on line 2") {
		t.Errorf("problems:\n%s", all)
	}
}

// Review findings: a defaults: of the wrong kind is reported as itself;
// another node's section is checked for form; keys compare with their
// variables expanded; empty and nested variables are named as such; YAML
// aliases share a node's sections.
func TestFleetEdges(t *testing.T) {
	doc := parseFor(t, "defaults: [x]\nnodes:\n  a: {}\n", "zz", nil)
	if len(doc.problems) != 1 || doc.problems[0].Line != 1 || !strings.Contains(doc.problems[0].Msg, "must be a mapping of sections") {
		t.Errorf("a defaults: list for an unlisted node: %v", doc.problems)
	}
	doc = parseFor(t, "defaults:\n  xconnect: {pairs: [[p0, p1]]}\nnodes:\n  a:\n  b:\n    xconnect: {pairz: []}\n", "a", nil)
	if len(doc.problems) != 1 || doc.problems[0].Line != 6 || doc.problems[0].Path != "nodes.b.xconnect" || !strings.Contains(doc.problems[0].Msg, `unknown key "pairz"`) {
		t.Errorf("another node's bad key: %+v", doc.problems)
	}
	doc = parseFor(t, "defaults:\n  route: {routes: [{prefix: \"${NET}/24\", nexthops: [192.0.2.1]}]}\nnodes:\n  a: {route: {routes: [{prefix: 10.1.0.0/24, nexthops: [192.0.2.2]}]}}\n",
		"a", map[string]string{"NET": "10.1.0.0"})
	if r := doc.Route.Routes; len(r) != 1 || r[0].Args.Nexthops[0] != "192.0.2.2" {
		t.Errorf("a key written with a variable: %+v %v", r, doc.problems)
	}
	doc = parseFor(t, "route: {routes: [{prefix: \"${EMPTY}\", nexthops: [\"${X:-${Y}}\"]}]}\n", "", map[string]string{"EMPTY": ""})
	all := fmt.Sprint(doc.problems)
	if !strings.Contains(all, "${EMPTY} is empty") || !strings.Contains(all, "a default holds no variable") {
		t.Errorf("empty and nested variables: %s", all)
	}
	doc = parseFor(t, "defaults: {}\nnodes:\n  a: &same\n    xconnect: {pairs: [[p0, p1]]}\n  b: *same\n", "b", nil)
	if len(doc.problems) != 0 || doc.Xconnect == nil || len(doc.Xconnect.Pairs) != 1 || doc.Xconnect.Pairs[0].Line != 4 {
		t.Errorf("a node's sections by alias: %v %+v", doc.problems, doc.Xconnect)
	}
}
