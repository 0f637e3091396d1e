package dataplane

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
)

func TestCounterNamesComeFromBTF(t *testing.T) {
	names, err := EncapDataplane.CounterNames()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 46 {
		t.Fatalf("%d counters, want 46", len(names))
	}
	if names[0] != [2]string{"encap", "geneve"} || names[len(names)-1] != [2]string{"pass", "pass"} {
		t.Errorf("first and last counters: %v %v", names[0], names[len(names)-1])
	}
	for i, n := range names {
		if n[0] == "" || n[1] == "" {
			t.Errorf("counter %d has no name", i)
		}
	}
}

// The generated shapes and counter names (shapegen) must be what the
// object holds: opening pins and naming counters rely on them alone.
func TestGeneratedShapesMatchTheObjects(t *testing.T) {
	for _, dp := range All() {
		spec, err := dp.Spec()
		if err != nil {
			t.Fatal(err)
		}
		shapes := dp.mapShapes()
		for name, ms := range spec.Maps {
			if name[0] == '.' {
				continue
			}
			got := shapes[name]
			if got == nil {
				t.Errorf("%s: map %s has no generated shape", dp.Name, name)
				continue
			}
			if got.Type != ms.Type || got.KeySize != ms.KeySize || got.ValueSize != ms.ValueSize || got.MaxEntries != ms.MaxEntries || got.Flags != ms.Flags {
				t.Errorf("%s: map %s: generated %+v, object %+v", dp.Name, name, *got, *ms)
			}
			delete(shapes, name)
		}
		for name := range shapes {
			t.Errorf("%s: generated shape of %s, which the object does not have", dp.Name, name)
		}
		enum, ok := btf.UnderlyingType(spec.Maps["stats"].Key).(*btf.Enum)
		if !ok || len(dp.counterNames) != int(spec.Maps["stats"].MaxEntries) {
			t.Fatalf("%s: %d generated counter names for %d counters", dp.Name, len(dp.counterNames), spec.Maps["stats"].MaxEntries)
		}
		for _, v := range enum.Values {
			if v.Value < uint64(len(dp.counterNames)) && dp.counterNames[v.Value] != v.Name {
				t.Errorf("%s: counter %d generated %s, object %s", dp.Name, v.Value, dp.counterNames[v.Value], v.Name)
			}
		}
	}
}

func TestLinkPinNames(t *testing.T) {
	pin := LinkPinName("encap", 4026531840, 7)
	if pin != "link_encap_4026531840_7" {
		t.Errorf("LinkPinName = %s", pin)
	}
	prog, ns, idx := parseLinkPin(pin)
	if prog != "encap" || ns != 4026531840 || idx != 7 {
		t.Errorf("parseLinkPin = %s %d %d", prog, ns, idx)
	}
}

