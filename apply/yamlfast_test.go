package apply

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// Random documents of the forms files take (block mappings and lists,
// one-line flow mappings and lists, plain and quoted scalars, nulls,
// comments, blank lines), a few thousand of them from a fixed seed: where
// the fast path takes one, its tree is yaml.v3's.
func TestYAMLFastPathOnRandomDocuments(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	scalars := []string{"10.0.0.1", "fd00::1", "02:00:00:00:00:02", "vxlan", "7", "0x10", "-3", "~", "null", "", "'quoted'", "\"double\"", "a b", "x#y", "yes", "1.5", "'a # b'", "\"c: d\"", "''", "NULL", "true"}
	keys := []string{"a", "inner-src", "vni", "b_2", "geneve-opt", "nexthops"}
	pick := func(list []string) string { return list[rng.Intn(len(list))] }
	var block func(b *strings.Builder, indent, depth int)
	flowValue := func() string {
		if rng.Intn(4) == 0 {
			var items []string
			for i := rng.Intn(3); i >= 0; i-- {
				items = append(items, pick(scalars[:8]))
			}
			return "[" + strings.Join(items, ", ") + "]"
		}
		return pick(scalars)
	}
	value := func() string {
		switch rng.Intn(6) {
		case 0:
			var items []string
			for i := rng.Intn(4); i >= 0; i-- {
				items = append(items, pick(keys)+": "+flowValue())
			}
			return "{" + strings.Join(items, ", ") + "}"
		case 1:
			return flowValue()
		}
		return pick(scalars)
	}
	comment := func() string {
		if rng.Intn(5) == 0 {
			return " # note"
		}
		return ""
	}
	block = func(b *strings.Builder, indent, depth int) {
		pad := strings.Repeat(" ", indent)
		if depth > 0 && rng.Intn(2) == 0 {
			for i := rng.Intn(4); i >= 0; i-- {
				switch rng.Intn(4) {
				case 0:
					fmt.Fprintf(b, "%s- %s%s\n", pad, value(), comment())
				case 1:
					fmt.Fprintf(b, "%s- %s: %s\n", pad, pick(keys), value())
					fmt.Fprintf(b, "%s  %s: %s\n", pad, pick(keys), value())
				case 2:
					fmt.Fprintf(b, "%s-\n", pad)
					block(b, indent+2, depth-1)
				default:
					fmt.Fprintf(b, "%s- %s\n", pad, value())
				}
				if rng.Intn(6) == 0 {
					b.WriteString("\n")
				}
			}
			return
		}
		for i := rng.Intn(4); i >= 0; i-- {
			if depth > 0 && rng.Intn(3) == 0 {
				fmt.Fprintf(b, "%s%s:%s\n", pad, pick(keys), comment())
				step := 2
				if rng.Intn(4) == 0 {
					step = 0 // a list at the key's own indentation
					fmt.Fprintf(b, "%s- %s\n", pad, value())
					continue
				}
				block(b, indent+step, depth-1)
				continue
			}
			fmt.Fprintf(b, "%s%s: %s%s\n", pad, pick(keys), value(), comment())
		}
	}
	took := 0
	for i := 0; i < 3000; i++ {
		var b strings.Builder
		if rng.Intn(4) == 0 {
			b.WriteString("# a file\n")
		}
		block(&b, 0, 3)
		if checkAgainstYAML(t, fmt.Sprintf("random document %d", i), b.String()) {
			took++
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("the fast path took %d of 3000 random documents", took)
	if took < 300 {
		t.Errorf("the fast path took only %d of 3000 random documents", took)
	}
}
