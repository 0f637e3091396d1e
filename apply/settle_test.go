package apply

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFileSettles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.yaml")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var f fileState
	noReport := func(ev Event) { t.Errorf("unexpected report: %+v", ev) }
	var current *content
	// next polls at a given time (the clock is the test's) and says whether
	// content came out.
	next := func(at time.Duration) bool {
		t.Helper()
		c, ok := f.next(path, time.Unix(0, 0).Add(at), 500*time.Millisecond, Selector{}, current, noReport)
		if ok {
			current = c
		}
		return ok
	}
	const one = "xconnect:\n  pairs:\n    - [a0, b0]\n"

	write(path, one)
	if next(0) || next(200*time.Millisecond) {
		t.Fatal("the first version was applied before it settled")
	}
	if !next(600*time.Millisecond) || !current.parses() {
		t.Fatal("the first version did not come out once settled")
	}
	if next(time.Second) {
		t.Fatal("the same version came out twice")
	}

	// In place: every change starts the wait again.
	write(path, one+"    - [a1, b1]\n")
	if next(1100 * time.Millisecond) {
		t.Fatal("an in-place change came out at once")
	}
	write(path, one+"    - [a1, b1]\n    - [a2, b2]\n")
	if next(1500*time.Millisecond) || next(1700*time.Millisecond) {
		t.Fatal("an in-place change came out before it settled")
	}
	if !next(2100*time.Millisecond) || len(current.doc.Xconnect.Pairs) != 3 {
		t.Fatal("the last in-place version did not come out once settled")
	}

	// Renamed into place and parsing: at once.
	tmp := filepath.Join(dir, "d.yaml.tmp")
	write(tmp, one)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if !next(2200*time.Millisecond) || len(current.doc.Xconnect.Pairs) != 1 {
		t.Fatal("a version renamed into place did not come out at once")
	}
	// Renamed into place but not parsing: after the settle time, to be reported.
	write(tmp, "xconnect: [unclosed\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if next(2300 * time.Millisecond) {
		t.Fatal("a bad version renamed into place came out at once")
	}
	if !next(2900*time.Millisecond) || current.parses() {
		t.Fatal("a bad version did not come out once settled")
	}
	// Back to a version seen before: it is new again.
	write(path, one)
	if next(3000*time.Millisecond) || !next(3600*time.Millisecond) {
		t.Fatal("a version seen before did not come out once settled")
	}

	// A missing file is reported once.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	reports := 0
	for i := 0; i < 3; i++ {
		if _, ok := f.next(path, time.Unix(4, 0), 500*time.Millisecond, Selector{}, current, func(Event) { reports++ }); ok {
			t.Fatal("a missing file came out")
		}
	}
	if reports != 1 {
		t.Errorf("a missing file was reported %d times, want once", reports)
	}
}

func TestInterfaceNames(t *testing.T) {
	// JSON is YAML too.
	doc, err := Parse("d.json", []byte(`{"encap": {"tunnels": [{"inner-src": "10.0.0.1", "inner-dst": "10.0.0.2", "proto": "vlan", "vlan-id": 7,
		"underlay": "ul0", "overlay": "wl0"}], "devmap": [{"in": "x0", "out": "ul0"}]}, "xconnect": {"pairs": [["p0", "q0"]]},
		"l2tp": {"sessions": [{"session-id": 1, "peer-session-id": 2, "encap": "ip", "local": "10.1.0.1", "peer": "10.1.0.2",
		"eth-iface": "e0", "tunnel-iface": "t0"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	var l linkFilter
	if !l.concerns("anything") {
		t.Error("with no file yet, every interface should concern the watch")
	}
	l.set(&content{names: interfaceNames(doc)}, nil)
	for _, n := range []string{"ul0", "wl0", "x0", "p0", "q0", "e0", "t0"} {
		if !l.concerns(n) {
			t.Errorf("%s does not concern the watch", n)
		}
	}
	if l.concerns("eth9") {
		t.Error("an interface the file does not name concerns the watch")
	}
	route, err := Parse("r.yaml", []byte("route:\n  routes: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if interfaceNames(route) != nil {
		t.Error("a route section should make every interface matter")
	}
}
