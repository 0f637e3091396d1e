package dataplane

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
)

func TestCounterNamesComeFromBTF(t *testing.T) {
	names, err := EncapDataplane.CounterNames()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 26 {
		t.Fatalf("%d counters, want 26", len(names))
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
	if err != nil || len(res.Created) != 10 || res.MaxEntries != 64 {
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
	if err != nil || len(cs) != 26 {
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
	un, err := Unload(lock, EncapDataplane)
	if err != nil || len(un.Removed) != 10 {
		t.Errorf("Unload: %+v, %v", un, err)
	}
	if un, err = Unload(lock, EncapDataplane); err != nil || len(un.Removed) != 0 {
		t.Errorf("second Unload: %+v, %v", un, err)
	}
}

func TestLoadUpgradesProgramsInPlace(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNetns(t, "upg")
	testnet.Veth(t, ns, "u0", ns, "u1")
	root, err := maps.OpenRoot(testnet.BPFRoot(t, func(r string) {
		if root, err := maps.OpenRoot(r, false); err == nil && root.Exists() {
			if lock, err := root.Lock(time.Second); err == nil {
				_, _ = Unload(lock, EncapDataplane)
				lock.Release()
			}
		}
	}), true)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := root.Lock(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if _, err := Load(lock, EncapDataplane, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
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
	if entries, _ := os.ReadDir(dir); len(entries) != 11 {
		t.Errorf("%d pins after the upgrade, want 6 maps, 4 programs and 1 link", len(entries))
	}
}
