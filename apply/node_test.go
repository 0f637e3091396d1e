package apply

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The JSON fast path makes the tree yaml.v3 makes of the same JSON: kinds,
// tags, values and lines.
func TestJSONFastPathIsYAMLsTree(t *testing.T) {
	docs := []string{
		`{}`,
		`{"encap": {"tunnels": [{"inner-src": "10.0.0.1", "vni": 6, "x": -1.5e3, "y": true, "z": false, "n": null}]}}`,
		"{\n  \"a\": [\n    1,\n    \"two\",\n    [],\n    {}\n  ],\n\t\"b\": \"esc\\\"aped\\u00e9\\n\",\n  \"c\": \"caf\u00e9\"\n}\n",
		"{\"route\": {\"routes\": [{\"prefix\": \"10.0.0.0/8\", \"nexthops\": [\"remote=1.2.3.4,vni=5\", {\"remote\": \"1.2.3.5\", \"weight\": 2}]}]}}",
		"\n\n  {\"load\": {\"encap\": {\"max-entries\": 0}}, \"attach\": [], \"mux\": {\"carrier\": \"c0\"}}",
		"{\"encap\": {\"tunnels\": [\n {\"a\": [1, [2, {\"b\": []}]]},\n \"x\",\n [],\n {}\n], \"devmap\": []}, \"xconnect\": {\"pairs\": [[\"a\", \"b\"]]}}",
	}
	for _, doc := range docs {
		s := &jsonScanner{data: []byte(doc), line: 1, alloc: &nodes{}}
		if !s.looksLikeJSON() {
			t.Fatalf("%q: not taken for JSON", doc)
		}
		fast, err := s.document()
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		var root yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
			t.Fatalf("%q: yaml.v3: %v", doc, err)
		}
		if got, want := dump(fast, true), dump(fromYAML(&nodes{}, root.Content[0]), true); got != want {
			t.Errorf("%q:\nfast path:\n%s\nyaml.v3:\n%s", doc, got, want)
		}
	}
}

// Text that is not JSON goes to yaml.v3, which reads YAML flow mappings and
// reports errors by line as before.
func TestNotJSONIsReadAsYAML(t *testing.T) {
	top, _, err := parseTree([]byte("{encap: {tunnels: []}}"))
	if err != nil || top.Kind != yaml.MappingNode || top.Content[0].Value != "encap" {
		t.Fatalf("a YAML flow mapping: %v %+v", err, top)
	}
	for _, bad := range []string{`{"a": 1,}`, `{"a": 01}`, `{"a": "x"} trailing`, `{"a": tru}`} {
		s := &jsonScanner{data: []byte(bad), line: 1, alloc: &nodes{}}
		if _, err := s.document(); err == nil {
			t.Errorf("%q taken for JSON", bad)
		}
	}
	if _, _, err := parseTree([]byte("{\"a\": [1,\n2,,]}")); err == nil || !strings.HasPrefix(err.Error(), "yaml: line ") {
		t.Errorf("a broken file: %v, want yaml.v3's error by line", err)
	}
}

// dump writes a tree a node a line: kind, value, line, and the tag (with
// tags; without, only whether a scalar is null, all Parse reads of tags).
func dump(n *node, tags bool) string {
	var b strings.Builder
	var walk func(*node, int)
	walk = func(n *node, depth int) {
		tag := n.Tag
		if !tags {
			tag = fmt.Sprint("null=", n.Tag == "!!null")
		}
		fmt.Fprintf(&b, "%s%d %s %q line %d\n", strings.Repeat(" ", depth), n.Kind, tag, n.Value, n.Line)
		if n.Kind == yaml.SequenceNode {
			n.each(func(_ int, c *node) { walk(c, depth+1) })
			return
		}
		for _, c := range n.Content {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return b.String()
}

// A section's list is kept as text and walked an item at a time, in JSON
// and in YAML; a top-level list is kept as nodes.
func TestSectionListsAreLazy(t *testing.T) {
	for _, text := range []string{
		`{"encap": {"tunnels": [{"vni": 1}, {"vni": 2}, {"vni": 3}]}, "attach": [{"iface": "x"}]}`,
		"encap:\n  tunnels:\n    - vni: 1\n    - {vni: 2}\n    -\n      vni: 3\nattach:\n  - iface: x\n",
	} {
		top, _, err := parseTree([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		tunnels, attach := top.Content[1].Content[1], top.Content[3]
		if tunnels.lazy == nil || tunnels.length() != 3 || len(tunnels.Content) != 0 {
			t.Fatalf("%q: encap.tunnels: lazy %v, %d items, %d nodes kept", text, tunnels.lazy != nil, tunnels.length(), len(tunnels.Content))
		}
		if attach.lazy != nil || len(attach.Content) != 1 {
			t.Errorf("%q: attach (a top-level list) is kept as nodes: lazy %v", text, attach.lazy != nil)
		}
		var vnis []string
		tunnels.each(func(i int, item *node) { vnis = append(vnis, item.Content[1].Value) })
		if strings.Join(vnis, ",") != "1,2,3" {
			t.Errorf("%q: items walked: %v", text, vnis)
		}
	}
}
