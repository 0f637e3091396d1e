package apply

import (
	"errors"
	"strings"
	"testing"

	"github.com/tunmux/tunmux/maps"
)

func TestParseSectionsAndForms(t *testing.T) {
	doc, err := Parse("f.yaml", []byte(`
encap:
  tunnels:
    - {inner-src: 10.0.0.1, inner-dst: 10.0.0.2, proto: vlan, vlan-id: 7, underlay: a, overlay: b}
  devmap:
    - {in: x, out: y}
xconnect:
  pairs:
    - [p, q]
    - {a: r, b: s}
l2tp:
  sessions:
`))
	if err != nil || len(doc.problems) != 0 {
		t.Fatalf("Parse: %v %v", err, doc.problems)
	}
	if len(doc.Encap.Tunnels) != 1 || doc.Encap.Tunnels[0].Args.VlanID != "7" || doc.Encap.Tunnels[0].Line != 4 {
		t.Errorf("tunnels: %+v", doc.Encap.Tunnels)
	}
	if doc.Encap.Devmap[0].Args != (SlotArgs{In: "x", Out: "y"}) {
		t.Errorf("devmap: %+v", doc.Encap.Devmap)
	}
	if len(doc.Xconnect.Pairs) != 2 || doc.Xconnect.Pairs[1].Args != (PairArgs{A: "r", B: "s"}) {
		t.Errorf("pairs: %+v", doc.Xconnect.Pairs)
	}
	if doc.L2TP == nil || len(doc.L2TP.Sessions) != 0 {
		t.Errorf("an empty sessions key is an empty section: %+v", doc.L2TP)
	}
}

func TestParseJSON(t *testing.T) {
	doc, err := Parse("f.json", []byte(`{"xconnect": {"pairs": [["a", "b"]]}}`))
	if err != nil || doc.Xconnect == nil || doc.Xconnect.Pairs[0].Args.B != "b" || doc.Encap != nil {
		t.Fatalf("JSON: %+v %v", doc, err)
	}
}

