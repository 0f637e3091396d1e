package apply

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"gopkg.in/yaml.v3"
)

// checkAgainstYAML requires the fast path's tree of text, when it takes
// text, to be yaml.v3's; it reports whether the fast path took it.
func checkAgainstYAML(t *testing.T, name, text string) bool {
	t.Helper()
	fast, err := yamlFast([]byte(text), &nodes{})
	if err != nil {
		return false
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		t.Errorf("%s: the fast path took a file yaml.v3 refuses (%v):\n%s", name, err, text)
		return true
	}
	if got, want := dump(fast, false), dump(fromYAML(&nodes{}, root.Content[0]), false); got != want {
		t.Errorf("%s:\n%s\nfast path:\n%s\nyaml.v3:\n%s", name, text, got, want)
	}
	return true
}

func TestYAMLFastPathIsYAMLsTree(t *testing.T) {
	for i, text := range []string{
		"encap:\n  tunnels:\n    - inner-src: 10.0.0.1\n      inner-dst: 10.0.1.2\n      proto: vxlan\n      vni: 6\n      dst-mac: 02:00:00:00:00:02\n      underlay: ul0\n    - inner-src: 10.0.0.1 # a comment\n      inner-dst: \"10.0.1.3\"\n",
		"# tunmux export\nload:\n  encap:\n    max-entries: 1024\nattach: []\nencap:\n  tunnels:\n  - {inner-src: 10.0.0.1, inner-dst: 10.0.0.2, proto: vlan, vlan-id: 7, underlay: ul0, overlay: wl0}\n  - {inner-src: fd00::1, inner-dst: 'fd00::2', geneve-opt: [0x0102:3:aabb, 0x0102:4:ccdd]}\n  devmap:\n",
		"route:\n  routes:\n    - prefix: 10.0.0.0/8\n      nexthops:\n        - remote=1.2.3.4,vni=5\n        - {remote: 1.2.3.5, weight: 2}\n  peers: ~\nxconnect:\n  pairs:\n    - [a0, b0]\n    - {a: a1, b: b1, mode: generic}\n",
		"mux:\n  carrier: c0\n  members:\n    -\n      name: m1\n      label: 1\n    - name: m2\n      label: null\n",
		"a:\n  b:\n    c: {}\n  d: []\n  e: ''\n  f: \"\"\n",
	} {
		if !checkAgainstYAML(t, fmt.Sprintf("doc %d", i), text) {
			t.Errorf("doc %d: the fast path gave up on:\n%s", i, text)
		}
	}
}

func TestYAMLFastPathGivesUpOutsideItsSubset(t *testing.T) {
	for _, text := range []string{
		"a: &x 1\nb: *x\n",     // anchors and aliases
		"a: !!str 1\n",         // tags
		"a: |\n  text\n",       // block scalars
		"a: one\n  two\n",      // a plain scalar over two lines
		"a: \"x\\ty\"\n",       // escapes
		"a: {b: {c: 1}}\n",     // nested flow mappings
		"a: [1,\n  2]\n",       // flow over several lines
		"---\na: 1\n",          // document markers
		"a:\n\t- 1\n",          // tabs
		"- a\n- b\n",           // not a mapping
		"a: 'it''s'\n",         // '' in single quotes
		"? a\n: b\n",           // complex keys
		"a: b: c\n",            // what yaml.v3 refuses
		"\"quoted key\": 1\n",  // quoted keys
		"a:\n  - b\n   c: 1\n", // indentation yaml.v3 judges
		"a: x # c\n  b: 1\n",   // a continuation after a comment
	} {
		if _, err := yamlFast([]byte(text), &nodes{}); err == nil {
			checkAgainstYAML(t, "outside the subset", text)
			t.Errorf("the fast path took:\n%s", text)
		}
	}
}

// Every YAML example in the docs reads the same through the fast path as
// through yaml.v3 (where the fast path takes it).
func TestYAMLFastPathOnTheDocs(t *testing.T) {
	files, _ := filepath.Glob("../docs/*.md")
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	took := 0
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range block.FindAllStringSubmatch(string(text), -1) {
			if checkAgainstYAML(t, fmt.Sprintf("%s, example %d", filepath.Base(f), i), m[1]) {
				took++
			}
		}
	}
	if took == 0 {
		t.Errorf("the fast path took none of the docs' YAML examples")
	}
	t.Logf("the fast path took %d of the docs' YAML examples", took)
}