func TestLoadOpenUnload(t *testing.T) {
	testnet.RequireRoot(t)
	root, err := maps.OpenRoot(testnet.BPFRoot(t, nil), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root, EncapDataplane); !errors.Is(err, maps.ErrNotLoaded) {
		t.Errorf("Open before load: %v, want ErrNotLoaded", err)
	}
	lock, err := root.Lock(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	res, err := Load(lock, EncapDataplane, LoadOptions{MaxEntries: 64, Version: "test"})
	if err != nil || len(res.Created) != 15 || res.MaxEntries != 64 {
		t.Fatalf("Load: %+v, %v", res, err)
	}
	l, err := Open(root, EncapDataplane)
	if err != nil {
		t.Fatal(err)
	}
	if l.Meta.Schema != maps.EncapSchema || l.Meta.MaxEntries != 64 || l.Meta.Version != "test" {
		t.Errorf("meta: %+v", l.Meta)
	}
	cs, err := l.Stats()
	if err != nil || len(cs) != 46 {
		t.Errorf("Stats: %d counters, %v", len(cs), err)
	}
	l.Close()
	// A load cut short before the meta record: Open calls it not loaded, Load completes it.
	if err := os.Remove(filepath.Join(root.Dir("encap"), "map_meta")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root, EncapDataplane); !errors.Is(err, maps.ErrNotLoaded) {
		t.Errorf("Open of an incomplete load: %v", err)
	}
	st, err := ReadStatus(root)
	if err != nil || len(st.Dataplanes) != 1 || st.Dataplanes[0].State != "incomplete" {
		t.Errorf("status of an incomplete load: %+v, %v", st, err)
	}
	if res, err = Load(lock, EncapDataplane, LoadOptions{}); err != nil || len(res.Created) != 1 || res.MaxEntries != 64 {
		t.Errorf("completing load: %+v, %v", res, err)
	}
	un, err := Unload(lock, EncapDataplane, UnloadOptions{})
	if err != nil || len(un.Removed) != 16 { // 10 maps (provenance too), 6 programs
		t.Errorf("Unload: %+v, %v", un, err)
	}
	if un, err = Unload(lock, EncapDataplane, UnloadOptions{}); err != nil || len(un.Removed) != 0 {
		t.Errorf("second Unload: %+v, %v", un, err)
	}
}

func TestLoadUpgradesProgramsInPlace(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNetns(t, "upg")
	testnet.Veth(t, ns, "u0", ns, "u1")
	root, lock := loadedRoot(t, EncapDataplane, 0)
	l, err := Open(root, EncapDataplane)
	if err != nil {
		t.Fatal(err)
	}
	att, err := l.Attach(lock, "pass", "u0", AttachOptions{Netns: ns.Name})
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Make prog_pass look like another build's: pin other code under its name.
	dir := root.Dir("encap")
	redirect, err := ebpf.LoadPinnedProgram(filepath.Join(dir, "prog_redirect"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rinfo, _ := redirect.Info()
	rid, _ := rinfo.ID()
	redirect.Close()
	other, err := ebpf.NewProgramFromID(rid) // not tied to its pin, so Pin adds one
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := os.Remove(filepath.Join(dir, "prog_pass")); err != nil {
		t.Fatal(err)
	}
	if err := other.Pin(filepath.Join(dir, "prog_pass")); err != nil {
		t.Fatal(err)
	}
	res, err := Load(lock, EncapDataplane, LoadOptions{})
	if err != nil || len(res.Upgraded) != 1 || res.Upgraded[0] != "pass" || len(res.Created) != 0 {
		t.Fatalf("reload: %+v, %v; want pass upgraded and nothing created", res, err)
	}
	pinned, err := ebpf.LoadPinnedProgram(filepath.Join(dir, "prog_pass"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()
	pinfo, _ := pinned.Info()
	pid, _ := pinfo.ID()
	oinfo, _ := other.Info()
	oid, _ := oinfo.ID()
	lk, err := link.LoadPinnedLink(att.Pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	linfo, err := lk.Info()
	if err != nil {
		t.Fatal(err)
	}
	if pid == oid || linfo.Program != pid {
		t.Errorf("after the upgrade the link runs program %d, the pin holds %d (the replaced one was %d)", linfo.Program, pid, oid)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 17 {
		t.Errorf("%d pins after the upgrade, want 10 maps (provenance too), 6 programs and 1 link", len(entries))
	}
}

// TestUpgradeKeepsL3Variants: route on a TUN device runs route-l3 under the
// name route; upgrading route's code leaves that link on route-l3.
func TestUpgradeKeepsL3Variants(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNetns(t, "upv")
	ns.Run(t, "ip", "tuntap", "add", "dev", "rt0", "mode", "tun")
	ns.Run(t, "ip", "link", "set", "rt0", "up")
	testnet.Veth(t, ns, "u0", ns, "u1")
	root, lock := loadedRoot(t, RouteDataplane, 0)
	l, err := Open(root, RouteDataplane)
	if err != nil {
		t.Fatal(err)
	}
	l3, err1 := l.Attach(lock, "route", "rt0", AttachOptions{Netns: ns.Name})
	eth, err2 := l.Attach(lock, "route", "u0", AttachOptions{Netns: ns.Name})
	l.Close()
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	dir := root.Dir("route")
	progID := func(pin string) ebpf.ProgramID {
		p, err := ebpf.LoadPinnedProgram(filepath.Join(dir, pin), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		info, _ := p.Info()
		id, _ := info.ID()
		return id
	}
	linkProg := func(pin string) ebpf.ProgramID {
		lk, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer lk.Close()
		info, err := lk.Info()
		if err != nil {
			t.Fatal(err)
		}
		return info.Program
	}
	variant := progID("prog_route-l3")
	if linkProg(l3.Pin) != variant || linkProg(eth.Pin) != progID("prog_route") {
		t.Fatalf("route on rt0 runs %d (want route-l3, %d); on u0 %d (want route, %d)", linkProg(l3.Pin), variant, linkProg(eth.Pin), progID("prog_route"))
	}
	// Another build's route: other code pinned as prog_route, and the
	// Ethernet link running it, as that build would have left them.
	spec, err := RouteDataplane.Spec()
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	other := coll.Programs["route_egress_l3"]
	if err := os.Remove(filepath.Join(dir, "prog_route")); err != nil {
		t.Fatal(err)
	}
	if err := other.Pin(filepath.Join(dir, "prog_route")); err != nil {
		t.Fatal(err)
	}
	lk, err := link.LoadPinnedLink(eth.Pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = lk.Update(other)
	lk.Close()
	if err != nil {
		t.Fatal(err)
	}
	res, err := Load(lock, RouteDataplane, LoadOptions{})
	if err != nil || len(res.Upgraded) != 1 || res.Upgraded[0] != "route" {
		t.Fatalf("reload: %+v, %v; want route upgraded", res, err)
	}
	if got := linkProg(l3.Pin); got != variant {
		t.Errorf("the upgrade moved rt0's link to %d, off route-l3 (%d)", got, variant)
	}
	if got, want := linkProg(eth.Pin), progID("prog_route"); got != want {
		t.Errorf("u0's link runs %d after the upgrade, want the new route %d", got, want)
	}
}

// Every dataplane's observed build passes the verifier, holds the same
// programs as the plain build, and the same maps of the same shapes plus
// its own three: what capture and monitor load over the pinned maps.
func TestObservedBuildsLoad(t *testing.T) {
	testnet.RequireRoot(t)
	for _, dp := range All() {
		plain, err := dp.Spec()
		if err != nil {
			t.Fatal(err)
		}
		spec, err := dp.ObservedSpec()
		if err != nil {
			t.Fatal(err)
		}
		for name := range plain.Programs {
			if spec.Programs[name] == nil {
				t.Errorf("%s: program %s is not in the observed build", dp.Name, name)
			}
		}
		for name, ms := range plain.Maps {
			o := spec.Maps[name]
			if o == nil || o.Type != ms.Type || o.KeySize != ms.KeySize || o.ValueSize != ms.ValueSize {
				t.Errorf("%s: map %s differs in the observed build: %v, plain %v", dp.Name, name, o, ms)
			}
		}
		for _, name := range []string{"observe_config", "observe_events", "observe_scratch"} {
			if spec.Maps[name] == nil {
				t.Errorf("%s: the observed build has no map %s", dp.Name, name)
			}
		}
		coll, err := ebpf.NewCollection(spec)
		if err != nil {
			t.Fatalf("%s: load the observed build: %v", dp.Name, err)
		}
		coll.Close()
	}
}