func TestParseKeepsEveryProblemWithItsLine(t *testing.T) {
	doc, err := Parse("f.yaml", []byte(`encap:
  tunnels:
    - inner-src: 10.0.0.1
      colour: red
      vni: [1, 2]
      vni: 3
  devmap: {in: x}
xconnect:
  pairs:
    - [only]
other: 1
encap: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`4: encap.tunnels[0]: unknown key "colour"`,
		`5: encap.tunnels[0]: vni must be a single value`,
		`7: encap.devmap: must be a list`,
		`10: xconnect.pairs[0]: must be a pair`,
		`11: unknown key "other"`,
		`12: key "encap" repeats the one on line 1`,
	}
	var got []string
	for _, p := range doc.problems {
		got = append(got, p.String())
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, w)
		}
		if !found {
			t.Errorf("no problem %q in %q", w, got)
		}
	}
}

func TestParseBrokenFile(t *testing.T) {
	for _, content := range []string{"encap: [unclosed", "", "- a list"} {
		_, err := Parse("f.yaml", []byte(content))
		var inv *InvalidFileError
		if !errors.As(err, &inv) || !errors.Is(err, maps.ErrInvalid) || len(inv.Problems) != 1 {
			t.Errorf("%q: %v", content, err)
		}
	}
}

func TestProblemsOfMapFlagsToKeys(t *testing.T) {
	e := Entry[maps.TunnelArgs]{Line: 3, Path: "encap.tunnels[0]", lines: newFieldLines(map[string]int{"vni": 0, "vlan-id": 1})}
	e.lines.set("vni", 7)
	ps := problemsOf(e, errors.Join(maps.Invalid("--vni", "x", "is not a number", "0..16777215 with --proto vxlan")))
	if len(ps) != 1 || ps[0].Line != 7 || ps[0].Msg != `vni "x": is not a number (accepted: 0..16777215 with proto vxlan)` {
		t.Errorf("%+v", ps)
	}
}

func TestParseGeneveOptionsOneOrMany(t *testing.T) {
	doc, err := Parse("f.yaml", []byte(`
encap:
  tunnels:
    - {inner-src: fd00::1, inner-dst: fd00::2, proto: geneve, geneve-opt: "0102:03:deadbeef"}
    - inner-src: 10.0.0.1
      inner-dst: 10.0.0.2
      proto: geneve
      geneve-opt: ["0102:03:deadbeef", "ffff:80:00000000"]
    - {inner-src: 10.0.0.1, inner-dst: 10.0.0.3, geneve-opt: [{a: b}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	ts := doc.Encap.Tunnels
	if len(ts) != 3 || strings.Join(ts[0].Args.GeneveOpts, " ") != "0102:03:deadbeef" ||
		strings.Join(ts[1].Args.GeneveOpts, " ") != "0102:03:deadbeef ffff:80:00000000" || ts[0].Args.InnerSrc != "fd00::1" {
		t.Errorf("tunnels: %+v", ts)
	}
	if len(doc.problems) != 1 || doc.problems[0].Line != 9 || !strings.Contains(doc.problems[0].Msg, "geneve-opt must be a list of single values") {
		t.Errorf("problems: %+v", doc.problems)
	}
}

// A key given twice in one entry is reported at its second line, naming the
// first, in a list of entries and in a route.
func TestRepeatedKeysInAnEntry(t *testing.T) {
	for _, text := range []string{
		"encap:\n  tunnels:\n    - inner-src: 10.0.0.1\n      vni: 1\n      vni: 2\n",
		"{\"encap\": {\"tunnels\": [{\"inner-src\": \"10.0.0.1\",\n \"vni\": 1,\n \"vni\": 2}]}}",
		"{\"route\": {\"routes\": [{\"prefix\": \"10.0.0.0/8\",\n \"prefix\": \"10.1.0.0/16\"}]}}",
	} {
		doc, err := Parse("f", []byte(text))
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if len(doc.problems) != 1 || !strings.Contains(doc.problems[0].Msg, "repeats the one on line") || doc.problems[0].Line < 2 {
			t.Errorf("%q: problems %+v, want one repeated key", text, doc.problems)
		}
	}
}

// File forms YAML or a lax reader would take without a word (issue 14):
// each is refused (exit 2 upstream) with the line.
func TestFileFormsThatWouldBeSilent(t *testing.T) {
	utf16 := []byte{0xff, 0xfe}
	for _, r := range "xconnect:\n  pairs: [[x1, x3]]\n" {
		utf16 = append(utf16, byte(r), 0)
	}
	for _, c := range []struct {
		name string
		data []byte
		line int
		has  string
	}{
		{"a second document", []byte("xconnect:\n  pairs: [[x1, x3]]\n---\nxconnect:\n  pairs: [[wl3, wl4]]\n"), 3, "second YAML document"},
		{"a trailing comma in JSON", []byte(`{"xconnect": {"pairs": [["x1", "x3"],]}}`), 1, "not valid JSON"},
		{"UTF-16", utf16, 1, "UTF-16"},
		{"a NUL byte", []byte("xconnect:\n  pairs: [[x1, x3]]\n\x00"), 3, "NUL"},
		{"not UTF-8", []byte("xconnect:\n  pairs: [[x1, \xff]]\n"), 1, "not valid UTF-8"},
	} {
		_, err := Parse("f", c.data)
		var inv *InvalidFileError
		if !errors.As(err, &inv) || len(inv.Problems) == 0 {
			t.Errorf("%s: %v, want an invalid file", c.name, err)
			continue
		}
		if p := inv.Problems[0]; p.Line != c.line || !strings.Contains(p.Msg, c.has) {
			t.Errorf("%s: %+v, want line %d saying %q", c.name, p, c.line, c.has)
		}
	}
	// One document after a start marker is one document.
	if _, err := Parse("f", []byte("---\nxconnect:\n  pairs: [[x1, x3]]\n")); err != nil {
		t.Errorf("a single document with ---: %v", err)
	}
}

func TestParseXdpXconnectLinks(t *testing.T) {
	doc, err := Parse("config.yaml", []byte("links:\n    eth0: tap0\n    veth2: veth3\n"))
	if err != nil || len(doc.problems) != 0 {
		t.Fatalf("Parse: %v %v", err, doc.problems)
	}
	want := []PairArgs{{A: "eth0", B: "tap0"}, {A: "veth2", B: "veth3"}}
	if doc.Xconnect == nil || len(doc.Xconnect.Pairs) != 2 {
		t.Fatalf("xconnect section: %+v", doc.Xconnect)
	}
	for i, w := range want {
		if got := doc.Xconnect.Pairs[i]; got.Args != w || got.Line != i+2 || got.Path != "links."+w.A {
			t.Errorf("pair %d: %+v, want %+v at line %d", i, got, w, i+2)
		}
	}
	if doc.Encap != nil || doc.L2TP != nil || doc.Load != nil {
		t.Errorf("links made other sections: %+v", doc)
	}
	empty, err := Parse("config.yaml", []byte("links: {}\n"))
	if err != nil || empty.Xconnect == nil || len(empty.Xconnect.Pairs) != 0 {
		t.Errorf("links: {} is an empty xconnect section: %+v %v", empty, err)
	}
	for _, c := range []struct{ name, file, want string }{
		{"both forms", "xconnect:\n  pairs: [[a, b]]\nlinks: {c: d}\n", `3: links: the xconnect section on line 2 already gives`},
		{"both forms, links first", "links: {c: d}\nxconnect:\n  pairs: [[a, b]]\n", `3: xconnect: links (xdp-xconnect's form) on line 1`},
		{"a list", "links: [a, b]\n", `1: links: must be a mapping of one end`},
		{"no other end", "links:\n  a:\n", `2: links.a: must name the other end's interface`},
		{"a nested value", "links:\n  a: [b]\n", `2: links.a: must name the other end's interface`},
		{"a repeated end", "links:\n  a: b\n  a: c\n", `3: links: key "a" repeats the one on line 2`},
	} {
		doc, err := Parse("config.yaml", []byte(c.file))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var got []string
		for _, p := range doc.problems {
			got = append(got, p.String())
		}
		if !strings.Contains(strings.Join(got, "\n"), c.want) {
			t.Errorf("%s: problems %q, want %q", c.name, got, c.want)
		}
	}
}
